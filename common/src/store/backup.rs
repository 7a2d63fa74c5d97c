//! A backup file: every record of the store as of one moment, in one file a restore verifies
//! whole before it writes anything.
//!
//! ```text
//! studio-mcp backup                       the magic line
//! {"format":1,"server":…,"counts":…,…}    the header, one JSON line
//! {"tree":"tokens","key":"…","value":"…"} one line per record (key and value base64)
//! {"audit":"{…}"}                         one line per audit record (the JSON the server wrote)
//! ```
//!
//! The header names the format, the server kind, an isolated instance's tenant, the time, the
//! records per tree, the fingerprints of the key files the records need, and a SHA-256 that
//! covers the header itself and everything after it (a restore with other keys could open none of the sealed secrets and
//! verify no token). Secrets stay sealed as the store keeps them; no key, and no admin token, is
//! ever in a backup.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Entry, StoreError};

/// The format this binary writes, and the newest it reads. Format 1's checksum covered only the
/// records; format 2's covers the header too (so an altered tenant, server or key fingerprint
/// is refused like an altered record). Both are read.
pub const FORMAT: u32 = 2;
const MAGIC: &str = "studio-mcp backup";
/// The count key of the audit records.
pub const AUDIT: &str = "audit";

/// What a backup says of itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub format: u32,
    /// The server that wrote it (`studio-mcp-shared`, `studio-mcp-isolated`).
    pub server: String,
    /// An isolated instance's tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// When the snapshot was taken, Unix milliseconds.
    pub taken_at_ms: u64,
    /// Records per tree, and the audit records under [`AUDIT`].
    pub counts: BTreeMap<String, u64>,
    /// The fingerprints of the key files the records need (`master.key`, `signing.key`).
    pub keys: BTreeMap<String, String>,
    /// SHA-256, hex, of this header line written with `sha256` empty, a newline, and every
    /// line after it (format 1: of the lines after it only).
    pub sha256: String,
}

/// Every record of one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub trees: Vec<(String, Vec<Entry>)>,
    /// The audit records, oldest first, as the JSON text the server wrote.
    pub audit: Vec<String>,
}

impl Snapshot {
    /// Records per tree and audit records, as the header counts them.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        let mut counts: BTreeMap<String, u64> = self
            .trees
            .iter()
            .map(|(tree, entries)| (tree.clone(), count(entries.len())))
            .collect();
        counts.insert(AUDIT.to_owned(), count(self.audit.len()));
        counts
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    tree: String,
    key: String,
    value: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditLine {
    audit: String,
}

/// The file for `snapshot`, with a header completed from `header` (its counts and checksum are
/// computed here).
pub fn write(mut header: Header, snapshot: &Snapshot) -> Result<Vec<u8>, StoreError> {
    let mut body = Vec::new();
    for (tree, entries) in &snapshot.trees {
        for (key, value) in entries {
            line(
                &mut body,
                &Record {
                    tree: tree.clone(),
                    key: B64.encode(key),
                    value: B64.encode(value),
                },
            )?;
        }
    }
    for record in &snapshot.audit {
        line(
            &mut body,
            &AuditLine {
                audit: record.clone(),
            },
        )?;
    }
    header.format = FORMAT;
    header.counts = snapshot.counts();
    header.sha256 = checksum(&header, &body)?;
    let mut file = format!("{MAGIC}\n").into_bytes();
    line(&mut file, &header)?;
    file.extend_from_slice(&body);
    Ok(file)
}

/// What `header.sha256` must be for `header` over `body`, by `header.format`.
fn checksum(header: &Header, body: &[u8]) -> Result<String, StoreError> {
    let mut digest = Sha256::new();
    if header.format >= 2 {
        let unsealed = Header {
            sha256: String::new(),
            ..header.clone()
        };
        let mut text = Vec::new();
        line(&mut text, &unsealed)?;
        digest.update(&text);
    }
    digest.update(body);
    Ok(hex::encode(digest.finalize()))
}

fn line(out: &mut Vec<u8>, value: &impl Serialize) -> Result<(), StoreError> {
    serde_json::to_writer(&mut *out, value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    out.push(b'\n');
    Ok(())
}

/// Why a backup file is refused; nothing has been written when one is.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Refused {
    #[error("not a studio-mcp backup (its first line is not `{MAGIC}`)")]
    NotABackup,
    #[error("the header does not read: {0}")]
    Header(String),
    #[error(
        "written in backup format {found}, newer than this binary reads ({FORMAT}): restore it \
         with the release that wrote it, or a newer one"
    )]
    Newer { found: u32 },
    #[error(
        "the checksum does not match (the file is truncated or altered): expected {expected}, \
         found {found}"
    )]
    Checksum { expected: String, found: String },
    #[error("line {line} does not read: {why}")]
    Line { line: usize, why: String },
    #[error("{what}: the header counts {expected} records, the file holds {found}")]
    Count {
        what: String,
        expected: u64,
        found: u64,
    },
}

