//! The isolated server's safety property: random sequences of DNS, publish, CMS item removal
//! (delete, unpublish) and custom code calls, with random names, zones, records, domains,
//! collections, items, pages and scripts,
//! each followed by a random approval action (none, approved
//! by the operator, denied, left to expire, approved twice, an id of another instance approved, a
//! made-up id approved, the call repeated with changed arguments after its approval, or the
//! instance restarted while the approval is pending and the approval made afterwards). An
//! upstream write happens only while the operator approves a pending approval of this instance;
//! each such approval writes at most once, with exactly its arguments and inside the tenant's
//! allowed set; nothing else (tool calls, denials, expired, foreign, made-up or repeated
//! approvals) ever writes. Fixed case count and seed; `ISOLATED_SEED=<n>` replays another.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::time::Duration;

use common::runtime::admin::ApprovalView;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use serde_json::{Value, json};
use tests::harness::{McpClient, TestServer, call, eventually};
use tests::sandbox::{Fixture, OwnerFixture, RecordedRequest, Sandbox};

/// What happens after the model asked for an action.
#[derive(Clone, Debug)]
enum Decision {
    /// Nobody decides: the approval stays pending.
    None,
    /// The operator approves it.
    Approve,
    Deny,
    /// Asked on the short-lived instance, left to expire, then approved.
    Expire,
    /// Approved, then approved again.
    ApproveTwice,
    /// An approval of the other instance is approved here (and this one's there).
    OtherInstance,
    /// Ids nobody issued are approved.
    MadeUp,
    /// Approved, then the model calls with changed arguments.
    ChangedArgs,
    /// The instance restarts while the approval is pending; then the operator approves it.
    RestartThenApprove,
}

#[derive(Clone, Debug)]
enum Op {
    Create {
        name: usize,
        zone: usize,
    },
    Update {
        record: usize,
        name: usize,
    },
    Delete {
        record: usize,
    },
    Publish {
        domain: usize,
    },
    /// `webflow_delete_items`, or `webflow_unpublish_items` when `live`.
    Remove {
        item: usize,
        live: bool,
    },
    /// `webflow_set_custom_code` on the site or a page, with a choice of scripts.
    SetCode {
        page: usize,
        scripts: usize,
    },
}

fn op() -> impl Strategy<Value = (Op, Decision)> {
    // Publishing is refused locally after the first publish of the minute: fewer of them.
    let op = prop_oneof![
        3 => (0usize..10, 0usize..4).prop_map(|(name, zone)| Op::Create { name, zone }),
        3 => (0usize..16, 0usize..10).prop_map(|(record, name)| Op::Update { record, name }),
        2 => (0usize..16).prop_map(|record| Op::Delete { record }),
        1 => (0usize..4).prop_map(|domain| Op::Publish { domain }),
        2 => (0usize..16, any::<bool>()).prop_map(|(item, live)| Op::Remove { item, live }),
        2 => (0usize..5, 0usize..4).prop_map(|(page, scripts)| Op::SetCode { page, scripts }),
    ];
    let decision = prop_oneof![
        1 => Just(Decision::None),
        4 => Just(Decision::Approve),
        1 => Just(Decision::Deny),
        1 => Just(Decision::Expire),
        1 => Just(Decision::ApproveTwice),
        1 => Just(Decision::OtherInstance),
        1 => Just(Decision::MadeUp),
        1 => Just(Decision::ChangedArgs),
        1 => Just(Decision::RestartThenApprove),
    ];
    (op, decision)
}

struct World {
    acme: OwnerFixture,
    globex: OwnerFixture,
    names: Vec<String>,
    allowed: Vec<bool>,
    /// Records created by approved actions, which later updates and deletions pick from too.
    created: RefCell<Vec<String>>,
}

impl World {
    fn record_ids(&self) -> Vec<String> {
        self.acme
            .dns_record_ids
            .iter()
            .chain(&self.globex.dns_record_ids)
            .chain(self.created.borrow().iter())
            .cloned()
            .collect()
    }

    fn zone(&self, i: usize) -> Option<String> {
        match i {
            0 => None,
            1 => Some(self.acme.zone_id.clone()),
            2 => Some(self.globex.zone_id.clone()),
            _ => Some("0123456789abcdef0123456789abcdef".into()),
        }
    }

