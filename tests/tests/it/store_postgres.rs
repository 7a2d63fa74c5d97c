//! What only the PostgreSQL store has: versioned migrations that refuse a schema newer than the
//! binary, replicas refused when their keys differ from the others', `store migrate --to`
//! copying a sled data dir all or nothing with verified counts, and TLS to the database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

use common::store::{PgOptions, StoreError};
use serde_json::json;
use tests::harness::{
    KillOnDrop, TestServer, call, config_for, database_for, error_text, eventually,
    eventually_blocking, ok_json,
};
use tests::postgres::cluster_url;
use tests::sandbox::{Fixture, Sandbox};

fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-tAc", sql])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn fresh_database(name: &str) -> String {
    let key = format!("{name}-{}", rand::random::<u64>());
    database_for(&cluster_url(), &key)
}

#[test]
fn migrations_apply_once_and_a_newer_schema_is_refused() {
    let url = fresh_database("schema");
    let pg = common::store::Pg::connect(&url, PgOptions::default()).unwrap();
    drop(pg);
    // Applied once: a second start finds version 1 and changes nothing.
    let pg = common::store::Pg::connect(&url, PgOptions::default()).unwrap();
    drop(pg);
    assert_eq!(
        psql(
            &url,
            "SELECT string_agg(version::text, ',') FROM studio_mcp_schema"
        ),
        "1"
    );
    psql(&url, "INSERT INTO studio_mcp_schema (version) VALUES (99)");
    let Err(err) = common::store::Pg::connect(&url, PgOptions::default()) else {
        panic!("a schema newer than the binary must be refused");
    };
    let message = err.to_string();
    assert!(matches!(err, StoreError::Schema(_)), "{message}");
    assert!(
        message.contains("version 99") && message.contains("newer"),
        "{message}"
    );
}

