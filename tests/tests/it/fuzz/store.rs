//! The store's record decoding: what a damaged, hand-edited or hostile-written store holds,
//! read back through the store's own code. Seeds are a real store: an isolated instance that
//! served a person (invite, passkey, session, consent, code, grant, refresh and access
//! tokens), a registration, a high-risk call (an approval) and audit records, then stopped and
//! dumped. One target puts one mutated record at a time into the people's and approvals' trees
//! and reads it with every reader of that tree; the other opens a whole store whose tenant
//! records, token journal (`tokens.idx`) and audit day file were mutated.

use std::path::Path;

use common::store::approvals::Approvals;
use common::store::kv::{Db, Entry, Tree};
use common::store::people::People;
use common::store::{Store, TokenRecord};
use proptest::prelude::*;
use proptest::strategy::Union;
use serde_json::{Value, json};

use crate::fuzz::driver::{fuzz, note};
use crate::fuzz::mutate::{self, ByteOp, JsonCase};
use crate::fuzz::world::{Server, peer, runtime, sandbox, send};

/// Every tree of a real store, the token journal and the audit day files.
struct Dump {
    /// Tree names as `Db::open_tree` takes them (leaked once each, at start).
    trees: Vec<(&'static str, Vec<Entry>)>,
    journal: String,
    audit: String,
    /// The connection's client id and the server's connector URL (a refresh names them).
    client_id: String,
    audience: String,
}

async fn dump() -> Dump {
    let sandbox = sandbox().await;
    let (server, tenant) = Server::isolated(&sandbox).await;
    let (_, cookie) = server.person("acme", "Ada").await;
    let (client_id, _, _) = server.connect(&cookie).await;
    server.register_client().await;
    let f = &tenant.fixture;
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "dns_create_record",
        "arguments": {"record": {"type": "A", "name": format!("www.{}", f.zone_name),
                                 "content": "192.0.2.7", "comment": "seed"}}}});
    let request = axum::http::Request::post("/mcp")
        .header("host", &server.static_host)
        .header("authorization", format!("Bearer {}", tenant.token))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(axum::body::Body::from(call.to_string()))
        .unwrap();
    let answer = send(&server.statik, request, peer(1)).await.unwrap();
    assert!(answer.text().contains("approv"), "{}", answer.text());
    let audience = server.connector_url.clone();
    let dir = server.stop().await;
    let store_dir = dir.path().join("store");
    let trees = Store::open(&store_dir)
        .unwrap()
        .dump()
        .unwrap()
        .into_iter()
        .map(|(name, entries)| (&*Box::leak(name.into_boxed_str()), entries))
        .collect();
    let journal = std::fs::read_to_string(store_dir.join("tokens.idx")).unwrap();
    let mut audit = String::new();
    for entry in std::fs::read_dir(store_dir.join("audit")).unwrap() {
        audit.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    Dump {
        trees,
        journal,
        audit,
        client_id,
        audience,
    }
}

/// One stored record, changed.
#[derive(Clone, Debug)]
struct Record {
    tree: &'static str,
    key: Vec<u8>,
    value: Vec<u8>,
}

fn records(dump: &Dump, trees: &[&str]) -> Union<BoxedStrategy<Record>> {
    let mut each = Vec::new();
    for (tree, entries) in dump.trees.iter().filter(|(t, _)| trees.contains(t)) {
        for (key, value) in entries {
            let (tree, key) = (*tree, key.clone());
            let keys = prop_oneof![
                8 => Just(key.clone()),
                1 => prop::collection::vec(mutate::byte_op(), 1..=2)
                    .prop_map(move |ops| mutate::apply_bytes(key.clone(), &ops)),
            ];
            let values = match serde_json::from_slice::<Value>(value) {
                Ok(json) => mutate::json_body(vec![json], &[], &[])
                    .prop_map(|b| b.0)
                    .boxed(),
                Err(_) => {
                    let value = value.clone();
                    prop::collection::vec(mutate::byte_op(), 0..=3)
                        .prop_map(move |ops| mutate::apply_bytes(value.clone(), &ops))
                        .boxed()
                }
            };
            each.push(
                (keys, values)
                    .prop_map(move |(key, value)| Record { tree, key, value })
                    .boxed(),
            );
        }
    }
    Union::new(each)
}

fn key32(key: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (o, k) in out.iter_mut().zip(key) {
        *o = *k;
    }
    out
}

