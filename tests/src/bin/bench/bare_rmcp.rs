//! `bench rmcp-server`: the minimal rmcp 3.11 stateless server the shared server is measured
//! beside — what the same `tools/call whoami` costs through rmcp's Streamable HTTP transport
//! with nothing of ours (no token check, tenant, rate limit, audit or metrics).
//!
//! Its settings are pinned to the shared server's, so the two differ only in what each does:
//! the server's own runtime (`startup::runtime(0)`: one worker per allowed core, a
//! current-thread runtime on one), rmcp's transport
//! configured as ours is (stateless, JSON answers, no SSE keep-alive, a 1 MiB body limit, one
//! allowed host), the tool list built once, a log subscriber with the shared server's default
//! filter (`info,rmcp=warn`, to stderr), the system allocator.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::json;

/// The one tool, built once.
static TOOLS: LazyLock<Arc<Vec<Tool>>> = LazyLock::new(|| {
    let schema = json!({"type": "object", "properties": {}});
    let schema = match schema {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    Arc::new(vec![Tool::new("whoami", "Who the caller is.", schema)])
});

#[derive(Clone)]
struct Bare;

impl ServerHandler for Bare {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("bare-rmcp", "1"))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items((**TOOLS).clone()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        if request.name != "whoami" {
            return Err(McpError::invalid_params("unknown tool", None));
        }
        Ok(CallToolResult::structured(json!({"tenant": "bare", "tier": "bench"})).into())
    }
}

pub fn rmcp_server(listen: SocketAddr) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::new("info,rmcp=warn");
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    common::runtime::server::startup::runtime(0)?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let mut stdout = std::io::stdout();
        writeln!(stdout, "{addr}")?;
        stdout.flush()?;
        let config = StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_json_response(true)
            .with_sse_keep_alive(None)
            .with_max_request_body_bytes(1024 * 1024)
            .with_allowed_hosts([addr.ip().to_string()]);
        let service = StreamableHttpService::new(
            || Ok(Bare),
            Arc::new(NeverSessionManager::default()),
            config,
        );
        let app = axum::Router::new()
            .route_service("/mcp", service)
            .route("/healthz", axum::routing::get(|| async { "ok" }));
        axum::serve(listener, app).await?;
        Ok(())
    })
}