#[test]
fn an_unreachable_database_is_a_clear_error_not_a_hang() {
    let started = std::time::Instant::now();
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/nothing",
        tests::harness::free_port()
    );
    let Err(err) = common::store::Pg::connect(&url, PgOptions::default()) else {
        panic!("nothing listens there");
    };
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(err.to_string().contains("127.0.0.1"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    // A URL that is not one is refused without echoing it (it may carry a password).
    let Err(err) = common::store::Pg::connect("postgres://u:hunter2@[bad", PgOptions::default())
    else {
        panic!("not a URL");
    };
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[tokio::test]
async fn a_replica_with_other_keys_is_refused() {
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let url = fresh_database("keys");
    let first_dir = tempfile::tempdir().unwrap();
    let mut first = config_for(first_dir.path(), &sandbox.base_url());
    first.store_url = Some(url.clone());
    let _first = TestServer::start_with(first).await;

    // Its own data dir, so its own newly generated keys: refused, naming the key.
    let other_dir = tempfile::tempdir().unwrap();
    let mut other = config_for(other_dir.path(), &sandbox.base_url());
    other.store_url = Some(url.clone());
    let Err(err) = TestServer::try_start_spec(other, &shared_server::SHARED).await else {
        panic!("a replica with other keys must not start");
    };
    let message = format!("{err:#}");
    assert!(message.contains("signing key"), "{message}");
    assert!(message.contains("same key files"), "{message}");

    // The same key files: a replica.
    let same_dir = tempfile::tempdir().unwrap();
    for file in ["signing.key", "master.key", "admin-token"] {
        std::fs::copy(first_dir.path().join(file), same_dir.path().join(file)).unwrap();
    }
    let mut same = config_for(same_dir.path(), &sandbox.base_url());
    same.store_url = Some(url);
    TestServer::try_start_spec(same, &shared_server::SHARED)
        .await
        .expect("a replica with the same keys starts");
}

#[tokio::test]
async fn store_migrate_copies_a_sled_data_dir_all_or_nothing() {
    let sandbox = Sandbox::start(Fixture::new(&["acme", "globex"]))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Tokens are bound to the public URL: the PostgreSQL server comes back on the same one.
    let port = tests::harness::free_port();
    let same_address = |config: &mut common::config::Config| {
        config.listen = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        config.public_url = Some(format!("http://127.0.0.1:{port}"));
    };
    let mut config = config_for(dir.path(), &sandbox.base_url());
    config.store_url = None; // the sled store being migrated
    same_address(&mut config);
    let server = TestServer::start_with(config).await;
    let acme = server.provision_owner(&sandbox, "acme").await;
    let globex = server.provision_owner(&sandbox, "globex").await;
    server.admin.revoke(&globex.token_id).await.unwrap();
    let client = server.client(&acme.token).await;
    let sites = ok_json(&call(&client, "webflow_list_sites", json!({})).await);
    drop(client);
    server
        .admin
        .invite_person(
            "acme",
            &common::runtime::admin::InviteRequest {
                name: "Alex".into(),
                email: None,
                role: Some("approver".into()),
                expires_days: None,
            },
        )
        .await
        .unwrap();
    let audited_before = server.admin.audit(&Default::default()).await.unwrap().len();
    server.stop().await;

    let url = fresh_database("migrate");
    let binary = tests::harness::shared_server_binary().await.unwrap();
    let migrate = |to: &str| {
        tests::harness::server_command(&binary)
            .args(["store", "migrate", "--to", to])
            .env("STUDIO_MCP_DATA_DIR", dir.path())
            .output()
            .unwrap()
    };
    let out = migrate(&url);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("tenants\t2"), "{stdout}");
    assert!(stdout.contains("tokens\t2"), "{stdout}");
    assert!(stdout.contains("people\t1"), "{stdout}");
    assert!(stdout.contains("verified the counts"), "{stdout}");
    assert_eq!(
        psql(&url, "SELECT count(*) FROM kv WHERE tree = 'tenants'"),
        "2"
    );
    assert_eq!(
        psql(&url, "SELECT count(*) FROM audit")
            .parse::<usize>()
            .unwrap(),
        audited_before
    );

    // Into a database that holds records: refused, and nothing is added.
    let held = psql(&url, "SELECT count(*) FROM kv");
    let again = migrate(&url);
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("already holds"), "{stderr}");
    assert!(!stderr.contains(&url), "the URL is not echoed: {stderr}");
    assert_eq!(psql(&url, "SELECT count(*) FROM kv"), held);

    // The same data dir (its key files) on PostgreSQL: everything is there and works.
    let mut config = config_for(dir.path(), &sandbox.base_url());
    config.store_url = Some(url);
    same_address(&mut config);
    let server = TestServer::start_with(config).await;
    let client = server.client(&acme.token).await;
    assert_eq!(
        ok_json(&call(&client, "webflow_list_sites", json!({})).await),
        sites,
        "tenant, token and sealed secret came across"
    );
    let refused = server.try_client(&globex.token, None).await;
    assert!(refused.is_err(), "the revoked token stays revoked");
    let people = server.admin.people(Some("acme")).await.unwrap();
    assert_eq!(people.len(), 1);
    let audit = server.admin.audit(&Default::default()).await.unwrap();
    assert!(
        audit.len() > audited_before,
        "old records plus the new calls"
    );
}

