//! An OTLP/HTTP collector for the trace tests, decoding what the servers export with the
//! official protobuf definitions (`opentelemetry-proto`, generated from
//! open-telemetry/opentelemetry-proto), and keeping every byte received for the secret search.
//! Or a black hole: a listener that accepts connections and never answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

#[derive(Default)]
struct Received {
    /// Only count what arrives (the benchmark's collector: decoding would cost its core).
    count_only: bool,
    requests: u64,
    bytes: u64,
    /// Every request body, as it arrived.
    raw: Vec<u8>,
    traces: Vec<ExportTraceServiceRequest>,
    metrics: Vec<ExportMetricsServiceRequest>,
}

/// A running collector; its endpoint is what `OTEL_EXPORTER_OTLP_ENDPOINT` takes.
pub struct Collector {
    pub endpoint: String,
    received: Arc<Mutex<Received>>,
    task: tokio::task::JoinHandle<()>,
}

/// A span with the resource it came from (its `service.name`).
#[derive(Clone, Debug)]
pub struct ServedSpan {
    pub service: String,
    pub span: Span,
}

impl Collector {
    pub async fn start() -> Collector {
        Self::start_with(false).await
    }

    /// A collector that answers every export and only counts requests and bytes.
    pub async fn counting() -> Collector {
        Self::start_with(true).await
    }

    /// Export requests and bytes received so far.
    pub fn counts(&self) -> (u64, u64) {
        let received = self.received.lock().unwrap();
        (received.requests, received.bytes)
    }

    async fn start_with(count_only: bool) -> Collector {
        let received = Arc::new(Mutex::new(Received {
            count_only,
            ..Received::default()
        }));
        let app = Router::new()
            .route("/v1/traces", post(traces))
            .route("/v1/metrics", post(metrics))
            .with_state(received.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Collector {
            endpoint,
            received,
            task,
        }
    }

    /// Accepts connections and holds them, reading nothing and answering nothing.
    pub async fn black_hole() -> Collector {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        Collector {
            endpoint,
            received: Arc::default(),
            task,
        }
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ServedSpan> {
        let received = self.received.lock().unwrap();
        let mut out = Vec::new();
        for request in &received.traces {
            for resource in &request.resource_spans {
                let service = resource
                    .resource
                    .as_ref()
                    .and_then(|r| string_attr(&r.attributes, "service.name"))
                    .unwrap_or_default();
                for scope in &resource.scope_spans {
                    for span in &scope.spans {
                        out.push(ServedSpan {
                            service: service.clone(),
                            span: span.clone(),
                        });
                    }
                }
            }
        }
        out
    }

    /// The names of the metrics received so far.
    pub fn metric_names(&self) -> Vec<String> {
        let received = self.received.lock().unwrap();
        received
            .metrics
            .iter()
            .flat_map(|r| &r.resource_metrics)
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
            .map(|m| m.name.clone())
            .collect()
    }

    /// Every byte received.
    pub fn raw(&self) -> Vec<u8> {
        self.received.lock().unwrap().raw.clone()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn traces(State(received): State<Arc<Mutex<Received>>>, body: Bytes) -> Vec<u8> {
    let mut received = received.lock().unwrap();
    received.requests += 1;
    received.bytes += body.len() as u64;
    if received.count_only {
        return Vec::new();
    }
    let decoded = ExportTraceServiceRequest::decode(body.as_ref());
    received.raw.extend_from_slice(&body);
    received.traces.push(decoded.expect("an OTLP trace export"));
    Vec::new()
}

async fn metrics(State(received): State<Arc<Mutex<Received>>>, body: Bytes) -> Vec<u8> {
    let mut received = received.lock().unwrap();
    if received.count_only {
        return Vec::new();
    }
    let decoded = ExportMetricsServiceRequest::decode(body.as_ref());
    received.raw.extend_from_slice(&body);
    received
        .metrics
        .push(decoded.expect("an OTLP metrics export"));
    Vec::new()
}

/// A string attribute's value.
pub fn string_attr(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| match &v.value {
            Some(any_value::Value::StringValue(s)) => Some(s.clone()),
            Some(any_value::Value::IntValue(n)) => Some(n.to_string()),
            _ => None,
        })
}

/// An attribute's value as text (strings and integers), for assertions.
pub fn attr(span: &Span, key: &str) -> Option<String> {
    string_attr(&span.attributes, key)
}
