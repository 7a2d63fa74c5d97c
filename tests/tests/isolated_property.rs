//! The isolated server's safety property: random sequences of DNS and publish calls, with random
//! names, zones, records, domains and confirmation codes (none, fresh, replayed, for other
//! arguments, from another instance, made up), never produce an upstream write outside the
//! tenant's allowed set, and never act without a matching fresh confirmation.
//! Fixed case count and seed; `ISOLATED_SEED=<n>` replays another.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use serde_json::{Value, json};
use tests::harness::{McpClient, TestServer, call};
use tests::sandbox::{Fixture, OwnerFixture, Sandbox};

#[derive(Clone, Debug)]
enum Code {
    None,
    Fresh,
    Replayed,
    OtherArgs,
    OtherInstance,
    MadeUp,
}

#[derive(Clone, Debug)]
enum Op {
    Create { name: usize, zone: usize },
    Update { record: usize, name: usize },
    Delete { record: usize },
    Publish { domain: usize },
}

fn op() -> impl Strategy<Value = (Op, Code)> {
    let op = prop_oneof![
        (0usize..8, 0usize..4).prop_map(|(name, zone)| Op::Create { name, zone }),
        (0usize..10, 0usize..8).prop_map(|(record, name)| Op::Update { record, name }),
        (0usize..10).prop_map(|record| Op::Delete { record }),
        (0usize..4).prop_map(|domain| Op::Publish { domain }),
    ];
    let code = prop_oneof![
        1 => Just(Code::None),
        4 => Just(Code::Fresh),
        1 => Just(Code::Replayed),
        1 => Just(Code::OtherArgs),
        1 => Just(Code::OtherInstance),
        1 => Just(Code::MadeUp),
    ];
    (op, code)
}

struct World {
    acme: OwnerFixture,
    globex: OwnerFixture,
    names: Vec<String>,
    allowed: Vec<bool>,
}

