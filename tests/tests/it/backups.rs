//! Issue 25: backups of the running server and their restore, through the real `shared-server`
//! binary. A backup taken with `store backup` while 8 clients call tools and an operator issues
//! and revokes tokens; the server killed with SIGKILL, its data dir deleted (the key files kept
//! apart, as the operator keeps them); `store restore` into the empty dir; the server started
//! again: tokens issued before work, tokens revoked before stay revoked, the audit log holds the
//! calls up to the backup. And each bad file, or a file for another server, tenant or keys, is
//! refused with nothing written.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::runtime::admin::client::AdminClient;
use common::runtime::admin::{AuditFilter, IssueRequest, NewTenant};
use serde_json::json;
use tests::harness::{
    KillOnDrop, call, connect, free_port, ok_json, server_command, until_healthy,
};
use tests::sandbox::{Fixture, Sandbox};

/// The key files a restore needs and a backup never holds: kept apart by the operator.
const KEY_FILES: [&str; 3] = ["master.key", "signing.key", "admin-token"];

/// Where the server listens, and the PostgreSQL database it keeps its store in (the data dir's
/// sled store without one).
#[derive(Clone, Copy)]
struct Ports {
    mcp: u16,
    admin: u16,
    store: Option<&'static str>,
}

/// `shared-server <args>` on `data`, every upstream at `upstream`.
fn shared(binary: &Path, data: &Path, upstream: &str, ports: &Ports) -> Command {
    let mut command = server_command(binary);
    command
        .env_remove("RUST_LOG")
        .env("STUDIO_MCP_DATA_DIR", data)
        .env("STUDIO_MCP_LISTEN", format!("127.0.0.1:{}", ports.mcp))
        .env(
            "STUDIO_MCP_ADMIN_LISTEN",
            format!("127.0.0.1:{}", ports.admin),
        )
        .env(
            "STUDIO_MCP_PUBLIC_URL",
            format!("http://127.0.0.1:{}", ports.mcp),
        )
        .env("STUDIO_MCP_TENANT_RATE_PER_MIN", "1000000")
        .env("STUDIO_MCP_WEBFLOW_RATE_PER_MIN", "1000000");
    for vendor in ["WEBFLOW", "PLAUSIBLE", "GITHUB", "CLOUDFLARE", "STRIPE"] {
        command.env(format!("STUDIO_MCP_{vendor}_BASE_URL"), upstream);
    }
    if let Some(url) = ports.store {
        command.env("STUDIO_MCP_STORE", url);
    }
    command
}

/// `shared-server serve`, once healthy.
async fn serve(binary: &Path, data: &Path, upstream: &str, ports: &Ports) -> KillOnDrop {
    let log = data.with_extension("log");
    let mut child = shared(binary, data, upstream, ports)
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    until_healthy(
        "shared-server ready",
        &mut child,
        &format!("http://127.0.0.1:{}/healthz", ports.mcp),
        &log,
        Duration::from_secs(30),
    )
    .await;
    KillOnDrop(child)
}

fn admin(data: &Path, ports: &Ports) -> AdminClient {
    let token = std::fs::read_to_string(data.join("admin-token")).unwrap();
    AdminClient::new(
        format!("http://127.0.0.1:{}", ports.admin),
        token.trim().to_owned(),
    )
    .unwrap()
}