    /// (collection, item) pairs to remove: acme's own (blog: deletable; authors: not),
    /// globex's, and one of globex's items asked of acme's blog.
    fn items(&self) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = self
            .acme
            .item_ids
            .iter()
            .chain(&self.globex.item_ids)
            .cloned()
            .collect();
        pairs.push((
            self.acme.collection_ids[0].clone(),
            self.globex.item_ids[0].1.clone(),
        ));
        pairs
    }

    fn domains(&self) -> Vec<String> {
        self.acme
            .custom_domain_ids
            .iter()
            .chain(&self.globex.custom_domain_ids)
            .cloned()
            .collect()
    }
}

fn allowed_name(world: &World, name: &str) -> bool {
    world
        .names
        .iter()
        .zip(&world.allowed)
        .any(|(n, ok)| *ok && n == name)
        || name.ends_with(&format!(".shop.{}", world.acme.zone_name))
}

/// Content a record of `kind` may carry, distinct per `serial`.
fn record_for(kind: &str, name: &str, zone: &str, serial: usize) -> Value {
    match kind {
        "A" => {
            json!({"type": "A", "name": name, "content": format!("198.51.100.{}", serial % 250 + 1)})
        }
        "CNAME" => json!({"type": "CNAME", "name": name, "content": format!("t{serial}.{zone}")}),
        "MX" => {
            json!({"type": "MX", "name": name, "content": format!("mx{serial}.{zone}"), "priority": 10})
        }
        _ => json!({"type": "TXT", "name": name, "content": format!("case {serial}")}),
    }
}

/// (tool, arguments, whether the action is inside the tenant's allowed set).
fn call_for(
    world: &World,
    sandbox: &Sandbox,
    op: &Op,
    serial: usize,
) -> (&'static str, Value, bool) {
    let zone_name = &world.acme.zone_name;
    match op {
        Op::Create { name, zone } => {
            let name = &world.names[*name];
            let zone_id = world.zone(*zone);
            let mut args = json!({"record": record_for("TXT", name, zone_name, serial)});
            if let Some(z) = &zone_id {
                args["zone_id"] = json!(z);
            }
            let in_scope = zone_id.as_deref().is_none_or(|z| z == world.acme.zone_id)
                && allowed_name(world, name);
            ("dns_create_record", args, in_scope)
        }
        Op::Update { record, name } => {
            let ids = world.record_ids();
            let id = &ids[record % ids.len()];
            let name = &world.names[*name];
            let current = sandbox.dns_record(&world.acme.zone_id, id);
            let current_ok = current
                .as_ref()
                .and_then(|r| r["name"].as_str())
                .is_some_and(|n| allowed_name(world, n));
            // Cloudflare keeps a record's type: update with the current one (TXT if unknown).
            let kind = current
                .as_ref()
                .and_then(|r| r["type"].as_str())
                .unwrap_or("TXT");
            let args =
                json!({"record_id": id, "record": record_for(kind, name, zone_name, serial)});
            (
                "dns_update_record",
                args,
                current_ok && allowed_name(world, name),
            )
        }
        Op::Delete { record } => {
            let ids = world.record_ids();
            let id = &ids[record % ids.len()];
            let current_ok = sandbox
                .dns_record(&world.acme.zone_id, id)
                .as_ref()
                .and_then(|r| r["name"].as_str())
                .is_some_and(|n| allowed_name(world, n));
            ("dns_delete_record", json!({"record_id": id}), current_ok)
        }
        Op::Publish { domain } => {
            let domains = world.domains();
            let d = &domains[domain % domains.len()];
            let own = world.acme.custom_domain_ids.contains(d);
            ("webflow_publish_site", json!({"custom_domains": [d]}), own)
        }
        Op::Remove { item, live } => {
            let items = world.items();
            let (collection, item) = &items[item % items.len()];
            let blog = &world.acme.collection_ids[0];
            let there = if *live {
                sandbox.webflow_item_live(collection, item) == Some(true)
            } else {
                sandbox.webflow_item(collection, item).is_some()
            };
            let tool = if *live {
                "webflow_unpublish_items"
            } else {
                "webflow_delete_items"
            };
            let args = json!({"collection_id": collection, "item_ids": [item]});
            (tool, args, collection == blog && there)
        }
        Op::SetCode { page, scripts } => {
            let page = match page {
                0 => None,
                1 | 2 => Some(world.acme.page_ids[*page].clone()),
                _ => Some(world.globex.page_ids[0].clone()),
            };
            let (scripts, registered) = match scripts {
                0 => (json!([]), true),
                1 => (
                    json!([{"id": "cms_slider", "version": "1.1.0", "location": "footer"}]),
                    true,
                ),
                2 => (
                    json!([{"id": "cms_slider", "version": "1.0.0", "location": "header"},
                           {"id": "cookie_banner", "version": "0.2.0", "location": "footer",
                            "attributes": {"data-case": serial.to_string()}}]),
                    true,
                ),
                _ => (
                    json!([{"id": "cms_slider", "version": "2.0.0", "location": "header"}]),
                    false,
                ),
            };
            let own = page
                .as_ref()
                .is_none_or(|p| world.acme.page_ids.contains(p));
            let mut args = json!({"scripts": scripts});
            if let Some(p) = page {
                args["page_id"] = json!(p);
            }
            ("webflow_set_custom_code", args, own && registered)
        }
    }
}

