//! `McpServer`, the rmcp handler: tenant of each call from its HTTP request, tools and
//! resources dispatched through the catalog, URL elicitation for approvals, audit and metrics
//! around every call; and the request ids and caller extraction the edge shares.

use std::sync::Arc;
use std::time::Instant;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, ProtocolVersion,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, RequestId,
    RequestMetaObject, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer};

use super::{Authenticated, Catalog, ResourceCatalog, Services, ToolContext, ToolError};
use crate::audit::AuditRecord;

/// The dispatch of every MCP method this server answers, for either front (rmcp's transport
/// through [`super::Traced`]'s `ServerHandler`, or the stateless JSON fast path): each method
/// takes the request as an [`Incoming`], whichever front decoded it. Cloned per request by
/// rmcp's factory, so it must be cheap: `Arc` clones.
#[derive(Clone)]
pub struct McpServer {
    pub services: Arc<Services>,
    pub catalog: Arc<Catalog>,
    pub info: Arc<ServerConfig>,
    /// The server's resources (`resources/*`), if it has any.
    pub resources: Option<&'static ResourceCatalog>,
}

impl McpServer {
    pub fn new(
        services: Arc<Services>,
        catalog: Arc<Catalog>,
        name: &str,
        instructions: &str,
        resources: Option<&'static ResourceCatalog>,
    ) -> Self {
        let capabilities = if resources.is_some() {
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build()
        } else {
            ServerCapabilities::builder().enable_tools().build()
        };
        let info = ServerConfig::new(capabilities)
            .with_server_info(Implementation::new(name, env!("CARGO_PKG_VERSION")))
            .with_instructions(instructions);
        Self {
            services,
            catalog,
            info: Arc::new(info),
            resources,
        }
    }

    /// The server's resources, if it has any and this tenant may see them.
    fn visible_resources(&self, ctx: &ToolContext<'_>) -> Option<&'static ResourceCatalog> {
        self.resources.filter(|resources| (resources.visible)(ctx))
    }

    fn context<'a>(&'a self, caller: &'a Authenticated) -> ToolContext<'a> {
        ToolContext {
            tenant: &caller.tenant,
            actor: caller.actor.as_deref(),
            approval: None,
            services: &self.services,
            request_id: &caller.request_id,
        }
    }
}

/// One MCP request as a method's handler sees it, whichever front decoded it: its JSON-RPC id,
/// its `_meta`, the HTTP request it came in (whose extensions hold the [`Authenticated`]
/// caller the edge put there), and the protocol version it speaks (its `_meta`'s, else the
/// `MCP-Protocol-Version` header's, else 2025-03-26, as rmcp's stateless transport reads it).
pub struct Incoming<'a> {
    pub id: &'a RequestId,
    pub meta: &'a RequestMetaObject,
    pub parts: &'a http::request::Parts,
    pub protocol_version: ProtocolVersion,
}

impl<'a> Incoming<'a> {
    /// The request rmcp's transport handed a `ServerHandler` method.
    pub fn of(context: &'a RequestContext<RoleServer>) -> Result<Self, McpError> {
        let parts = context
            .extensions
            .get::<http::request::Parts>()
            .ok_or_else(|| {
                McpError::internal_error(
                    "request reached the MCP handler without its HTTP request",
                    None,
                )
            })?;
        Ok(Self {
            id: &context.id,
            meta: &context.meta,
            parts,
            protocol_version: context
                .protocol_version()
                .unwrap_or(ProtocolVersion::V_2025_03_26),
        })
    }

    /// The version a stateless request speaks, from its `_meta` and headers alone.
    pub fn version_of(meta: &RequestMetaObject, headers: &http::HeaderMap) -> ProtocolVersion {
        meta.protocol_version()
            .or_else(|| {
                let header = headers
                    .get("mcp-protocol-version")
                    .and_then(|v| v.to_str().ok())?;
                // A known version without an allocation; anything else as rmcp reads it.
                ProtocolVersion::KNOWN_VERSIONS
                    .iter()
                    .find(|v| v.as_str() == header)
                    .cloned()
                    .or_else(|| {
                        serde_json::from_value(serde_json::Value::String(header.to_owned())).ok()
                    })
            })
            .unwrap_or(ProtocolVersion::V_2025_03_26)
    }

