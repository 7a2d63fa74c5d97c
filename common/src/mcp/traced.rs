//! The server span of each MCP request, as the OpenTelemetry MCP conventions describe it
//! (`{mcp.method.name} {gen_ai.tool.name}`, kind server), and the request-duration histogram,
//! around rmcp's dispatch of [`McpServer`]: one wrapper, so every method is covered alike.
//!
//! Trace context: the request's `params._meta.traceparent` (and `tracestate`) is the span's
//! parent; the HTTP request's `traceparent` header is the parent when `_meta` has none, and a
//! link when both are present and differ — the conventions' rule (the MCP context names the
//! client's operation; one HTTP request may carry a retry of it). Only authenticated requests
//! reach this handler, so only an authenticated caller's `sampled` flag is ever followed.
//! `baggage` is never read. Client-chosen values are capped; a string JSON-RPC id is not kept.

use std::future::Future;
use std::time::Instant;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, InitializeRequestParams, InitializeResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use tracing::{Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::{Incoming, McpServer};
use crate::trace::{self, TARGET, capped, own};

/// [`McpServer`] with a span and a duration around each request it answers (rmcp's transport
/// runs each request's handler in a task of its own, so the span is made here, in the handler,
/// not around the HTTP request).
#[derive(Clone)]
pub struct Traced(pub McpServer);

/// `error.type` of a JSON-RPC error: its code, for the codes this server answers with.
fn code_type(e: &McpError) -> &'static str {
    match e.code.0 {
        -32700 => "-32700",
        -32600 => "-32600",
        -32601 => "-32601",
        -32602 => "-32602",
        -32603 => "-32603",
        -32000 => "-32000",
        -32002 => "-32002",
        -32042 => "-32042",
        _ => "_OTHER",
    }
}

/// `error.type` of an answer: the JSON-RPC error's code, or what `failed` finds in a success
/// (`tool_error` for a tool result with `isError`); empty for a success.
fn error_type<T>(result: &Result<T, McpError>, failed: impl Fn(&T) -> bool) -> &'static str {
    match result {
        Ok(value) if failed(value) => "tool_error",
        Ok(_) => "",
        Err(e) => code_type(e),
    }
}

/// Whether an `error.type` is the server's failure (span status `ERROR`) rather than a
/// request the caller got wrong or a refusal by policy: a malformed or unknown request
/// (-32700, -32600, -32601, -32602), a resource not found (-32002), the rate limit (-32000)
/// and a URL elicitation (-32042, a normal step of an approval) are not.
fn is_server_fault(error: &str) -> bool {
    matches!(error, "tool_error" | "-32603" | "_OTHER")
}