/// Every reader of the record's tree, and the sweep that reads them all.
fn read(db: &Db, dump: &Dump, record: &Record) -> Result<(), String> {
    let now = common::now_unix();
    let people = match People::open(db, now) {
        Ok(people) => people,
        Err(e) => {
            note(format!(
                "{}: open refused: {}",
                record.tree,
                kind(&e.to_string())
            ));
            return Ok(());
        }
    };
    let key = String::from_utf8_lossy(&record.key).into_owned();
    let hash = key32(&record.key);
    let outcome: Result<(), String> = match record.tree {
        "people" => people
            .person(&key)
            .and_then(|_| people.people(None))
            .and_then(|_| people.person_by_handle("none"))
            .map(drop)
            .map_err(|e| e.to_string()),
        "invites" => people.invite(&hash).map(drop).map_err(|e| e.to_string()),
        "sessions" => people
            .session(&hash, now)
            .map(drop)
            .map_err(|e| e.to_string()),
        "ceremonies_spent" => people
            .ceremony_spent(&record.key)
            .map(drop)
            .map_err(|e| e.to_string()),
        "oauth_clients" => people
            .client(&key)
            .and_then(|_| people.make_room_for_client(1_000, now, |_| 86_400))
            .map(drop)
            .map_err(|e| e.to_string()),
        "oauth_codes" | "oauth_used_codes" => people
            .redeem_code(&hash, now, |_| Ok(()))
            .map(drop)
            .map_err(|e| format!("{e:?}")),
        "oauth_grants" => people
            .grant(&key)
            .and_then(|_| people.grants(None))
            .map(drop)
            .map_err(|e| e.to_string()),
        "oauth_refresh" => people
            .refresh(&hash, &dump.client_id, &dump.audience, now, 3_600, 86_400)
            .map(drop)
            .map_err(|e| format!("{e:?}")),
        "oauth_access" => {
            people.access_token(&hash, now);
            Ok(())
        }
        "approvals" => {
            let approvals = Approvals::new(db.open_tree("approvals").map_err(|e| e.to_string())?);
            approvals
                .list(None)
                .and_then(|_| approvals.get(&key))
                .and_then(|_| {
                    let acme = common::domain::TenantId::parse("acme")
                        .map_err(|e| common::store::StoreError::Corrupt(e.to_string()))?;
                    approvals.latest_for(&acme, "dns_create_record", "x")
                })
                .and_then(|_| approvals.sweep(now, 86_400))
                .map(drop)
                .map_err(|e| e.to_string())
        }
        _ => Ok(()),
    };
    let swept = people.sweep(now, |_| 86_400).map_err(|e| e.to_string());
    note(format!(
        "{}: {}{}",
        record.tree,
        outcome
            .as_ref()
            .map_or_else(|e| kind(e), |()| "read".into()),
        if swept.is_err() {
            ", sweep refused"
        } else {
            ""
        }
    ));
    Ok(())
}

