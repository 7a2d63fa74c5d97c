//! OTLP export of traces and of the request-duration histogram, configured the standard way:
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) turns it on,
//! `OTEL_EXPORTER_OTLP_PROTOCOL` must be `http/protobuf` (the one this build speaks),
//! `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` name the process, `OTEL_TRACES_SAMPLER`
//! and `OTEL_TRACES_SAMPLER_ARG` sample (default `parentbased_always_on`), `OTEL_BSP_*` size
//! the batches, `OTEL_EXPORTER_OTLP_HEADERS` and `…_TIMEOUT` as the specification says.
//! `OTEL_SDK_DISABLED=true` turns it off again.
//!
//! Export never slows a call: finished spans go to a bounded queue that a background thread
//! drains in batches, and a span that finds the queue full is dropped and counted
//! ([`crate::trace::EXPORT`], on `/metrics`). The exporter sends through our own `reqwest`
//! client on the server's runtime, not a second HTTP stack.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider, SpanData, SpanExporter,
    SpanProcessor,
};

use crate::trace::EXPORT;

/// The exporter, once started; [`Otlp::shutdown`] sends what is queued.
pub struct Otlp {
    traces: SdkTracerProvider,
    metrics: SdkMeterProvider,
    pub tracer: opentelemetry_sdk::trace::SdkTracer,
}

/// The OTLP settings found in the environment, or `None` when export is off.
fn endpoint_configured(env: &dyn Fn(&str) -> Option<String>) -> bool {
    if env("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return false;
    }
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|name| env(name).is_some_and(|v| !v.trim().is_empty()))
}

/// Refuses a protocol this build does not speak, naming the variable.
fn check_protocol(env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<()> {
    for name in [
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    ] {
        if let Some(value) = env(name)
            && !value.trim().is_empty()
            && value.trim() != "http/protobuf"
        {
            bail!(
                "{name}={}: this build exports OTLP over `http/protobuf` only; unset it or set \
                 it to http/protobuf",
                crate::trace::capped(value.trim())
            );
        }
    }
    Ok(())
}

/// The service name when the environment names none: `studio-mcp-shared`,
/// `studio-mcp-isolated-<tenant>`.
fn names_service(env: &dyn Fn(&str) -> Option<String>) -> bool {
    env("OTEL_SERVICE_NAME").is_some_and(|v| !v.trim().is_empty())
        || env("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|attributes| {
            attributes
                .split(',')
                .any(|pair| pair.trim_start().starts_with("service.name="))
        })
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl Otlp {
    /// Starts export if the environment asks for it. Called inside the server's runtime.
    pub fn from_env(default_service: &str) -> anyhow::Result<Option<Self>> {
        if !endpoint_configured(&env_var) {
            return Ok(None);
        }
        check_protocol(&env_var)?;
        let runtime = tokio::runtime::Handle::try_current()
            .context("OTLP export must start inside the runtime")?;
        let timeout = [
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
        ]
        .iter()
        .find_map(|name| env_var(name)?.trim().parse::<u64>().ok())
        .map_or(Duration::from_secs(10), Duration::from_millis);
        let client = ExportClient {
            http: crate::upstream::http_client().context("cannot build the OTLP HTTP client")?,
            runtime,
            timeout,
        };
        let mut resource = Resource::builder();
        if !names_service(&env_var) {
            resource = resource.with_service_name(default_service.to_owned());
        }
        let resource = resource
            .with_attribute(opentelemetry::KeyValue::new(
                "service.version",
                env!("CARGO_PKG_VERSION"),
            ))
            .build();

        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_http_client(client.clone())
            .build()
            .context("cannot configure the OTLP trace exporter")?;
        let capacity = env_var("OTEL_BSP_MAX_QUEUE_SIZE")
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|n| *n > 0)
            .unwrap_or(2048);
        let pending = Arc::new(AtomicUsize::new(0));
        let batches = BatchSpanProcessor::builder(Counted {
            inner: exporter,
            pending: pending.clone(),
        })
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(capacity)
                .build(),
        )
        .build();
        let traces = SdkTracerProvider::builder()
            .with_span_processor(Bounded {
                inner: batches,
                pending,
                capacity,
            })
            .with_resource(resource.clone())
            .build();
        let tracer = traces.tracer("studio-mcp");

        let metric_exporter = opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_http_client(client)
            .build()
            .context("cannot configure the OTLP metric exporter")?;
        let metrics = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(metric_exporter).build())
            .with_resource(resource)
            .build();
        crate::trace::install_meter(&metrics);
        Ok(Some(Self {
            traces,
            metrics,
            tracer,
        }))
    }

    /// Sends what is queued (at most a few seconds), then stops. The SDK's shutdown blocks its
    /// caller until the export thread is done, and that export runs on this runtime: so it is
    /// waited for off the runtime's threads.
    pub async fn shutdown(self) {
        let Otlp {
            traces, metrics, ..
        } = self;
        let stopped = tokio::task::spawn_blocking(move || {
            let _ = traces.shutdown_with_timeout(Duration::from_secs(5));
            let _ = metrics.shutdown_with_timeout(Duration::from_secs(5));
        });
        let _ = tokio::time::timeout(Duration::from_secs(12), stopped).await;
    }
}

