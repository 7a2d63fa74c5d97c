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
use common::store::backup::FORMAT;
use serde_json::json;
use tests::connector::{Connection, Doors, Person, Site};
use tests::harness::{
    KillOnDrop, call, connect, free_port, ok_json, server_command, until_healthy,
};
use tests::passkey;
use tests::sandbox::{Fixture, Sandbox};

/// The key files a restore needs and a backup never holds: kept apart by the operator.
const KEY_FILES: [&str; 3] = ["master.key", "signing.key", "admin-token"];

/// Which binary: the shared server, or acme's isolated instance.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Shared,
    Isolated,
}

/// Where the server listens, and the PostgreSQL database it keeps its store in (the data dir's
/// sled store without one).
#[derive(Clone, Copy)]
struct Ports {
    mcp: u16,
    admin: u16,
    connector: u16,
    store: Option<&'static str>,
}

impl Ports {
    fn new(store: Option<&'static str>) -> Ports {
        Ports {
            mcp: free_port(),
            admin: free_port(),
            connector: free_port(),
            store,
        }
    }

    fn mcp_url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.mcp)
    }
}

/// One binary as an operator runs it against the sandbox: its subcommands on a data dir.
#[derive(Clone)]
struct Binary {
    kind: Kind,
    path: PathBuf,
    upstream: String,
}

impl Binary {
    async fn of(kind: Kind, sandbox: &Sandbox) -> Binary {
        let path = match kind {
            Kind::Shared => tests::harness::shared_server_binary().await,
            Kind::Isolated => tests::harness::isolated_server_binary().await,
        };
        Binary {
            kind,
            path: path.expect("the server binary"),
            upstream: sandbox.base_url(),
        }
    }

    /// `<binary> <args>` on `data`, every upstream at the sandbox, the connector door on
    /// `http://localhost:<connector>`.
    fn command(&self, data: &Path, ports: &Ports) -> Command {
        let mut command = server_command(&self.path);
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
            .env(
                "STUDIO_MCP_CONNECTOR_URL",
                format!("http://localhost:{}/mcp", ports.connector),
            )
            .env(
                "STUDIO_MCP_CONNECTOR_LISTEN",
                format!("127.0.0.1:{}", ports.connector),
            )
            .env("STUDIO_MCP_TENANT_RATE_PER_MIN", "1000000")
            .env("STUDIO_MCP_WEBFLOW_RATE_PER_MIN", "1000000");
        for vendor in ["WEBFLOW", "PLAUSIBLE", "GITHUB", "CLOUDFLARE", "STRIPE"] {
            command.env(format!("STUDIO_MCP_{vendor}_BASE_URL"), &self.upstream);
        }
        if self.kind == Kind::Isolated {
            command.env("STUDIO_MCP_TENANT", "acme");
        }
        if let Some(url) = ports.store {
            command.env("STUDIO_MCP_STORE", url);
        }
        command
    }

    /// `serve`, once healthy, with `env` besides.
    async fn serve_with(&self, data: &Path, ports: &Ports, env: &[(&str, &str)]) -> Site<Served> {
        let log = data.with_extension(format!("{}.log", ports.mcp));
        let mut command = self.command(data, ports);
        command.envs(env.iter().copied());
        let mut child = command
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        until_healthy(
            "the server ready",
            &mut child,
            &format!("http://127.0.0.1:{}/healthz", ports.mcp),
            &log,
            Duration::from_secs(30),
        )
        .await;
        Site::new(Served {
            _child: KillOnDrop(child),
            public_url: format!("http://127.0.0.1:{}", ports.mcp),
            connector_origin: format!("http://localhost:{}", ports.connector),
            connector_url: format!("http://localhost:{}/mcp", ports.connector),
            admin: admin(data, ports),
        })
    }

    async fn serve(&self, data: &Path, ports: &Ports) -> Site<Served> {
        self.serve_with(data, ports, &[]).await
    }

    /// `store <args>`, as an operator runs it.
    fn store(&self, data: &Path, ports: &Ports, args: &[&str]) -> Output {
        self.command(data, ports)
            .arg("store")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `store <args>` off the test's runtime (the command may call the server this test runs).
    async fn store_async(&self, data: &Path, ports: &Ports, args: &[&str]) -> Output {
        let (binary, data, ports) = (self.clone(), data.to_owned(), *ports);
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            binary.store(&data, &ports, &args)
        })
        .await
        .unwrap()
    }
}

/// A running server binary, killed (SIGKILL) when dropped.
struct Served {
    _child: KillOnDrop,
    public_url: String,
    connector_origin: String,
    connector_url: String,
    admin: AdminClient,
}

impl Doors for Served {
    fn public_url(&self) -> &str {
        &self.public_url
    }
    fn connector_origin(&self) -> &str {
        &self.connector_origin
    }
    fn connector_url(&self) -> &str {
        &self.connector_url
    }
    fn admin(&self) -> &AdminClient {
        &self.admin
    }
}

