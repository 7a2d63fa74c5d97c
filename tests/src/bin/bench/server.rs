//! Server processes: `shared-server` and the floor started (pinned to core 0 when asked), timed
//! until they answer, and stopped; the first call checked in full.

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::args::RunArgs;
use crate::http::{Conn, Target};

pub struct Server {
    child: Child,
    pub addr: SocketAddr,
}

/// How a started server shows it is ready.
pub enum Probe {
    /// `GET /healthz` on this address, naming this `Host`, answers 200 `ok…`.
    Health(SocketAddr, String),
    /// It prints its address on stdout (the floor), then `/healthz` answers 200.
    Printed,
}

impl Server {
    /// Spawns `command` and waits until it answers as `probe` says. Returns the time from
    /// spawn to the first good answer.
    pub async fn start(
        command: &mut Command,
        log: &Path,
        probe: &Probe,
    ) -> anyhow::Result<(Server, Duration)> {
        // sled lets go of its lock file a few milliseconds after the bench's own store handle
        // is dropped (its I/O threads finish first): a start refused for that is retried.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::start_once(command, log, probe).await {
                Err(e) if attempt < 100 && format!("{e:#}").contains("is locked by another") => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                other => return other,
            }
        }
    }

    async fn start_once(
        command: &mut Command,
        log: &Path,
        probe: &Probe,
    ) -> anyhow::Result<(Server, Duration)> {
        let stderr = std::fs::File::create(log)?;
        command.stdin(Stdio::null()).stderr(stderr);
        if let Probe::Health(..) = probe {
            command.stdout(Stdio::null());
        }
        let spawned = Instant::now();
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {command:?}"))?;
        let (addr, host) = match probe {
            Probe::Health(addr, host) => (*addr, host.clone()),
            Probe::Printed => {
                let stdout = child.stdout.take().context("no stdout")?;
                let mut line = String::new();
                std::io::BufReader::new(stdout).read_line(&mut line)?;
                let addr: SocketAddr = line
                    .trim()
                    .parse()
                    .with_context(|| format!("floor server printed `{}`", line.trim()))?;
                (addr, addr.to_string())
            }
        };
        let mut server = Server { child, addr };
        loop {
            if healthz(addr, &host).await {
                break;
            }
            if let Some(status) = server.child.try_wait()? {
                let tail = std::fs::read_to_string(log).unwrap_or_default();
                bail!("server exited ({status}) before answering:\n{tail}");
            }
            if spawned.elapsed() > Duration::from_secs(60) {
                bail!(
                    "server did not answer /healthz within 60 s (log: {})",
                    log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok((server, spawned.elapsed()))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then up to 10 s for a graceful exit, then SIGKILL.
    pub async fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        for _ in 0..1000 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        eprintln!("bench: server {} ignored SIGTERM; killing it", self.pid());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Never leave a server behind when the benchmark fails half-way.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn pinned_command(program: &Path, pin: bool) -> Command {
    if pin {
        let mut c = Command::new("taskset");
        c.args(["-c", "0"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// `shared-server` (pinned as asked) with none of the caller's `STUDIO_MCP_*` settings (a
/// `STUDIO_MCP_STORE` in the shell must not turn the sled server into a PostgreSQL one), the
/// production log filter unless `--server-rust-log` says otherwise, a rate limit no load
/// reaches, and `--server-env`.
pub fn server_command(program: &Path, pin: bool, args: &RunArgs) -> Command {
    let mut command = pinned_command(program, pin);
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(|n| n.starts_with("STUDIO_MCP_")) {
            command.env_remove(name);
        }
    }
    command
        .env("STUDIO_MCP_TENANT_RATE_PER_MIN", "1000000000")
        .env_remove("RUST_LOG");
    if let Some(filter) = &args.server_rust_log {
        command.env("RUST_LOG", filter);
    }
    command.envs(args.server_env.iter().cloned());
    command
}

async fn healthz(addr: SocketAddr, host: &str) -> bool {
    let Ok(mut conn) = Conn::connect(addr).await else {
        return false;
    };
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n");
    match conn.call(request.as_bytes()).await {
        // A PostgreSQL replica answers 200 `degraded…` while it has not reached the database.
        Ok(r) => r.status == 200 && conn.buf[r.body].starts_with(b"ok"),
        Err(_) => false,
    }
}

/// One call through the same client as the load, checked in full: stateless (no initialize),
/// answered 200 with the token's tenant in the tool result.
pub async fn check_first_call(
    target: &Target,
    tokens: &[String],
    expect: &str,
) -> anyhow::Result<()> {
    let token = tokens.first().context("no tokens")?;
    let mut conn = Conn::connect(target.addr).await?;
    let mut request = Vec::new();
    target.request(&mut request, token);
    let response = conn.call(&request).await?;
    let body = String::from_utf8_lossy(&conn.buf[response.body.clone()]).into_owned();
    if response.status != 200 || !body.contains(expect) || response.error {
        bail!(
            "the first whoami call did not succeed: HTTP {}\n{body}",
            response.status
        );
    }
    Ok(())
}
