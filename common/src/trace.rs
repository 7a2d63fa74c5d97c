//! Trace spans, exported over OpenTelemetry when an OTLP endpoint is configured
//! (`runtime::server::telemetry::otlp`): the trace context a request brings, and the spans of
//! upstream calls, PostgreSQL statements and approvals.
//!
//! Every span here is created under one target, [`TARGET`], and the exporter listens to that
//! target only: log events (rmcp's debug lines carry whole requests) never reach it, and with
//! no exporter these spans are disabled where they are written — no fields are evaluated,
//! nothing is allocated. Attributes are set through [`OpenTelemetrySpanExt`], which does
//! nothing on a disabled span.
//!
//! What may become an attribute: names we chose (tool names we serve, upstream names, URL
//! templates, tree names), ids the studio assigned (tenant, person, client, approval), status
//! codes, and client-chosen values capped at [`MAX_CLIENT_VALUE_CHARS`] (request id, protocol
//! version). Never an argument value, a token, a credential, an upstream body, a query string
//! or a `baggage` entry.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::{Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The `tracing` target of every exported span.
pub const TARGET: &str = "studio_mcp::trace";

/// Our own attributes' prefix.
pub const PREFIX: &str = "studio_mcp";

/// Longest client-chosen value kept as an attribute.
pub const MAX_CLIENT_VALUE_CHARS: usize = 64;

/// A client-chosen value as an attribute: at most [`MAX_CLIENT_VALUE_CHARS`] characters, control
/// characters dropped.
pub fn capped(value: &str) -> String {
    value
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_CLIENT_VALUE_CHARS)
        .collect()
}

/// A W3C trace context (`traceparent`, and `tracestate` if any) as a remote span context, if it
/// is well formed. Only these two keys are read: `baggage` is never looked at.
pub fn remote_parent(traceparent: &str, tracestate: Option<&str>) -> Option<SpanContext> {
    struct Carrier<'a>(&'a str, Option<&'a str>);
    impl Extractor for Carrier<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            match key {
                "traceparent" => Some(self.0),
                "tracestate" => self.1,
                _ => None,
            }
        }
        fn keys(&self) -> Vec<&str> {
            vec!["traceparent", "tracestate"]
        }
    }
    // The W3C header is 55 characters; anything much longer is not one.
    if traceparent.len() > 128 || tracestate.is_some_and(|s| s.len() > 512) {
        return None;
    }
    let context = TraceContextPropagator::new().extract(&Carrier(traceparent, tracestate));
    let span = context.span().span_context().clone();
    span.is_valid().then_some(span)
}

/// A span name of two parts (`GET /v2/sites/{site}`, `tools/call whoami`), or the first alone
/// when the second is empty; formatted only when a span is recorded.
pub struct Named<'a>(pub &'a str, pub &'a str);

impl std::fmt::Display for Named<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.1.is_empty() {
            f.write_str(self.0)
        } else {
            write!(f, "{} {}", self.0, self.1)
        }
    }
}

/// Makes `span` a child of `parent` (a client's span). Must come before the span is entered.
pub fn set_remote_parent(span: &Span, parent: SpanContext) {
    let context = opentelemetry::Context::new().with_remote_span_context(parent);
    // Fails only for a span already started, which the callers never pass.
    let _ = span.set_parent(context);
}

/// The span context of `span`, as a `traceparent` value to keep (an approval record keeps its
/// requesting call's), or `None` when it is not recorded.
pub fn traceparent_of(span: &Span) -> Option<String> {
    if span.is_disabled() {
        return None;
    }
    let context = span.context();
    let span_context = context.span().span_context().clone();
    if !span_context.is_valid() {
        return None;
    }
    Some(format!(
        "00-{}-{}-{:02x}",
        span_context.trace_id(),
        span_context.span_id(),
        span_context.trace_flags().to_u8()
    ))
}

/// Links `span` to the span a kept `traceparent` names (an approval's requesting call).
pub fn link_to(span: &Span, traceparent: Option<&str>) {
    if span.is_disabled() {
        return;
    }
    if let Some(context) = traceparent.and_then(|t| remote_parent(t, None)) {
        span.add_link(context);
    }
}

/// A span for one step of an approval (`approval requested`, `decided`, `ran`), a child of the
/// current span, linked to the requesting call's span when the approval kept its context.
/// `state` is the approval's state after the step; empty when the caller sets it at the end
/// (an attribute set twice would be exported twice).
pub fn approval_step(
    step: &'static str,
    id: &str,
    tool: &str,
    state: &'static str,
    requested_in: Option<&str>,
) -> Span {
    let span = tracing::info_span!(
        target: TARGET,
        "approval",
        otel.name = %Named("approval", step),
    );
    if !span.is_disabled() {
        own(&span, "approval.id", id.to_owned());
        if !state.is_empty() {
            own(&span, "approval.state", state);
        }
        own(&span, "approval.tool", tool.to_owned());
        link_to(&span, requested_in);
    }
    span
}

