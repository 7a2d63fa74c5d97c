//! The PostgreSQL cluster `--postgres` names: databases made and dropped with `psql`, its
//! postmaster found for CPU accounting.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

/// The cluster `--postgres` names: the bench makes and drops databases of its own on it with
/// `psql`, and (when it runs on this machine) accounts for its CPU.
pub struct Cluster {
    url: String,
    /// The postmaster's pid, from `postmaster.pid` in its data directory (a local cluster
    /// whose directory this user can read).
    pub postmaster: Option<u32>,
}

impl Cluster {
    pub fn connect(url: &str) -> anyhow::Result<Cluster> {
        let data_dir = psql(url, "SELECT current_setting('data_directory')")
            .with_context(|| format!("cannot use the PostgreSQL cluster at {}", redact(url)))?;
        let postmaster = std::fs::read_to_string(Path::new(data_dir.trim()).join("postmaster.pid"))
            .ok()
            .and_then(|text| text.lines().next().and_then(|l| l.trim().parse().ok()));
        Ok(Cluster {
            url: url.to_owned(),
            postmaster,
        })
    }

    /// A new, empty database `name`; its URL.
    pub fn create_database(&self, name: &str) -> anyhow::Result<String> {
        psql(&self.url, &format!("CREATE DATABASE {name}"))?;
        database_url(&self.url, name)
    }

    /// Drops `name`, closing whatever is still connected; a failure is only reported.
    pub fn drop_database(&self, name: &str) {
        if let Err(e) = psql(
            &self.url,
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        ) {
            eprintln!("bench: could not drop database {name}: {e:#}");
        }
    }
}

/// Runs one statement with `psql`; its unaligned output.
fn psql(url: &str, statement: &str) -> anyhow::Result<String> {
    let out = Command::new("psql")
        .args([url, "-X", "-qtAc", statement])
        .stdin(Stdio::null())
        .output()
        .context("cannot run psql (the PostgreSQL client)")?;
    if !out.status.success() {
        bail!(
            "psql `{statement}`: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `url` with its database replaced by `name` (user, password, host and options kept).
fn database_url(url: &str, name: &str) -> anyhow::Result<String> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme = ["postgres://", "postgresql://"]
        .into_iter()
        .find(|s| base.starts_with(s))
        .context("--postgres must be a postgres:// URL")?;
    let authority = base[scheme.len()..].split('/').next().unwrap_or_default();
    Ok(match query {
        Some(query) => format!("{scheme}{authority}/{name}?{query}"),
        None => format!("{scheme}{authority}/{name}"),
    })
}

/// A URL fit for a message: no password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:…{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