/// `shared-server store <args>` as an operator runs it.
fn store(binary: &Path, data: &Path, upstream: &str, ports: &Ports, args: &[&str]) -> Output {
    shared(binary, data, upstream, ports)
        .arg("store")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A data dir holding only the key files kept from `from`.
fn keys_only(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for key in KEY_FILES {
        std::fs::copy(from.join(key), to.join(key)).unwrap();
    }
}

fn store_is_empty(data: &Path) -> bool {
    std::fs::read_dir(data.join("store")).map_or(true, |mut d| d.next().is_none())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_load_restores_after_kill_9() {
    backup_under_load_then_restore(None).await;
}

/// The same on PostgreSQL: the backup read in one repeatable-read transaction, restored into
/// an empty database (the one the server used is left behind, as a lost one would be).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_load_restores_after_kill_9_on_postgres() {
    let cluster = tests::postgres::cluster_url();
    let live = tests::harness::database_for(&cluster, "backups-live");
    let fresh = tests::harness::database_for(&cluster, "backups-restored");
    backup_under_load_then_restore(Some((leak(live), leak(fresh)))).await;
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// With `pg`, the server keeps its store in the first database and the restore goes into the
/// second; the refusals of bad files, checked before any engine is touched, run on sled only.
async fn backup_under_load_then_restore(pg: Option<(&'static str, &'static str)>) {
    common::upstream::install_crypto_provider();
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let owner = sandbox.fixture().owner("acme").unwrap().clone();
    let upstream = sandbox.base_url();
    let binary = tests::harness::shared_server_binary()
        .await
        .expect("the shared-server binary");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let keys = tmp.path().join("keys");
    let mut ports = Ports {
        mcp: free_port(),
        admin: free_port(),
        store: pg.map(|(live, _)| live),
    };
    let mcp_url = format!("http://127.0.0.1:{}/mcp", ports.mcp);

    let server = serve(&binary, &data, &upstream, &ports).await;
    let operator = admin(&data, &ports);
    let new: NewTenant = serde_json::from_value(json!({
        "id": "acme", "name": "Acme Inc", "webflow_sites": [owner.site_id],
    }))
    .unwrap();
    operator.add_tenant(&new).await.unwrap();
    operator
        .set_secret("acme", "webflow", owner.token.clone())
        .await
        .unwrap();
    let issue = |label: &str| IssueRequest {
        label: Some(label.into()),
        ttl_days: None,
    };
    let kept = operator.issue_token("acme", &issue("kept")).await.unwrap();
    let revoked = operator
        .issue_token("acme", &issue("revoked"))
        .await
        .unwrap();
    operator.revoke(&revoked.record.id).await.unwrap();

    // 8 clients calling tools, and an operator issuing and revoking tokens, all through the
    // backup.
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let mut load = Vec::new();
    for _ in 0..8 {
        let (stop, calls, url, token) = (
            stop.clone(),
            calls.clone(),
            mcp_url.clone(),
            kept.token.clone(),
        );
        load.push(tokio::spawn(async move {
            let client = connect(&url, &token, None).await.unwrap();
            while !stop.load(Ordering::Relaxed) {
                let answer = ok_json(&call(&client, "whoami", json!({})).await);
                assert_eq!(answer["tenant"], "acme", "{answer}");
                calls.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let churn = async {
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            let request = IssueRequest {
                label: Some(format!("churn-{n}")),
                ttl_days: None,
            };
            let issued = operator.issue_token("acme", &request).await.unwrap();
            operator.revoke(&issued.record.id).await.unwrap();
            n += 1;
        }
        n
    };
    let file = tmp.path().join("acme.backup");
    let backup = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (binary, data, upstream, file) =
            (binary.clone(), data.clone(), upstream.clone(), file.clone());
        let taken = tokio::task::spawn_blocking(move || {
            let to = file.to_str().unwrap();
            store(&binary, &data, &upstream, &ports, &["backup", "--to", to])
        })
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, Ordering::Relaxed);
        taken
    };
    let (churned, taken) = tokio::join!(churn, backup);
    assert!(taken.status.success(), "{}", text(&taken));
    let said = text(&taken);
    assert!(
        said.contains("Not in it: the master key, the signing key and the admin token"),
        "{said}"
    );
    for task in load {
        task.await.unwrap();
    }
    assert!(calls.load(Ordering::Relaxed) > 0 && churned > 0);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    let bytes = std::fs::read(&file).unwrap();
    for secret in [&kept.token, &revoked.token, &owner.token] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "a token or credential in clear in the backup"
        );
    }

    // SIGKILL, the data dir gone but for the key files the operator kept.
    let mut server = server;
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    keys_only(&data, &keys);
    std::fs::remove_dir_all(&data).unwrap();
    keys_only(&keys, &data);
    ports.store = pg.map(|(_, fresh)| fresh);
    let restored = store(
        &binary,
        &data,
        &upstream,
        &ports,
        &["restore", "--from", file.to_str().unwrap()],
    );
    assert!(restored.status.success(), "{}", text(&restored));

    let _server = serve(&binary, &data, &upstream, &ports).await;
    let client = connect(&mcp_url, &kept.token, None).await.unwrap();
    let answer = ok_json(&call(&client, "whoami", json!({})).await);
    assert_eq!(answer["tenant"], "acme", "{answer}");
    assert!(
        connect(&mcp_url, &revoked.token, None).await.is_err(),
        "a token revoked before the backup works after the restore"
    );
    let operator = admin(&data, &ports);
    let audited = operator
        .audit(&AuditFilter {
            tenant: Some("acme".into()),
            since_ms: None,
            limit: Some(1000),
        })
        .await
        .unwrap();
    assert!(
        audited.iter().any(|r| r.action == "whoami"),
        "the calls before the backup are not in the restored audit log"
    );
    drop(_server);

    // An occupied store: refused, and what it holds is untouched.
    let out = store(
        &binary,
        &data,
        &upstream,
        &ports,
        &["restore", "--from", file.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let refusal = if pg.is_some() {
        "already holds"
    } else {
        "is not empty"
    };
    assert!(text(&out).contains(refusal), "{}", text(&out));
    if pg.is_some() {
        return;
    }

    // Refused, nothing written: each into a data dir holding only the key files.
    let text_of = |bytes: &[u8]| String::from_utf8(bytes.to_vec()).unwrap();
    let original = text_of(&bytes);
    let mut flipped = bytes.clone();
    let at = flipped.len() - 10;
    flipped[at] ^= 0x20;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated",
            bytes[..bytes.len() / 2].to_vec(),
            "checksum does not match",
        ),
        ("flipped", flipped, "checksum does not match"),
        (
            "newer",
            original
                .replacen("\"format\":1", "\"format\":2", 1)
                .into_bytes(),
            "newer than this binary reads",
        ),
        (
            "isolated",
            original
                .replacen("\"studio-mcp-shared\"", "\"studio-mcp-isolated\"", 1)
                .into_bytes(),
            "not of a studio-mcp-shared",
        ),
        (
            "tenant",
            original
                .replacen("\"server\":", "\"tenant\":\"globex\",\"server\":", 1)
                .into_bytes(),
            "globex's instance",
        ),
    ];
    for (name, contents, refusal) in cases {
        let bad = tmp.path().join(format!("{name}.backup"));
        std::fs::write(&bad, contents).unwrap();
        let target = tmp.path().join(format!("restore-{name}"));
        keys_only(&keys, &target);
        let out = store(
            &binary,
            &target,
            &upstream,
            &ports,
            &["restore", "--from", bad.to_str().unwrap()],
        );
        assert!(!out.status.success(), "{name}: restored");
        assert!(text(&out).contains(refusal), "{name}: {}", text(&out));
        assert!(store_is_empty(&target), "{name}: something was written");
    }
    // Another master key: named, nothing written.
    let target: PathBuf = tmp.path().join("restore-keys");
    keys_only(&keys, &target);
    let mut master = std::fs::read(target.join("master.key")).unwrap();
    master[0] = if master[0] == b'a' { b'b' } else { b'a' };
    std::fs::write(target.join("master.key"), master).unwrap();
    let out = store(
        &binary,
        &target,
        &upstream,
        &ports,
        &["restore", "--from", file.to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("the master key here is not the one this backup was taken with"),
        "{}",
        text(&out)
    );
    assert!(store_is_empty(&target));
}

/// `drill restore` against the running binary: a backup restored into a scratch dir and served
/// by a second process proves the canary; the canary is revoked on the running server afterwards
/// and the running server's records are otherwise as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_restore_drill_proves_a_canary_on_a_scratch_copy() {
    restore_drill(None).await;
}

/// The same drill against a server on PostgreSQL: its backup (one repeatable-read
/// transaction) restored into the scratch dir's embedded store; the database is not touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_restore_drill_proves_a_canary_on_a_scratch_copy_on_postgres() {
    let cluster = tests::postgres::cluster_url();
    restore_drill(Some(leak(tests::harness::database_for(
        &cluster,
        "backups-drill",
    ))))
    .await;
}

async fn restore_drill(store: Option<&'static str>) {
    common::upstream::install_crypto_provider();
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let owner = sandbox.fixture().owner("acme").unwrap().clone();
    let upstream = sandbox.base_url();
    let binary = tests::harness::shared_server_binary()
        .await
        .expect("the shared-server binary");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let ports = Ports {
        mcp: free_port(),
        admin: free_port(),
        store,
    };
    let _server = serve(&binary, &data, &upstream, &ports).await;
    let operator = admin(&data, &ports);
    let new: NewTenant = serde_json::from_value(json!({
        "id": "acme", "name": "Acme Inc", "webflow_sites": [owner.site_id],
    }))
    .unwrap();
    operator.add_tenant(&new).await.unwrap();
    let before = operator.tokens(Some("acme")).await.unwrap().len();

    let drill = {
        let (binary, data, upstream) = (binary.clone(), data.clone(), upstream.clone());
        tokio::task::spawn_blocking(move || {
            shared(&binary, &data, &upstream, &ports)
                .args(["drill", "restore"])
                .stdin(Stdio::null())
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    };
    let said = text(&drill);
    assert!(drill.status.success(), "{said}");
    assert!(said.contains("restore drill passed for acme"), "{said}");
    for step in [
        "backup taken",
        "restored into a scratch data dir",
        "scratch server started",
        "canary proven on the copy",
    ] {
        assert!(said.contains(step), "{step} not reported: {said}");
    }
    let tokens = operator.tokens(Some("acme")).await.unwrap();
    assert_eq!(tokens.len(), before + 1, "{tokens:?}");
    let canary = tokens
        .iter()
        .find(|t| t.label == "restore-drill-canary")
        .unwrap();
    assert!(canary.revoked_at.is_some(), "the canary outlived the drill");
}

/// A data dir the release before store formats wrote (`tests/upgrade/store-format-1.tar`: the
/// shared server at ca5d185, a tenant `acme` with a Webflow credential, a token `kept` and a
/// token `revoked`, revoked; both tokens in `store-format-1.tokens`): this binary opens it,
/// upgrades it to the current format once, and everything works as it did. A store marked with
/// a newer format is refused at start, naming both versions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_from_the_previous_release_opens_and_a_newer_one_is_refused() {
    common::upstream::install_crypto_provider();
    let upgrade = Path::new(env!("CARGO_MANIFEST_DIR")).join("upgrade");
    let tokens = std::fs::read_to_string(upgrade.join("store-format-1.tokens")).unwrap();
    let token = |name: &str| {
        tokens
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap()
            .to_owned()
    };
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let upstream = sandbox.base_url();
    let binary = tests::harness::shared_server_binary()
        .await
        .expect("the shared-server binary");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let unpacked = Command::new("tar")
        .arg("-xf")
        .arg(upgrade.join("store-format-1.tar"))
        .arg("-C")
        .arg(&data)
        .status()
        .unwrap();
    assert!(unpacked.success());
    // The fixture's tokens are bound to the public URL it was served at.
    let ports = Ports {
        mcp: 18787,
        admin: free_port(),
        store: None,
    };
    let server = serve(&binary, &data, &upstream, &ports).await;
    let mcp_url = format!("http://127.0.0.1:{}/mcp", ports.mcp);
    let client = connect(&mcp_url, &token("kept"), None).await.unwrap();
    let answer = ok_json(&call(&client, "whoami", json!({})).await);
    assert_eq!(answer["tenant"], "acme", "{answer}");
    assert!(
        connect(&mcp_url, &token("revoked"), None).await.is_err(),
        "the token revoked in the old release works after the upgrade"
    );
    drop(client);
    drop(server);
    // Upgraded once: the marker is there now (a backup counts its one record).
    let server = serve(&binary, &data, &upstream, &ports).await;
    let file = admin(&data, &ports).backup().await.unwrap();
    let (_, snapshot) = common::store::backup::read(&file).unwrap();
    assert_eq!(
        snapshot.counts().get("meta"),
        Some(&1),
        "{:?}",
        snapshot.counts()
    );
    drop(server);

    // A newer format: refused at start, both versions named, nothing changed.
    let newer = tmp.path().join("newer");
    std::fs::create_dir_all(&newer).unwrap();
    for key in KEY_FILES {
        std::fs::copy(data.join(key), newer.join(key)).unwrap();
    }
    {
        let db = sled::open(newer.join("store")).unwrap();
        db.open_tree("meta")
            .unwrap()
            .insert("format", "99")
            .unwrap();
        db.flush().unwrap();
    }
    let log = tmp.path().join("newer.log");
    let status = shared(&binary, &newer, &upstream, &ports)
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .status()
        .unwrap();
    assert!(!status.success());
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(
        said.contains(&format!(
            "is format 99, newer than this binary knows ({})",
            common::store::STORE_FORMAT
        )),
        "{said}"
    );
}