fn admin(data: &Path, ports: &Ports) -> AdminClient {
    let token = std::fs::read_to_string(data.join("admin-token")).unwrap();
    AdminClient::new(
        format!("http://127.0.0.1:{}", ports.admin),
        token.trim().to_owned(),
    )
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

/// The disk lost: the server killed with SIGKILL, its data dir deleted but for the key files
/// the operator keeps apart (`keys`).
fn lose(site: Site<Served>, data: &Path, keys: &Path) {
    drop(site);
    keys_only(data, keys);
    std::fs::remove_dir_all(data).unwrap();
    keys_only(keys, data);
}

/// A restore into `target` that must be refused: it failed, said `refusal`, and wrote nothing.
fn assert_refused(out: &Output, refusal: &str, target: &Path) {
    assert!(!out.status.success(), "restored into {}", target.display());
    assert!(text(out).contains(refusal), "{}", text(out));
    assert!(
        store_is_empty(target),
        "something was written into {}",
        target.display()
    );
}

/// Restores `file` into `data` (or the database `ports` names); asserts it succeeded.
fn restore(binary: &Binary, data: &Path, ports: &Ports, file: &Path) {
    let restored = binary.store(data, ports, &["restore", "--from", file.to_str().unwrap()]);
    assert!(restored.status.success(), "{}", text(&restored));
}

/// A person of acme with a passkey, and an assistant they allowed (a grant with a refresh
/// token), made before a backup.
async fn a_person_and_their_assistant(
    site: &Site<Served>,
    role: Option<&str>,
) -> (Person, Connection) {
    let person = site.person_as("acme", "Grace", role).await;
    let connection = site.connect(&person).await;
    assert_eq!(site.connector_status(&connection.access).await, 200);
    (person, connection)
}

/// On the restored server: the person signs in with the same passkey, and the assistant's
/// grant still refreshes into an access token that works. The person's cookie is the new
/// session's.
async fn they_still_sign_in_and_refresh(
    site: &Site<Served>,
    person: &mut Person,
    connection: &Connection,
) {
    let cookie = passkey::sign_in(&site.http, &site.url(""), &mut person.passkey).await;
    assert!(site.signed_in(&cookie).await, "no session after sign-in");
    person.cookie = cookie;
    assert_eq!(
        site.connector_status(&connection.access).await,
        200,
        "an access token issued before the backup"
    );
    let refreshed = site
        .refresh(&connection.client_id, &connection.refresh)
        .await;
    assert_eq!(refreshed.status, 200, "refresh: {}", refreshed.text);
    let access = refreshed.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(site.connector_status(&access).await, 200);
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
    let binary = Binary::of(Kind::Shared, &sandbox).await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let keys = tmp.path().join("keys");
    let mut ports = Ports::new(pg.map(|(live, _)| live));
    let mcp_url = ports.mcp_url();

    let site = binary.serve(&data, &ports).await;
    let operator = &site.server.admin;
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
    let (mut person, connection) = a_person_and_their_assistant(&site, None).await;

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
        let to = file.to_str().unwrap();
        let taken = binary
            .store_async(&data, &ports, &["backup", "--to", to])
            .await;
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
    let secrets = [
        &kept.token,
        &revoked.token,
        &owner.token,
        &connection.access,
        &connection.refresh,
    ];
    for secret in secrets {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "a token or credential in clear in the backup"
        );
    }
    for key in KEY_FILES {
        let held = std::fs::read_to_string(data.join(key)).unwrap();
        let held = held.trim();
        assert!(held.len() >= 32, "{key}");
        assert!(
            !bytes.windows(held.len()).any(|w| w == held.as_bytes()),
            "{key} in the backup"
        );
    }

    lose(site, &data, &keys);
    ports.store = pg.map(|(_, fresh)| fresh);
    restore(&binary, &data, &ports, &file);

    let site = binary.serve(&data, &ports).await;
    let client = connect(&mcp_url, &kept.token, None).await.unwrap();
    let answer = ok_json(&call(&client, "whoami", json!({})).await);
    assert_eq!(answer["tenant"], "acme", "{answer}");
    assert!(
        connect(&mcp_url, &revoked.token, None).await.is_err(),
        "a token revoked before the backup works after the restore"
    );
    they_still_sign_in_and_refresh(&site, &mut person, &connection).await;
    let audited = site
        .server
        .admin
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
    drop(site);

    // An occupied store: refused, and what it holds is untouched.
    let out = binary.store(
        &data,
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
                .replacen(
                    &format!("\"format\":{FORMAT}"),
                    &format!("\"format\":{}", FORMAT + 1),
                    1,
                )
                .into_bytes(),
            "newer than this binary reads",
        ),
        (
            "header",
            original
                .replacen("\"server\":", "\"tenant\":\"globex\",\"server\":", 1)
                .into_bytes(),
            "checksum does not match",
        ),
    ];
    for (name, contents, refusal) in cases {
        let bad = tmp.path().join(format!("{name}.backup"));
        std::fs::write(&bad, contents).unwrap();
        let target = tmp.path().join(format!("restore-{name}"));
        keys_only(&keys, &target);
        let out = binary.store(
            &target,
            &ports,
            &["restore", "--from", bad.to_str().unwrap()],
        );
        assert_refused(&out, refusal, &target);
    }
    // Another master key: named, nothing written.
    let target: PathBuf = tmp.path().join("restore-keys");
    keys_only(&keys, &target);
    let mut master = std::fs::read(target.join("master.key")).unwrap();
    master[0] = if master[0] == b'a' { b'b' } else { b'a' };
    std::fs::write(target.join("master.key"), master).unwrap();
    let out = binary.store(
        &target,
        &ports,
        &["restore", "--from", file.to_str().unwrap()],
    );
    let refusal = "the master key here is not the one this backup was taken with";
    assert_refused(&out, refusal, &target);
}