/// The same action asked differently: the zone named or left out, the subdomain toggled. An
/// approval binds its exact arguments, so this is another action to approve.
fn changed(world: &World, tool: &str, args: &Value) -> Value {
    let mut args = args.clone();
    let map = args.as_object_mut().unwrap();
    if tool == "webflow_set_custom_code" {
        // The same scripts elsewhere: on the site instead of the page, or the other way round.
        if map.remove("page_id").is_none() {
            map.insert("page_id".into(), json!(world.acme.page_ids[0]));
        }
    } else if tool == "webflow_delete_items" || tool == "webflow_unpublish_items" {
        // The collection that is not named for removals.
        map.insert("collection_id".into(), json!(world.acme.collection_ids[1]));
    } else if tool == "webflow_publish_site" {
        let on = map
            .get("publish_to_webflow_subdomain")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        map.insert("publish_to_webflow_subdomain".into(), json!(!on));
    } else if map.remove("zone_id").is_none() {
        map.insert("zone_id".into(), json!(world.acme.zone_id));
    }
    args
}

/// Successful upstream writes since the log was last cleared.
fn writes(sandbox: &Sandbox) -> Vec<RecordedRequest> {
    sandbox
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET" && r.status < 300)
        .collect()
}

/// The model asks for the action: the approval id it is given (new, or the one already
/// waiting), or `None` when the call is refused. An outcome still to be told of an earlier
/// approval for the same arguments is read first.
async fn ask(client: &McpClient, tool: &str, args: &Value) -> Option<String> {
    for _ in 0..3 {
        let result = call(client, tool, args.clone()).await;
        if result.is_error == Some(true) {
            return None;
        }
        let step = result.structured_content.expect("structured content");
        match step["status"].as_str() {
            Some("approval_required" | "waiting_for_approval") => {
                return Some(step["approval_id"].as_str().unwrap().to_owned());
            }
            Some("done" | "failed" | "denied") => continue,
            _ => panic!("unexpected answer to {tool} {args}: {step}"),
        }
    }
    panic!("{tool} {args}: outcomes reported over and over")
}