    /// The authenticated caller the edge put into the HTTP request.
    pub fn caller(&self) -> Option<&'a Authenticated> {
        self.parts.extensions.get::<Authenticated>()
    }

    /// Whether this request comes from a client that can open a URL for its user by itself: a
    /// 2026-07-28 request whose `_meta` declares URL-mode elicitation. (A stateless server
    /// knows a 2025-11-25 client's capabilities only from its `initialize`, which it does not
    /// keep: those clients get the link in the tool result.)
    fn url_elicitation_supported(&self) -> bool {
        self.protocol_version == ProtocolVersion::V_2026_07_28
            && self
                .meta
                .client_capabilities()
                .and_then(|c| c.elicitation)
                .is_some_and(|e| e.url.is_some())
    }
}

/// A tool answer asking for a person's approval (`status: approval_required` with an
/// `approval_url`, the isolated server's convention) as an `input_required` result: the client
/// shows the person the approval page itself, then retries the call, whose answer then says
/// what became of the action. The request state is only the approval id, an opaque handle:
/// the retry decides nothing by it (the tool looks the action up by its arguments).
fn approval_elicitation(value: &serde_json::Value) -> Option<rmcp::model::InputRequiredResult> {
    use rmcp::model::{ElicitRequest, ElicitRequestParams, InputRequest, InputRequiredResult};
    if value.get("status")?.as_str()? != "approval_required" {
        return None;
    }
    let url = value.get("approval_url")?.as_str()?.to_owned();
    let id = value.get("approval_id")?.as_str()?.to_owned();
    let message = "An approver of this client must approve this action before it runs. Open \
                   the page, sign in with your passkey, check what will happen and approve or \
                   deny it; then continue."
        .to_owned();
    let elicitation = ElicitRequest::new(ElicitRequestParams::UrlElicitationParams {
        meta: None,
        message,
        url,
        elicitation_id: id.clone(),
    });
    let mut requests = rmcp::model::InputRequests::new();
    requests.insert(
        "approval".to_owned(),
        InputRequest::Elicitation(elicitation),
    );
    Some(InputRequiredResult::new(Some(requests), Some(id)))
}

/// rmcp's `CallToolResult::structured` (the value, and its JSON as the text content), with the
/// text written into a buffer sized for a typical answer rather than grown byte by byte.
fn structured(value: serde_json::Value) -> CallToolResult {
    let mut text = Vec::with_capacity(1024);
    let text = match serde_json::to_writer(&mut text, &value) {
        Ok(()) => String::from_utf8(text).unwrap_or_default(),
        Err(_) => value.to_string(),
    };
    let mut result = CallToolResult::structured(serde_json::Value::Null);
    result.content = vec![rmcp::model::ContentBlock::text(text)];
    result.structured_content = Some(value);
    result
}

/// A new request id: 32 hex digits, a random per-process half and a counter, unique across
/// restarts and replicas without a system call per request (a random UUID costs one).
pub fn request_id() -> Arc<str> {
    use rand::RngCore;
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| rand::rngs::OsRng.next_u64());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix:016x}{n:016x}").into()
}

/// The authenticated caller of this request, from the HTTP request the front saw.
pub fn caller<'a>(request: &Incoming<'a>) -> Result<&'a Authenticated, McpError> {
    request.caller().ok_or_else(|| {
        McpError::internal_error("request reached the MCP handler unauthenticated", None)
    })
}