/// Sends OTLP requests with our `reqwest` client, on the server's runtime: the SDK's export
/// thread waits on the spawned request, which needs the runtime's reactor.
#[derive(Debug, Clone)]
struct ExportClient {
    http: reqwest::Client,
    runtime: tokio::runtime::Handle,
    timeout: Duration,
}

/// Largest collector answer read (an OTLP answer is a few bytes, or a partial-success note).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

#[async_trait::async_trait]
impl HttpClient for ExportClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let mut request = reqwest::Request::try_from(request)?;
        *request.timeout_mut() = Some(self.timeout);
        let http = self.http.clone();
        let sent = self.runtime.spawn(async move {
            let mut response = http.execute(request).await?;
            let mut answer = Response::builder().status(response.status());
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                    break;
                }
                body.extend_from_slice(&chunk);
            }
            if let Some(headers) = answer.headers_mut() {
                *headers = response.headers().clone();
            }
            Ok::<_, HttpError>(answer.body(Bytes::from(body))?)
        });
        sent.await?
    }
}

/// The batch exporter, counting what it delivers and what it could not.
#[derive(Debug)]
struct Counted<E> {
    inner: E,
    /// Spans handed to the batch processor and not yet through an export.
    pending: Arc<AtomicUsize>,
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let n = batch.len();
        let pending = self.pending.clone();
        let sent = self.inner.export(batch);
        async move {
            let result = sent.await;
            pending.fetch_sub(n, Ordering::AcqRel);
            let counter = match result {
                Ok(()) => &EXPORT.exported,
                Err(_) => &EXPORT.dropped_export_failed,
            };
            counter.fetch_add(n as u64, Ordering::Relaxed);
            result
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The batch processor behind a bound we keep ourselves, so that a span it would have dropped
/// silently is counted: at most `capacity` spans wait or travel at once; the next is dropped.
#[derive(Debug)]
struct Bounded {
    inner: BatchSpanProcessor,
    pending: Arc<AtomicUsize>,
    capacity: usize,
}

impl SpanProcessor for Bounded {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        if self.pending.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            EXPORT.dropped_queue_full.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn export_is_on_only_with_an_endpoint_and_not_disabled() {
        assert!(!endpoint_configured(&env_of(&[])));
        assert!(!endpoint_configured(&env_of(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            " "
        )])));
        assert!(endpoint_configured(&env_of(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://127.0.0.1:4318"
        )])));
        assert!(endpoint_configured(&env_of(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://127.0.0.1:4318/v1/traces"
        )])));
        assert!(!endpoint_configured(&env_of(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_SDK_DISABLED", "TRUE"),
        ])));
    }

    #[test]
    fn a_protocol_other_than_http_protobuf_is_refused_by_name() {
        assert!(check_protocol(&env_of(&[])).is_ok());
        assert!(
            check_protocol(&env_of(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")])).is_ok()
        );
        let e = check_protocol(&env_of(&[("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")]))
            .expect_err("grpc is refused");
        let text = e.to_string();
        assert!(
            text.contains("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=grpc"),
            "{text}"
        );
        assert!(text.contains("http/protobuf"), "{text}");
    }

    #[test]
    fn the_default_service_name_gives_way_to_the_environments() {
        assert!(!names_service(&env_of(&[])));
        assert!(names_service(&env_of(&[("OTEL_SERVICE_NAME", "studio-a")])));
        assert!(names_service(&env_of(&[(
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=prod, service.name=studio-b"
        )])));
        assert!(!names_service(&env_of(&[(
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=prod"
        )])));
    }
}