/// What the model's next identical call says (its status and approval id).
async fn report(client: &McpClient, tool: &str, args: &Value) -> (String, String) {
    let step = call(client, tool, args.clone())
        .await
        .structured_content
        .unwrap_or(Value::Null);
    (
        step["status"].as_str().unwrap_or("error").to_owned(),
        step["approval_id"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Moves `server`'s clock past `id`'s one-second life: then it is expired.
async fn expired(server: &TestServer, id: &str) {
    server.clock.advance(2);
    let listed = server.admin.approvals().await.unwrap();
    let state = listed.iter().find(|a| a.id == id).map(|a| a.state.clone());
    assert_eq!(state.as_deref(), Some("expired"), "{id}");
}

/// The instances and their model clients: `main` (approvals last ten minutes) and `short`
/// (one second), both for acme, both writing to the same sandbox.
struct Instances {
    /// The main instance; replaced when it restarts (same data dir, port and public URL).
    main: std::cell::RefCell<Option<TestServer>>,
    main_dir: tempfile::TempDir,
    short: TestServer,
    client: McpClient,
    short_client: McpClient,
    _short_dir: tempfile::TempDir,
}

impl Instances {
    /// The main instance's admin client (a clone: no borrow is held across an await).
    fn admin(&self) -> common::runtime::admin::client::AdminClient {
        self.main
            .borrow()
            .as_ref()
            .expect("main instance")
            .admin
            .clone()
    }

    /// Stops the main instance and starts it again on its data dir, port and public URL: its
    /// approvals, tokens and keys must all carry over.
    async fn restart_main(&self, sandbox: &Sandbox) {
        let old = self.main.borrow_mut().take().expect("main instance");
        let public_url = old.public_url.clone();
        let connector_url = old.connector_url.clone();
        old.stop().await;
        let port = reqwest::Url::parse(&public_url).unwrap().port().unwrap();
        let connector_port = reqwest::Url::parse(&connector_url).unwrap().port().unwrap();
        let mut config = tests::harness::config_for(self.main_dir.path(), &sandbox.base_url());
        config.tenant = Some("acme".into());
        config.listen = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        config.public_url = Some(public_url);
        config.connector_listen =
            Some(std::net::SocketAddr::from(([127, 0, 0, 1], connector_port)));
        config.connector_url = Some(connector_url);
        // The stopped server's last store handles close a moment after it stops.
        let new = eventually(
            "restart: the stopped server's store unlocked",
            Duration::from_secs(10),
            || async {
                match TestServer::try_start_spec(config.clone(), &isolated_server::ISOLATED).await {
                    Ok(server) => Ok(server),
                    Err(e) if e.to_string().contains("locked") => Err(e),
                    Err(e) => panic!("restart: {e}"),
                }
            },
        )
        .await;
        *self.main.borrow_mut() = Some(new);
    }
}

/// Checks one approved decision's write: at most one, by exactly this tool on exactly these
/// arguments' target, and what it wrote is what the arguments say.
fn check_write(
    world: &World,
    sandbox: &Sandbox,
    tool: &str,
    args: &Value,
    view: &ApprovalView,
    wrote: &[RecordedRequest],
) -> Result<(), TestCaseError> {
    prop_assert!(wrote.len() <= 1, "one approval wrote twice: {wrote:?}");
    prop_assert_eq!(
        wrote.len() == 1,
        view.state == "done",
        "a write without `done` or `done` without a write: {:?} {:?}",
        view,
        wrote
    );
    let Some(w) = wrote.first() else {
        return Ok(());
    };
    let zone = &world.acme.zone_id;
    let records = format!("/client/v4/zones/{zone}/dns_records");
    let record_id = args["record_id"].as_str().unwrap_or_default();
    let (method, path) = match tool {
        "dns_create_record" => ("POST", records.clone()),
        "dns_update_record" => ("PATCH", format!("{records}/{record_id}")),
        "dns_delete_record" => ("DELETE", format!("{records}/{record_id}")),
        "webflow_delete_items" => (
            "DELETE",
            format!("/v2/collections/{}/items", world.acme.collection_ids[0]),
        ),
        "webflow_unpublish_items" => (
            "DELETE",
            format!(
                "/v2/collections/{}/items/live",
                world.acme.collection_ids[0]
            ),
        ),
        "webflow_set_custom_code" => match args["page_id"].as_str() {
            Some(page) => ("PUT", format!("/v2/pages/{page}/custom_code")),
            None => (
                "PUT",
                format!("/v2/sites/{}/custom_code", world.acme.site_id),
            ),
        },
        _ => ("POST", format!("/v2/sites/{}/publish", world.acme.site_id)),
    };
    prop_assert_eq!(
        (w.method.as_str(), w.path.as_str()),
        (method, path.as_str()),
        "{} {} wrote elsewhere",
        tool,
        args
    );
    let outcome = view.outcome.clone().unwrap_or_default();
    match tool {
        "dns_create_record" | "dns_update_record" => {
            let id = outcome["id"].as_str().unwrap_or_default();
            let stored = sandbox.dns_record(zone, id).unwrap_or_default();
            for field in ["type", "name", "content"] {
                prop_assert_eq!(
                    &stored[field],
                    &args["record"][field],
                    "{} wrote other arguments than approved: {}",
                    tool,
                    stored
                );
            }
        }
        "dns_delete_record" => {
            prop_assert!(sandbox.dns_record(zone, record_id).is_none());
        }
        "webflow_set_custom_code" => {
            let target = args["page_id"].as_str().unwrap_or(&world.acme.site_id);
            let stored = sandbox.webflow_custom_code(target).unwrap_or_default();
            prop_assert_eq!(
                &stored["scripts"],
                &args["scripts"],
                "custom code other than approved"
            );
        }
        "webflow_delete_items" | "webflow_unpublish_items" => {
            let collection = args["collection_id"].as_str().unwrap_or_default();
            let item = args["item_ids"][0].as_str().unwrap_or_default();
            if tool == "webflow_delete_items" {
                prop_assert!(sandbox.webflow_item(collection, item).is_none());
            } else {
                prop_assert_eq!(sandbox.webflow_item_live(collection, item), Some(false));
            }
        }
        _ => {}
    }
    Ok(())
}

/// Runs one (operation, decision); returns how many writes it made.
fn step(
    runtime: &tokio::runtime::Runtime,
    world: &World,
    sandbox: &Sandbox,
    at: &Instances,
    (op, decision): (&Op, &Decision),
    serial: usize,
) -> Result<usize, TestCaseError> {
    let (tool, args, in_scope) = call_for(world, sandbox, op, serial);
    let quiet = |what: &str| -> Result<(), TestCaseError> {
        let wrote = writes(sandbox);
        prop_assert!(
            wrote.is_empty(),
            "{} of {} {} {:?} wrote {:?}",
            what,
            tool,
            args,
            decision,
            wrote
        );
        Ok(())
    };
    sandbox.clear_requests();
    runtime.block_on(async {
        // Approving as the operator: the only step that may write.
        let approve = |id: String| async move {
            sandbox.clear_requests();
            let view = at.admin().decide_approval(&id, true).await;
            (view, writes(sandbox))
        };
        match decision {
            Decision::None => {
                ask(&at.client, tool, &args).await;
                quiet("a call")?;
                Ok(0)
            }
            Decision::Approve
            | Decision::ApproveTwice
            | Decision::ChangedArgs
            | Decision::RestartThenApprove => {
                let Some(id) = ask(&at.client, tool, &args).await else {
                    quiet("a refused call")?;
                    return Ok(0);
                };
                quiet("a call")?;
                if matches!(decision, Decision::RestartThenApprove) {
                    at.restart_main(sandbox).await;
                    quiet("a restart")?;
                }
                let (view, wrote) = approve(id.clone()).await;
                let view = view.unwrap();
                prop_assert_eq!(view.decided_by.as_deref(), Some("operator"));
                prop_assert!(
                    wrote.is_empty() || in_scope,
                    "{} {} outside the allowed set wrote {:?}",
                    tool,
                    args,
                    wrote
                );
                check_write(world, sandbox, tool, &args, &view, &wrote)?;
                if tool == "dns_create_record" && !wrote.is_empty() {
                    let outcome = view.outcome.clone().unwrap_or_default();
                    let id = outcome["id"].as_str().unwrap_or_default().to_owned();
                    world.created.borrow_mut().push(id);
                }
                sandbox.clear_requests();
                if matches!(decision, Decision::ApproveTwice) {
                    let again = at.admin().decide_approval(&id, true).await;
                    let err = again.unwrap_err().to_string();
                    prop_assert!(err.contains("409"), "approved twice: {}", err);
                    quiet("a second approval")?;
                }
                let (status, told) = report(&at.client, tool, &args).await;
                quiet("the report")?;
                // Told its own outcome, never another's. (Being asked anew instead is the
                // reporting defect `approvals.rs` pins down; this property is about writes.)
                if status == "done" || status == "failed" {
                    prop_assert_eq!(&told, &id);
                    prop_assert_eq!(&status, &view.state);
                }
                if matches!(decision, Decision::ChangedArgs) {
                    let other = changed(world, tool, &args);
                    let (status, told) = report(&at.client, tool, &other).await;
                    quiet("a call with changed arguments")?;
                    prop_assert!(
                        status != "done" && status != "failed" && told != id,
                        "changed arguments got {} of {}",
                        status,
                        told
                    );
                }
                Ok(wrote.len())
            }
            Decision::Deny => {
                let Some(id) = ask(&at.client, tool, &args).await else {
                    quiet("a refused call")?;
                    return Ok(0);
                };
                let view = at.admin().decide_approval(&id, false).await.unwrap();
                prop_assert_eq!(view.state.as_str(), "denied");
                let (status, told) = report(&at.client, tool, &args).await;
                prop_assert!(status != "done" && status != "failed", "{}", status);
                if status == "denied" {
                    prop_assert_eq!(told, id);
                }
                quiet("a denial")?;
                Ok(0)
            }
            Decision::Expire => {
                let Some(id) = ask(&at.short_client, tool, &args).await else {
                    quiet("a refused call")?;
                    return Ok(0);
                };
                expired(&at.short, &id).await;
                let err = at.short.admin.decide_approval(&id, true).await;
                let err = err.unwrap_err().to_string();
                prop_assert!(err.contains("409") && err.contains("expired"), "{}", err);
                let (status, told) = report(&at.short_client, tool, &args).await;
                prop_assert!(
                    status == "approval_required" && told != id,
                    "after expiry: {} {}",
                    status,
                    told
                );
                quiet("an expired approval")?;
                Ok(0)
            }
            Decision::OtherInstance => {
                let here = ask(&at.client, tool, &args).await;
                let there = ask(&at.short_client, tool, &args).await;
                if let Some(there) = there {
                    let err = at.admin().decide_approval(&there, true).await;
                    prop_assert!(err.unwrap_err().to_string().contains("404"));
                }
                if let Some(here) = here {
                    let err = at.short.admin.decide_approval(&here, true).await;
                    prop_assert!(err.unwrap_err().to_string().contains("404"));
                }
                quiet("an approval of another instance")?;
                Ok(0)
            }
            Decision::MadeUp => {
                ask(&at.client, tool, &args).await;
                let long = format!("apr_{}", "A".repeat(80));
                for id in [
                    "apr_AAAAAAAAAAAAAAAAAAAAAA",
                    &format!("apr_{serial:022}"),
                    "apr_",
                    long.as_str(),
                    "..%2Fapr_x",
                ] {
                    let err = at.admin().decide_approval(id, true).await;
                    let err = err.unwrap_err().to_string();
                    prop_assert!(err.contains("404"), "{}: {}", id, err);
                }
                quiet("a made-up approval")?;
                Ok(0)
            }
        }
    })
}

#[test]
fn only_an_approval_writes_and_only_once_with_its_exact_arguments_inside_the_allowed_set() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (sandbox, at) = runtime.block_on(async {
        let sandbox = Sandbox::start(Fixture::new(&["acme", "globex"]))
            .await
            .unwrap();
        let main_dir = tempfile::tempdir().unwrap();
        let mut main_config = tests::harness::config_for(main_dir.path(), &sandbox.base_url());
        main_config.tenant = Some("acme".into());
        let main = TestServer::start_spec(main_config, &isolated_server::ISOLATED).await;
        let acme = main
            .provision_isolated(sandbox.fixture().owner("acme").unwrap())
            .await;
        let tmp = tempfile::tempdir().unwrap();
        let mut config = tests::harness::config_for(tmp.path(), &sandbox.base_url());
        config.tenant = Some("acme".into());
        config.approval_ttl_secs = 1;
        let short = TestServer::start_spec(config, &isolated_server::ISOLATED).await;
        let short_acme = short
            .provision_isolated(sandbox.fixture().owner("acme").unwrap())
            .await;
        let client = main.client(&acme.token).await;
        let short_client = short.client(&short_acme.token).await;
        let at = Instances {
            main: std::cell::RefCell::new(Some(main)),
            main_dir,
            short,
            client,
            short_client,
            _short_dir: tmp,
        };
        (sandbox, at)
    });
    let acme = sandbox.fixture().owner("acme").unwrap().clone();
    let globex = sandbox.fixture().owner("globex").unwrap().clone();
    let z = acme.zone_name.clone();
    let names = vec![
        format!("www.{z}"),
        format!("shop.{z}"),
        format!("a.shop.{z}"),
        format!("b.shop.{z}"),
        format!("x.y.shop.{z}"),
        z.clone(),
        format!("mail.{z}"),
        format!("www.{}", globex.zone_name),
        "evil.example.com".into(),
        format!("shop.{z}.evil.com"),
    ];
    // `x.y.shop.` is left to the `*.shop.` rule of `allowed_name`, whatever the product's
    // wildcard does with two labels: the oracle only says where a write may land.
    let allowed = vec![
        true, true, true, true, false, false, false, false, false, false,
    ];
    let world = World {
        acme: acme.clone(),
        globex: globex.clone(),
        names,
        allowed,
        created: RefCell::new(Vec::new()),
    };
    let globex_before: Vec<_> = globex
        .dns_record_ids
        .iter()
        .map(|id| sandbox.dns_record(&globex.zone_id, id))
        .collect();
    // Every item outside acme's deletable collection, as it is before and must stay.
    let untouched = |sandbox: &Sandbox| -> Vec<_> {
        globex
            .item_ids
            .iter()
            .chain(&acme.item_ids[5..])
            .map(|(c, i)| (sandbox.webflow_item(c, i), sandbox.webflow_item_live(c, i)))
            .collect()
    };
    let untouched_before = untouched(&sandbox);
    let globex_code = |sandbox: &Sandbox| -> Vec<_> {
        std::iter::once(&globex.site_id)
            .chain(&globex.page_ids)
            .map(|id| sandbox.webflow_custom_code(id))
            .collect()
    };
    let globex_code_before = globex_code(&sandbox);
    let protected: Vec<_> = [0usize, 3, 4]
        .iter()
        .map(|i| sandbox.dns_record(&acme.zone_id, &acme.dns_record_ids[*i]))
        .collect();

    let seed = std::env::var("ISOLATED_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x150_1a7ed);
    let config = Config {
        cases: 64,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let serial = RefCell::new(0usize);
    let total_writes = RefCell::new(0usize);
    let outcome = runner.run(&proptest::collection::vec(op(), 1..6), |ops| {
        for (op, decision) in &ops {
            *serial.borrow_mut() += 1;
            let n = *serial.borrow();
            let wrote = step(&runtime, &world, &sandbox, &at, (op, decision), n)?;
            *total_writes.borrow_mut() += wrote;
        }
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("isolated safety violated (replay with ISOLATED_SEED={seed}): {e}");
    }
    let total = *total_writes.borrow();
    let (main_list, short_list) = runtime.block_on(async {
        (
            at.admin().approvals().await.unwrap(),
            at.short.admin.approvals().await.unwrap(),
        )
    });
    let count =
        |list: &[ApprovalView], state: &str| list.iter().filter(|a| a.state == state).count();
    println!(
        "{} calls; {total} writes; approvals here: {} done, {} failed, {} denied, {} pending; \
         on the short-lived instance: {} expired",
        *serial.borrow(),
        count(&main_list, "done"),
        count(&main_list, "failed"),
        count(&main_list, "denied"),
        count(&main_list, "pending"),
        count(&short_list, "expired"),
    );

    assert!(
        total > 0,
        "no write was exercised; the property would be vacuous"
    );
    // Every write is one approval carried out: as many writes as `done` approvals, each
    // decided by the operator, and none on the instance whose approvals all expired.
    let done: Vec<_> = main_list.iter().filter(|a| a.state == "done").collect();
    assert_eq!(done.len(), total, "writes and carried-out approvals differ");
    assert!(
        done.iter()
            .all(|a| a.decided_by.as_deref() == Some("operator"))
    );
    assert!(
        short_list
            .iter()
            .all(|a| a.state == "expired" || a.state == "pending"),
        "{short_list:?}"
    );
    let globex_after: Vec<_> = globex
        .dns_record_ids
        .iter()
        .map(|id| sandbox.dns_record(&globex.zone_id, id))
        .collect();
    assert_eq!(globex_before, globex_after, "another tenant's zone changed");
    assert_eq!(
        globex_code_before,
        globex_code(&sandbox),
        "another tenant's custom code changed"
    );
    assert_eq!(
        untouched_before,
        untouched(&sandbox),
        "an item outside the deletable collection changed"
    );
    let protected_after: Vec<_> = [0usize, 3, 4]
        .iter()
        .map(|i| sandbox.dns_record(&acme.zone_id, &acme.dns_record_ids[*i]))
        .collect();
    assert_eq!(
        protected, protected_after,
        "a record outside the allowed names changed"
    );
}