/// The caller, unless this request took its tenant past the rate limit: then a JSON-RPC error
/// (-32000, implementation-defined server error) that says when to retry.
fn within_limit(caller: &Authenticated) -> Result<&Authenticated, McpError> {
    match caller.over_limit {
        None => Ok(caller),
        Some(retry_after_secs) => Err(McpError::new(
            rmcp::model::ErrorCode(-32000),
            ToolError::RateLimited { retry_after_secs }.to_string(),
            Some(serde_json::json!({ "retry_after_secs": retry_after_secs })),
        )),
    }
}

/// Resource reads cannot carry a readable error result the way tools can, so the message goes
/// into the JSON-RPC error; a foreign resource reads as not found, naming the URI asked for.
fn resource_error(e: ToolError, uri: Option<&str>) -> McpError {
    match e {
        ToolError::NotYours { .. } | ToolError::InvalidArguments(_) => {
            McpError::resource_not_found(
                e.to_string(),
                uri.map(|uri| serde_json::json!({ "uri": uri })),
            )
        }
        other => McpError::internal_error(other.to_string(), None),
    }
}

/// Tool calls that reach the handler for a tenant that may not see them get the same answer as
/// a tool that does not exist, so the catalog of other tiers is not revealed.
fn unknown_tool(name: &str) -> McpError {
    McpError::invalid_params(
        format!(
            "unknown tool `{}`",
            name.chars().take(64).collect::<String>()
        ),
        None,
    )
}

impl McpServer {
    fn audit(
        &self,
        caller: &Authenticated,
        action: &str,
        args_digest: String,
        outcome: &str,
        started: Instant,
    ) {
        let record = AuditRecord {
            at_ms: crate::audit::now_ms(),
            tenant: caller.tenant.id.to_string(),
            action: action.chars().take(64).collect(),
            args_digest,
            outcome: outcome.to_owned(),
            duration_us: started.elapsed().as_micros() as u64,
            request_id: caller.request_id.to_string(),
            person: caller.actor.as_ref().map(|a| a.person.clone()),
            client: caller.actor.as_ref().map(|a| a.client_id.clone()),
        };
        if let Err(e) = self.services.store.audit().append(record) {
            tracing::error!(error = %e, request_id = &*caller.request_id, "audit record not written");
        }
    }
}

/// The methods, one dispatch each, for either front.
impl McpServer {
    pub fn get_info(&self) -> ServerConfig {
        (*self.info).clone()
    }

    pub fn get_tool(&self, name: &str) -> Option<rmcp::model::Tool> {
        self.catalog.get(name).map(|e| e.definition.clone())
    }

    pub async fn list_tools(&self, request: &Incoming<'_>) -> Result<ListToolsResult, McpError> {
        let caller = within_limit(caller(request)?)?;
        Ok(ListToolsResult::with_all_items(
            self.catalog.for_tenant(&caller.tenant),
        ))
    }

    pub async fn list_resources(
        &self,
        request: &Incoming<'_>,
    ) -> Result<ListResourcesResult, McpError> {
        let caller = within_limit(caller(request)?)?;
        let ctx = self.context(caller);
        let Some(resources) = self.visible_resources(&ctx) else {
            return Ok(ListResourcesResult::with_all_items(Vec::new()));
        };
        (resources.list)(&ctx)
            .await
            .map(ListResourcesResult::with_all_items)
            .map_err(|e| resource_error(e, None))
    }

    pub async fn list_resource_templates(
        &self,
        request: &Incoming<'_>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let caller = within_limit(caller(request)?)?;
        let templates = self
            .visible_resources(&self.context(caller))
            .map(|resources| (resources.templates)())
            .unwrap_or_default();
        Ok(ListResourceTemplatesResult::with_all_items(templates))
    }

