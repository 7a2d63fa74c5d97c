//! Serving a router on a TCP listener with the limits `axum::serve` lacks: a deadline for a
//! request's header, an idle keep-alive timeout, and a cap on open connections that stays below
//! the process's file-descriptor limit.
//!
//! When the cap is reached, the connection that has waited longest without a request in flight
//! (idle keep-alive, never sent a byte, or still dribbling a header) is closed to make room, as
//! nginx reuses idle keep-alive connections: a flood of idle or slow connections can hold at
//! most the slots nobody is using, never a real client's. A connection with a request in
//! flight is never closed for room.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Limits of one listener.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Open connections at most.
    pub max_connections: usize,
    /// From a request's first byte to its complete header.
    pub header_read_timeout: Duration,
    /// A connection with no request in flight and no new request arriving is closed after this.
    pub idle_timeout: Duration,
    /// Requests carry their peer's address (`ConnectInfo`): only the connector door's
    /// per-source limits read it, so the static door's hot path does not pay for it.
    pub record_peer: bool,
}

/// Raises the soft file-descriptor limit to the hard one (a systemd unit gets 1,024 soft) and
/// returns the limit now in force, or `None` where it cannot be read.
pub fn raise_descriptor_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => Some(limit),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the open-file limit");
            None
        }
    }
}

/// How many connections both listeners may hold together under `descriptor_limit`: what is
/// left after the store, audit files, upstream connections and the like (a quarter of the
/// limit, at least 64 and at most 4,096 descriptors).
pub fn connection_budget(descriptor_limit: u64) -> usize {
    let headroom = (descriptor_limit / 4).clamp(64, 4096);
    usize::try_from(descriptor_limit.saturating_sub(headroom)).unwrap_or(usize::MAX)
}

