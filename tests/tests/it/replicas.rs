//! Three shared-server replicas on one PostgreSQL, as real processes behind one public URL:
//! a change made through any replica (token issued or revoked, tenant added, changed or removed)
//! holds on every replica on its very next request; killing a replica under load fails only its
//! own calls, and a revocation meanwhile names it until its lease ends; restarting the database
//! under load loses no audit record, repeats nothing, and every replica serves again by itself.
//! After any gap longer than its lease — paused (`SIGSTOP`), killed mid-change, or cut off from
//! the database by a partition — no replica honours a static or OAuth token whose revocation
//! has returned.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::runtime::admin::client::AdminClient;
use common::runtime::admin::{IssueRequest, NewTenant};
use common::tenant::{TenantPatch, TenantSpec};
use tests::harness::{TestServer, free_port};
use tests::postgres::PgCluster;

/// Every replica's public URL: the tokens' audience and the `Host` each one accepts.
const PUBLIC_HOST: &str = "studio.test";
const WHOAMI: &str =
    r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}"#;

struct Replica {
    name: String,
    child: Child,
    mcp_url: String,
    health_url: String,
    admin: AdminClient,
    log: PathBuf,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The key files every replica shares (the operator distributes them).
fn write_keys(dir: &Path) -> String {
    let hex32 = || {
        let bytes: [u8; 32] = rand::random();
        hex::encode(bytes)
    };
    std::fs::write(dir.join("signing.key"), hex32()).unwrap();
    std::fs::write(dir.join("master.key"), hex32()).unwrap();
    let admin_token = format!("adm_{}", hex32());
    std::fs::write(dir.join("admin-token"), &admin_token).unwrap();
    admin_token
}

struct Deployment {
    cluster: PgCluster,
    database: String,
    keys: tempfile::TempDir,
    admin_token: String,
    replicas: Vec<Replica>,
    http: reqwest::Client,
}

impl Deployment {
    async fn start(names: &[&str], lease_secs: u64, ack_secs: u64) -> Deployment {
        common::upstream::install_crypto_provider();
        let cluster = PgCluster::start();
        let database = cluster.database("replicas");
        let keys = tempfile::tempdir().unwrap();
        let admin_token = write_keys(keys.path());
        let mut deployment = Deployment {
            cluster,
            database,
            keys,
            admin_token,
            replicas: Vec::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
        };
        for name in names {
            let replica = deployment.spawn(name, lease_secs, ack_secs).await;
            deployment.replicas.push(replica);
        }
        for replica in &deployment.replicas {
            deployment.wait_healthy(replica).await;
        }
        deployment
    }

    async fn spawn(&self, name: &str, lease_secs: u64, ack_secs: u64) -> Replica {
        let binary = tests::harness::shared_server_binary()
            .await
            .expect("the shared-server binary");
        let (port, admin_port) = (free_port(), free_port());
        let data = self.keys.path().join(name);
        std::fs::create_dir_all(&data).unwrap();
        let log = self.keys.path().join(format!("{name}.log"));
        let keys = self.keys.path();
        let child = tests::harness::server_command(&binary)
            .arg("serve")
            .env("STUDIO_MCP_STORE", &self.database)
            .env("STUDIO_MCP_REPLICA_NAME", name)
            .env("STUDIO_MCP_REPLICA_LEASE_SECS", lease_secs.to_string())
            .env("STUDIO_MCP_REPLICA_ACK_TIMEOUT_SECS", ack_secs.to_string())
            .env("STUDIO_MCP_DATA_DIR", &data)
            .env("STUDIO_MCP_SIGNING_KEY_FILE", keys.join("signing.key"))
            .env("STUDIO_MCP_MASTER_KEY_FILE", keys.join("master.key"))
            .env("STUDIO_MCP_ADMIN_TOKEN_FILE", keys.join("admin-token"))
            .env("STUDIO_MCP_LISTEN", format!("127.0.0.1:{port}"))
            .env("STUDIO_MCP_ADMIN_LISTEN", format!("127.0.0.1:{admin_port}"))
            .env("STUDIO_MCP_PUBLIC_URL", format!("http://{PUBLIC_HOST}"))
            .env("STUDIO_MCP_TENANT_RATE_PER_MIN", "1000000")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Replica {
            name: name.to_owned(),
            child,
            mcp_url: format!("http://127.0.0.1:{port}/mcp"),
            health_url: format!("http://127.0.0.1:{port}/healthz"),
            admin: AdminClient::new(
                format!("http://127.0.0.1:{admin_port}"),
                self.admin_token.clone(),
            )
            .unwrap(),
            log,
        }
    }

    async fn health(&self, replica: &Replica) -> (u16, String) {
        match self
            .http
            .get(&replica.health_url)
            .header("host", PUBLIC_HOST)
            .send()
            .await
        {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        }
    }

    async fn wait_healthy(&self, replica: &Replica) {
        let what = format!("{} healthy", replica.name);
        tests::harness::eventually(&what, Duration::from_secs(60), || async {
            match self.health(replica).await {
                (200, body) if body.starts_with("ok") => Ok(()),
                (status, body) => Err(tests::harness::WithLog::new(
                    format!("{status} {body}"),
                    &replica.log,
                )),
            }
        })
        .await;
    }

    fn replica(&self, name: &str) -> &Replica {
        self.replicas.iter().find(|r| r.name == name).unwrap()
    }

    /// One call, no retry: the status a client sees.
    async fn whoami(&self, replica: &str, token: &str) -> u16 {
        whoami(&self.http, &self.replica(replica).mcp_url, token).await
    }

