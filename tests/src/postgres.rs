//! PostgreSQL for the tests: the cluster `tests/run.sh` started (`STUDIO_MCP_TEST_POSTGRES`),
//! or a private throwaway cluster a test starts, restarts and stops itself (Debian's
//! `initdb`/`pg_ctl`, as the `postgres` user when running as root, on a temp dir and a free
//! loopback port) — the three-replica test restarts its database under load, which must not
//! touch anyone else's — or inside a test's own network namespace, for partitions.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian's PostgreSQL binaries.
fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL installed (apt-get install postgresql; tests/lib/postgres.sh does)")
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("pg_ctl").exists())
        .collect();
    found.sort();
    found.pop().expect("a PostgreSQL bin dir with pg_ctl")
}

fn as_postgres(program: &Path) -> Command {
    if rustix::process::geteuid().is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// [`as_postgres`], inside network namespace `netns` when there is one.
fn as_postgres_in(netns: Option<&str>, program: &Path) -> Command {
    let Some(netns) = netns else {
        return as_postgres(program);
    };
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", netns, "runuser", "-u", "postgres", "--"])
        .arg(program);
    command
}

/// A private cluster; stopped and deleted when dropped.
pub struct PgCluster {
    pub url: String,
    pub port: u16,
    bin: PathBuf,
    dir: tempfile::TempDir,
    /// Extra server settings (`-c name=value …`).
    settings: String,
    /// The network namespace the server runs in (`None`: the host's) and its
    /// `listen_addresses`.
    netns: Option<String>,
    listen: String,
}

/// A throwaway CA (PEM, for `SSL_CERT_FILE`) and the server's certificate for `localhost` and
/// 127.0.0.1, signed by it.
pub struct TestCa {
    pub ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

impl TestCa {
    pub fn new() -> TestCa {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "studio-mcp PostgreSQL test CA");
        let ca =
            rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
                .unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .unwrap()
                .signed_by(&key, &ca)
                .unwrap();
        TestCa {
            ca_pem: pem("CERTIFICATE", ca.der()),
            cert_pem: pem("CERTIFICATE", cert.der()),
            key_pem: pem("PRIVATE KEY", &key.serialize_der()),
        }
    }
}

/// DER as PEM (rcgen is built without its `pem` feature).
fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

impl PgCluster {
    pub fn start() -> PgCluster {
        Self::start_with(None)
    }

    /// A cluster that also offers TLS with `ca`'s server certificate.
    pub fn start_tls(ca: &TestCa) -> PgCluster {
        Self::start_with(Some(ca))
    }

    /// A cluster inside network namespace `netns` (the caller's own), listening on `addresses`
    /// there and trusting clients from the `trusted` networks (CIDR): a partition test cuts the
    /// links between them. `url` names the first address. Stopped and deleted when dropped, or
    /// when this process exits.
    pub fn start_in_netns(netns: &str, addresses: &[&str], trusted: &[&str]) -> PgCluster {
        let cluster = Self::start_placed(None, Some(netns), addresses, trusted);
        cluster.stop_when_gone(std::process::id());
        cluster
    }

    fn start_with(tls: Option<&TestCa>) -> PgCluster {
        Self::start_placed(tls, None, &["127.0.0.1"], &[])
    }

    fn start_placed(
        tls: Option<&TestCa>,
        netns: Option<&str>,
        addresses: &[&str],
        trusted: &[&str],
    ) -> PgCluster {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("studio-mcp-pg")
            .tempdir()
            .expect("temp dir");
        if rustix::process::geteuid().is_root() {
            let chown = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(chown.success());
        }
        let data = dir.path().join("data");
        let init = as_postgres(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres"])
            .output()
            .expect("initdb runs");
        assert!(
            init.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        if !trusted.is_empty() {
            let hba = data.join("pg_hba.conf");
            let mut lines = std::fs::read_to_string(&hba).unwrap();
            for network in trusted {
                lines.push_str(&format!("host all all {network} trust\n"));
            }
            std::fs::write(&hba, lines).unwrap();
        }
        let mut settings = String::new();
        if let Some(ca) = tls {
            let cert = dir.path().join("server.crt");
            let key = dir.path().join("server.key");
            std::fs::write(&cert, &ca.cert_pem).unwrap();
            std::fs::write(&key, &ca.key_pem).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
            if rustix::process::geteuid().is_root() {
                let chown = Command::new("chown")
                    .arg("postgres:postgres")
                    .args([&cert, &key])
                    .status()
                    .unwrap();
                assert!(chown.success());
            }
            settings = format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                cert.display(),
                key.display()
            );
        }
        let port = crate::harness::free_port();
        let cluster = PgCluster {
            url: format!("postgres://postgres@{}:{port}/postgres", addresses[0]),
            port,
            bin,
            dir,
            settings,
            netns: netns.map(str::to_owned),
            listen: addresses.join(","),
        };
        cluster.ctl("start");
        cluster
    }

    fn ctl(&self, action: &str) {
        let data = self.dir.path().join("data");
        let mut command = as_postgres_in(self.netns.as_deref(), &self.bin.join("pg_ctl"));
        command.arg("-D").arg(&data).args(["-w", "-m", "fast"]);
        if action != "stop" {
            command
                .arg("-l")
                .arg(self.dir.path().join("log"))
                .arg("-o")
                .arg(format!(
                    "-p {} -k {} -c listen_addresses={} -c max_connections=200{}",
                    self.port,
                    self.dir.path().display(),
                    self.listen,
                    self.settings
                ));
        }
        let out = command.arg(action).output().expect("pg_ctl runs");
        assert!(
            out.status.success(),
            "pg_ctl {action}: {}{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
        );
    }

    pub fn stop(&self) {
        self.ctl("stop");
    }

    pub fn begin(&self) {
        self.ctl("start");
    }

    /// A fresh database on this cluster; its URL.
    pub fn database(&self, name: &str) -> String {
        crate::harness::database_for(&self.url, name)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

impl PgCluster {
    /// Stops this cluster and deletes its directory once process `pid` has exited, from a
    /// small watchdog process: a cluster kept in a `static` is never dropped.
    // Never waited for on purpose: it outlives this process to clean up after it.
    #[allow(clippy::zombie_processes)]
    fn stop_when_gone(&self, pid: u32) {
        let stop = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
             {run_as}'{pg_ctl}' -D '{data}' -m immediate stop >/dev/null 2>&1; rm -rf '{dir}'",
            run_as = if rustix::process::geteuid().is_root() {
                "runuser -u postgres -- "
            } else {
                ""
            },
            pg_ctl = self.bin.join("pg_ctl").display(),
            data = self.dir.path().join("data").display(),
            dir = self.dir.path().display(),
        );
        Command::new("sh")
            .args(["-c", &stop])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the cluster's watchdog starts");
    }
}

/// The cluster `tests/run.sh` started, or a private one for this test process (stopped and
/// deleted by a watchdog when the process exits).
pub fn cluster_url() -> String {
    if let Ok(url) = std::env::var("STUDIO_MCP_TEST_POSTGRES") {
        return url;
    }
    static PRIVATE: std::sync::OnceLock<PgCluster> = std::sync::OnceLock::new();
    PRIVATE
        .get_or_init(|| {
            let cluster = PgCluster::start();
            cluster.stop_when_gone(std::process::id());
            cluster
        })
        .url
        .clone()
}
