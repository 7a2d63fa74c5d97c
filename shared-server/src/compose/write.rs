//! Writing the rendered files: generated ones replaced, the operator's created once and kept,
//! keys and secrets handed to the container user; and the check that a folder keeps the
//! deployment it was rendered for.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use common::secrets::{MasterKey, write_private_file};

use super::{CONTAINER_UID, ComposeOptions, Contents, GeneratedFile, SharedDeployment};
/// What [`write`] did.
#[derive(Debug, Default)]
pub struct WriteReport {
    /// Written or rewritten this time.
    pub written: Vec<PathBuf>,
    /// Operator files left as they were.
    pub kept: Vec<PathBuf>,
    /// Keys and secrets that could not be handed to the container user (not running as root).
    pub not_chowned: Vec<PathBuf>,
}

/// Writes the rendered files under `out_dir`: generated files are replaced, files under
/// `secrets/` are created only when missing (and an existing key or secret must be valid).
pub fn write(out_dir: &Path, files: &[GeneratedFile]) -> anyhow::Result<WriteReport> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};

    let mut report = WriteReport::default();
    for file in files {
        let path = out_dir.join(&file.path);
        let parent = path.parent().unwrap_or(out_dir);
        let private = !matches!(file.contents, Contents::Text { .. });
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(if private { 0o700 } else { 0o755 })
            .create(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        let exists = path.symlink_metadata().is_ok();
        match &file.contents {
            Contents::Text { text, executable } => {
                // Through a temporary file, so a reader never sees half a compose file.
                let tmp = path.with_extension("tmp~");
                std::fs::write(&tmp, text)
                    .with_context(|| format!("cannot write {}", tmp.display()))?;
                let mode = if *executable { 0o755 } else { 0o644 };
                std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
                std::fs::rename(&tmp, &path)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                report.written.push(file.path.clone());
            }
            Contents::Placeholder(_) if exists => report.kept.push(file.path.clone()),
            Contents::Placeholder(text) => {
                write_private_file(&path, text.as_bytes())
                    .with_context(|| format!("cannot write {}", path.display()))?;
                report.written.push(file.path.clone());
            }
            Contents::MasterKey => {
                // Creates a key when missing; refuses a file that is not one.
                let (_, generated) = MasterKey::load_or_generate(&path)?;
                if generated {
                    report.written.push(file.path.clone());
                } else {
                    report.kept.push(file.path.clone());
                }
                hand_to_container(&path, &file.path, &mut report);
            }
            Contents::Secret(secret) if exists => {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                if !secret.accepts(&text) {
                    bail!("{} {}", path.display(), secret.refusal());
                }
                report.kept.push(file.path.clone());
                hand_to_container(&path, &file.path, &mut report);
            }
            Contents::Secret(secret) => {
                write_private_file(&path, secret.generate().as_bytes())
                    .with_context(|| format!("cannot write {}", path.display()))?;
                report.written.push(file.path.clone());
                hand_to_container(&path, &file.path, &mut report);
            }
        }
    }
    Ok(report)
}

/// Compose mounts a secret file with its host owner and mode (0600), so the server, running as
/// [`CONTAINER_UID`], can read it only if it owns it. (PostgreSQL's entrypoint reads its
/// password file as root, before it drops to its own user.)
fn hand_to_container(path: &Path, shown: &Path, report: &mut WriteReport) {
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(path).map(|m| m.uid()).ok();
    if owner != Some(CONTAINER_UID)
        && std::os::unix::fs::chown(path, Some(CONTAINER_UID), Some(CONTAINER_UID)).is_err()
    {
        report.not_chowned.push(shown.to_owned());
    }
}

/// A folder rendered for replicas must not silently go back to one server on the embedded
/// store, which would start empty while the tenants stay in PostgreSQL; nor one rendered with
/// Prometheus lose it.
pub(super) fn check_same_deployment(
    out_dir: &Path,
    options: &ComposeOptions,
) -> anyhow::Result<()> {
    let rendered_for_postgres = out_dir.join("secrets").join("postgres-password").exists();
    if rendered_for_postgres && *options.shared() == SharedDeployment::Single {
        bail!(
            "{} runs the shared server on PostgreSQL (it has secrets/postgres-password): \
             regenerate with --shared-replicas N --postgres as before",
            out_dir.display()
        );
    }
    // Dropping the prometheus service by forgetting the flag would end monitoring unnoticed.
    let rendered_with_prometheus = out_dir.join("prometheus").join("prometheus.yml").exists();
    if rendered_with_prometheus && options.prometheus().is_none() {
        bail!(
            "{} has a prometheus service (it has prometheus/prometheus.yml): regenerate with \
             --with-prometheus as before, or delete its prometheus/ folder to remove the service",
            out_dir.display()
        );
    }
    Ok(())
}
