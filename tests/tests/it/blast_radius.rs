//! The shared server's catalog holds no high-risk tool, and the isolated catalog holds every one;
//! `.ci/blast-radius` checks the same of the built binaries and the dependency graph.

use common::tenant::Tier;

const HIGH_RISK: [&str; 9] = [
    "webflow_publish_site",
    "webflow_publish_items",
    "webflow_delete_items",
    "webflow_unpublish_items",
    "webflow_set_custom_code",
    "dns_create_record",
    "dns_update_record",
    "dns_delete_record",
    "billing_create_portal_session",
];

#[test]
fn high_risk_tools_exist_only_in_the_isolated_catalog() {
    let shared = shared_server::tools::shared_catalog();
    assert!(shared.entries().iter().all(|e| e.tier != Tier::HighRisk));
    for name in HIGH_RISK {
        assert!(
            shared.get(name).is_none(),
            "{name} is in the shared catalog"
        );
    }
    let isolated = isolated_server::tools::isolated_catalog();
    for name in HIGH_RISK {
        let entry = isolated.get(name);
        assert!(
            entry.is_some_and(|e| e.tier == Tier::HighRisk),
            "{name} missing from the isolated catalog"
        );
    }
}