/// Serves `router` on `listener` until `shutdown`, then lets requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let connections = Arc::new(Connections::default());
    let mut tasks = JoinSet::new();
    let accept_errors = crate::runtime::server::telemetry::Sampled::new(Duration::from_secs(10));
    let refusals = crate::runtime::server::telemetry::Sampled::new(Duration::from_secs(10));
    let mut next_id = 0_u64;
    loop {
        while tasks.try_join_next().is_some() {}
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of descriptors (or a connection reset before accept): wait a moment
                // rather than spin; existing connections keep being served.
                if let Some(suppressed) = accept_errors.tick() {
                    tracing::warn!(error = %e, suppressed, "cannot accept a connection");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if connections.len() >= limits.max_connections {
            let Some(victim) = connections.evict_idlest() else {
                // Every connection has a request in flight: refuse this one.
                if let Some(suppressed) = refusals.tick() {
                    tracing::warn!(
                        max = limits.max_connections,
                        suppressed,
                        "connection limit reached with every connection busy; refused a connection"
                    );
                }
                drop(stream);
                continue;
            };
            // Accept no further until the evicted socket is really closed: otherwise a fast
            // flood outruns the evictions and the descriptors with it.
            let _ = tokio::time::timeout(Duration::from_secs(1), victim.cancelled_owned()).await;
        }
        let _ = stream.set_nodelay(true);
        next_id += 1;
        let conn = connections.open(next_id);
        let router = router.clone();
        let shutdown = shutdown.clone();
        let registry = connections.clone();
        tasks.spawn(async move {
            serve_connection(stream, peer, router, limits, &conn, shutdown).await;
            registry.close(conn.id);
            conn.closed.cancel();
        });
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

async fn serve_connection(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    router: Router,
    limits: Limits,
    conn: &Arc<Conn>,
    shutdown: CancellationToken,
) {
    let activity = conn.activity.clone();
    let body_timeout = limits.header_read_timeout;
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let busy = Busy::start(activity.clone());
        let router = router.clone();
        // A header sent in time and then a body dribbled forever would hold the connection
        // busy (and unevictable): the body gets the same deadline as the header.
        let mut request = request.map(|body| {
            Body::new(DeadlineBody {
                inner: body,
                deadline: tokio::time::Instant::now() + body_timeout,
                timer: None,
            })
        });
        // Who is asking, for the per-source limits of the anonymous endpoints.
        if limits.record_peer {
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
        }
        async move {
            let response = router.oneshot(request).await;
            // The connection stays busy until the response body is written (or dropped).
            response.map(|response| {
                response.map(|body| {
                    Body::new(body.map_frame(move |frame| {
                        let _busy = &busy;
                        frame
                    }))
                })
            })
        }
    });
    let io = TokioIo::new(Tracked {
        inner: stream,
        activity: conn.activity.clone(),
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        // `WWW-Authenticate`, not `www-authenticate`: header names are case-insensitive, but
        // claude.ai's connector has been seen to miss a lower-case one and never start OAuth
        // discovery (anthropics/claude-ai-mcp#82).
        .title_case_headers(true)
        .serve_connection(io, service);
    tokio::pin!(connection);
    let expired = expiry(&conn.activity, limits);
    tokio::pin!(expired);
    let mut draining = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = conn.evict.cancelled() => return,
            () = &mut expired => return,
            () = shutdown.cancelled(), if !draining => {
                draining = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// A request body that fails once its deadline passes. The timer is only set when the body is
/// not already there: a small POST arrives with its header and never needs one.
struct DeadlineBody {
    inner: Incoming,
    deadline: tokio::time::Instant,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl hyper::body::Body for DeadlineBody {
    type Data = hyper::body::Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = self.deadline;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err("request body not received in time".into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// Resolves when the connection has been idle, or mid-header, for too long.
async fn expiry(activity: &Activity, limits: Limits) {
    loop {
        let now = activity.now_ms();
        let deadline = if activity.in_flight.load(Ordering::Acquire) > 0 {
            None
        } else {
            Some(match activity.head_since_ms.load(Ordering::Acquire) {
                NONE => {
                    activity.idle_since_ms.load(Ordering::Acquire) + millis(limits.idle_timeout)
                }
                since => since + millis(limits.header_read_timeout),
            })
        };
        let wait = match deadline {
            Some(deadline) if deadline <= now => return,
            Some(deadline) => deadline - now,
            // Busy: look again after the shorter of the two timeouts.
            None => millis(limits.header_read_timeout.min(limits.idle_timeout)),
        };
        // A request's first byte moves the deadline (idle → header): wake for it.
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(wait.max(10))) => {}
            () = activity.head_started.notified() => {}
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 4)
}

const NONE: u64 = u64::MAX;

/// What one connection is doing, shared by its reader, its service and its watchdog. Times are
/// milliseconds since the connection was accepted.
struct Activity {
    accepted: Instant,
    /// Requests dispatched whose response is not yet written.
    in_flight: AtomicU32,
    /// When the connection last had nothing in flight, or last wrote a byte.
    idle_since_ms: AtomicU64,
    /// When the first byte of the next request arrived; `NONE` while none has.
    head_since_ms: AtomicU64,
    /// Told when `head_since_ms` is set, so the watchdog starts the header deadline at once.
    head_started: tokio::sync::Notify,
}

impl Activity {
    fn now_ms(&self) -> u64 {
        millis(self.accepted.elapsed())
    }
}

/// Holds the connection busy from a request's dispatch until its response body is done.
struct Busy(Arc<Activity>);

impl Busy {
    fn start(activity: Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        activity.head_since_ms.store(NONE, Ordering::Release);
        Busy(activity)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let now = self.0.now_ms();
        self.0.idle_since_ms.store(now, Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The connection's socket, noting when the next request's first byte arrives.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let activity = &self.activity;
            if activity.in_flight.load(Ordering::Acquire) == 0 {
                let now = activity.now_ms();
                if activity
                    .head_since_ms
                    .compare_exchange(NONE, now, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    activity.head_started.notify_one();
                }
            }
        }
        polled
    }
}

impl Tracked {
    /// Bytes going out are activity. hyper takes a response body's last frame (a backup is
    /// one frame of 59 MB) before its bytes are written, and the connection is then no longer
    /// busy: while a slow reader keeps reading, neither the idle timeout nor an eviction for
    /// room may take it for idle and cut the response.
    fn wrote(&self, polled: &Poll<std::io::Result<usize>>) {
        if matches!(polled, Poll::Ready(Ok(n)) if *n > 0) {
            let activity = &self.activity;
            activity
                .idle_since_ms
                .store(activity.now_ms(), Ordering::Release);
        }
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(&polled);
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// One open connection, as the registry sees it.
struct Conn {
    id: u64,
    activity: Arc<Activity>,
    /// Cancelled to close the connection for room.
    evict: CancellationToken,
    /// Cancelled once the connection's socket is closed.
    closed: CancellationToken,
}

/// The open connections of one listener.
#[derive(Default)]
struct Connections {
    open: Mutex<HashMap<u64, Arc<Conn>>>,
}

impl Connections {
    fn len(&self) -> usize {
        self.open.lock().map(|open| open.len()).unwrap_or(0)
    }

    fn open(&self, id: u64) -> Arc<Conn> {
        let conn = Arc::new(Conn {
            id,
            activity: Arc::new(Activity {
                accepted: Instant::now(),
                in_flight: AtomicU32::new(0),
                idle_since_ms: AtomicU64::new(0),
                head_since_ms: AtomicU64::new(NONE),
                head_started: tokio::sync::Notify::new(),
            }),
            evict: CancellationToken::new(),
            closed: CancellationToken::new(),
        });
        if let Ok(mut open) = self.open.lock() {
            open.insert(id, conn.clone());
        }
        conn
    }

    fn close(&self, id: u64) {
        if let Ok(mut open) = self.open.lock() {
            open.remove(&id);
        }
    }

    /// Closes the connection that has gone longest without a request in flight and returns
    /// what is cancelled once its socket is closed; `None` when every connection is busy.
    fn evict_idlest(&self) -> Option<CancellationToken> {
        let Ok(mut open) = self.open.lock() else {
            return None;
        };
        let now = Instant::now();
        let idlest = open
            .values()
            .filter(|c| c.activity.in_flight.load(Ordering::Acquire) == 0)
            .max_by_key(|c| {
                let since = c.activity.idle_since_ms.load(Ordering::Acquire);
                millis(now.duration_since(c.activity.accepted)).saturating_sub(since)
            })
            .map(|c| c.id);
        let conn = idlest.and_then(|id| open.remove(&id))?;
        conn.evict.cancel();
        Some(conn.closed.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A 16 MiB answer (more than the kernel buffers on both sides hold) read at 10 MB/s
    /// arrives whole though it takes more than twice the idle timeout: the connection is idle
    /// only once its writes stop. (The server's socket wakes its writer each time half of its
    /// 4 MiB buffer has drained, 0.2 s at this rate: within the idle timeout.)
    #[tokio::test]
    async fn an_answer_draining_to_a_slow_reader_outlives_the_idle_timeout() {
        const SIZE: usize = 16 << 20;
        const BYTES_PER_SEC: f64 = 10e6;
        let router = Router::new().route("/big", axum::routing::get(|| async { vec![7u8; SIZE] }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = Limits {
            max_connections: 16,
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_millis(600),
            record_peer: false,
        };
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve(listener, router, limits, shutdown.clone()));
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(16 * 1024).unwrap();
        let mut stream = socket.connect(addr).await.unwrap();
        stream
            .write_all(b"GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let started = Instant::now();
        let mut got = 0;
        let mut buf = vec![0u8; 64 * 1024];
        // Until the server closes the connection, idle once the answer is out.
        while let Ok(n @ 1..) = stream.read(&mut buf).await {
            got += n;
            let due = Duration::from_secs_f64(got as f64 / BYTES_PER_SEC);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
        let took = started.elapsed();
        shutdown.cancel();
        let _ = server.await;
        assert!(
            got > SIZE,
            "{got} bytes of a {SIZE}-byte answer arrived, in {took:?}"
        );
        assert!(
            took > limits.idle_timeout * 2,
            "read too fast to prove it: {took:?}"
        );
    }

    #[test]
    fn the_budget_leaves_headroom_below_the_descriptor_limit() {
        assert_eq!(connection_budget(1024), 768);
        assert_eq!(connection_budget(256), 192);
        assert_eq!(connection_budget(100), 36);
        assert_eq!(connection_budget(1 << 20), (1 << 20) - 4096);
    }
}