/// Sets one of our own attributes (`studio_mcp.<name>`).
pub fn own(span: &Span, name: &'static str, value: impl Into<opentelemetry::Value>) {
    if !span.is_disabled() {
        span.set_attribute(format!("{PREFIX}.{name}"), value);
    }
}

/// The server span of an HTTP endpoint outside MCP (the OAuth endpoints): `{method} {route}`,
/// with the status it answered. These callers are anonymous: a `traceparent` they send is not
/// followed (no caller may choose to be sampled, nor join our spans to a trace of theirs).
/// Installed with `route_layer` on routes without parameters, so the path is the route.
pub async fn http_server(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let span = tracing::info_span!(
        target: TARGET,
        "http",
        otel.name = %Named(request.method().as_str(), request.uri().path()),
        otel.kind = "server",
    );
    if span.is_disabled() {
        return next.run(request).await;
    }
    let method = request.method().as_str().to_owned();
    let route = request.uri().path().to_owned();
    // A root: no remote parent, whatever the request carries.
    let _ = span.set_parent(opentelemetry::Context::new());
    span.set_attribute("http.request.method", method);
    span.set_attribute("http.route", route);
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.set_attribute("http.response.status_code", i64::from(status));
    if status >= 500 {
        span.set_attribute("error.type", status.to_string());
        span.set_status(opentelemetry::trace::Status::error(""));
    }
    response
}

/// Sets one of our own attributes on the current span.
pub fn own_current(name: &'static str, value: impl Into<opentelemetry::Value>) {
    own(&Span::current(), name, value);
}

/// The current span's context as a `traceparent`, if it is recorded.
pub fn current_traceparent() -> Option<String> {
    traceparent_of(&Span::current())
}

/// Spans the exporter was handed, by fate; `/metrics` shows them.
#[derive(Default)]
pub struct ExportCounts {
    pub exported: AtomicU64,
    /// Dropped because the export queue was full (a collector too slow or unreachable).
    pub dropped_queue_full: AtomicU64,
    /// Dropped because their batch could not be delivered (refused, timed out).
    pub dropped_export_failed: AtomicU64,
}

impl ExportCounts {
    pub fn snapshot(&self) -> [(&'static str, u64); 3] {
        [
            ("exported", self.exported.load(Relaxed)),
            ("queue_full", self.dropped_queue_full.load(Relaxed)),
            ("export_failed", self.dropped_export_failed.load(Relaxed)),
        ]
    }
}

/// The process's span export counts (one exporter per process, as one subscriber).
pub static EXPORT: ExportCounts = ExportCounts {
    exported: AtomicU64::new(0),
    dropped_queue_full: AtomicU64::new(0),
    dropped_export_failed: AtomicU64::new(0),
};

/// The bucket bounds the MCP conventions give `mcp.server.operation.duration`, in seconds.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

static DURATION: std::sync::OnceLock<opentelemetry::metrics::Histogram<f64>> =
    std::sync::OnceLock::new();

/// Creates the OTLP `mcp.server.operation.duration` histogram (once, when export starts).
pub fn install_meter(provider: &opentelemetry_sdk::metrics::SdkMeterProvider) {
    use opentelemetry::metrics::MeterProvider as _;
    let histogram = provider
        .meter("studio-mcp")
        .f64_histogram("mcp.server.operation.duration")
        .with_unit("s")
        .with_description(
            "MCP request duration as observed on the server, from receipt until the answer.",
        )
        .with_boundaries(DURATION_BUCKETS.to_vec())
        .build();
    let _ = DURATION.set(histogram);
}

/// Records one MCP request's duration into the OTLP histogram, when export is on.
pub fn record_duration(secs: f64, method: &'static str, tool: &'static str, error: &'static str) {
    let Some(histogram) = DURATION.get() else {
        return;
    };
    let mut attributes = Vec::with_capacity(4);
    attributes.push(opentelemetry::KeyValue::new("mcp.method.name", method));
    if !tool.is_empty() {
        attributes.push(opentelemetry::KeyValue::new("gen_ai.tool.name", tool));
    }
    if !error.is_empty() {
        attributes.push(opentelemetry::KeyValue::new("error.type", error));
    }
    attributes.push(opentelemetry::KeyValue::new("network.transport", "tcp"));
    histogram.record(secs, &attributes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_w3c_traceparent_is_read_and_junk_is_not() {
        let parent = remote_parent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            Some("rojo=00f067aa0ba902b7"),
        )
        .expect("valid");
        assert_eq!(
            parent.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(parent.is_sampled());
        assert!(parent.is_remote());
        for junk in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736",
        ] {
            assert!(remote_parent(junk, None).is_none(), "{junk}");
        }
    }

    #[test]
    fn client_values_are_capped_and_lose_control_characters() {
        assert_eq!(capped("a\nb"), "ab");
        assert_eq!(capped(&"x".repeat(500)).len(), MAX_CLIENT_VALUE_CHARS);
    }
}
