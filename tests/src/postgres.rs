//! PostgreSQL for the tests: the cluster `tests/run.sh` started (`STUDIO_MCP_TEST_POSTGRES`),
//! or a private throwaway cluster a test starts, restarts and stops itself (Debian's
//! `initdb`/`pg_ctl`, as the `postgres` user when running as root, on a temp dir and a free
//! loopback port) — the three-replica test restarts its database under load, which must not
//! touch anyone else's.

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

/// A private cluster; stopped and deleted when dropped.
pub struct PgCluster {
    pub url: String,
    pub port: u16,
    bin: PathBuf,
    dir: tempfile::TempDir,
}

impl PgCluster {
    pub fn start() -> PgCluster {
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
        let port = crate::harness::free_port();
        let cluster = PgCluster {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            port,
            bin,
            dir,
        };
        cluster.ctl("start");
        cluster
    }

    fn ctl(&self, action: &str) {
        let data = self.dir.path().join("data");
        let mut command = as_postgres(&self.bin.join("pg_ctl"));
        command.arg("-D").arg(&data).args(["-w", "-m", "fast"]);
        if action != "stop" {
            command
                .arg("-l")
                .arg(self.dir.path().join("log"))
                .arg("-o")
                .arg(format!(
                    "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200",
                    self.port,
                    self.dir.path().display()
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

/// The cluster `tests/run.sh` started, or a private one for this test process.
pub fn cluster_url() -> String {
    if let Ok(url) = std::env::var("STUDIO_MCP_TEST_POSTGRES") {
        return url;
    }
    static PRIVATE: std::sync::OnceLock<PgCluster> = std::sync::OnceLock::new();
    PRIVATE.get_or_init(PgCluster::start).url.clone()
}