    pub async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        incoming: &Incoming<'_>,
    ) -> Result<ReadResourceResponse, McpError> {
        let caller = within_limit(caller(incoming)?)?;
        let ctx = self.context(caller);
        let started = Instant::now();
        let digest = crate::audit::digest(&request.uri);
        let Some(resources) = self.visible_resources(&ctx) else {
            self.audit(caller, "resources/read", digest, "not_permitted", started);
            return Err(McpError::resource_not_found(
                "no resources for this tenant",
                Some(serde_json::json!({ "uri": request.uri })),
            ));
        };
        let outcome = (resources.read)(&ctx, &request.uri).await;
        let kind = outcome.as_ref().map(|_| "ok").unwrap_or_else(|e| e.kind());
        self.audit(caller, "resources/read", digest, kind, started);
        outcome
            .map(|contents| ReadResourceResult::new(vec![contents]).into())
            .map_err(|e| resource_error(e, Some(&request.uri)))
    }

    pub async fn call_tool(
        &self,
        request: CallToolRequestParams,
        incoming: &Incoming<'_>,
    ) -> Result<CallToolResponse, McpError> {
        let caller = caller(incoming)?;
        let started = Instant::now();
        if let Some(retry_after_secs) = caller.over_limit {
            // Refused calls are audited at most once a second per tenant: a tenant hammering
            // the server cannot grow the audit log faster than its own rate limit allows.
            if caller.live.first_refusal_this_second() {
                self.audit(caller, "tools/call", String::new(), "rate_limited", started);
            }
            if let Some(entry) = self
                .catalog
                .get(&request.name)
                .filter(|e| e.allowed_for(&caller.tenant))
            {
                self.services.metrics.record_call(
                    &caller.live.calls,
                    entry.name(),
                    "rate_limited",
                    started.elapsed(),
                );
            }
            let error = ToolError::RateLimited { retry_after_secs };
            return Ok(CallToolResult::error(vec![rmcp::model::ContentBlock::text(
                error.to_string(),
            )])
            .into());
        }
        let first_round = request.input_responses.is_none();
        let arguments = request.arguments.unwrap_or_default();
        let args_digest = crate::audit::digest(&arguments);
        let Some(entry) = self
            .catalog
            .get(&request.name)
            .filter(|e| e.allowed_for(&caller.tenant))
        else {
            self.audit(caller, &request.name, args_digest, "unknown_tool", started);
            return Err(unknown_tool(&request.name));
        };
        let ctx = self.context(caller);
        let outcome = (entry.call)(&ctx, arguments).await;
        let elapsed_us = started.elapsed().as_micros() as u64;
        // Only an answer asking for approval looks at the client's capabilities (decoding them
        // is not free, and every other call would pay for it).
        if first_round
            && let Ok(value) = &outcome
            && let Some(input_required) = approval_elicitation(value)
            && incoming.url_elicitation_supported()
        {
            self.services.metrics.record_call(
                &caller.live.calls,
                entry.name(),
                "ok",
                started.elapsed(),
            );
            self.audit(caller, entry.name(), args_digest, "ok", started);
            return Ok(input_required.into());
        }
        let (result, kind) = match outcome {
            Ok(value) => {
                tracing::debug!(tenant = %caller.tenant.id, tool = entry.name(), request_id = &*caller.request_id, elapsed_us, "tool call ok");
                (structured(value), "ok")
            }
            Err(error) => {
                tracing::info!(tenant = %caller.tenant.id, tool = entry.name(), request_id = &*caller.request_id, elapsed_us, %error, "tool call failed");
                let kind = error.kind();
                (
                    CallToolResult::error(vec![rmcp::model::ContentBlock::text(error.to_string())]),
                    kind,
                )
            }
        };
        self.services.metrics.record_call(
            &caller.live.calls,
            entry.name(),
            kind,
            started.elapsed(),
        );
        self.audit(caller, entry.name(), args_digest, kind, started);
        Ok(result.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_structured_result_is_rmcps_own() {
        let value = serde_json::json!({"tenant": "acme", "n": [1, 2.5], "s": "a\"b\u{1}é"});
        assert_eq!(
            serde_json::to_value(structured(value.clone())).unwrap(),
            serde_json::to_value(CallToolResult::structured(value)).unwrap()
        );
    }
}
