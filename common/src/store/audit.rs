//! The audit log: one record per tool call and per admin action, as JSON lines in daily
//! segment files under `<store>/audit/` (`YYYY-MM-DD.jsonl`), beside the sled store, or as rows
//! of the `audit` table with PostgreSQL (every replica's, one query). Records hold a digest of
//! the arguments, never their values: no tokens, secrets or CMS field contents.
//!
//! Append-only files instead of a sled tree: a busy server writes millions of records a day,
//! and sled keeps per-page state for every one of them in memory. Retention deletes whole days.
//!
//! Writes leave the request path: `append` queues the record for a writer thread that writes
//! them in batches. Reads first wait for everything queued before them, so a caller always sees
//! its own calls. A crash can lose the last moments of queued records (a few milliseconds
//! under load); a full queue drops records and counts them rather than slowing every call.
//! With PostgreSQL a batch that cannot be written (the database restarting) is kept and
//! written with the next, up to [`PG_PENDING`] records.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::StoreError;
use super::pg::Pg;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The tenant acted for, or `admin` for admin actions.
    pub tenant: String,
    /// Tool name, or `admin:<action>`.
    pub action: String,
    /// First 16 bytes of the SHA-256 of the canonical arguments, hex.
    pub args_digest: String,
    /// `ok`, or the kind of failure (`invalid_arguments`, `not_yours`, `upstream`, …).
    pub outcome: String,
    pub duration_us: u64,
    pub request_id: String,
    /// The person acting, for a call made with an OAuth token or a person's own action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
    /// The OAuth client a call came through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Digest of a JSON value; `serde_json` maps keep keys sorted, so equal arguments digest equally.
pub fn digest<T: Serialize + ?Sized>(value: &T) -> String {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    hex::encode(&Sha256::digest(&bytes)[..16])
}

/// Records waiting for the writer at most; beyond this they are dropped and counted.
const QUEUE: usize = 16_384;
/// With PostgreSQL: records kept across failed writes (a database restart under load).
const PG_PENDING: usize = 200_000;
/// After a record arrives the writer waits this long, then writes everything queued at once.
const BATCH_WINDOW: Duration = Duration::from_millis(10);
/// With PostgreSQL: one insert (a transaction) per window, so a longer one; a query still
/// waits only for what was queued before it (`sync` is answered as soon as it is written).
const PG_BATCH_WINDOW: Duration = Duration::from_millis(50);

enum Message {
    Record(Box<AuditRecord>),
    /// Answered once everything queued before it is written.
    Sync(SyncSender<()>),
}

struct Writer {
    sender: Mutex<Option<SyncSender<Message>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    dropped: AtomicU64,
}

impl Drop for Writer {
    /// Closing the queue ends the writer once it has written what was queued.
    fn drop(&mut self) {
        if let Ok(mut sender) = self.sender.lock() {
            sender.take();
        }
        if let Ok(mut thread) = self.thread.lock()
            && let Some(thread) = thread.take()
        {
            let _ = thread.join();
        }
    }
}

/// Where records go.
#[derive(Clone)]
enum Sink {
    Files(PathBuf),
    Pg(Pg),
}

#[derive(Clone)]
pub struct AuditLog {
    sink: Sink,
    writer: Arc<Writer>,
}

