//! Three shared-server replicas on one PostgreSQL, as real processes behind one public URL:
//! a change made through any replica (token issued or revoked, tenant added, changed or removed)
//! holds on every replica on its very next request; killing a replica under load fails only its
//! own calls, and a revocation meanwhile names it until its lease ends; restarting the database
//! under load loses no audit record, repeats nothing, and every replica serves again by itself.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::runtime::admin::{IssueRequest, NewTenant};
use common::runtime::admin_client::AdminClient;
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
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, body) = self.health(replica).await;
            if status == 200 && body.starts_with("ok") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} not healthy: {status} {body}\n{}",
                replica.name,
                std::fs::read_to_string(&replica.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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
    let report = common::runtime::drill::revoke(a, &endpoints, "acme", Some(PUBLIC_HOST))
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
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = d.health(d.replica("b")).await;
        if status == 200 && body.starts_with("degraded") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "b never said degraded: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let audited = d.audited_calls();
        // Each replica's health checks and the setup made no whoami calls: equality is exact.
        if audited == total {
            break;
        }
        assert!(
            audited < total,
            "{audited} records for {total} calls: repeated"
        );
        assert!(
            Instant::now() < deadline,
            "{audited} of {total} calls audited: lost"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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
