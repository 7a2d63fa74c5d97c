//! `store backup` and `store restore`, both servers': a backup of the running server taken
//! through its admin API into one file, and its restore, the server stopped, into an empty data
//! dir (or, for the shared server on PostgreSQL, an empty database). The file is verified whole
//! before anything is written (`store/backup.rs`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, anyhow, bail};
use clap::Subcommand;

use crate::config::Config;
use crate::runtime::admin::client::AdminClient;
use crate::store::backup::{self, Header};

/// Backups of the store (the server's own data: tenants, tokens and revocations, sealed
/// credentials, people and passkeys, grants, approvals, the audit log).
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Write a backup of the running server into FILE (through its admin API: no stop
    /// needed), mode 0600. The master key, signing key and admin token are not in it.
    Backup {
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
    },
    /// Restore a backup into an empty data dir (or the empty database STUDIO_MCP_STORE names),
    /// the server stopped, with the same key files in place; nothing is written unless the
    /// whole file verifies.
    Restore {
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
    },
}

/// Runs a backup command for the server `server` (its spec's name); `admin_url` overrides the
/// admin API's address, as for every admin subcommand.
pub async fn run(
    config: &Config,
    admin_url: Option<&str>,
    server: &str,
    command: &BackupCommand,
) -> anyhow::Result<()> {
    match command {
        BackupCommand::Backup { to } => {
            let client = AdminClient::from_config(admin_url, config)?;
            backup_to(&client, config, to).await
        }
        BackupCommand::Restore { from } => restore_from(config, server, from),
    }
}

/// Takes a backup of the running server into `to` (a temporary file, synced, then renamed).
pub async fn backup_to(client: &AdminClient, config: &Config, to: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let file = client.backup().await?;
    let (header, _) =
        backup::read(&file).map_err(|e| anyhow!("the server's backup does not verify: {e}"))?;
    write_private(to, &file)?;
    for (what, n) in &header.counts {
        crate::out!("{what}\t{n}");
    }
    crate::out!(
        "wrote {} ({} records, {} bytes) in {} ms. Not in it: the master key, the signing key \
         and the admin token. A restore needs this data dir's {} and {} (fingerprints {}): \
         keep them apart from the backup.",
        to.display(),
        header.counts.values().sum::<u64>(),
        file.len(),
        started.elapsed().as_millis(),
        config.master_key_path().display(),
        config.signing_key_path().display(),
        fingerprints(&header),
    );
    Ok(())
}

fn fingerprints(header: &Header) -> String {
    header
        .keys
        .iter()
        .map(|(what, fingerprint)| format!("{what} {fingerprint}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `bytes` into `to`, mode 0600, all or nothing: written to a temporary file beside it, synced,
/// then renamed over.
fn write_private(to: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = match to.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = to
        .file_name()
        .ok_or_else(|| anyhow!("{} names no file", to.display()))?;
    let temporary = dir.join(format!(
        ".{}.{}.partial",
        name.to_string_lossy(),
        std::process::id()
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options
        .open(&temporary)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&temporary, to));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(e).with_context(|| format!("cannot write {}", to.display()));
    }
    if let Ok(dir) = std::fs::File::open(&dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Restores `from` for the server `server`: verified whole, then checked against this server's
/// kind, its tenant and its key files, before anything is written.
pub fn restore_from(config: &Config, server: &str, from: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let bytes = std::fs::read(from).with_context(|| format!("cannot read {}", from.display()))?;
    let (header, snapshot) = backup::read(&bytes)
        .map_err(|e| anyhow!("{}: {e}; nothing was written", from.display()))?;
    check(config, server, &header)?;
    let copied = match &config.store_url {
        Some(url) => {
            let options = crate::runtime::server::startup::pg_options(config)?;
            let keys = crate::runtime::server::startup::shared_key_fingerprints(config)?;
            crate::store::restore_postgres(url, options, &snapshot, &keys)
        }
        None => crate::store::restore_dir(&config.store_path(), &snapshot),
    }
    .map_err(|e| anyhow!("restore: {e}"))?;
    for (what, n) in &copied {
        crate::out!("{what}\t{n}");
    }
    crate::out!(
        "restored {} records from {} (taken {}) in {} ms and verified the counts; start the \
         server.",
        copied.iter().map(|(_, n)| n).sum::<i64>(),
        from.display(),
        header.taken_at_ms,
        started.elapsed().as_millis(),
    );
    Ok(())
}

/// Refuses a backup of another kind of server, of another tenant, or taken with other keys,
/// naming what differs.
fn check(config: &Config, server: &str, header: &Header) -> anyhow::Result<()> {
    if header.server != server {
        bail!(
            "this is a backup of a {}, not of a {server}; nothing was written",
            header.server
        );
    }
    if header.tenant != config.tenant {
        bail!(
            "this is a backup of {}'s instance, and this one is {}'s; nothing was written",
            header.tenant.as_deref().unwrap_or("no tenant"),
            config.tenant.as_deref().unwrap_or("no tenant"),
        );
    }
    let here = crate::runtime::server::startup::record_key_fingerprints(config).context(
        "a restore needs the key files the backup was taken with, in place before it runs",
    )?;
    for (what, fingerprint) in &here {
        match header.keys.get(*what) {
            Some(recorded) if recorded == fingerprint => {}
            Some(recorded) => bail!(
                "the {what} here is not the one this backup was taken with (fingerprint \
                 {fingerprint}, the backup's {recorded}): its records would not open with it; \
                 put that key file in place; nothing was written"
            ),
            None => bail!("the backup records no {what}; nothing was written"),
        }
    }
    Ok(())
}