impl Traced {
    /// The tool a `tools/call` names, if this tenant is served it: else `_OTHER`.
    fn tool_name(&self, name: &str, request: &Incoming<'_>) -> &'static str {
        let caller = request.caller();
        self.0
            .catalog
            .get(name)
            .filter(|entry| caller.is_some_and(|c| entry.allowed_for(&c.tenant)))
            .map_or("_OTHER", |entry| entry.name())
    }

    /// The span of one request (disabled, and nothing computed, when nothing exports).
    fn start(
        &self,
        method: &'static str,
        tool: &'static str,
        uri: Option<&str>,
        request: &Incoming<'_>,
    ) -> Observed {
        let span = tracing::info_span!(
            target: TARGET,
            "mcp",
            otel.name = %trace::Named(method, tool),
            otel.kind = "server",
        );
        if !span.is_disabled() {
            annotate(&span, method, tool, uri, request);
        }
        Observed { span, method, tool }
    }

    /// Runs one request's handler inside its span; then its outcome on the span (`failed`
    /// tells a success that reports an error) and its duration in the histograms.
    async fn observe<T>(
        &self,
        observed: Observed,
        handler: impl Future<Output = Result<T, McpError>>,
        failed: impl Fn(&T) -> bool,
    ) -> Result<T, McpError> {
        let Observed { span, method, tool } = observed;
        let started = Instant::now();
        let result = if span.is_disabled() {
            handler.await
        } else {
            handler.instrument(span.clone()).await
        };
        let kind = error_type(&result, failed);
        if !span.is_disabled() {
            conclude(&span, result.as_ref().err(), kind);
        }
        let elapsed = started.elapsed();
        self.0
            .services
            .metrics
            .record_operation(method, tool, kind, elapsed);
        trace::record_duration(elapsed.as_secs_f64(), method, tool, kind);
        result
    }

    /// `initialize`, which only rmcp's transport serves (it negotiates the version and keeps
    /// the client's details on its peer); a stateless server keeps nothing of it.
    async fn initialized(
        &self,
        params: &InitializeRequestParams,
        request: &Incoming<'_>,
    ) -> Result<InitializeResult, McpError> {
        let observed = self.start("initialize", "", None, request);
        self.observe(
            observed,
            async { self.negotiate_initialize(params) },
            |_| false,
        )
        .await
    }

    /// `tools/list`, for either front.
    pub async fn tools_list(&self, request: &Incoming<'_>) -> Result<ListToolsResult, McpError> {
        let observed = self.start("tools/list", "", None, request);
        self.observe(observed, self.0.list_tools(request), |_| false)
            .await
    }

    /// `tools/call`, for either front.
    pub async fn tools_call(
        &self,
        params: CallToolRequestParams,
        request: &Incoming<'_>,
    ) -> Result<CallToolResponse, McpError> {
        let tool = self.tool_name(&params.name, request);
        let observed = self.start("tools/call", tool, None, request);
        self.observe(observed, self.0.call_tool(params, request), |response| {
            matches!(response, CallToolResponse::Complete(r) if r.is_error == Some(true))
        })
        .await
    }

    /// `resources/list`, for either front.
    pub async fn resources_list(
        &self,
        request: &Incoming<'_>,
    ) -> Result<ListResourcesResult, McpError> {
        let observed = self.start("resources/list", "", None, request);
        self.observe(observed, self.0.list_resources(request), |_| false)
            .await
    }

    /// `resources/templates/list`, for either front.
    pub async fn resources_templates_list(
        &self,
        request: &Incoming<'_>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let observed = self.start("resources/templates/list", "", None, request);
        self.observe(observed, self.0.list_resource_templates(request), |_| false)
            .await
    }

    /// `resources/read`, for either front.
    pub async fn resources_read(
        &self,
        params: ReadResourceRequestParams,
        request: &Incoming<'_>,
    ) -> Result<ReadResourceResponse, McpError> {
        let observed = self.start("resources/read", "", Some(&params.uri), request);
        self.observe(observed, self.0.read_resource(params, request), |_| false)
            .await
    }
}

struct Observed {
    span: Span,
    method: &'static str,
    tool: &'static str,
}

/// The span's parent and attributes from the request; called before the span is entered.
fn annotate(
    span: &Span,
    method: &'static str,
    tool: &'static str,
    uri: Option<&str>,
    request: &Incoming<'_>,
) {
    let headers = &request.parts.headers;
    let caller = request.caller();
    if caller.is_some() {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let from_meta = request
            .meta
            .get_traceparent()
            .and_then(|t| trace::remote_parent(t, request.meta.get_tracestate()));
        let from_http =
            header("traceparent").and_then(|t| trace::remote_parent(t, header("tracestate")));
        match (from_meta, from_http) {
            (Some(meta), Some(http)) => {
                let differ = meta.trace_id() != http.trace_id() || meta.span_id() != http.span_id();
                trace::set_remote_parent(span, meta);
                if differ {
                    span.add_link(http);
                }
            }
            (Some(parent), None) | (None, Some(parent)) => trace::set_remote_parent(span, parent),
            (None, None) => {}
        }
    }
    span.set_attribute("mcp.method.name", method);
    if !tool.is_empty() {
        span.set_attribute("gen_ai.tool.name", tool);
        span.set_attribute("gen_ai.operation.name", "execute_tool");
    }
    if let Some(uri) = uri {
        span.set_attribute("mcp.resource.uri", capped(uri));
    }
    // A number, as every client we know sends; a string id is the client's free text and is
    // not exported (`studio_mcp.request.id`, ours, joins the span to the audit log instead).
    if let rmcp::model::NumberOrString::Number(id) = request.id {
        span.set_attribute("jsonrpc.request.id", id.to_string());
    }
    let version = request
        .meta
        .protocol_version()
        .map(|v| v.to_string())
        .or_else(|| {
            headers
                .get("mcp-protocol-version")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        });
    if let Some(version) = version {
        span.set_attribute("mcp.protocol.version", capped(&version));
    }
    span.set_attribute("network.transport", "tcp");
    span.set_attribute("network.protocol.name", "http");
    if let Some(caller) = caller {
        own(span, "tenant.id", caller.tenant.id.to_string());
        own(span, "request.id", caller.request_id.to_string());
        own(
            span,
            "rate_limit",
            if caller.over_limit.is_some() {
                "refused"
            } else {
                "allowed"
            },
        );
        if let Some(actor) = &caller.actor {
            own(span, "person.id", actor.person.clone());
            own(span, "client.id", capped(&actor.client_id));
        }
    }
}

/// The answer's attributes and status.
fn conclude(span: &Span, error: Option<&McpError>, error_type: &'static str) {
    if error_type.is_empty() {
        return;
    }
    span.set_attribute("error.type", error_type);
    if let Some(e) = error {
        span.set_attribute("rpc.response.status_code", e.code.0.to_string());
    }
    if is_server_fault(error_type) {
        let description = match error {
            Some(e) => capped(&e.message),
            None => "the tool reported an error".to_owned(),
        };
        span.set_status(opentelemetry::trace::Status::error(description));
    }
}

/// rmcp's transport serves [`Traced`] for everything the fast path leaves to it: each method
/// `McpServer` answers goes to the same dispatch the fast path calls; the rest keep rmcp's
/// defaults.
impl ServerHandler for Traced {
    fn get_info(&self) -> ServerConfig {
        self.0.get_info()
    }

