//! The restore drill: a canary token issued on the running server, a backup of it taken through
//! the admin API, restored into a scratch data dir, a second server started on that dir on
//! loopback, and the canary proven there with a tool call; each step timed. Nothing touches the
//! running server's data: the scratch server has its own dir, ports and admin token, and reads
//! the key files only. Run it beside the revocation drill, so "we can restore" stays a fact.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::config::Config;
use crate::runtime::admin::IssueRequest;
use crate::runtime::admin::client::AdminClient;
use crate::store::backup;

#[derive(Debug)]
pub struct RestoreReport {
    pub tenant: String,
    /// The backup's size and record count.
    pub bytes: usize,
    pub records: u64,
    /// Each step and how long it took.
    pub steps: Vec<(&'static str, Duration)>,
}

/// Runs the drill against the server `admin` reaches (`config` is its configuration: the key
/// files are read from there), with a canary of `tenant`.
pub async fn run(
    admin: &AdminClient,
    config: &Config,
    tenant: &str,
) -> anyhow::Result<RestoreReport> {
    let info = admin.server().await?;
    let public = info
        .mcp_url
        .strip_suffix(crate::config::MCP_PATH)
        .unwrap_or(&info.mcp_url)
        .to_owned();
    let started = Instant::now();
    let canary = admin
        .issue_token(
            tenant,
            &IssueRequest {
                label: Some("restore-drill-canary".into()),
                ttl_days: Some(1),
            },
        )
        .await
        .context("issuing the canary token")?;
    let mut steps = vec![("canary issued", started.elapsed())];
    let scratch = scratch_dir()?;
    let result = drill(
        admin,
        config,
        tenant,
        &public,
        &canary.token,
        &scratch,
        &mut steps,
    )
    .await;
    // Whatever happened, neither the canary nor the scratch copy outlives the drill.
    let _ = admin.revoke(&canary.record.id).await;
    let _ = std::fs::remove_dir_all(&scratch);
    let (bytes, records) = result?;
    Ok(RestoreReport {
        tenant: tenant.to_owned(),
        bytes,
        records,
        steps,
    })
}

async fn drill(
    admin: &AdminClient,
    config: &Config,
    tenant: &str,
    public: &str,
    canary: &str,
    scratch: &Path,
    steps: &mut Vec<(&'static str, Duration)>,
) -> anyhow::Result<(usize, u64)> {
    let step = Instant::now();
    let file = admin.backup().await.context("taking the backup")?;
    steps.push(("backup taken", step.elapsed()));

    let step = Instant::now();
    let (_, snapshot) = backup::read(&file).map_err(|e| anyhow::anyhow!("the backup: {e}"))?;
    let records = snapshot.counts().values().sum();
    crate::store::restore_dir(&scratch.join("store"), &snapshot)
        .map_err(|e| anyhow::anyhow!("restoring into {}: {e}", scratch.display()))?;
    steps.push(("restored into a scratch data dir", step.elapsed()));

    let step = Instant::now();
    let port = free_port()?;
    let mut server = ScratchServer(spawn(config, scratch, public, port)?);
    let health = format!("http://127.0.0.1:{port}/healthz");
    let http = crate::upstream::http_client().context("cannot build the HTTP client")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = server.0.try_wait()? {
            bail!(
                "the scratch server exited ({status}): {}",
                tail(&scratch.join("server.log"))
            );
        }
        if http
            .get(&health)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "the scratch server was not ready within 30 s: {}",
                tail(&scratch.join("server.log"))
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    steps.push(("scratch server started", step.elapsed()));

    let step = Instant::now();
    let host = super::drill::host_of(public);
    let url = format!("http://127.0.0.1:{port}{}", crate::config::MCP_PATH);
    let (status, body) = super::drill::whoami(&http, &url, host.as_deref(), canary).await?;
    let seen = body
        .pointer("/result/structuredContent/tenant")
        .and_then(serde_json::Value::as_str);
    if status != 200 || seen != Some(tenant) {
        bail!(
            "the canary did not work on the restored copy (HTTP {status}, tenant {seen:?}): the \
             backup does not restore to a working server"
        );
    }
    steps.push(("canary proven on the copy (whoami)", step.elapsed()));
    drop(server);
    Ok((file.len(), records))
}

/// The scratch server, stopped when dropped.
struct ScratchServer(Child);

impl Drop for ScratchServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// This binary's `serve` on `scratch`, on loopback at `port`, as the same public URL (tokens are
/// bound to it), reading the running server's key files; nothing else of its settings (no
/// connector door, no PostgreSQL, its own admin and metrics tokens).
fn spawn(config: &Config, scratch: &Path, public: &str, port: u16) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("cannot find this binary to start the copy")?;
    let admin_port = free_port()?;
    let log = std::fs::File::create(scratch.join("server.log"))?;
    let mut command = Command::new(exe);
    for (name, _) in std::env::vars_os() {
        if name
            .to_str()
            .is_some_and(|n| n.starts_with("STUDIO_MCP_") || n == "RUST_LOG")
        {
            command.env_remove(name);
        }
    }
    command
        .arg("serve")
        .env("STUDIO_MCP_DATA_DIR", scratch)
        .env("STUDIO_MCP_LISTEN", format!("127.0.0.1:{port}"))
        .env("STUDIO_MCP_ADMIN_LISTEN", format!("127.0.0.1:{admin_port}"))
        .env("STUDIO_MCP_PUBLIC_URL", public)
        .env("STUDIO_MCP_MASTER_KEY_FILE", config.master_key_path())
        .env("STUDIO_MCP_SIGNING_KEY_FILE", config.signing_key_path())
        .env("RUST_LOG", "warn");
    if let Some(tenant) = &config.tenant {
        command.env("STUDIO_MCP_TENANT", tenant);
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("cannot start the scratch server")
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A private scratch dir under the system's temporary dir.
fn scratch_dir() -> anyhow::Result<PathBuf> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let dir = std::env::temp_dir().join(format!(
        "studio-mcp-restore-drill.{}.{nanos}",
        std::process::id()
    ));
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(&dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// The last lines of the scratch server's log, for an error.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

pub fn print(report: &RestoreReport) {
    let total: Duration = report.steps.iter().map(|(_, d)| *d).sum();
    crate::out!(
        "restore drill passed for {}: a backup of {} records ({} bytes) restored into a scratch \
         data dir and served the canary, in {:.1} s",
        report.tenant,
        report.records,
        report.bytes,
        total.as_secs_f64()
    );
    for (step, took) in &report.steps {
        crate::out!("  {step}: {:.1} ms", took.as_secs_f64() * 1000.0);
    }
}
