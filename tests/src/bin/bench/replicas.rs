//! Revoke-to-refusal: three replicas on one PostgreSQL database, a token revoked through one and
//! timed until the others refuse it.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use common::domain::WebflowId;
use common::runtime::admin::client::AdminClient;
use common::runtime::admin::{IssueRequest, NewTenant};
use common::secrets::write_private_file;
use common::tenant::TenantSpec;

use crate::args::RunArgs;
use crate::http::{Conn, Target};
use crate::postgres::Cluster;
use crate::results::{Revocations, Spread};
use crate::server::{Probe, Server, server_command};
use crate::system::free_port;

/// The replicas' public URL's host: the tokens' audience, and the `Host` every request names.
const REPLICA_HOST: &str = "studio-mcp.bench";
/// The tenant the revocations are made for.
const REVOKE_TENANT: &str = "bench-revoke";

struct Replica {
    name: &'static str,
    server: Server,
    target: Target,
    admin: AdminClient,
}

/// Three replicas (a, b, c) on one fresh database with the same key files and public URL; a
/// token issued through A, proven on B and C, revoked through A, and the very next request to
/// B and to C (sent the moment the revoke returns) timed until it is refused; `revokes` times.
pub async fn revocations(
    args: &RunArgs,
    server_bin: &Path,
    pin: bool,
    cluster: &Cluster,
) -> anyhow::Result<Revocations> {
    common::upstream::install_crypto_provider();
    let keys = tempfile::Builder::new()
        .prefix("studio-mcp-bench-replicas-")
        .tempdir()?;
    let hex32 = || hex::encode(rand::random::<[u8; 32]>());
    write_private_file(&keys.path().join("signing.key"), hex32().as_bytes())?;
    write_private_file(&keys.path().join("master.key"), hex32().as_bytes())?;
    let admin_token = format!("adm_{}", hex32());
    write_private_file(&keys.path().join("admin-token"), admin_token.as_bytes())?;
    let name = format!("bench_replicas_{}", std::process::id());
    let database = cluster.create_database(&name)?;

    let mut replicas = Vec::new();
    let outcome = async {
        for name in ["a", "b", "c"] {
            let (port, admin_port) = (free_port()?, free_port()?);
            let data = keys.path().join(name);
            std::fs::create_dir_all(&data)?;
            let mut command = server_command(server_bin, pin, args);
            command
                .arg("serve")
                .env("STUDIO_MCP_STORE", &database)
                .env("STUDIO_MCP_REPLICA_NAME", name)
                .env("STUDIO_MCP_DATA_DIR", &data)
                .env(
                    "STUDIO_MCP_SIGNING_KEY_FILE",
                    keys.path().join("signing.key"),
                )
                .env("STUDIO_MCP_MASTER_KEY_FILE", keys.path().join("master.key"))
                .env(
                    "STUDIO_MCP_ADMIN_TOKEN_FILE",
                    keys.path().join("admin-token"),
                )
                .env("STUDIO_MCP_LISTEN", format!("127.0.0.1:{port}"))
                .env("STUDIO_MCP_ADMIN_LISTEN", format!("127.0.0.1:{admin_port}"))
                .env("STUDIO_MCP_PUBLIC_URL", format!("http://{REPLICA_HOST}"));
            let target = Target {
                addr: ([127, 0, 0, 1], port).into(),
                host: REPLICA_HOST.to_owned(),
                path: "/mcp".to_owned(),
            };
            let log = keys.path().join(format!("{name}.log"));
            let probe = Probe::Health(target.addr, REPLICA_HOST.to_owned());
            let (server, startup) = Server::start(&mut command, &log, &probe).await?;
            eprintln!(
                "bench: replica {name} on PostgreSQL up in {:.1} ms",
                startup.as_secs_f64() * 1e3
            );
            let admin = AdminClient::new(
                format!("http://127.0.0.1:{admin_port}"),
                admin_token.clone(),
            )?;
            replicas.push(Replica {
                name,
                server,
                target,
                admin,
            });
        }
        let [a, b, c] = replicas.as_slice() else {
            bail!("three replicas expected");
        };
        a.admin
            .add_tenant(&NewTenant {
                id: REVOKE_TENANT.into(),
                spec: TenantSpec {
                    name: "Bench revocations".into(),
                    webflow_sites: vec![WebflowId::parse("site", &format!("{:024x}", 1))?],
                    ..Default::default()
                },
            })
            .await?;
        revoke_rounds(a, [b, c], args.replicas_revokes).await
    }
    .await;
    for replica in replicas {
        replica.server.stop().await;
    }
    cluster.drop_database(&name);
    outcome
}