/// An error's kind, for the outcome counts (its text names values).
fn kind(error: &str) -> String {
    error
        .split([':', '(', '`'])
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Puts the dump back, whatever a reader deleted or a record replaced.
fn restore(db: &Db, dump: &Dump) -> Result<(), String> {
    for (name, entries) in &dump.trees {
        let tree = db.open_tree(name).map_err(|e| e.to_string())?;
        for (key, _) in tree.iter().map_err(|e| e.to_string())? {
            tree.remove(&key).map_err(|e| e.to_string())?;
        }
        for (key, value) in entries {
            tree.insert(key, value).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// People's and approvals' records, one mutated at a time, through every reader.
#[test]
fn store_records() {
    let rt = runtime();
    let dump = rt.block_on(dump());
    let dir = tempfile::tempdir().unwrap();
    let db = Db::Sled(
        sled::Config::new().path(dir.path()).open().unwrap(),
        Default::default(),
    );
    restore(&db, &dump).unwrap();
    let trees = [
        "people",
        "invites",
        "sessions",
        "ceremonies_spent",
        "oauth_clients",
        "oauth_codes",
        "oauth_used_codes",
        "oauth_grants",
        "oauth_refresh",
        "oauth_access",
        "approvals",
    ];
    let present: Vec<&str> = trees
        .iter()
        .copied()
        .filter(|t| {
            dump.trees
                .iter()
                .any(|(name, e)| name == t && !e.is_empty())
        })
        .collect();
    assert!(
        present.len() >= 8,
        "a store with people and approvals: {present:?}"
    );
    fuzz("store_records", records(&dump, &trees), |record| {
        let tree: Tree = db.open_tree(record.tree).map_err(|e| e.to_string())?;
        tree.insert(&record.key, &record.value)
            .map_err(|e| e.to_string())?;
        let outcome = read(&db, &dump, record);
        restore(&db, &dump)?;
        outcome
    });
}

/// A whole store as `Store::open` finds it at start-up.
#[derive(Clone, Debug)]
struct Opened {
    tenants: Vec<JsonCase>,
    journal: Vec<u8>,
    audit: Vec<u8>,
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_owned).collect()
}

/// A journal: the real one's lines, some changed, dropped, repeated or torn, in any order.
fn journal(real: &str) -> BoxedStrategy<Vec<u8>> {
    let real = lines(real);
    let line = mutate::short_text(real.clone(), &real);
    (
        prop::collection::vec(line, 0..12),
        prop_oneof![4 => Just(Vec::new()), 1 => prop::collection::vec(mutate::byte_op(), 1..=3)],
        any::<bool>(),
    )
        .prop_map(|(lines, ops, torn): (Vec<String>, Vec<ByteOp>, bool)| {
            let mut text = lines.join("\n");
            if !torn {
                text.push('\n');
            }
            mutate::apply_bytes(text.into_bytes(), &ops)
        })
        .boxed()
}

/// Writes `input` as a store at `dir`: the tenants tree (with the dump's other trees), the
/// journal and one audit day file.
fn write_store(dir: &Path, dump: &Dump, input: &Opened) -> Result<(), String> {
    {
        let db = sled::Config::new()
            .path(dir)
            .open()
            .map_err(|e| e.to_string())?;
        let tenants = db.open_tree("tenants").map_err(|e| e.to_string())?;
        for (i, tenant) in input.tenants.iter().enumerate() {
            let id = tenant.value["id"]
                .as_str()
                .map_or_else(|| format!("t{i}"), str::to_owned);
            tenants
                .insert(id.as_bytes(), tenant.to_bytes())
                .map_err(|e| e.to_string())?;
        }
        if let Some((_, tokens)) = dump.trees.iter().find(|(t, _)| *t == "tokens") {
            let tree = db.open_tree("tokens").map_err(|e| e.to_string())?;
            for (key, value) in tokens {
                tree.insert(key.as_slice(), value.as_slice())
                    .map_err(|e| e.to_string())?;
            }
        }
        db.flush().map_err(|e| e.to_string())?;
    }
    std::fs::write(dir.join("tokens.idx"), &input.journal).map_err(|e| e.to_string())?;
    let audit = dir.join("audit");
    let _ = std::fs::remove_dir_all(&audit);
    std::fs::create_dir_all(&audit).map_err(|e| e.to_string())?;
    std::fs::write(audit.join("2025-01-01.jsonl"), &input.audit).map_err(|e| e.to_string())
}

/// Tenant records, the token journal and an audit day file, mutated, as `Store::open` reads
/// them at start-up, then every tenant, token and audit record read back.
#[test]
fn store_open() {
    let rt = runtime();
    let dump = rt.block_on(dump());
    let tenants: Vec<Value> = dump
        .trees
        .iter()
        .filter(|(t, _)| *t == "tenants")
        .flat_map(|(_, e)| e.iter().filter_map(|(_, v)| serde_json::from_slice(v).ok()))
        .collect();
    assert!(!tenants.is_empty(), "a tenant record");
    let tokens: Vec<([u8; 32], TokenRecord)> = dump
        .trees
        .iter()
        .filter(|(t, _)| *t == "tokens")
        .flat_map(|(_, e)| e.iter())
        .filter_map(|(k, v)| Some((key32(k), serde_json::from_slice(v).ok()?)))
        .collect();
    let audit_lines = lines(&dump.audit);
    let audit_seeds: Vec<Value> = audit_lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let unchanged: Vec<JsonCase> = tenants
        .iter()
        .map(|t| JsonCase {
            value: t.clone(),
            twice: Vec::new(),
        })
        .collect();
    let strategy = (
        // The tenants as stored two times in three, so that most stores open and their
        // journal and audit log are read too.
        prop_oneof![
            2 => Just(unchanged),
            1 => prop::collection::vec(mutate::json(tenants, &[], &[]), 0..3),
        ],
        journal(&dump.journal),
        (
            prop::collection::vec(mutate::json(audit_seeds, &[], &[]), 0..6),
            mutate::bytes_ops(),
        ),
    )
        .prop_map(|(tenants, journal, (audit, ops))| Opened {
            tenants,
            journal,
            audit: mutate::apply_bytes(
                audit
                    .iter()
                    .map(|l| String::from_utf8_lossy(&l.to_bytes()).into_owned() + "\n")
                    .collect::<String>()
                    .into_bytes(),
                &ops,
            ),
        });
    fuzz("store_open", strategy, |input: &Opened| {
        // A directory per input: sled lets go of its lock a moment after the last handle.
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        write_store(dir.path(), &dump, input)?;
        let store = match Store::open(dir.path()) {
            Ok(store) => store,
            Err(e) => {
                note(format!(
                    "refused: {}",
                    e.to_string().chars().take(60).collect::<String>()
                ));
                return Ok(());
            }
        };
        store.tenants();
        for (hash, record) in &tokens {
            store.token_by_hash(hash).map_err(|e| e.to_string())?;
            store
                .token_tenant(hash, record.tenant.as_str())
                .map_err(|e| e.to_string())?;
        }
        let audit = store.audit().export().map_err(|e| e.to_string());
        store
            .audit()
            .query(Some("acme"), 0, 100)
            .map_err(|e| e.to_string())?;
        note(match audit {
            Ok(records) if records.is_empty() => "opened, no audit record".to_owned(),
            Ok(_) => "opened, audit read".to_owned(),
            Err(e) => format!("opened, audit refused: {}", kind(&e)),
        });
        Ok(())
    });
}
