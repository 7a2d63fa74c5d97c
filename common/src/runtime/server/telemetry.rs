//! Logging (`tracing` to stderr, text for people or JSON for machines, filtered by `RUST_LOG`),
//! the OTLP trace export (`otlp`), and the stop signals both binaries honour.

pub mod otlp;

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Installs the process's subscriber: the log on stderr and, when the environment configures an
/// OTLP endpoint, the trace exporter (returned, to be shut down on the way out). The two see
/// different things: the log never shows trace spans, and the exporter sees nothing but them
/// (`crate::trace::TARGET`) — never a log event, which may carry a whole request.
pub fn init(json: bool, service: &str) -> anyhow::Result<Option<otlp::Otlp>> {
    use tracing_subscriber::util::SubscriberInitExt as _;

    let otlp = otlp::Otlp::from_env(service)?;
    let rust_log = std::env::var("RUST_LOG").ok();
    // A second init (tests) is harmless: the first subscriber stays.
    let _ = subscriber(json, rust_log.as_deref(), otlp.as_ref().map(|o| &o.tracer)).try_init();
    if otlp.is_some() {
        tracing::info!("exporting traces over OTLP");
    }
    Ok(otlp)
}

/// The subscriber `init` installs: the log layer, and the exporter's layer only when there is a
/// tracer. (Not an absent `Option` layer: that declares an interest in every callsite, which
/// would build every trace span, and evaluate its fields, on every request with nothing to
/// send it to.)
fn subscriber(
    json: bool,
    rust_log: Option<&str>,
    tracer: Option<&opentelemetry_sdk::trace::Tracer>,
) -> Box<dyn tracing::Subscriber + Send + Sync> {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    let filter = log_filter(rust_log);
    // No colours: every control character a field value could carry is escaped on the way out
    // (`EscapedStderr`), the formatter's own colour codes included. JSON escapes them itself.
    let log = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .with_target(false)
            .with_writer(std::io::stderr)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_target(false)
            .with_writer(EscapedStderr)
            .boxed()
    };
    let registry = tracing_subscriber::registry().with(log.with_filter(filter));
    let Some(tracer) = tracer else {
        return Box::new(registry);
    };
    let traces = tracing_opentelemetry::layer()
        .with_tracer(tracer.clone())
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_level(false)
        .with_tracked_inactivity(false)
        .with_filter(
            tracing_subscriber::filter::Targets::new()
                .with_target(crate::trace::TARGET, tracing::Level::TRACE),
        );
    Box::new(registry.with(traces))
}

/// The filter for `RUST_LOG`. rmcp logs three INFO lines per stateless request (a third of the
/// server's throughput under load), so it stays at WARN unless `RUST_LOG` names it.
pub fn filter_directives(rust_log: Option<&str>) -> String {
    match rust_log.map(str::trim) {
        None | Some("") => "info,rmcp=warn".to_owned(),
        Some(directives) if directives.contains("rmcp") => directives.to_owned(),
        Some(directives) => format!("{directives},rmcp=warn"),
    }
}

/// What the log writes: `RUST_LOG` as [`filter_directives`] reads it, our trace spans never
/// (they are the exporter's), and rmcp's dumps of whole MCP messages never either, whatever
/// `RUST_LOG` says: `rmcp::service` at DEBUG and the HTTP transport at TRACE write tool
/// arguments and results (tenant data, form submissions). A cap beside the directives, not a
/// directive among them: a directive can only set a level, and would raise rmcp's INFO lines
/// where `RUST_LOG` left rmcp at WARN.
pub fn log_filter<S>(rust_log: Option<&str>) -> impl tracing_subscriber::layer::Filter<S> + use<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use tracing_subscriber::filter::{FilterExt as _, LevelFilter, Targets};
    let directives = EnvFilter::new(format!(
        "{},{}=off",
        filter_directives(rust_log),
        crate::trace::TARGET
    ));
    let no_message_dumps = Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_target("rmcp::service", LevelFilter::INFO)
        .with_target(
            "rmcp::transport::streamable_http_server::tower",
            LevelFilter::DEBUG,
        );
    directives.and(no_message_dumps)
}

/// Standard error for the text log, with every control character a field value could carry
/// written as an escape: a newline in a tool argument cannot forge a log line, an ESC cannot
/// drive the operator's terminal. (tracing-subscriber escapes ESC only in some values.)
#[derive(Clone, Copy)]
pub struct EscapedStderr;

impl<'a> MakeWriter<'a> for EscapedStderr {
    type Writer = EscapedStderr;
    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}