async fn revoke_rounds(
    a: &Replica,
    others: [&Replica; 2],
    revokes: usize,
) -> anyhow::Result<Revocations> {
    let [b, c] = others;
    let mut conn_b = Conn::connect(b.target.addr).await?;
    let mut conn_c = Conn::connect(c.target.addr).await?;
    let mut admin_returns = Vec::with_capacity(revokes);
    let mut refused = [Vec::with_capacity(revokes), Vec::with_capacity(revokes)];
    let mut not_refused_first = 0;
    eprintln!(
        "bench: {revokes} revocations through replica {}, refusals timed on {} and {}",
        a.name, b.name, c.name
    );
    for _ in 0..revokes {
        let issued = a
            .admin
            .issue_token(
                REVOKE_TENANT,
                &IssueRequest {
                    label: Some("bench revoke".into()),
                    ttl_days: Some(1),
                },
            )
            .await
            .context("issuing a token through replica a")?;
        // The token works on B and C first (which also leaves each connection warm).
        accepted(b, &mut conn_b, &issued.token).await?;
        accepted(c, &mut conn_c, &issued.token).await?;
        let sent = Instant::now();
        a.admin
            .revoke(&issued.record.id)
            .await
            .context("revoking through replica a")?;
        admin_returns.push(sent.elapsed());
        // The next request to B and to C, both at once, the moment the revoke returned.
        let (on_b, on_c) = tokio::join!(
            first_refusal(b, &mut conn_b, &issued.token, sent),
            first_refusal(c, &mut conn_c, &issued.token, sent)
        );
        for (samples, (elapsed, attempts)) in refused.iter_mut().zip([on_b?, on_c?]) {
            samples.push(elapsed);
            if attempts > 1 {
                not_refused_first += 1;
            }
        }
    }
    let endpoints: Vec<String> = [a, b, c]
        .iter()
        .map(|r| format!("http://{}{}", r.target.addr, r.target.path))
        .collect();
    let endpoints: Vec<&str> = endpoints.iter().map(String::as_str).collect();
    let drill = common::runtime::ops::drill::revoke(
        &a.admin,
        &endpoints,
        REVOKE_TENANT,
        Some(REPLICA_HOST),
    )
    .await
    .context("the revocation drill across the replicas")?;
    let [on_b, on_c] = refused;
    Ok(Revocations {
        revokes,
        admin_returns: Spread::of(&admin_returns),
        refused: vec![
            (b.name.to_owned(), Spread::of(&on_b)),
            (c.name.to_owned(), Spread::of(&on_c)),
        ],
        not_refused_first,
        first_requests: revokes * 2,
        drill_ms: drill.revoke_to_refusal.as_secs_f64() * 1e3,
        drill_attempts: drill.attempts_until_refused,
    })
}

/// One `whoami` with `token` on `replica`, which must succeed.
async fn accepted(replica: &Replica, conn: &mut Conn, token: &str) -> anyhow::Result<()> {
    let mut request = Vec::new();
    replica.target.request(&mut request, token);
    let response = conn.call(&request).await?;
    if response.close {
        *conn = Conn::connect(replica.target.addr).await?;
    }
    if response.status != 200 || response.error {
        bail!(
            "a fresh token was refused by replica {} (HTTP {})",
            replica.name,
            response.status
        );
    }
    Ok(())
}

/// Sends `token` to `replica` until it is refused (401); the time since `sent` and the
/// requests it took (1 is what must happen).
async fn first_refusal(
    replica: &Replica,
    conn: &mut Conn,
    token: &str,
    sent: Instant,
) -> anyhow::Result<(Duration, u32)> {
    let mut request = Vec::new();
    replica.target.request(&mut request, token);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let response = conn.call(&request).await?;
        let elapsed = sent.elapsed();
        if response.close {
            *conn = Conn::connect(replica.target.addr).await?;
        }
        if response.status == 401 {
            return Ok((elapsed, attempts));
        }
        if attempts >= 500 {
            bail!(
                "replica {} still accepted a revoked token after {attempts} requests",
                replica.name
            );
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