/// `shared-server serve` on the database at `url`, with `env`; its exit status and stderr if
/// it exits, or `None` and its connections once it serves with its pool and change feed
/// connected (then it is killed). Fails the test if it does neither within 15 s.
fn serve_briefly(url: &str, env: &[(&str, &str)]) -> (Option<bool>, String) {
    let binary = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(tests::harness::shared_server_binary())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let mut child = KillOnDrop(
        tests::harness::server_command(&binary)
            .env_remove("SSL_CERT_FILE")
            .arg("serve")
            .env("STUDIO_MCP_STORE", url)
            .env("STUDIO_MCP_DATA_DIR", dir.path().join("data"))
            .env("STUDIO_MCP_LISTEN", "127.0.0.1:0")
            .env("STUDIO_MCP_ADMIN_LISTEN", "127.0.0.1:0")
            .envs(env.iter().copied())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    // Killed (if it still runs) when `child` drops, however the wait ends.
    eventually_blocking(
        "the server exited, or served with its pool and change feed connected",
        Duration::from_secs(15),
        || {
            if let Some(status) = child.0.try_wait().unwrap() {
                return Ok((
                    Some(status.success()),
                    std::fs::read_to_string(&log).unwrap(),
                ));
            }
            let ssl = psql(
                url.split('?').next().unwrap(),
                "SELECT coalesce(bool_and(s.ssl), false) || ' ' || count(*) FROM pg_stat_ssl s \
                 JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'studio-mcp'",
            );
            let connected = ssl
                .split_once(' ')
                .is_some_and(|(_, n)| n.parse::<u32>().unwrap_or(0) >= 2);
            if connected { Ok((None, ssl)) } else { Err(ssl) }
        },
    )
}

#[test]
fn tls_to_the_database_when_the_url_asks_for_it_and_the_certificate_is_checked() {
    let ca = tests::postgres::TestCa::new();
    let cluster = tests::postgres::PgCluster::start_tls(&ca);
    let url = cluster.database("tls");
    let ca_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca_file.path(), &ca.ca_pem).unwrap();
    let ca_path = ca_file.path().to_str().unwrap();

    // sslmode=require with the CA trusted: serves, and every connection is encrypted.
    let (running, ssl) = serve_briefly(
        &format!("{url}?sslmode=require"),
        &[("SSL_CERT_FILE", ca_path)],
    );
    assert_eq!(running, None, "it should be serving: {ssl}");
    let (all_ssl, count) = ssl.split_once(' ').unwrap();
    assert_eq!(all_ssl, "true", "connections: {ssl}");
    assert!(
        count.parse::<u32>().unwrap() >= 2,
        "pool and change feed: {ssl}"
    );

    // The same without the CA: the certificate is checked, so it refuses to start, saying why.
    let (exited, stderr) = serve_briefly(&format!("{url}?sslmode=require"), &[]);
    assert_eq!(
        exited,
        Some(false),
        "must not start with an untrusted certificate"
    );
    assert!(stderr.to_lowercase().contains("certificate"), "{stderr}");

    // TLS asked of a server that offers none: refused, never silently in clear.
    let plain = tests::postgres::PgCluster::start();
    let plain_url = plain.database("plain");
    let (exited, stderr) = serve_briefly(&format!("{plain_url}?sslmode=require"), &[]);
    assert_eq!(exited, Some(false));
    assert!(stderr.contains("TLS") || stderr.contains("tls"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_down_a_tool_that_needs_it_says_so_and_one_that_does_not_works() {
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let cluster = tests::postgres::PgCluster::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_for(dir.path(), &sandbox.base_url());
    config.store_url = Some(cluster.database("down"));
    let server = TestServer::start_with(config).await;
    let acme = server.provision_owner(&sandbox, "acme").await;
    let client = server.client(&acme.token).await;
    ok_json(&call(&client, "webflow_list_sites", json!({})).await);

    cluster.stop();
    // Token and tenant are in memory: whoami answers.
    let who = ok_json(&call(&client, "whoami", json!({})).await);
    assert_eq!(who["tenant"], "acme");
    // The Webflow credential is in the database: a readable error, not an internal one.
    let result = call(&client, "webflow_list_sites", json!({})).await;
    let text = tests::harness::error_text(&result);
    assert!(text.contains("database is unavailable"), "{text}");
    assert!(text.contains("retry"), "{text}");
    // An admin write: 503 with the reason.
    let err = server
        .admin
        .set_secret("acme", "github", "ghp_new".into())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("503") && err.contains("unavailable"), "{err}");

    cluster.begin();
    eventually(
        "recovered: webflow_list_sites answers",
        Duration::from_secs(15),
        || async {
            let result = call(&client, "webflow_list_sites", json!({})).await;
            if result.is_error == Some(true) {
                Err(error_text(&result))
            } else {
                Ok(())
            }
        },
    )
    .await;
}
