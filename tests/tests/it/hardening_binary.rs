//! Issue 9 hardening, proven on the real `shared-server` binary run as a child process: start-up
//! refusal of an empty admin token or signing key, idle and slow connection floods under a
//! 256-descriptor limit, sampled logging of unauthenticated refusals, and debug logs and CLI
//! listings that carry neither tool arguments nor forged lines.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::runtime::admin::client::AdminClient;
use common::runtime::admin::{IssueRequest, NewTenant};
use serde_json::json;
use tests::harness::{
    KillOnDrop, WithLog, call, connect, error_text, eventually, free_port, ok_json, until_healthy,
};
use tests::sandbox::{Fixture, OwnerFixture, Sandbox};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Every network wait in these tests is bounded by this.
const NET_TIMEOUT: Duration = Duration::from_secs(10);

/// The binary, built (or brought up to date) once per test process.
async fn binary() -> PathBuf {
    tests::harness::shared_server_binary()
        .await
        .expect("the shared-server binary (cargo build -p shared-server)")
}

/// `shared-server serve` on `ports` with `data_dir`, every upstream at `upstream`, stderr to
/// `stderr`, and nothing inherited from the test's own `STUDIO_MCP_*` or `RUST_LOG`. With
/// `fd_limit`, started through `sh -c 'ulimit -n N && exec …'` (soft and hard limit N).
fn spawn(
    binary: &Path,
    data_dir: &Path,
    stderr: &Path,
    upstream: &str,
    (port, admin_port): (u16, u16),
    env: &[(&str, &str)],
    fd_limit: Option<u32>,
) -> Child {
    let mut command = match fd_limit {
        None => {
            let mut c = Command::new(binary);
            c.arg("serve");
            c
        }
        Some(limit) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("ulimit -n {limit} && exec \"$0\" serve"))
                .arg(binary);
            c
        }
    };
    clean_env(&mut command);
    command
        .env("STUDIO_MCP_DATA_DIR", data_dir)
        .env("STUDIO_MCP_LISTEN", format!("127.0.0.1:{port}"))
        .env("STUDIO_MCP_ADMIN_LISTEN", format!("127.0.0.1:{admin_port}"))
        .env("STUDIO_MCP_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
        .env("STUDIO_MCP_UPSTREAM_TIMEOUT_MS", "2000")
        .env("STUDIO_MCP_MAX_RETRY_WAIT_MS", "1000")
        .env("STUDIO_MCP_WEBFLOW_RATE_PER_MIN", "1000000")
        .env("STUDIO_MCP_TENANT_RATE_PER_MIN", "1000000");
    for vendor in ["WEBFLOW", "PLAUSIBLE", "GITHUB", "CLOUDFLARE", "STRIPE"] {
        command.env(format!("STUDIO_MCP_{vendor}_BASE_URL"), upstream);
    }
    command
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(stderr).unwrap())
        .spawn()
        .unwrap()
}

fn clean_env(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        let inherited = name.to_str().is_some_and(|n| {
            n.starts_with("STUDIO_MCP_") || n == "RUST_LOG" || n == "RUST_LOG_STYLE"
        });
        if inherited {
            command.env_remove(name);
        }
    }
}

/// Waits (polling, for at most [`NET_TIMEOUT`]) for the child to exit by itself; fails the test
/// naming `what`, with the child's `log`, if it does not.
async fn wait_exit(child: &mut Child, what: &str, log: &Path) -> ExitStatus {
    eventually(what, NET_TIMEOUT, || {
        let exited = child.try_wait().unwrap();
        std::future::ready(exited.ok_or_else(|| WithLog::new("still running", log)))
    })
    .await
}