/// `YYYY-MM-DD` of a Unix time in milliseconds (civil from days, Howard Hinnant's algorithm).
pub(crate) fn day(at_ms: u64) -> String {
    let z = (at_ms / 86_400_000) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

struct Segment {
    day: String,
    file: BufWriter<File>,
}

/// Writes `records` into the day files of the empty audit directory `dir`, synced (`store
/// restore`; the log itself is not open).
pub(crate) fn restore_files(dir: &Path, records: &[AuditRecord]) -> Result<(), StoreError> {
    let io = |e: std::io::Error| StoreError::Io(format!("audit dir {}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut segment: Option<Segment> = None;
    for record in records {
        let record_day = day(record.at_ms);
        if segment.as_ref().is_none_or(|s| s.day != record_day) {
            if let Some(done) = segment.take() {
                finish_segment(done).map_err(io)?;
            }
            segment = Some(open_segment(dir, &record_day).map_err(io)?);
        }
        if let Some(open) = segment.as_mut() {
            serde_json::to_writer(&mut open.file, record)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            open.file.write_all(b"\n").map_err(io)?;
        }
    }
    if let Some(done) = segment {
        finish_segment(done).map_err(io)?;
    }
    Ok(())
}

fn finish_segment(segment: Segment) -> std::io::Result<()> {
    let file = segment.file.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()
}

fn open_segment(dir: &Path, day: &str) -> std::io::Result<Segment> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(dir.join(format!("{day}.jsonl")))?;
    Ok(Segment {
        day: day.to_owned(),
        file: BufWriter::with_capacity(64 * 1024, file),
    })
}

/// What the writer thread writes to.
enum Target {
    Files {
        dir: PathBuf,
        segment: Option<Segment>,
    },
    Pg {
        pg: Pg,
        pending: Vec<super::pg::AuditRow>,
    },
}

impl Target {
    fn write(&mut self, record: &AuditRecord) {
        match self {
            Target::Files { dir, segment } => write_record(dir, segment, record),
            Target::Pg { pending, .. } => {
                if pending.len() >= PG_PENDING {
                    tracing::error!(
                        "audit records waiting for PostgreSQL exceed {PG_PENDING}: dropped"
                    );
                    return;
                }
                if let Ok(json) = serde_json::to_string(record) {
                    let at = i64::try_from(record.at_ms).unwrap_or(i64::MAX);
                    pending.push((at, record.tenant.clone(), json));
                }
            }
        }
    }

    /// Records written but not yet accepted (PostgreSQL down): retried on a timer too.
    fn waiting(&self) -> bool {
        matches!(self, Target::Pg { pending, .. } if !pending.is_empty())
    }

    fn finish_batch(&mut self) {
        match self {
            Target::Files { segment, .. } => {
                if let Some(s) = segment.as_mut()
                    && let Err(e) = s.file.flush()
                {
                    tracing::error!(error = %e, "audit records not flushed");
                }
            }
            Target::Pg { pg, pending } => {
                if pending.is_empty() {
                    return;
                }
                let batch = Arc::new(std::mem::take(pending));
                if let Err(e) = pg.insert_audit(batch.clone()) {
                    // Kept for the next try (copied only if a timed-out attempt still holds it).
                    *pending = Arc::try_unwrap(batch).unwrap_or_else(|shared| (*shared).clone());
                    tracing::warn!(
                        error = %e,
                        waiting = pending.len(),
                        "audit records not written yet; kept for the next batch"
                    );
                }
            }
        }
    }
}

fn write_batches(mut target: Target, queue: Receiver<Message>) {
    // Block only while the queue is empty. After the first record of a batch, sleep out the
    // batch window and then take everything queued: on a busy server that is one wake-up per
    // window, where waking for every record cost a context switch per tool call on the core
    // that serves them.
    loop {
        let first = if target.waiting() {
            // Kept records are retried every half second even when no new one arrives.
            match queue.recv_timeout(Duration::from_millis(500)) {
                Ok(message) => message,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    target.finish_batch();
                    continue;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    target.finish_batch();
                    return;
                }
            }
        } else {
            match queue.recv() {
                Ok(message) => message,
                Err(_) => return,
            }
        };
        let mut waiting = Vec::new();
        let mut closed = false;
        if matches!(first, Message::Record(_)) {
            std::thread::sleep(match target {
                Target::Files { .. } => BATCH_WINDOW,
                Target::Pg { .. } => PG_BATCH_WINDOW,
            });
        }
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                Message::Record(record) => target.write(&record),
                Message::Sync(reply) => waiting.push(reply),
            }
            next = match queue.try_recv() {
                Ok(message) => Some(message),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => {
                    closed = true;
                    None
                }
            };
        }
        target.finish_batch();
        for reply in waiting {
            let _ = reply.send(());
        }
        if closed {
            return;
        }
    }
}