/// The header and records of a backup file, verified whole (magic, format, checksum, every line
/// and every count) before anything is returned.
pub fn read(file: &[u8]) -> Result<(Header, Snapshot), Refused> {
    let rest = file
        .strip_prefix(MAGIC.as_bytes())
        .and_then(|r| r.strip_prefix(b"\n"))
        .ok_or(Refused::NotABackup)?;
    let end = rest
        .iter()
        .position(|b| *b == b'\n')
        .ok_or_else(|| Refused::Header("it has no end".into()))?;
    let (header_line, body) = rest.split_at(end);
    let body = &body[1..];
    // The format first: a newer header may not read as this one.
    let format = serde_json::from_slice::<serde_json::Value>(header_line)
        .map_err(|e| Refused::Header(e.to_string()))?
        .get("format")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| Refused::Header("no format".into()))?;
    let format = u32::try_from(format).unwrap_or(u32::MAX);
    if format > FORMAT {
        return Err(Refused::Newer { found: format });
    }
    let header: Header =
        serde_json::from_slice(header_line).map_err(|e| Refused::Header(e.to_string()))?;
    let found = checksum(&header, body).map_err(|e| Refused::Header(e.to_string()))?;
    if found != header.sha256 {
        return Err(Refused::Checksum {
            expected: header.sha256.clone(),
            found,
        });
    }
    let mut snapshot = Snapshot::default();
    let text = std::str::from_utf8(body).map_err(|e| Refused::Line {
        line: 3,
        why: e.to_string(),
    })?;
    for (n, raw) in text.lines().enumerate() {
        let at = n + 3;
        let bad = |why: String| Refused::Line { line: at, why };
        if raw.starts_with("{\"audit\"") {
            let AuditLine { audit } = serde_json::from_str(raw).map_err(|e| bad(e.to_string()))?;
            snapshot.audit.push(audit);
            continue;
        }
        let Record { tree, key, value } =
            serde_json::from_str(raw).map_err(|e| bad(e.to_string()))?;
        let entry = (
            B64.decode(key).map_err(|e| bad(format!("key: {e}")))?,
            B64.decode(value).map_err(|e| bad(format!("value: {e}")))?,
        );
        match snapshot.trees.last_mut() {
            Some((name, entries)) if *name == tree => entries.push(entry),
            _ => snapshot.trees.push((tree, vec![entry])),
        }
    }
    let found = snapshot.counts();
    for (what, expected) in &header.counts {
        let got = found.get(what).copied().unwrap_or(0);
        if got != *expected {
            return Err(Refused::Count {
                what: what.clone(),
                expected: *expected,
                found: got,
            });
        }
    }
    if let Some((what, got)) = found
        .iter()
        .find(|(what, got)| **got > 0 && !header.counts.contains_key(*what))
    {
        return Err(Refused::Count {
            what: what.clone(),
            expected: 0,
            found: *got,
        });
    }
    Ok((header, snapshot))
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            format: 0,
            server: "studio-mcp-shared".into(),
            tenant: None,
            taken_at_ms: 1_796_662_588_000,
            counts: BTreeMap::new(),
            keys: BTreeMap::from([("master.key".into(), "ab12".into())]),
            sha256: String::new(),
        }
    }

    fn snapshot() -> Snapshot {
        Snapshot {
            trees: vec![
                (
                    "tenants".into(),
                    vec![(b"acme".to_vec(), br#"{"id":"acme"}"#.to_vec())],
                ),
                (
                    "tokens".into(),
                    vec![(vec![0, 255, 10, 13], b"\n\"binary\"\n".to_vec()); 3],
                ),
            ],
            audit: vec![r#"{"at_ms":1,"action":"whoami"}"#.into()],
        }
    }

    #[test]
    fn a_backup_reads_back_as_it_was_written() {
        let file = write(header(), &snapshot()).unwrap();
        let (read_header, read_snapshot) = read(&file).unwrap();
        assert_eq!(read_snapshot, snapshot());
        assert_eq!(read_header.format, FORMAT);
        assert_eq!(read_header.counts["tokens"], 3);
        assert_eq!(read_header.counts[AUDIT], 1);
        assert_eq!(read_header.keys["master.key"], "ab12");
    }

    #[test]
    fn truncated_altered_newer_or_foreign_files_are_refused() {
        let file = write(header(), &snapshot()).unwrap();
        let cut = &file[..file.len() - 5];
        assert!(matches!(read(cut), Err(Refused::Checksum { .. })));
        let mut flipped = file.clone();
        let last = flipped.len() - 3;
        flipped[last] ^= 0x01;
        assert!(matches!(read(&flipped), Err(Refused::Checksum { .. })));
        let newer = String::from_utf8(file.clone()).unwrap().replacen(
            &format!("\"format\":{FORMAT}"),
            &format!("\"format\":{}", FORMAT + 1),
            1,
        );
        assert_eq!(
            read(newer.as_bytes()),
            Err(Refused::Newer { found: FORMAT + 1 })
        );
        // The header is sealed too: another tenant, server or key is an altered file.
        let text = String::from_utf8(file.clone()).unwrap();
        for (from, to) in [
            ("\"server\":", "\"tenant\":\"globex\",\"server\":"),
            ("studio-mcp-shared", "studio-mcp-isolated"),
            ("\"ab12\"", "\"ab13\""),
        ] {
            let altered = text.replacen(from, to, 1);
            assert_ne!(altered, text);
            assert!(
                matches!(read(altered.as_bytes()), Err(Refused::Checksum { .. })),
                "{from}: {:?}",
                read(altered.as_bytes())
            );
        }
        assert_eq!(read(b"PK\x03\x04"), Err(Refused::NotABackup));
        // A header altered to match a removed record still fails on the counts.
        let mut h = header();
        h.counts = BTreeMap::new();
        let forged = write(h, &snapshot()).unwrap();
        let text = String::from_utf8(forged).unwrap();
        let forged = text.replacen("\"tokens\":3", "\"tokens\":4", 1);
        let forged = reseal(forged.as_bytes());
        assert!(
            matches!(read(&forged), Err(Refused::Count { ref what, .. }) if what == "tokens"),
            "{:?}",
            read(&forged)
        );
    }

    /// `file` with its header's checksum recomputed: an alteration made on purpose.
    fn reseal(file: &[u8]) -> Vec<u8> {
        let text = std::str::from_utf8(file).unwrap();
        let mut lines = text.splitn(3, '\n');
        let (magic, header, body) = (
            lines.next().unwrap(),
            lines.next().unwrap(),
            lines.next().unwrap(),
        );
        let mut header: Header = serde_json::from_str(header).unwrap();
        header.sha256 = checksum(&header, body.as_bytes()).unwrap();
        let mut out = format!("{magic}\n").into_bytes();
        line(&mut out, &header).unwrap();
        out.extend_from_slice(body.as_bytes());
        out
    }

    /// A format-1 file (its checksum over the records only), as the release before wrote it.
    #[test]
    fn a_format_1_file_still_reads() {
        let mut h = header();
        h.format = 1;
        h.counts = snapshot().counts();
        let file = write(header(), &snapshot()).unwrap();
        let text = std::str::from_utf8(&file).unwrap();
        let body = text.splitn(3, '\n').nth(2).unwrap();
        h.sha256 = hex::encode(Sha256::digest(body.as_bytes()));
        let mut old = format!("{MAGIC}\n").into_bytes();
        line(&mut old, &h).unwrap();
        old.extend_from_slice(body.as_bytes());
        let (read_header, read_snapshot) = read(&old).unwrap();
        assert_eq!(read_header.format, 1);
        assert_eq!(read_snapshot, snapshot());
        let mut flipped = old.clone();
        let last = flipped.len() - 3;
        flipped[last] ^= 0x01;
        assert!(matches!(read(&flipped), Err(Refused::Checksum { .. })));
    }
}