fn read_lossy(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// A running `shared-server serve` process; killed when dropped.
struct Server {
    child: Child,
    port: u16,
    admin_port: u16,
    base_url: String,
    mcp_url: String,
    admin_url: String,
    data_dir: PathBuf,
    stderr_path: PathBuf,
    admin_token: String,
    admin: AdminClient,
    _tmp: tempfile::TempDir,
}

impl Server {
    async fn start(sandbox: &Sandbox, env: &[(&str, &str)], fd_limit: Option<u32>) -> Server {
        common::upstream::install_crypto_provider();
        let binary = binary().await;
        let tmp = tempfile::tempdir().unwrap();
        let data_dir = tmp.path().join("data");
        let stderr_path = tmp.path().join("stderr.log");
        let (port, admin_port) = (free_port(), free_port());
        let mut child = spawn(
            &binary,
            &data_dir,
            &stderr_path,
            &sandbox.base_url(),
            (port, admin_port),
            env,
            fd_limit,
        );
        let base_url = format!("http://127.0.0.1:{port}");
        until_healthy(
            "shared-server ready",
            &mut child,
            &format!("{base_url}/healthz"),
            &stderr_path,
            Duration::from_secs(30),
        )
        .await;
        let admin_token = std::fs::read_to_string(data_dir.join("admin-token"))
            .unwrap()
            .trim()
            .to_owned();
        let admin_url = format!("http://127.0.0.1:{admin_port}");
        let admin = AdminClient::new(admin_url.clone(), admin_token.clone()).unwrap();
        Server {
            child,
            port,
            admin_port,
            mcp_url: format!("{base_url}/mcp"),
            base_url,
            admin_url,
            data_dir,
            stderr_path,
            admin_token,
            admin,
            _tmp: tmp,
        }
    }

    fn stderr(&self) -> String {
        read_lossy(&self.stderr_path)
    }

    /// SIGTERM (through `kill <pid>`), then waits for the graceful exit.
    async fn terminate(&mut self) -> ExitStatus {
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(sent.success(), "kill -TERM failed");
        wait_exit(
            &mut self.child,
            "shared-server stopped within 10 s of SIGTERM",
            &self.stderr_path,
        )
        .await
    }

    /// Adds the owner's tenant bound to its Webflow site, Plausible site and repositories,
    /// stores its credentials and returns a fresh MCP token.
    async fn provision(&self, owner: &OwnerFixture) -> String {
        let new: NewTenant = serde_json::from_value(json!({
            "id": owner.owner,
            "name": format!("{} Inc", owner.owner),
            "webflow_sites": [owner.site_id],
            "plausible_site": owner.plausible_site,
            "github_repos": owner.github_repos,
        }))
        .unwrap();
        self.admin.add_tenant(&new).await.unwrap();
        for (kind, secret) in [
            ("webflow", &owner.token),
            ("plausible", &owner.plausible_token),
            ("github", &owner.github_token),
        ] {
            self.admin
                .set_secret(&owner.owner, kind, secret.clone())
                .await
                .unwrap();
        }
        let request = IssueRequest {
            label: Some("hardening".into()),
            ttl_days: None,
        };
        self.admin
            .issue_token(&owner.owner, &request)
            .await
            .unwrap()
            .token
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The soft and hard "Max open files" of a process, from `/proc/<pid>/limits`.
fn open_file_limits(pid: &str) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

/// Reads until the server closes the connection (EOF or an error); `Some(time since `since`)`
/// when it did before `since + within`, `None` while it is still open then.
async fn closed_within(
    mut stream: TcpStream,
    since: Instant,
    within: Duration,
) -> Option<Duration> {
    let deadline = tokio::time::Instant::from_std(since + within);
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(since.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_admin_token_or_signing_key_refuses_to_start() {
    common::upstream::install_crypto_provider();
    let binary = binary().await;
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    for (file, content) in [
        ("admin-token", ""),
        ("admin-token", "   \n"),
        ("metrics-token", "mtr_too_short"),
        ("signing.key", ""),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let data_dir = tmp.path().join("data");
        std::fs::create_dir_all(&data_dir).unwrap();
        std::fs::write(data_dir.join(file), content).unwrap();
        let stderr_path = tmp.path().join("stderr.log");
        let ports = (free_port(), free_port());
        // Killed if it starts instead of refusing, when the failed wait drops it.
        let mut child = KillOnDrop(spawn(
            &binary,
            &data_dir,
            &stderr_path,
            &sandbox.base_url(),
            ports,
            &[],
            None,
        ));
        let status = wait_exit(
            &mut child.0,
            &format!("refused to start with {file} = {content:?}"),
            &stderr_path,
        )
        .await;
        let stderr = read_lossy(&stderr_path);
        assert_eq!(status.code(), Some(2), "{file} = {content:?}: {stderr}");
        assert!(
            stderr.contains(file),
            "the refusal must name {file}: {stderr}"
        );
        if file == "signing.key" {
            assert!(
                !data_dir.join("admin-token").exists(),
                "refused before anything else was created"
            );
        }
    }

    // A normal start: the admin API refuses a missing or empty presented token, and takes the
    // scheme in any case (RFC 7235).
    let server = Server::start(&sandbox, &[], None).await;
    assert!(
        server.admin_token.len() >= 32,
        "generated admin token is short"
    );
    let http = common::upstream::http_client().unwrap();
    let tenants = format!("{}/v1/tenants", server.admin_url);
    let status = |authorization: Option<String>| {
        let mut request = http.get(&tenants);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        async move {
            timeout(NET_TIMEOUT, request.send())
                .await
                .unwrap()
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status(None).await, 401, "no Authorization header");
    assert_eq!(status(Some("Bearer ".into())).await, 401, "empty bearer");
    assert_eq!(status(Some("Bearer    ".into())).await, 401, "blank bearer");
    assert_eq!(status(Some("Bearer x".into())).await, 401, "wrong token");
    let token = &server.admin_token;
    assert_eq!(status(Some(format!("bearer {token}"))).await, 200);
    assert_eq!(status(Some(format!("BEARER {token}"))).await, 200);
    assert_eq!(status(Some(format!("Bearer {token}"))).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_connection_floods_never_stop_a_real_client() {
    const IDLE: usize = 300;
    const PARTIAL: usize = 50;
    const ADMIN_IDLE: usize = 50;
    const HEADER_TIMEOUT: Duration = Duration::from_millis(1000);
    const IDLE_TIMEOUT: Duration = Duration::from_millis(3000);
    // The flood plus the clients and the harness must fit under this process's own limit.
    let (own_soft, _) = open_file_limits("self");
    assert!(
        own_soft >= 1024,
        "this test opens {} sockets and needs `ulimit -n` >= 1024, has {own_soft}",
        IDLE + PARTIAL + ADMIN_IDLE
    );

    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let server = Server::start(
        &sandbox,
        &[
            ("STUDIO_MCP_HEADER_READ_TIMEOUT_MS", "1000"),
            ("STUDIO_MCP_IDLE_TIMEOUT_MS", "3000"),
        ],
        Some(256),
    )
    .await;
    let pid = server.child.id().to_string();
    assert_eq!(
        open_file_limits(&pid),
        (256, 256),
        "the server must run under a 256 descriptor limit"
    );
    let token = server
        .provision(sandbox.fixture().owner("acme").unwrap())
        .await;
    let mcp_addr = format!("127.0.0.1:{}", server.port);
    let admin_addr = format!("127.0.0.1:{}", server.admin_port);
    let connect_to = |addr: String| async move {
        timeout(NET_TIMEOUT, TcpStream::connect(addr))
            .await
            .expect("flood connect timed out")
            .expect("flood connect")
    };

    // The flood, opened in order (the server evicts the longest-idle first): connections that
    // send nothing, then ones that send half a request header, then idle ones on the admin port.
    let flood_started = Instant::now();
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push((connect_to(mcp_addr.clone()).await, Instant::now()));
    }
    let partial_header = format!("POST /mcp HTTP/1.1\r\nHost: {mcp_addr}\r\n");
    let mut partial = Vec::with_capacity(PARTIAL);
    for _ in 0..PARTIAL {
        let mut stream = connect_to(mcp_addr.clone()).await;
        // An early connection may already be evicted; its write may then fail. That is fine.
        let _ = stream.write_all(partial_header.as_bytes()).await;
        partial.push((stream, Instant::now()));
    }
    let mut admin_idle = Vec::with_capacity(ADMIN_IDLE);
    for _ in 0..ADMIN_IDLE {
        admin_idle.push((connect_to(admin_addr.clone()).await, Instant::now()));
    }
    let flood_opened = flood_started.elapsed();
    let fds_during_flood = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);

    // The youngest of each kind: no later connection pushes them out for room, so only the
    // timeouts can close them.
    let (last_idle, idle_since) = idle.pop().unwrap();
    let (last_partial, partial_since) = partial.pop().unwrap();
    let idle_watch = tokio::spawn(closed_within(
        last_idle,
        idle_since,
        IDLE_TIMEOUT + Duration::from_secs(5),
    ));
    let partial_watch = tokio::spawn(closed_within(
        last_partial,
        partial_since,
        HEADER_TIMEOUT + Duration::from_secs(4),
    ));

    // A slow client of the usual kind: it connects, and starts its header a moment later. The
    // header-read timeout counts from that first byte, whatever the idle timer was doing.
    let slow_start = tokio::spawn({
        let (addr, header) = (mcp_addr.clone(), partial_header.clone());
        async move {
            let mut stream = connect_to(addr).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            stream.write_all(header.as_bytes()).await.unwrap();
            let since = Instant::now();
            closed_within(stream, since, HEADER_TIMEOUT + Duration::from_millis(1500)).await
        }
    });

    // A real client, while the flood is open.
    let checks_started = Instant::now();
    let http = common::upstream::http_client().unwrap();
    let health = timeout(
        NET_TIMEOUT,
        http.get(format!("{}/healthz", server.base_url)).send(),
    )
    .await
    .expect("/healthz timed out during the flood")
    .expect("/healthz during the flood");
    assert_eq!(health.status().as_u16(), 200);
    let healthz_done = checks_started.elapsed();
    let client = timeout(NET_TIMEOUT, connect(&server.mcp_url, &token, None))
        .await
        .expect("MCP initialize timed out during the flood")
        .expect("MCP client connects during the flood");
    let whoami = timeout(NET_TIMEOUT, call(&client, "whoami", json!({})))
        .await
        .expect("whoami timed out during the flood");
    assert_eq!(ok_json(&whoami)["tenant"], "acme");
    let mcp_done = checks_started.elapsed();
    let tenants = timeout(NET_TIMEOUT, server.admin.tenants())
        .await
        .expect("admin API timed out during the flood")
        .expect("admin API during the flood");
    assert!(tenants.iter().any(|t| t.id.as_str() == "acme"));
    let admin_done = checks_started.elapsed();

    // The header-read and idle timeouts close what the flood holds.
    let partial_closed = partial_watch
        .await
        .unwrap()
        .expect("a half-sent request header was held past the header-read timeout + 4 s");
    let idle_closed = idle_watch
        .await
        .unwrap()
        .expect("a connection that sent nothing was held past the idle timeout + 5 s");
    let slow_start_closed = slow_start.await.unwrap();
    assert!(
        partial_closed >= HEADER_TIMEOUT - Duration::from_millis(200),
        "closed after {partial_closed:?}: before the header timeout, so not by it"
    );
    assert!(
        idle_closed >= IDLE_TIMEOUT - Duration::from_millis(500),
        "closed after {idle_closed:?}: before the idle timeout, so not by it"
    );

    // And nothing of the flood is held for good: every socket is closed by the server by the
    // idle timeout (and a margin) after it was opened.
    let mut rest = tokio::task::JoinSet::new();
    for (stream, since) in idle.into_iter().chain(partial).chain(admin_idle) {
        rest.spawn(closed_within(
            stream,
            since,
            IDLE_TIMEOUT + Duration::from_secs(6),
        ));
    }
    let mut still_open = 0;
    while let Some(closed) = rest.join_next().await {
        if closed.unwrap().is_none() {
            still_open += 1;
        }
    }
    assert_eq!(still_open, 0, "flood connections the server never closed");

    // Still serving after the flood, and it never ran out of descriptors.
    let whoami = timeout(NET_TIMEOUT, call(&client, "whoami", json!({})))
        .await
        .expect("whoami after the flood timed out");
    assert_eq!(ok_json(&whoami)["tenant"], "acme");
    let stderr = server.stderr();
    for bad in ["Too many open files", "cannot accept a connection"] {
        assert!(!stderr.contains(bad), "server log has {bad:?}:\n{stderr}");
    }
    eprintln!(
        "flood of {} opened in {flood_opened:?}; server fds during flood {fds_during_flood}; \
         healthz {healthz_done:?}, MCP whoami {mcp_done:?}, admin {admin_done:?} (cumulative); \
         partial header closed after {partial_closed:?} (one begun late after \
         {slow_start_closed:?}), idle after {idle_closed:?}",
        IDLE + PARTIAL + ADMIN_IDLE
    );
    // Checked last, so that everything above is known to hold when this fails.
    assert!(
        slow_start_closed.is_some(),
        "a header begun 300 ms after connecting was held past the header-read timeout + 1.5 s \
         (the header timer only starts when the idle timer next wakes up)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_refusals_are_logged_sampled() {
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let mut server = Server::start(&sandbox, &[], None).await;
    let http = common::upstream::http_client().unwrap();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    for i in 0..250 {
        let mut request = http
            .post(&server.mcp_url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body);
        if i < 200 {
            request = request.bearer_auth(format!("not-a-token-{i}"));
        }
        let response = timeout(NET_TIMEOUT, request.send())
            .await
            .expect("refusal timed out")
            .unwrap();
        assert_eq!(response.status().as_u16(), 401, "request {i}");
    }
    drop(http);
    let status = server.terminate().await;
    assert!(status.success(), "graceful stop: {status}");
    let stderr = server.stderr();
    let refusals: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("refused MCP request"))
        .collect();
    assert!(
        !refusals.is_empty() && refusals.len() <= 2,
        "250 refusals must be at most 2 lines (one per 10 s window), got {}:\n{stderr}",
        refusals.len()
    );
    assert!(
        refusals.iter().all(|l| l.contains("suppressed=")),
        "each line says how many it stands for: {refusals:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_logging_never_carries_tool_arguments_or_forged_lines() {
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let mut server = Server::start(&sandbox, &[("RUST_LOG", "debug")], None).await;
    let token = server
        .provision(sandbox.fixture().owner("acme").unwrap())
        .await;
    let client = timeout(NET_TIMEOUT, connect(&server.mcp_url, &token, None))
        .await
        .unwrap()
        .unwrap();

    // A call that succeeds: its arguments reach no log line (rmcp logs whole requests at DEBUG).
    let ok = timeout(
        NET_TIMEOUT,
        call(
            &client,
            "analytics_query",
            json!({"metrics": ["visitors"], "date_range": "7d",
                   "site_id": "MARKER-0123 \nFORGED LINE"}),
        ),
    )
    .await
    .unwrap();
    assert!(ok_json(&ok)["note"].is_string(), "the query ran: {ok:?}");

    // Calls whose invalid value is quoted in the "tool call failed" line: it is escaped there.
    let site = timeout(
        NET_TIMEOUT,
        call(
            &client,
            "webflow_get_site",
            json!({"site_id": "FORGED-SITE \nFORGED LINE"}),
        ),
    )
    .await
    .unwrap();
    assert!(error_text(&site).contains("not valid"));
    let query = timeout(
        NET_TIMEOUT,
        call(
            &client,
            "analytics_query",
            json!({"metrics": ["visitors\n\u{1b}[2JFORGED-METRIC"], "date_range": "7d"}),
        ),
    )
    .await
    .unwrap();
    assert!(error_text(&query).contains("unknown value"));

    // A tenant-chosen tool name with a newline and a clear-screen sequence (audited as the action).
    let http = common::upstream::http_client().unwrap();
    let raw = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "evil\n\u{1b}[2JFORGED-TOOL", "arguments": {}}});
    let response = timeout(
        NET_TIMEOUT,
        http.post(&server.mcp_url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .bearer_auth(&token)
            .body(raw.to_string())
            .send(),
    )
    .await
    .unwrap()
    .unwrap();
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    assert!(
        status == 200 && body.contains("unknown tool"),
        "{status} {body}"
    );

    // The operator's audit listing: no terminal control bytes, one record per line.
    let output = timeout(NET_TIMEOUT, async {
        let mut audit = tokio::process::Command::new(binary().await);
        audit.args(["audit", "--tenant", "acme"]);
        for (name, _) in std::env::vars_os() {
            if name.to_str().is_some_and(|n| n.starts_with("STUDIO_MCP_")) {
                audit.env_remove(name);
            }
        }
        audit
            .env("STUDIO_MCP_DATA_DIR", &server.data_dir)
            .env(
                "STUDIO_MCP_ADMIN_LISTEN",
                format!("127.0.0.1:{}", server.admin_port),
            )
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap()
    })
    .await
    .expect("shared-server audit timed out");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "audit failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !output.stdout.contains(&0x1b),
        "ESC reached the terminal:\n{stdout:?}"
    );
    let fields: Vec<usize> = stdout.lines().map(|l| l.split('\t').count()).collect();
    assert!(
        fields.len() >= 2 && fields.iter().all(|&n| n == fields[0]),
        "every line is one whole record ({fields:?}):\n{stdout}"
    );
    let evil = stdout
        .lines()
        .find(|l| l.contains("FORGED-TOOL"))
        .unwrap_or_else(|| panic!("the unknown tool call is audited:\n{stdout}"));
    assert!(
        evil.contains(r"evil\n\u{1b}[2JFORGED-TOOL"),
        "the action is shown escaped: {evil}"
    );

    let exit = server.terminate().await;
    assert!(exit.success(), "graceful stop: {exit}");
    let stderr = server.stderr();
    assert!(
        stderr.contains(" DEBUG "),
        "RUST_LOG=debug is in force:\n{stderr}"
    );
    assert!(
        !stderr.contains("MARKER-0123"),
        "a tool argument reached the debug log:\n{stderr}"
    );
    let forged: Vec<&str> = stderr
        .lines()
        .map(|l| l.trim_start_matches(|c: char| c.is_control()))
        .filter(|l| l.starts_with("FORGED") || l.starts_with("[2J"))
        .collect();
    assert!(forged.is_empty(), "forged log lines: {forged:?}");
    // An invalid value is quoted in its "tool call failed" line, with the newline written as
    // `\n` (the ESC is checked below).
    for (tool, escaped) in [
        ("webflow_get_site", r"site_id `FORGED-SITE \nFORGED LINE`"),
        ("analytics_query", r"unknown value `visitors\n"),
    ] {
        let failed = stderr
            .lines()
            .find(|l| l.contains("tool call failed") && l.contains(tool))
            .unwrap_or_else(|| panic!("no \"tool call failed\" line for {tool}:\n{stderr}"));
        assert!(
            failed.contains(escaped),
            "expected {escaped} (escaped) in: {failed}"
        );
    }
    // Nor does a tenant's ESC reach the log raw: `tail -f` on a terminal would run it.
    let with_esc: Vec<&str> = stderr.lines().filter(|l| l.contains('\u{1b}')).collect();
    assert!(
        with_esc.is_empty(),
        "a raw ESC byte reached the text log: {with_esc:?}"
    );
}