impl World {
    fn record_ids(&self) -> Vec<String> {
        self.acme
            .dns_record_ids
            .iter()
            .chain(&self.globex.dns_record_ids)
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

/// (tool, arguments, whether the action is inside the tenant's allowed set).
fn call_for(
    world: &World,
    sandbox: &Sandbox,
    op: &Op,
    serial: usize,
) -> (&'static str, Value, bool) {
    match op {
        Op::Create { name, zone } => {
            let name = &world.names[*name];
            let zone_id = world.zone(*zone);
            let mut args = json!({"record": {"type": "TXT", "name": name, "content": format!("case {serial}")}});
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
            let args = json!({"record_id": id, "record": {"type": "TXT", "name": name, "content": format!("case {serial}")}});
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
    }
}

fn successful_writes(sandbox: &Sandbox) -> Vec<String> {
    sandbox
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET" && r.status < 300)
        .map(|r| r.path)
        .collect()
}

async fn code_for(
    client: &McpClient,
    other: &McpClient,
    tool: &str,
    args: &Value,
    choice: &Code,
    used: &RefCell<Option<String>>,
) -> Option<String> {
    match choice {
        Code::None => None,
        Code::Fresh => issue(client, tool, args.clone()).await,
        Code::Replayed => used.borrow().clone().or(Some("cfm_never_issued".into())),
        Code::OtherArgs => {
            let mut other_args = args.clone();
            other_args["record"]["content"] = json!("something else");
            other_args["custom_domains"] = json!([]);
            other_args["publish_to_webflow_subdomain"] = json!(true);
            issue(client, tool, other_args)
                .await
                .or(Some("cfm_other".into()))
        }
        Code::OtherInstance => issue(other, tool, args.clone())
            .await
            .or(Some("cfm_other_instance".into())),
        Code::MadeUp => Some("cfm_00000000000000000000000000000000".into()),
    }
}

/// A preview's confirmation code, if the preview succeeded.
async fn issue(client: &McpClient, tool: &str, args: Value) -> Option<String> {
    let result = call(client, tool, args).await;
    result
        .structured_content
        .and_then(|v| v["confirmation_code"].as_str().map(str::to_owned))
}

#[test]
fn no_write_without_a_fresh_matching_confirmation_or_outside_the_allowed_set() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (sandbox, _server, _other_server, client, other_client) = runtime.block_on(async {
        let sandbox = Sandbox::start(Fixture::new(&["acme", "globex"]))
            .await
            .unwrap();
        let server = TestServer::start_isolated(&sandbox, "acme").await;
        let acme = server
            .provision_isolated(sandbox.fixture().owner("acme").unwrap())
            .await;
        let other = TestServer::start_isolated(&sandbox, "acme").await;
        let other_acme = other
            .provision_isolated(sandbox.fixture().owner("acme").unwrap())
            .await;
        let client = server.client(&acme.token).await;
        let other_client = other.client(&other_acme.token).await;
        (sandbox, server, other, client, other_client)
    });
    let acme = sandbox.fixture().owner("acme").unwrap().clone();
    let globex = sandbox.fixture().owner("globex").unwrap().clone();
    let z = acme.zone_name.clone();
    let names = vec![
        format!("www.{z}"),
        format!("shop.{z}"),
        format!("a.shop.{z}"),
        z.clone(),
        format!("mail.{z}"),
        format!("www.{}", globex.zone_name),
        "evil.example.com".into(),
        format!("shop.{z}.evil.com"),
    ];
    let allowed = vec![true, true, true, false, false, false, false, false];
    let world = World {
        acme: acme.clone(),
        globex: globex.clone(),
        names,
        allowed,
    };
    let globex_before: Vec<_> = globex
        .dns_record_ids
        .iter()
        .map(|id| sandbox.dns_record(&globex.zone_id, id))
        .collect();
    let protected: Vec<_> = [0usize, 3, 4]
        .iter()
        .map(|i| sandbox.dns_record(&acme.zone_id, &acme.dns_record_ids[*i]))
        .collect();

    let seed = std::env::var("ISOLATED_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x150_1a7ed);
    let config = Config {
        cases: 32,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let used = RefCell::new(None::<String>);
    let serial = RefCell::new(0usize);
    let total_writes = RefCell::new(0usize);
    let outcome = runner.run(&proptest::collection::vec(op(), 1..6), |ops| {
        for (op, choice) in ops {
            *serial.borrow_mut() += 1;
            let (tool, args, in_scope) = call_for(&world, &sandbox, &op, *serial.borrow());
            let code = runtime.block_on(code_for(
                &client,
                &other_client,
                tool,
                &args,
                &choice,
                &used,
            ));
            sandbox.clear_requests();
            let mut confirmed = args.clone();
            if let Some(code) = &code {
                confirmed["confirmation_code"] = json!(code);
            }
            let result = runtime.block_on(call(&client, tool, confirmed));
            let wrote = successful_writes(&sandbox);
            let legitimate = matches!(choice, Code::Fresh) && in_scope && code.is_some();
            prop_assert!(
                wrote.is_empty() || legitimate,
                "{tool} {args} with {choice:?} wrote {wrote:?}"
            );
            prop_assert!(wrote.len() <= 1, "one confirmation acted twice: {wrote:?}");
            for path in &wrote {
                prop_assert!(
                    path.contains(&acme.zone_id) || path.contains(&acme.site_id),
                    "write outside: {path}"
                );
            }
            if result.is_error != Some(true) && code.is_some() {
                *used.borrow_mut() = code.clone();
            }
            *total_writes.borrow_mut() += wrote.len();
        }
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("isolated safety violated (replay with ISOLATED_SEED={seed}): {e}");
    }
    assert!(
        *total_writes.borrow() > 0,
        "no write was exercised; the property would be vacuous"
    );
    let globex_after: Vec<_> = globex
        .dns_record_ids
        .iter()
        .map(|id| sandbox.dns_record(&globex.zone_id, id))
        .collect();
    assert_eq!(globex_before, globex_after, "another tenant's zone changed");
    let protected_after: Vec<_> = [0usize, 3, 4]
        .iter()
        .map(|i| sandbox.dns_record(&acme.zone_id, &acme.dns_record_ids[*i]))
        .collect();
    assert_eq!(
        protected, protected_after,
        "a record outside the allowed names changed"
    );
}