    fn get_tool(&self, name: &str) -> Option<rmcp::model::Tool> {
        self.0.get_tool(name)
    }

    async fn initialize(
        &self,
        params: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, McpError> {
        context.peer.set_peer_info(params.clone());
        self.initialized(&params, &Incoming::of(&context)?).await
    }

    async fn list_tools(
        &self,
        _params: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        self.tools_list(&Incoming::of(&context)?).await
    }

    async fn call_tool(
        &self,
        params: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        self.tools_call(params, &Incoming::of(&context)?).await
    }

    async fn list_resources(
        &self,
        _params: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        self.resources_list(&Incoming::of(&context)?).await
    }

    async fn list_resource_templates(
        &self,
        _params: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        self.resources_templates_list(&Incoming::of(&context)?)
            .await
    }

    async fn read_resource(
        &self,
        params: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        self.resources_read(params, &Incoming::of(&context)?).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_codes_fall_back_to_other() {
        let err: Result<(), _> = Err(McpError::new(rmcp::model::ErrorCode(-31999), "x", None));
        assert_eq!(error_type(&err, |_| false), "_OTHER");
        assert_eq!(error_type(&Ok(true), |failed| *failed), "tool_error");
        assert!(is_server_fault("_OTHER"));
        assert!(!is_server_fault("-32602"));
        assert_eq!(
            trace::Named("tools/call", "whoami").to_string(),
            "tools/call whoami"
        );
        assert_eq!(trace::Named("tools/list", "").to_string(), "tools/list");
    }
}
