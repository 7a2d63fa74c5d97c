//! `bench floor-server`: the floor the server is measured beside, a bare axum JSON endpoint.

use std::io::Write as _;
use std::net::SocketAddr;

/// A bare axum JSON endpoint: parses the JSON-RPC body and answers a small JSON result. Runs on
/// the server's own runtime (`startup::runtime(0)`: one worker per allowed core, a
/// current-thread runtime on one).
pub fn floor_server(listen: SocketAddr) -> anyhow::Result<()> {
    use axum::Json;
    use axum::routing::post;
    use serde_json::{Value, json};

    async fn echo(Json(body): Json<Value>) -> Json<Value> {
        let id = body.get("id").cloned().unwrap_or(Value::Null);
        Json(json!({"jsonrpc": "2.0", "id": id, "result": {"ok": true}}))
    }

    common::runtime::server::startup::runtime(0)?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let mut stdout = std::io::stdout();
        writeln!(stdout, "{}", listener.local_addr()?)?;
        stdout.flush()?;
        let app = axum::Router::new()
            .route("/echo", post(echo))
            .route("/healthz", axum::routing::get(|| async { "ok" }));
        axum::serve(listener, app).await?;
        Ok(())
    })
}