/// `drill restore` against the running binary: a backup restored into a scratch dir and served
/// by a second process proves the canary; the canary is revoked on the running server afterwards
/// and the running server's records are otherwise as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_restore_drill_proves_a_canary_on_a_scratch_copy() {
    restore_drill(Kind::Shared, None).await;
}

/// The same drill against a server on PostgreSQL: its backup (one repeatable-read
/// transaction) restored into the scratch dir's embedded store; the database is not touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_restore_drill_proves_a_canary_on_a_scratch_copy_on_postgres() {
    let cluster = tests::postgres::cluster_url();
    let database = tests::harness::database_for(&cluster, "backups-drill");
    restore_drill(Kind::Shared, Some(leak(database))).await;
}

/// The drill of an isolated instance: its copy is served as acme's instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_restore_drill_of_an_isolated_instance() {
    restore_drill(Kind::Isolated, None).await;
}

async fn restore_drill(kind: Kind, store: Option<&'static str>) {
    common::upstream::install_crypto_provider();
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let owner = sandbox.fixture().owner("acme").unwrap().clone();
    let binary = Binary::of(kind, &sandbox).await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let ports = Ports::new(store);
    let site = binary.serve(&data, &ports).await;
    let operator = &site.server.admin;
    match kind {
        Kind::Shared => {
            let new: NewTenant = serde_json::from_value(json!({
                "id": "acme", "name": "Acme Inc", "webflow_sites": [owner.site_id],
            }))
            .unwrap();
            operator.add_tenant(&new).await.unwrap();
        }
        Kind::Isolated => {
            tests::harness::provision_isolated(operator, &owner).await;
        }
    }
    let before = operator.tokens(Some("acme")).await.unwrap().len();

    let drill = {
        let (binary, data) = (binary.clone(), data.clone());
        tokio::task::spawn_blocking(move || {
            binary
                .command(&data, &ports)
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

/// An isolated instance backed up with two approvals pending, one of which passes its time
/// before the restore; the instance killed, its data dir deleted, the backup restored and the
/// instance started again: its token works and the revoked one stays revoked, the approver
/// signs in with the same passkey and approves the approval still pending, which then runs
/// once; the other is expired; the approver's assistant still refreshes its grant; the audit
/// log holds the requests made before the backup. The backup is refused by the shared server
/// and by another tenant's instance, with nothing written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_instance_restores_with_its_people_and_approvals() {
    isolated_backup_then_restore().await;
}

/// (An isolated instance keeps its own embedded store: there is no PostgreSQL variant.)
async fn isolated_backup_then_restore() {
    /// The approval time of the instance that asks the approval that expires.
    const SHORT_TTL_SECS: u64 = 10;
    common::upstream::install_crypto_provider();
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let owner = sandbox.fixture().owner("acme").unwrap().clone();
    let binary = Binary::of(Kind::Isolated, &sandbox).await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let keys = tmp.path().join("keys");
    let ports = Ports::new(None);
    let zone = &owner.zone_name;
    let dns = |content: &str| json!({"record": {"type": "TXT", "name": format!("www.{zone}"), "content": content}});

    // The approval that stays pending, asked with the default approval time.
    let site = binary.serve(&data, &ports).await;
    let acme = tests::harness::provision_isolated(&site.server.admin, &owner).await;
    let issued = site
        .server
        .admin
        .issue_token(
            "acme",
            &IssueRequest {
                label: Some("revoked".into()),
                ttl_days: None,
            },
        )
        .await
        .unwrap();
    site.server.admin.revoke(&issued.record.id).await.unwrap();
    let (mut approver, connection) = a_person_and_their_assistant(&site, Some("approver")).await;
    let model = connect(&ports.mcp_url(), &acme.token, None).await.unwrap();
    let asked = ok_json(&call(&model, "dns_create_record", dns("pending")).await);
    assert_eq!(asked["status"], "approval_required", "{asked}");
    let pending = asked["approval_id"].as_str().unwrap().to_owned();
    drop((model, site));

    // The one that expires, asked by the instance restarted with a short approval time; the
    // backup taken while both are pending.
    let ttl = SHORT_TTL_SECS.to_string();
    let site = binary
        .serve_with(&data, &ports, &[("STUDIO_MCP_APPROVAL_TTL_SECS", &ttl)])
        .await;
    let model = connect(&ports.mcp_url(), &acme.token, None).await.unwrap();
    let asked = ok_json(&call(&model, "dns_create_record", dns("expires")).await);
    assert_eq!(asked["status"], "approval_required", "{asked}");
    let expiring = asked["approval_id"].as_str().unwrap().to_owned();
    let file = tmp.path().join("acme.backup");
    let taken = binary
        .store_async(&data, &ports, &["backup", "--to", file.to_str().unwrap()])
        .await;
    assert!(taken.status.success(), "{}", text(&taken));
    let listed = site.server.admin.approvals().await.unwrap();
    let expires_at = listed.iter().find(|a| a.id == expiring).unwrap().expires_at;
    for id in [&pending, &expiring] {
        let view = listed.iter().find(|a| &a.id == id).unwrap();
        assert_eq!(view.state, "pending", "{view:?}");
    }
    drop(model);

    lose(site, &data, &keys);
    restore(&binary, &data, &ports, &file);
    // Started once the short approval's time has passed.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if let Some(wait) = (expires_at + 1).checked_sub(now) {
        tokio::time::sleep(Duration::from_secs(wait)).await;
    }
    let site = binary.serve(&data, &ports).await;

    let model = connect(&ports.mcp_url(), &acme.token, None).await.unwrap();
    let answer = ok_json(&call(&model, "whoami", json!({})).await);
    assert_eq!(answer["tenant"], "acme", "{answer}");
    assert!(
        connect(&ports.mcp_url(), &issued.token, None)
            .await
            .is_err(),
        "a token revoked before the backup works after the restore"
    );
    let state_of = |id: &str| {
        let id = id.to_owned();
        let admin = &site.server.admin;
        async move {
            let listed = admin.approvals().await.unwrap();
            listed.into_iter().find(|a| a.id == id).unwrap().state
        }
    };
    assert_eq!(state_of(&expiring).await, "expired");
    assert_eq!(state_of(&pending).await, "pending");

    they_still_sign_in_and_refresh(&site, &mut approver, &connection).await;
    sandbox.clear_requests();
    let decided = site.decide(&approver, &pending, "approve").await;
    assert!(decided.status < 400, "{}: {}", decided.status, decided.text);
    assert_eq!(state_of(&pending).await, "done");
    let done = ok_json(&call(&model, "dns_create_record", dns("pending")).await);
    assert_eq!(done["status"], "done", "{done}");
    let record = done["result"]["id"].as_str().unwrap();
    assert_eq!(
        sandbox.dns_record(&owner.zone_id, record).unwrap()["content"],
        "pending"
    );
    let writes = sandbox
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .count();
    assert_eq!(writes, 1, "{:?}", sandbox.requests());
    let audited = site
        .server
        .admin
        .audit(&AuditFilter {
            tenant: Some("acme".into()),
            since_ms: None,
            limit: Some(1000),
        })
        .await
        .unwrap();
    let asked = audited
        .iter()
        .filter(|r| r.action == "dns_create_record")
        .count();
    assert!(asked >= 3, "the requests before the backup: {audited:?}");
    drop((model, site));

    // A real isolated backup is refused by the shared server and by globex's instance.
    let shared = Binary::of(Kind::Shared, &sandbox).await;
    let target = tmp.path().join("restore-shared");
    keys_only(&keys, &target);
    let out = shared.store(
        &target,
        &ports,
        &["restore", "--from", file.to_str().unwrap()],
    );
    assert_refused(&out, "not of a studio-mcp-shared", &target);
    let target = tmp.path().join("restore-globex");
    keys_only(&keys, &target);
    let out = binary
        .command(&target, &ports)
        .env("STUDIO_MCP_TENANT", "globex")
        .args(["store", "restore", "--from", file.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_refused(&out, "acme's instance", &target);
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
    let binary = Binary::of(Kind::Shared, &sandbox).await;
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
        ..Ports::new(None)
    };
    let server = binary.serve(&data, &ports).await;
    let mcp_url = ports.mcp_url();
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
    let server = binary.serve(&data, &ports).await;
    let file = server.server.admin.backup().await.unwrap();
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
    let status = binary
        .command(&newer, &ports)
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