    /// Counts `whoami` audit records in the database.
    fn audited_calls(&self) -> u64 {
        let out = Command::new("psql")
            .args([
                &self.database,
                "-tAc",
                "SELECT count(*) FROM audit WHERE record::json->>'action' = 'whoami'",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }
}

async fn whoami(http: &reqwest::Client, mcp_url: &str, token: &str) -> u16 {
    match http
        .post(mcp_url)
        .bearer_auth(token)
        .header("host", PUBLIC_HOST)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(WHOAMI)
        .send()
        .await
    {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            if status == 200 && !body.contains("\"tenant\"") {
                return 500;
            }
            status
        }
        Err(_) => 0,
    }
}

fn tenant(id: &str) -> NewTenant {
    NewTenant {
        id: id.into(),
        spec: TenantSpec {
            name: id.to_uppercase(),
            webflow_sites: vec![
                common::domain::WebflowId::parse("site", "aaaaaaaaaaaaaaaaaaaaaaaa").unwrap(),
            ],
            ..Default::default()
        },
    }
}

async fn issue(admin: &AdminClient, tenant: &str) -> (String, String) {
    let issued = admin
        .issue_token(
            tenant,
            &IssueRequest {
                label: Some("replicas".into()),
                ttl_days: None,
            },
        )
        .await
        .unwrap();
    (issued.token, issued.record.id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_holds_on_every_replica_from_its_next_request() {
    let d = Deployment::start(&["a", "b", "c"], 10, 5).await;
    let a = &d.replica("a").admin;
    let b = &d.replica("b").admin;
    let c = &d.replica("c").admin;

    // A tenant and a token made through A work on B and C at once: no retry, no wait.
    a.add_tenant(&tenant("acme")).await.unwrap();
    let (token, token_id) = issue(a, "acme").await;
    for r in ["a", "b", "c"] {
        assert_eq!(d.whoami(r, &token).await, 200, "replica {r}");
    }

    // Revoked through A: the very next request to B and to C is refused.
    a.revoke(&token_id).await.unwrap();
    for r in ["b", "c", "a"] {
        assert_eq!(d.whoami(r, &token).await, 401, "replica {r} after revoke");
    }

    // A tenant added on B, and its token, work on C.
    b.add_tenant(&tenant("globex")).await.unwrap();
    let (globex, _) = issue(b, "globex").await;
    assert_eq!(d.whoami("c", &globex).await, 200);

    // A policy change through C is what A holds when C's call returns.
    let patch = TenantPatch {
        name: Some("Globex Ltd".into()),
        read_only: Some(true),
        ..Default::default()
    };
    c.update_tenant("globex", &patch).await.unwrap();
    let seen = a.tenant("globex").await.unwrap();
    assert_eq!(seen.tenant.name, "Globex Ltd");
    assert!(seen.tenant.read_only);

    // A tenant removed through C: its token is refused by A and B next.
    c.remove_tenant("globex").await.unwrap();
    for r in ["a", "b"] {
        assert_eq!(d.whoami(r, &globex).await, 401, "replica {r} after removal");
    }

    // The drill across all three: every replica refuses on its first request after revoke.
    let endpoints: Vec<&str> = d.replicas.iter().map(|r| r.mcp_url.as_str()).collect();
    let (canary, _) = issue(a, "acme").await;
    drop(canary);
    let report = common::runtime::ops::drill::revoke(a, &endpoints, "acme", Some(PUBLIC_HOST))
        .await
        .unwrap();
    assert_eq!(report.endpoints.len(), 3);
    for (url, elapsed, attempts) in &report.endpoints {
        assert_eq!(*attempts, 1, "{url} needed {attempts} requests");
        eprintln!(
            "{url}: refused {:.1} ms after revoke",
            elapsed.as_secs_f64() * 1e3
        );
    }
}

/// Calls `whoami` on `url` until `stop`, counting successes and failures (and failures before
/// `kill_at` is set).
fn hammer(
    http: reqwest::Client,
    url: String,
    token: String,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(u64, Vec<(Instant, u16)>)> {
    tokio::spawn(async move {
        let mut ok = 0;
        let mut failures = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            match whoami(&http, &url, &token).await {
                200 => ok += 1,
                status => {
                    failures.push((Instant::now(), status));
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
        (ok, failures)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_fails_only_its_own_calls_and_is_named_until_its_lease_ends() {
    let mut d = Deployment::start(&["a", "b", "c"], 3, 1).await;
    let admin = d.replica("a").admin.clone();
    admin.add_tenant(&tenant("acme")).await.unwrap();
    let (token, _) = issue(&admin, "acme").await;
    // Issued while every replica is up (issuing, too, waits for every live replica).
    let (doomed, doomed_id) = issue(&admin, "acme").await;

    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|r| {
            let url = d.replica(r).mcp_url.clone();
            (*r, hammer(d.http.clone(), url, token.clone(), stop.clone()))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let killed_at = Instant::now();
    {
        let b = d.replicas.iter_mut().find(|r| r.name == "b").unwrap();
        b.child.kill().unwrap();
        b.child.wait().unwrap();
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::Relaxed);
    for (name, task) in load {
        let (ok, failures) = task.await.unwrap();
        assert!(ok > 10, "{name} served only {ok} calls");
        if name == "b" {
            assert!(
                !failures.is_empty(),
                "calls to the killed replica must fail"
            );
            assert!(
                failures.iter().all(|(at, _)| *at >= killed_at),
                "b failed before it was killed: {failures:?}"
            );
        } else {
            assert!(
                failures.is_empty(),
                "{name} failed {failures:?} while b died"
            );
        }
    }

    // B's heartbeat is younger than its lease: a revocation cannot be confirmed everywhere,
    // so the call fails and names B rather than pretend.
    let err = admin.revoke(&doomed_id).await.unwrap_err().to_string();
    assert!(err.contains("replica b"), "{err}");
    assert!(err.contains("503"), "{err}");
    // The revocation is stored all the same: the live replicas refuse the token.
    assert_eq!(d.whoami("c", &doomed).await, 401);

    // Once B's lease has ended nobody waits for it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (later, later_id) = issue(&admin, "acme").await;
    admin.revoke(&later_id).await.unwrap();
    assert_eq!(d.whoami("c", &later).await, 401);
    assert_eq!(d.whoami("a", &later).await, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_under_load_loses_nothing_repeats_nothing_and_heals_itself() {
    let d = Deployment::start(&["a", "b", "c"], 5, 2).await;
    let admin = d.replica("a").admin.clone();
    admin.add_tenant(&tenant("acme")).await.unwrap();
    let (token, _) = issue(&admin, "acme").await;

    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let load: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|r| {
            let url = d.replica(r).mcp_url.clone();
            (*r, hammer(d.http.clone(), url, token.clone(), stop.clone()))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    d.cluster.stop();
    let stopped = Instant::now();
    // Requests keep being served from memory; writes fail fast and say why; health says so.
    let err = admin
        .issue_token(
            "acme",
            &IssueRequest {
                label: Some("during-outage".into()),
                ttl_days: None,
            },
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("503") && err.contains("unavailable"), "{err}");
    assert!(
        stopped.elapsed() < Duration::from_secs(8),
        "the write did not fail fast"
    );
    tests::harness::eventually("b says degraded", Duration::from_secs(5), || async {
        match d.health(d.replica("b")).await {
            (200, body) if body.starts_with("degraded") => Ok(()),
            (status, body) => Err(format!("{status} {body}")),
        }
    })
    .await;
    d.cluster.begin();
    let restarted = Instant::now();
    for replica in &d.replicas {
        d.wait_healthy(replica).await;
    }
    let healed = restarted.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for (name, task) in load {
        let (ok, failures) = task.await.unwrap();
        assert!(
            failures.is_empty(),
            "{name} failed calls during the restart: {failures:?}"
        );
        total += ok;
    }
    served.store(total, Ordering::Relaxed);
    eprintln!("{total} calls served; every replica healthy {healed:?} after the restart");
    assert!(healed < Duration::from_secs(15));

    // Every call audited exactly once, the ones made while the database was down included.
    tests::harness::eventually(
        &format!("all {total} calls audited (none lost)"),
        Duration::from_secs(20),
        || async {
            let audited = d.audited_calls();
            // Each replica's health checks and the setup made no whoami calls: equality is exact.
            assert!(
                audited <= total,
                "{audited} records for {total} calls: repeated"
            );
            if audited == total {
                Ok(())
            } else {
                Err(format!("{audited} of {total} calls audited"))
            }
        },
    )
    .await;
    // The write refused during the outage did not happen later either.
    let tokens = admin.tokens(Some("acme")).await.unwrap();
    assert!(tokens.iter().all(|t| t.label != "during-outage"));

    // Changes propagate again at once.
    let (fresh, fresh_id) = issue(&d.replica("b").admin, "acme").await;
    assert_eq!(d.whoami("c", &fresh).await, 200);
    d.replica("c").admin.revoke(&fresh_id).await.unwrap();
    assert_eq!(d.whoami("a", &fresh).await, 401);
    assert_eq!(d.whoami("b", &fresh).await, 401);

    // Cut off for longer than the lease, a replica stops vouching for tokens (it could have
    // missed a revocation) and says so; it serves again by itself once the database is back.
    d.cluster.stop();
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(d.whoami("a", &token).await, 503);
    let (status, body) = d.health(d.replica("a")).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.starts_with("unavailable"), "{body}");
    d.cluster.begin();
    for replica in &d.replicas {
        d.wait_healthy(replica).await;
    }
    assert_eq!(d.whoami("a", &token).await, 200);
}

/// `initialize` on the connector door of a replica reached at `addr`, naming the public host.
async fn connector_status_at(http: &reqwest::Client, addr: &str, host: &str, token: &str) -> u16 {
    http.post(format!("http://{addr}/mcp"))
        .header("host", host)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
        )
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_revoked_or_a_person_removed_on_one_replica_is_refused_by_the_other() {
    let sandbox = tests::connector::sandbox().await;
    let database = tests::harness::database_for(
        &tests::postgres::cluster_url(),
        &format!("oauth-replicas-{}", rand::random::<u64>()),
    );
    let keys = tempfile::tempdir().unwrap();
    let shared = |config: &mut common::config::Config| {
        config.store_url = Some(database.clone());
        config.signing_key_file = Some(keys.path().join("signing.key"));
        config.master_key_file = Some(keys.path().join("master.key"));
        config.admin_token_file = Some(keys.path().join("admin-token"));
    };
    // A: the replica the person's browser and the assistant talk to (it makes the key files).
    let site = tests::connector::shared_with(&sandbox, shared).await;
    let host = site
        .server
        .connector_origin
        .trim_start_matches("http://")
        .to_owned();
    // B: another replica behind the same connector URL, reached at its own address.
    let b_dir = tempfile::tempdir().unwrap();
    let mut config = tests::harness::config_for(b_dir.path(), &sandbox.base_url());
    shared(&mut config);
    config.public_url = Some(site.server.public_url.clone());
    config.connector_url = Some(site.connector_url());
    let b = TestServer::start_with(config).await;
    let b_addr = b.connector_addr.clone();
    let http = reqwest::Client::new();

    let alex = site.person("acme", "Alex").await;
    let first = site.connect(&alex).await;
    let second = site.connect(&alex).await;
    // Tokens issued through A work on B at once.
    assert_eq!(
        connector_status_at(&http, &b_addr, &host, &first.access).await,
        200
    );
    assert_eq!(
        connector_status_at(&http, &b_addr, &host, &second.access).await,
        200
    );

    // A connection revoked through B's admin API: A refuses it on its next request.
    let grant = b
        .admin
        .grants(Some("acme"))
        .await
        .unwrap()
        .into_iter()
        .find(|g| g.client_id == first.client_id)
        .unwrap();
    b.admin.revoke_grant(&grant.id).await.unwrap();
    assert_eq!(site.connector_status(&first.access).await, 401);
    assert_eq!(
        connector_status_at(&http, &b_addr, &host, &first.access).await,
        401
    );
    assert_eq!(site.connector_status(&second.access).await, 200);

    // The person removed through A: B refuses their other connection next.
    site.server.admin.remove_person(&alex.id).await.unwrap();
    assert_eq!(
        connector_status_at(&http, &b_addr, &host, &second.access).await,
        401
    );
    assert_eq!(site.connector_status(&second.access).await, 401);
}

// ---- Issue 20, defect 1: after any gap longer than the lease, no revoked token honoured ----
//
// Three replicas behind one public URL and one connector URL: A in this process (the person's
// browser and the assistant talk to it), B and C in processes of their own, which the tests
// pause, kill and cut off. "Honoured" is a 200; a refusal is a 401 (the token is revoked) or a
// 503 (the replica cannot vouch for its memory). Only requests *sent* after the revocation
// returned count: each is written whole before anything is expected of the replica.

/// The shortest lease the configuration allows, so that rounds are quick.
const LEASE: Duration = Duration::from_secs(2);
/// Longer than the lease: a revocation waits out a silent replica's lease instead of failing.
const ACK: Duration = Duration::from_secs(5);

/// Where a token is presented: the static door (`/mcp`, static tokens) or the connector door
/// (`/mcp` on the connector origin, OAuth access tokens).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Door {
    Static,
    Connector,
}

/// A replica in a process of its own, on both doors.
struct Peer {
    child: Child,
    static_addr: String,
    connector_addr: String,
}

impl Peer {
    fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, signal).unwrap();
    }

    /// `kill -9`, and the process reaped.
    fn kill(&mut self) {
        self.signal(rustix::process::Signal::KILL);
        self.child.wait().unwrap();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // A paused process dies of SIGKILL all the same.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What every replica shares: the key files, the public URL and the connector URL.
struct Shared {
    keys: PathBuf,
    public_url: String,
    connector_url: String,
    upstream: String,
}

/// Starts replica `name` on `store` and waits until it is healthy.
async fn spawn_peer(shared: &Shared, name: &str, store: &str) -> Peer {
    let binary = tests::harness::shared_server_binary()
        .await
        .expect("the shared-server binary");
    let (port, admin_port, connector_port) = (free_port(), free_port(), free_port());
    let data = shared.keys.join(name);
    std::fs::create_dir_all(&data).unwrap();
    let log = shared.keys.join(format!("{name}.log"));
    let keys = &shared.keys;
    let mut command = tests::harness::server_command(&binary);
    command
        .arg("serve")
        .env("STUDIO_MCP_STORE", store)
        .env("STUDIO_MCP_REPLICA_NAME", name)
        .env("STUDIO_MCP_REPLICA_LEASE_SECS", LEASE.as_secs().to_string())
        .env(
            "STUDIO_MCP_REPLICA_ACK_TIMEOUT_SECS",
            ACK.as_secs().to_string(),
        )
        .env("STUDIO_MCP_DATA_DIR", &data)
        .env("STUDIO_MCP_SIGNING_KEY_FILE", keys.join("signing.key"))
        .env("STUDIO_MCP_MASTER_KEY_FILE", keys.join("master.key"))
        .env("STUDIO_MCP_ADMIN_TOKEN_FILE", keys.join("admin-token"))
        .env("STUDIO_MCP_LISTEN", format!("127.0.0.1:{port}"))
        .env("STUDIO_MCP_ADMIN_LISTEN", format!("127.0.0.1:{admin_port}"))
        .env(
            "STUDIO_MCP_CONNECTOR_LISTEN",
            format!("127.0.0.1:{connector_port}"),
        )
        .env("STUDIO_MCP_PUBLIC_URL", &shared.public_url)
        .env("STUDIO_MCP_CONNECTOR_URL", &shared.connector_url)
        .env("STUDIO_MCP_TENANT_RATE_PER_MIN", "1000000")
        .env("STUDIO_MCP_OAUTH_REQUESTS_PER_MIN", "100000")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    for upstream in ["WEBFLOW", "PLAUSIBLE", "GITHUB", "CLOUDFLARE", "STRIPE"] {
        command.env(format!("STUDIO_MCP_{upstream}_BASE_URL"), &shared.upstream);
    }
    let peer = Peer {
        child: command.spawn().unwrap(),
        static_addr: format!("127.0.0.1:{port}"),
        connector_addr: format!("127.0.0.1:{connector_port}"),
    };
    let http = reqwest::Client::new();
    let health = format!("http://{}/healthz", peer.static_addr);
    let host = authority(&shared.public_url);
    tests::harness::eventually(
        &format!("replica {name} healthy (log {})", log.display()),
        Duration::from_secs(60),
        || async {
            let answer = http.get(&health).header("host", &host).send().await;
            let (status, body) = match answer {
                Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
                Err(e) => (0, e.to_string()),
            };
            if status == 200 && body.starts_with("ok") {
                Ok(())
            } else {
                Err(format!("{status} {body}"))
            }
        },
    )
    .await;
    peer
}

/// `host:port` of an origin or URL.
fn authority(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split('/').next().unwrap_or_default().to_owned()
}

/// Three replicas on one database (A and C reach it at `stores[0]`/`stores[2]`, B at
/// `stores[1]`), tenant `acme`, and Alex, a person of `acme` with a passkey.
struct Trio {
    site: tests::connector::Site,
    b: Peer,
    c: Peer,
    stores: [String; 3],
    shared: Shared,
    alex: tests::connector::Person,
    http: reqwest::Client,
    _keys: tempfile::TempDir,
    _sandbox: tests::sandbox::Sandbox,
}

impl Trio {
    async fn start(stores: [String; 3]) -> Trio {
        let sandbox = tests::connector::sandbox().await;
        let keys = tempfile::tempdir().unwrap();
        let (dir, a_store) = (keys.path().to_owned(), stores[0].clone());
        // A makes the key files the others read.
        let site = tests::connector::shared_with(&sandbox, move |config| {
            config.store_url = Some(a_store.clone());
            config.signing_key_file = Some(dir.join("signing.key"));
            config.master_key_file = Some(dir.join("master.key"));
            config.admin_token_file = Some(dir.join("admin-token"));
            config.replica.name = Some("a".into());
            config.replica.lease_secs = LEASE.as_secs();
            config.replica.ack_timeout_secs = ACK.as_secs();
        })
        .await;
        let shared = Shared {
            keys: keys.path().to_owned(),
            public_url: site.server.public_url.clone(),
            connector_url: site.connector_url(),
            upstream: sandbox.base_url(),
        };
        let b = spawn_peer(&shared, "b", &stores[1]).await;
        let c = spawn_peer(&shared, "c", &stores[2]).await;
        let alex = site.person("acme", "Alex").await;
        Trio {
            site,
            b,
            c,
            stores,
            shared,
            alex,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            _keys: keys,
            _sandbox: sandbox,
        }
    }

    fn a(&self) -> &AdminClient {
        &self.site.server.admin
    }

    /// Where replica `name` listens for `door`, and the `Host` that door expects.
    fn door(&self, name: &str, door: Door) -> (String, String) {
        let addr = match (name, door) {
            ("a", Door::Static) => authority(&self.site.server.mcp_url),
            ("a", Door::Connector) => self.site.server.connector_addr.clone(),
            ("b", Door::Static) => self.b.static_addr.clone(),
            ("b", Door::Connector) => self.b.connector_addr.clone(),
            ("c", Door::Static) => self.c.static_addr.clone(),
            ("c", Door::Connector) => self.c.connector_addr.clone(),
            _ => panic!("no replica {name}"),
        };
        let host = match door {
            Door::Static => authority(&self.shared.public_url),
            Door::Connector => authority(&self.shared.connector_url),
        };
        (addr, host)
    }

    /// One `whoami` at replica `name`'s `door`, no retry: the status a client sees.
    async fn status(&self, name: &str, door: Door, token: &str) -> u16 {
        let (addr, host) = self.door(name, door);
        whoami_at(&self.http, &addr, &host, token).await
    }

    /// A static token for `acme`, issued through A: (token, id).
    async fn static_token(&self) -> (String, String) {
        issue(self.a(), "acme").await
    }

    /// A new assistant connected by Alex through A: (access token, grant id).
    async fn oauth_token(&self) -> (String, String) {
        let connection = self.site.connect(&self.alex).await;
        let grant = self
            .a()
            .grants(Some("acme"))
            .await
            .unwrap()
            .into_iter()
            .find(|g| g.client_id == connection.client_id)
            .unwrap();
        (connection.access, grant.id)
    }

    /// One value `query` reads from the database, as A sees it.
    async fn psql(&self, query: &str) -> String {
        let out = tokio::process::Command::new("psql")
            .args([&self.stores[0], "-tAc", query])
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{query}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The change log's newest sequence number.
    async fn newest_change(&self) -> i64 {
        let newest = self.psql("SELECT coalesce(max(seq), 0) FROM changes").await;
        newest.parse().unwrap()
    }

    /// Waits until the database no longer counts replica `name` as live: its last heartbeat
    /// is older than the lease, so no change waits for it.
    async fn wait_lease_passed(&self, name: &str) {
        let query = format!(
            "SELECT count(*) FROM replicas WHERE name = '{name}' \
             AND seen_at > now() - make_interval(secs => {})",
            LEASE.as_secs()
        );
        tests::harness::eventually(
            &format!("replica {name}'s lease passed"),
            Duration::from_secs(15),
            || async {
                match self.psql(&query).await.as_str() {
                    "0" => Ok(()),
                    live => Err(format!("{live} live")),
                }
            },
        )
        .await;
    }

    /// Waits until replica `name` honours every one of `valid` again (it has caught up).
    async fn wait_serving(&self, name: &str, valid: &[(Door, &str)]) {
        tests::harness::eventually(
            &format!("replica {name} serves valid tokens again"),
            Duration::from_secs(30),
            || async {
                for (door, token) in valid {
                    let status = self.status(name, *door, token).await;
                    if status != 200 {
                        return Err(format!("{door:?}: {status}"));
                    }
                }
                Ok(())
            },
        )
        .await;
    }

    /// Keeps presenting `tokens` at replica `name` from four clients until `stop`; every
    /// status seen. Each request is sent after this is called.
    fn hammer(
        &self,
        name: &str,
        tokens: &[(Door, &str)],
        stop: &Arc<AtomicBool>,
    ) -> tokio::task::JoinSet<Vec<(Door, u16)>> {
        let mut tasks = tokio::task::JoinSet::new();
        let targets: Vec<(Door, String, String, String)> = tokens
            .iter()
            .map(|(door, token)| {
                let (addr, host) = self.door(name, *door);
                (*door, addr, host, (*token).to_owned())
            })
            .collect();
        for _ in 0..4 {
            let (http, targets, stop) = (self.http.clone(), targets.clone(), stop.clone());
            tasks.spawn(async move {
                let mut seen = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    for (door, addr, host, token) in &targets {
                        seen.push((*door, whoami_at(&http, addr, host, token).await));
                    }
                }
                seen
            });
        }
        tasks
    }
}

/// `whoami` at `addr`'s `/mcp` with `Host: host`; a 200 that does not carry the tenant counts
/// as 500, a request that got no answer as 0.
async fn whoami_at(http: &reqwest::Client, addr: &str, host: &str, token: &str) -> u16 {
    let answer = http
        .post(format!("http://{addr}/mcp"))
        .bearer_auth(token)
        .header("host", host)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(WHOAMI)
        .send()
        .await;
    match answer {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            if status == 200 && !body.contains("\"tenant\"") {
                return 500;
            }
            status
        }
        Err(_) => 0,
    }
}

/// `count` `whoami` requests with `token`, each written whole to a connection of its own to
/// `addr` before this returns: sent, whether or not the replica is reading (a stopped
/// process's kernel completes the handshakes and queues them in its listen backlog).
async fn send_queued(
    (door, addr, host): (Door, &str, &str),
    token: &str,
    count: usize,
) -> Vec<(Door, tokio::net::TcpStream)> {
    use tokio::io::AsyncWriteExt;
    let request = format!(
        "POST /mcp HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\naccept: application/json, text/event-stream\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{WHOAMI}",
        WHOAMI.len()
    );
    let mut sent = Vec::with_capacity(count);
    for _ in 0..count {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        sent.push((door, stream));
    }
    sent
}

/// The status each of `sent` is answered with (0: none within 20 s).
async fn answers(sent: Vec<(Door, tokio::net::TcpStream)>) -> Vec<(Door, u16)> {
    use tokio::io::AsyncReadExt;
    let mut tasks = tokio::task::JoinSet::new();
    for (door, mut stream) in sent {
        tasks.spawn(async move {
            let mut head = Vec::new();
            let read = tokio::time::timeout(Duration::from_secs(20), async {
                let mut buf = [0u8; 64];
                while head.len() < 12 {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
            })
            .await;
            // "HTTP/1.1 200"
            let status = match (read, head.get(9..12)) {
                (Ok(()), Some(code)) => std::str::from_utf8(code)
                    .ok()
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0),
                _ => 0,
            };
            (door, status)
        });
    }
    let mut statuses = Vec::new();
    while let Some(status) = tasks.join_next().await {
        statuses.push(status.unwrap());
    }
    statuses
}

/// How many of each status at each door, e.g. `{(Static, 401): 12, (Static, 503): 88, …}`.
fn tally(seen: &[(Door, u16)]) -> std::collections::BTreeMap<(Door, u16), usize> {
    let mut counts = std::collections::BTreeMap::new();
    for answer in seen {
        *counts.entry(*answer).or_default() += 1;
    }
    counts
}

/// Stops `hammer` and gathers what it saw.
async fn gather(
    stop: &AtomicBool,
    mut hammer: tokio::task::JoinSet<Vec<(Door, u16)>>,
) -> Vec<(Door, u16)> {
    stop.store(true, Ordering::Relaxed);
    let mut seen = Vec::new();
    while let Some(statuses) = hammer.join_next().await {
        seen.extend(statuses.unwrap());
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_replica_honours_no_token_revoked_while_it_slept() {
    const ROUNDS: usize = 5;
    /// Requests per revoked token queued at the paused replica.
    const QUEUED: usize = 100;
    let cluster = PgCluster::start();
    let database = cluster.database("paused");
    let t = Trio::start([database.clone(), database.clone(), database]).await;
    // Valid all along: B must serve them again once it has caught up.
    let (static_ok, _) = t.static_token().await;
    let (oauth_ok, _) = t.oauth_token().await;
    let valid = [
        (Door::Static, static_ok.as_str()),
        (Door::Connector, oauth_ok.as_str()),
    ];

    let mut honoured = Vec::new();
    for round in 1..=ROUNDS {
        let (static_token, static_id) = t.static_token().await;
        let (oauth_token, grant) = t.oauth_token().await;
        let revoked = [
            (Door::Static, static_token.as_str()),
            (Door::Connector, oauth_token.as_str()),
        ];
        for (door, token) in revoked {
            assert_eq!(t.status("b", door, token).await, 200, "{door:?} on b");
        }

        // B sleeps through its lease; the revocations return without it.
        t.b.signal(rustix::process::Signal::STOP);
        t.wait_lease_passed("b").await;
        let revoking = Instant::now();
        t.a().revoke(&static_id).await.unwrap();
        t.a().revoke_grant(&grant).await.unwrap();
        let revoke_took = revoking.elapsed();
        for (door, token) in revoked {
            assert_eq!(t.status("c", door, token).await, 401, "{door:?} on c");
        }

        // Sent to the sleeping B after the revocations returned, then B wakes.
        let mut queued = Vec::new();
        for (door, token) in revoked {
            let (addr, host) = t.door("b", door);
            queued.extend(send_queued((door, &addr, &host), token, QUEUED).await);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let hammer = t.hammer("b", &revoked, &stop);
        let woke = Instant::now();
        t.b.signal(rustix::process::Signal::CONT);
        let queued = answers(queued).await;
        t.wait_serving("b", &valid).await;
        let serving_after = woke.elapsed();
        for (door, token) in revoked {
            assert_eq!(t.status("b", door, token).await, 401, "{door:?} on b");
        }
        let hammered = gather(&stop, hammer).await;

        eprintln!(
            "round {round}: revoked in {revoke_took:?}; queued at b: {:?}; sent while b \
             woke: {:?}; b served valid tokens {serving_after:?} after waking",
            tally(&queued),
            tally(&hammered)
        );
        for seen in [&queued, &hammered] {
            assert!(
                seen.iter().all(|(_, s)| [200, 401, 503].contains(s)),
                "round {round}: {:?}",
                tally(seen)
            );
        }
        honoured.push(
            queued
                .iter()
                .chain(&hammered)
                .filter(|(_, s)| *s == 200)
                .count(),
        );
    }
    assert!(
        honoured.iter().all(|n| *n == 0),
        "revoked tokens honoured by the woken replica, per round: {honoured:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_revocation_delays_it_at_most_its_lease_and_refuses_once_back() {
    let cluster = PgCluster::start();
    let database = cluster.database("killed");
    let mut t = Trio::start([database.clone(), database.clone(), database]).await;
    let (static_ok, _) = t.static_token().await;
    let (oauth_ok, _) = t.oauth_token().await;
    let valid = [
        (Door::Static, static_ok.as_str()),
        (Door::Connector, oauth_ok.as_str()),
    ];

    for door in [Door::Static, Door::Connector] {
        let admin = t.a().clone();
        // The admin client's futures are not `Send`: the revocation runs on this task.
        let (token, mut revoke): (String, Pin<Box<dyn Future<Output = anyhow::Result<()>>>>) =
            match door {
                Door::Static => {
                    let (token, id) = t.static_token().await;
                    (
                        token,
                        Box::pin(async move { admin.revoke(&id).await.map(drop) }),
                    )
                }
                Door::Connector => {
                    let (token, grant) = t.oauth_token().await;
                    let revoke = async move { admin.revoke_grant(&grant).await.map(drop) };
                    (token, Box::pin(revoke))
                }
            };
        let started = Instant::now();
        let outcome = match door {
            // As it comes: C killed the moment A's revocation is under way.
            Door::Static => {
                let (outcome, ()) = tokio::join!(revoke, async { t.c.kill() });
                outcome
            }
            // Surely mid-change: C frozen, the change stored and A waiting for C's
            // acknowledgement when C is killed.
            Door::Connector => {
                let before = t.newest_change().await;
                t.c.signal(rustix::process::Signal::STOP);
                let stored = tests::harness::eventually(
                    "the revocation stored",
                    Duration::from_secs(5),
                    || async {
                        let newest = t.newest_change().await;
                        if newest > before { Ok(()) } else { Err(newest) }
                    },
                );
                tokio::select! {
                    outcome = &mut revoke => panic!("returned without waiting for c: {outcome:?}"),
                    () = stored => {}
                }
                t.c.kill();
                revoke.await
            }
        };
        let took = started.elapsed();
        // A waits for C at most until C's lease ends (or, past the acknowledgement timeout,
        // fails naming it), never for ever.
        eprintln!("{door:?}: revoked with c killed mid-change in {took:?}: {outcome:?}");
        if let Err(e) = &outcome {
            assert!(e.to_string().contains("replica c"), "{e}");
        }
        assert!(took < ACK + Duration::from_secs(2), "{took:?}");
        for name in ["a", "b"] {
            assert_eq!(
                t.status(name, door, &token).await,
                401,
                "{door:?} on {name}"
            );
        }

        // C back: it refuses the token and serves the valid ones.
        t.c = spawn_peer(&t.shared, "c", &t.stores[2]).await;
        assert_eq!(t.status("c", door, &token).await, 401, "{door:?} on c");
        t.wait_serving("c", &valid).await;
    }
}

/// A network namespace of the test's own with two veth pairs to the host, each on a /24 of its
/// own; deleted when dropped (and by a watchdog if this process dies first).
struct Netns {
    name: String,
    /// (host interface, namespace interface, host address, namespace address, network)
    pairs: Vec<(String, String, String, String, String)>,
}

impl Netns {
    /// The namespace, or why this machine cannot make one (not root, no `ip netns`).
    fn create(pairs: usize) -> Result<Netns, String> {
        let tag = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
        let name = format!("studio-mcp-{tag}-{}", std::process::id());
        match Command::new("ip").args(["netns", "add", &name]).output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
            Err(e) => return Err(format!("ip: {e}")),
        }
        let mut netns = Netns {
            name,
            pairs: Vec::new(),
        };
        netns.watchdog();
        let (x, y) = netns.free_networks(pairs);
        netns.ns(&["link", "set", "lo", "up"]);
        for i in 0..pairs {
            let (host_if, ns_if) = (format!("sm{tag}h{i}"), format!("sm{tag}n{i}"));
            let net = format!("10.{x}.{}", y + i);
            let pair = (
                host_if.clone(),
                ns_if.clone(),
                format!("{net}.1"),
                format!("{net}.2"),
                format!("{net}.0/24"),
            );
            netns.pairs.push(pair);
            ip(&[
                "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
            ]);
            ip(&["link", "set", &ns_if, "netns", &netns.name]);
            ip(&["addr", "add", &format!("{net}.1/24"), "dev", &host_if]);
            ip(&["link", "set", &host_if, "up"]);
            netns.ns(&["addr", "add", &format!("{net}.2/24"), "dev", &ns_if]);
            netns.ns(&["link", "set", &ns_if, "up"]);
        }
        Ok(netns)
    }

    /// `10.x.y.0/24 …` free on this host for `count` consecutive `y`.
    fn free_networks(&self, count: usize) -> (u8, usize) {
        let taken = |what: &str| {
            let out = Command::new("ip")
                .args([what, "-o", "show"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let (addresses, routes) = (taken("addr"), taken("route"));
        for _ in 0..50 {
            let x = 64 + rand::random::<u8>() % 190;
            let y = usize::from(rand::random::<u8>() % 200);
            let free = (y..y + count).all(|y| {
                let prefix = format!("10.{x}.{y}.");
                !addresses.contains(&prefix) && !routes.contains(&prefix)
            });
            if free {
                return (x, y);
            }
        }
        panic!("no free 10.x.y.0/24 networks");
    }

    /// `ip args` inside the namespace.
    fn ns(&self, args: &[&str]) {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all);
    }

    /// Takes pair `i` down at its namespace end: the host's packets are dropped there, not
    /// refused (no RST); the host end stays configured.
    fn cut(&self, i: usize) {
        self.ns(&["link", "set", &self.pairs[i].1, "down"]);
    }

    fn heal(&self, i: usize) {
        self.ns(&["link", "set", &self.pairs[i].1, "up"]);
    }

    /// Deletes the namespace once this process has exited, however it exits.
    // Never waited for on purpose: it outlives this process to clean up after it.
    #[allow(clippy::zombie_processes)]
    fn watchdog(&self) {
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; ip netns del {name} 2>/dev/null",
            pid = std::process::id(),
            name = self.name,
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes its veth ends, and with them the host's ends.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        for (host_if, ..) in &self.pairs {
            let _ = Command::new("ip")
                .args(["link", "del", host_if])
                .stderr(Stdio::null())
                .output();
        }
    }
}

/// `ip args`, which must succeed.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_cut_off_from_the_database_honours_no_token_revoked_meanwhile() {
    let netns = match Netns::create(2) {
        Ok(netns) => netns,
        Err(why) => {
            eprintln!("SKIPPED: no network namespace can be made here ({why}); run as root");
            return;
        }
    };
    // Pair 0 is B's only way to PostgreSQL; A and C use pair 1.
    let (b_path, ac_path) = (&netns.pairs[0], &netns.pairs[1]);
    let cluster = PgCluster::start_in_netns(
        &netns.name,
        &[&ac_path.3, &b_path.3],
        &[&ac_path.4, &b_path.4],
    );
    let database = cluster.database("partition");
    let b_database = database.replacen(&format!("@{}:", ac_path.3), &format!("@{}:", b_path.3), 1);
    assert_ne!(database, b_database);
    let t = Trio::start([database.clone(), b_database, database]).await;
    let (static_ok, _) = t.static_token().await;
    let (oauth_ok, _) = t.oauth_token().await;
    let valid = [
        (Door::Static, static_ok.as_str()),
        (Door::Connector, oauth_ok.as_str()),
    ];
    let (static_token, static_id) = t.static_token().await;
    let (oauth_token, grant) = t.oauth_token().await;
    let revoked = [
        (Door::Static, static_token.as_str()),
        (Door::Connector, oauth_token.as_str()),
    ];
    for (door, token) in revoked.iter().chain(&valid) {
        assert_eq!(t.status("b", *door, token).await, 200, "{door:?} on b");
    }

    // B's link cut at the database's end; B still answers its own clients on loopback.
    let cut = Instant::now();
    netns.cut(0);
    let revoking = Instant::now();
    let revoked_static = t.a().revoke(&static_id).await.map(drop);
    let revoked_grant = t.a().revoke_grant(&grant).await.map(drop);
    let revoke_took = revoking.elapsed();
    eprintln!("revoked with b cut off in {revoke_took:?}: {revoked_static:?}, {revoked_grant:?}");
    for outcome in [revoked_static, revoked_grant] {
        if let Err(e) = outcome {
            assert!(e.to_string().contains("replica b"), "{e}");
        }
    }
    for name in ["a", "c"] {
        for (door, token) in revoked {
            assert_eq!(t.status(name, door, token).await, 401, "{door:?} on {name}");
        }
    }

    // Sent to B after the revocations returned: during the cut, and on through the heal.
    let stop = Arc::new(AtomicBool::new(false));
    let hammer = t.hammer("b", &revoked, &stop);
    let mut during = Vec::new();
    for (door, token) in revoked {
        during.push(t.status("b", door, token).await);
    }
    assert!(
        during.iter().all(|s| *s == 503),
        "b, cut off past its lease, must answer and refuse: {during:?}"
    );
    let healed = Instant::now();
    netns.heal(0);
    t.wait_serving("b", &valid).await;
    let serving_after = healed.elapsed();
    for (door, token) in revoked {
        assert_eq!(t.status("b", door, token).await, 401, "{door:?} on b");
    }
    let hammered = gather(&stop, hammer).await;
    eprintln!(
        "cut for {:?}; sent to b after the revocations: {:?}; b served valid tokens {serving_after:?} after the heal",
        healed - cut,
        tally(&hammered)
    );
    assert!(
        hammered.iter().all(|(_, s)| [401, 503].contains(s)),
        "{:?}",
        tally(&hammered)
    );

    // Tokens issued after the heal work on B at once.
    let (fresh_static, _) = t.static_token().await;
    let (fresh_oauth, _) = t.oauth_token().await;
    assert_eq!(t.status("b", Door::Static, &fresh_static).await, 200);
    assert_eq!(t.status("b", Door::Connector, &fresh_oauth).await, 200);
}

/// A replica's heartbeat that waits between its snapshot and its commit (here: its `replicas`
/// row held by another transaction; in life a slow WAL flush) while a revocation commits and
/// returns on A: had the heartbeat read the log's newest sequence in its own snapshot, it would
/// renew the lease past a change it has not applied, and B would honour the revoked token.
/// The newest sequence is read after the heartbeat commits (`pg.rs`, `heartbeat`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_racing_a_revocation_does_not_renew_the_lease_past_it() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let cluster = PgCluster::start();
    let database = cluster.database("race");
    let t = Trio::start([database.clone(), database.clone(), database.clone()]).await;
    let (static_ok, _) = t.static_token().await;
    let valid = [(Door::Static, static_ok.as_str())];
    let mut per_round = Vec::new();
    for round in 1..=5 {
        let (token, id) = t.static_token().await;
        assert_eq!(t.status("b", Door::Static, &token).await, 200);
        t.b.signal(rustix::process::Signal::STOP);
        t.wait_lease_passed("b").await;
        let mut psql = tokio::process::Command::new("psql")
            .args([&database, "-tA", "-v", "ON_ERROR_STOP=1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = psql.stdin.take().unwrap();
        stdin
            .write_all(b"BEGIN;\nSELECT 'locked' FROM replicas WHERE name = 'b' FOR UPDATE;\n")
            .await
            .unwrap();
        let mut lines = tokio::io::BufReader::new(psql.stdout.take().unwrap()).lines();
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.trim() == "locked" {
                break;
            }
        }
        let woke = Instant::now();
        t.b.signal(rustix::process::Signal::CONT);
        tests::harness::eventually("b's heartbeat waits", Duration::from_secs(5), || async {
            let n = t
                .psql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
                .await;
            if n == "0" { Err(n) } else { Ok(()) }
        })
        .await;
        t.a().revoke(&id).await.unwrap();
        let returned = woke.elapsed();
        let stop = Arc::new(AtomicBool::new(false));
        let hammer = t.hammer("b", &[(Door::Static, token.as_str())], &stop);
        tokio::time::sleep(Duration::from_millis(50)).await;
        stdin.write_all(b"COMMIT;\n").await.unwrap();
        drop(stdin);
        psql.wait().await.unwrap();
        t.wait_serving("b", &valid).await;
        let seen = gather(&stop, hammer).await;
        eprintln!(
            "race round {round}: revoke returned {returned:?} after b woke; sent to b after it returned: {:?}",
            tally(&seen)
        );
        per_round.push(seen.iter().filter(|(_, s)| *s == 200).count());
    }
    eprintln!("honoured per round: {per_round:?}");
    assert!(per_round.iter().all(|n| *n == 0), "{per_round:?}");
}

// ---- Issue 23: the upstream read cache on replicas ----

/// `tool` called with `args` at `server`'s static door, presenting `host` (every replica shares
/// one public URL), as one stateless JSON-RPC request; the structured result.
async fn tool_at(
    server: &TestServer,
    host: &str,
    token: &str,
    tool: &str,
    args: serde_json::Value,
) -> serde_json::Value {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": tool, "arguments": args},
    });
    let (status, text) = server
        .post_raw_with(Some(token), &[("host", host)], &body.to_string())
        .await;
    assert_eq!(status, 200, "{text}");
    let json = text
        .lines()
        .find_map(|line| {
            line.strip_prefix("data:")
                .map(str::trim)
                .filter(|l| l.starts_with('{'))
        })
        .unwrap_or(text.trim());
    let answer: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_ne!(answer["result"]["isError"], true, "{answer}");
    answer["result"]["structuredContent"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draft_written_through_one_replica_drops_what_the_other_kept() {
    let sandbox = tests::sandbox::Sandbox::start(tests::sandbox::Fixture::new(&["acme"]))
        .await
        .unwrap();
    let database = tests::harness::database_for(
        &tests::postgres::cluster_url(),
        &format!("cache-replicas-{}", rand::random::<u64>()),
    );
    let keys = tempfile::tempdir().unwrap();
    let shared = |config: &mut common::config::Config| {
        config.store_url = Some(database.clone());
        config.signing_key_file = Some(keys.path().join("signing.key"));
        config.master_key_file = Some(keys.path().join("master.key"));
        config.admin_token_file = Some(keys.path().join("admin-token"));
    };
    let a_dir = tempfile::tempdir().unwrap();
    let mut config = tests::harness::config_for(a_dir.path(), &sandbox.base_url());
    shared(&mut config);
    let a = TestServer::start_with(config).await;
    let b_dir = tempfile::tempdir().unwrap();
    let mut config = tests::harness::config_for(b_dir.path(), &sandbox.base_url());
    shared(&mut config);
    config.public_url = Some(a.public_url.clone());
    let b = TestServer::start_with(config).await;
    let host = authority(&a.public_url);

    let owner = sandbox.fixture().owner("acme").unwrap().clone();
    let writable = owner.collection_ids[0].clone();
    let acme = a
        .provision_with(
            &owner,
            serde_json::json!({"writable_collections": [writable]}),
        )
        .await;
    let list = serde_json::json!({"collection_id": writable});
    let before = tool_at(&b, &host, &acme.token, "webflow_list_items", list.clone()).await;
    assert!(before.get("cached_for_secs").is_none(), "{before}");
    let kept = tool_at(&b, &host, &acme.token, "webflow_list_items", list.clone()).await;
    assert!(
        crate::upstream_cache::age(&kept) <= 2,
        "B keeps the listing: {kept}"
    );

    let draft = serde_json::json!({
        "collection_id": writable,
        "field_data": {"name": "Through A", "slug": "through-a"},
    });
    let created = tool_at(&a, &host, &acme.token, "webflow_create_item", draft).await;
    let id = created["id"].as_str().unwrap();

    // A's write returned once every live replica had applied its notice: B reads upstream.
    let after = tool_at(&b, &host, &acme.token, "webflow_list_items", list).await;
    assert!(after.get("cached_for_secs").is_none(), "{after}");
    assert!(after.to_string().contains(id), "{after}");
}