fn write_record(dir: &Path, segment: &mut Option<Segment>, record: &AuditRecord) {
    let today = day(record.at_ms);
    if segment.as_ref().is_none_or(|s| s.day != today) {
        if let Some(mut old) = segment.take() {
            let _ = old.file.flush();
        }
        match open_segment(dir, &today) {
            Ok(s) => *segment = Some(s),
            Err(e) => tracing::error!(error = %e, "audit segment not opened"),
        }
    }
    if let Some(s) = segment.as_mut()
        && let Ok(line) = serde_json::to_vec(record)
        && (s.file.write_all(&line).is_err() || s.file.write_all(b"\n").is_err())
    {
        tracing::error!("audit record not written");
    }
}

impl AuditLog {
    /// The log in `dir` (created, mode 0700).
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Io(format!("audit dir: {e}")))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
        let target = Target::Files {
            dir: dir.to_owned(),
            segment: None,
        };
        Self::start(Sink::Files(dir.to_owned()), target)
    }

    /// The log in PostgreSQL's `audit` table.
    pub fn open_pg(pg: Pg) -> Result<Self, StoreError> {
        let target = Target::Pg {
            pg: pg.clone(),
            pending: Vec::new(),
        };
        Self::start(Sink::Pg(pg), target)
    }

    fn start(sink: Sink, target: Target) -> Result<Self, StoreError> {
        let (sender, queue) = sync_channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || write_batches(target, queue))
            .map_err(|e| StoreError::Io(format!("cannot start the audit writer: {e}")))?;
        let writer = Writer {
            sender: Mutex::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
            dropped: AtomicU64::new(0),
        };
        Ok(Self {
            sink,
            writer: Arc::new(writer),
        })
    }

    /// Queues a record for the writer; never blocks the caller.
    pub fn append(&self, record: AuditRecord) -> Result<(), StoreError> {
        let sender = self.writer.sender.lock().ok().and_then(|s| s.clone());
        let Some(sender) = sender else {
            return Err(StoreError::Io("audit writer stopped".into()));
        };
        match sender.try_send(Message::Record(Box::new(record))) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                let dropped = self.writer.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if dropped.is_power_of_two() {
                    tracing::error!(dropped, "audit queue full: records dropped");
                }
                Ok(())
            }
            Err(TrySendError::Disconnected(_)) => {
                Err(StoreError::Io("audit writer stopped".into()))
            }
        }
    }

    /// Records dropped because the queue was full, since start.
    pub fn dropped(&self) -> u64 {
        self.writer.dropped.load(Ordering::Relaxed)
    }

    /// Waits until every record queued so far is written.
    pub fn sync(&self) {
        let sender = self.writer.sender.lock().ok().and_then(|s| s.clone());
        if let Some(sender) = sender {
            let (reply, done) = sync_channel(1);
            if sender.send(Message::Sync(reply)).is_ok() {
                let _ = done.recv();
            }
        }
    }

    /// Segment files, oldest first.
    fn segments(dir: &Path) -> Result<Vec<(String, PathBuf)>, StoreError> {
        let mut out = Vec::new();
        let entries =
            std::fs::read_dir(dir).map_err(|e| StoreError::Io(format!("audit dir: {e}")))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(day) = name.strip_suffix(".jsonl") {
                out.push((day.to_owned(), entry.path()));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Newest first, at most `limit`, optionally one tenant's, from `since_ms` on; includes
    /// everything appended before the call.
    pub fn query(
        &self,
        tenant: Option<&str>,
        since_ms: u64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.sync();
        let dir = match &self.sink {
            Sink::Files(dir) => dir,
            Sink::Pg(pg) => {
                let rows = pg.query_audit(
                    tenant.map(str::to_owned),
                    i64::try_from(since_ms).unwrap_or(i64::MAX),
                    i64::try_from(limit).unwrap_or(i64::MAX),
                )?;
                return Ok(rows
                    .iter()
                    .filter_map(|row| serde_json::from_str(row).ok())
                    .collect());
            }
        };
        let first_day = day(since_ms);
        let mut out = Vec::new();
        for (segment_day, path) in Self::segments(dir)?.into_iter().rev() {
            if segment_day < first_day {
                break;
            }
            let file =
                File::open(&path).map_err(|e| StoreError::Io(format!("audit segment: {e}")))?;
            let mut records: Vec<AuditRecord> = BufReader::new(file)
                .lines()
                .map_while(Result::ok)
                .filter_map(|line| serde_json::from_str(&line).ok())
                .filter(|r: &AuditRecord| {
                    r.at_ms >= since_ms && tenant.is_none_or(|t| r.tenant == t)
                })
                .collect();
            records.sort_by_key(|r| std::cmp::Reverse(r.at_ms));
            for record in records {
                out.push(record);
                if out.len() >= limit {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }

    /// Every record, oldest day first (what `store migrate` copies).
    pub fn export(&self) -> Result<Vec<AuditRecord>, StoreError> {
        self.sync();
        let Sink::Files(dir) = &self.sink else {
            return Err(StoreError::Io(
                "only a file audit log can be copied out".into(),
            ));
        };
        let mut out = Vec::new();
        for (_, path) in Self::segments(dir)? {
            let file =
                File::open(&path).map_err(|e| StoreError::Io(format!("audit segment: {e}")))?;
            out.extend(
                BufReader::new(file)
                    .lines()
                    .map_while(Result::ok)
                    .filter_map(|line| serde_json::from_str::<AuditRecord>(&line).ok()),
            );
        }
        Ok(out)
    }

    /// Deletes the days that end before `before_ms` (files), or the records older than it
    /// (PostgreSQL); returns how many.
    pub fn prune(&self, before_ms: u64) -> Result<usize, StoreError> {
        self.sync();
        let dir = match &self.sink {
            Sink::Files(dir) => dir,
            Sink::Pg(pg) => {
                // Whole days, as with files: the same retention either way.
                let keep_from = before_ms - before_ms % 86_400_000;
                return pg.prune_audit(i64::try_from(keep_from).unwrap_or(i64::MAX));
            }
        };
        let keep_from = day(before_ms);
        let mut removed = 0;
        for (segment_day, path) in Self::segments(dir)? {
            if segment_day < keep_from {
                std::fs::remove_file(&path)
                    .map_err(|e| StoreError::Io(format!("audit prune: {e}")))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400_000;

    fn record(at_ms: u64, tenant: &str) -> AuditRecord {
        AuditRecord {
            at_ms,
            tenant: tenant.into(),
            action: "whoami".into(),
            args_digest: digest(&serde_json::json!({})),
            outcome: "ok".into(),
            duration_us: 1,
            request_id: "r".into(),
            person: None,
            client: None,
        }
    }

    #[test]
    fn query_filters_orders_and_prunes_by_day() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        for (at, t) in [(10, "a"), (20, "b"), (DAY + 30, "a"), (2 * DAY + 40, "a")] {
            log.append(record(at, t)).unwrap();
        }
        let a: Vec<u64> = log
            .query(Some("a"), 0, 10)
            .unwrap()
            .iter()
            .map(|r| r.at_ms)
            .collect();
        assert_eq!(a, [2 * DAY + 40, DAY + 30, 10]);
        assert_eq!(log.query(None, 25, 10).unwrap().len(), 2);
        assert_eq!(log.query(None, 0, 1).unwrap()[0].at_ms, 2 * DAY + 40);
        assert_eq!(log.prune(DAY + 5).unwrap(), 1);
        assert_eq!(log.query(None, 0, 10).unwrap().len(), 2);
        assert_eq!(day(0), "1970-01-01");
    }

    #[test]
    fn records_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        AuditLog::open(dir.path())
            .unwrap()
            .append(record(now_ms(), "a"))
            .unwrap();
        let reopened = AuditLog::open(dir.path()).unwrap();
        assert_eq!(reopened.query(Some("a"), 0, 10).unwrap().len(), 1);
    }
}