impl Write for EscapedStderr {
    /// tracing-subscriber writes each event with one `write_all`: one line, one newline at the end.
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::stderr().lock().write_all(&escape_line(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Escapes control characters (C0 but tab, DEL, and C1 as UTF-8) except one trailing newline.
pub fn escape_line(line: &[u8]) -> Vec<u8> {
    let (body, newline) = match line.strip_suffix(b"\n") {
        Some(body) => (body, true),
        None => (line, false),
    };
    let mut out = Vec::with_capacity(line.len() + 8);
    let mut bytes = body.iter().copied().peekable();
    while let Some(b) = bytes.next() {
        match b {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.push(b),
            0..=0x1f | 0x7f => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
            // U+0080..U+009F (C1 controls, such as the one-byte CSI) are C2 80..C2 9F in UTF-8.
            0xC2 if bytes
                .peek()
                .is_some_and(|next| (0x80..=0x9F).contains(next)) =>
            {
                let code = bytes.next().unwrap_or_default();
                out.extend_from_slice(format!("\\u{{{code:x}}}").as_bytes());
            }
            _ => out.push(b),
        }
    }
    if newline {
        out.push(b'\n');
    }
    out
}

/// Escapes control characters in text shown on an operator's terminal (CLI listings): a
/// tenant-chosen name or tool cannot move the cursor, recolour or forge lines.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(text.chars().flat_map(char::escape_default).collect())
}

/// One log line per window for something that can happen thousands of times a second
/// (refused requests, accept errors), with the count of the ones not logged.
pub struct Sampled {
    window_ms: u64,
    started: Instant,
    next_due_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl Sampled {
    pub fn new(window: Duration) -> Self {
        Self {
            window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX),
            started: Instant::now(),
            next_due_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)`: log now, mentioning the `n` occurrences not logged since the last line.
    pub fn tick(&self) -> Option<u64> {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let due = self.next_due_ms.load(Ordering::Acquire);
        if now >= due
            && self
                .next_due_ms
                .compare_exchange(
                    due,
                    now.saturating_add(self.window_ms),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::AcqRel));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// With nothing to export to, a trace span is disabled where it is made: nothing of it is
    /// built or evaluated on the request path.
    #[test]
    fn without_an_exporter_trace_spans_cost_nothing() {
        let evaluated = std::sync::atomic::AtomicBool::new(false);
        let probe = || {
            evaluated.store(true, Ordering::Relaxed);
            "value"
        };
        tracing::subscriber::with_default(subscriber(false, None, None), || {
            let span = tracing::info_span!(target: crate::trace::TARGET, "mcp", field = probe());
            assert!(span.is_disabled());
        });
        assert!(
            !evaluated.load(Ordering::Relaxed),
            "a disabled span's fields were evaluated"
        );
    }

    #[test]
    fn a_value_cannot_forge_a_log_line() {
        let line = "INFO tool call failed error=bad \"x\nINFO forged\r\x07\" \x1b[1m \u{9b}2J é\n";
        assert_eq!(
            String::from_utf8(escape_line(line.as_bytes())).unwrap(),
            "INFO tool call failed error=bad \"x\\nINFO forged\\r\\x07\" \\x1b[1m \\u{9b}2J é\n"
        );
        assert_eq!(printable("plain"), "plain");
        assert_eq!(printable("a\nb\x1b[2J"), "a\\nb\\u{1b}[2J");
    }

    #[test]
    fn rmcp_stays_quiet_unless_named() {
        assert_eq!(filter_directives(None), "info,rmcp=warn");
        assert_eq!(filter_directives(Some("debug")), "debug,rmcp=warn");
        assert_eq!(
            filter_directives(Some("debug,rmcp=debug")),
            "debug,rmcp=debug"
        );
    }

    /// What `log_filter(rust_log)` lets through of rmcp's lines: its message dumps (tool
    /// results: form submissions) never, its per-request INFO lines only when `RUST_LOG` names
    /// rmcp, and everything else as `RUST_LOG` says.
    fn written(rust_log: Option<&str>) -> String {
        use tracing_subscriber::Layer as _;
        use tracing_subscriber::layer::SubscriberExt as _;
        let out = Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = out.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .with_filter(log_filter(rust_log));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!(target: "rmcp::service", "dump: a tool result");
            tracing::trace!(target: "rmcp::transport::streamable_http_server::tower", "dump: a body");
            tracing::info!(target: "rmcp::service", "serve finished");
            tracing::debug!(target: "rmcp::transport::streamable_http_server::tower", "session closed");
            tracing::debug!(target: "common::anything", "ours at debug");
        });
        let bytes = out.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut b) = self.0.lock() {
                b.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn rmcp_message_dumps_never_pass() {
        let traced = written(Some("debug,rmcp=trace"));
        assert!(!traced.contains("dump:"), "{traced}");
        assert!(traced.contains("serve finished"), "{traced}");
        assert!(traced.contains("session closed"), "{traced}");
        assert!(traced.contains("ours at debug"), "{traced}");
        // Not named: rmcp at WARN, its INFO lines off too.
        let default = written(None);
        assert!(!default.contains("dump:"), "{default}");
        assert!(!default.contains("serve finished"), "{default}");
        let debug = written(Some("debug"));
        assert!(!debug.contains("serve finished"), "{debug}");
        assert!(debug.contains("ours at debug"), "{debug}");
    }

    #[test]
    fn sampling_logs_once_per_window_and_counts_the_rest() {
        let sampled = Sampled::new(Duration::from_secs(3600));
        assert_eq!(sampled.tick(), Some(0));
        assert_eq!(sampled.tick(), None);
        assert_eq!(sampled.tick(), None);
        assert_eq!(sampled.suppressed.load(Ordering::Relaxed), 2);
    }
}
