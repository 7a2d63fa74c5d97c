//! The MCP endpoint's front: the stateless JSON fast path, and rmcp's Streamable HTTP transport
//! for everything else.
//!
//! Nearly every request a stateless server sees is one JSON-RPC request POSTed with a JSON
//! body, answered with one JSON body. rmcp's transport serves those through machinery built
//! for streams (a tower service, a service loop and its task per request, channels, a peer),
//! which costs more than the rest of a call. The fast path takes exactly those requests:
//! `tools/list`, `tools/call`, `resources/list`, `resources/templates/list` and
//! `resources/read`, in the 2025-era shape (version in the `MCP-Protocol-Version` header, or
//! none) and the 2026-07-28 shape (version in `_meta`), decodes them into rmcp's own model
//! types and calls the same dispatch rmcp's transport calls ([`Traced`]'s methods), then answers
//! as rmcp would.
//!
//! It takes a request only when every check rmcp's transport makes would pass; anything else —
//! another method, a notification, a response, a batch, a body that does not decode, an
//! `Accept` or `Content-Type` rmcp refuses, a protocol-version header or `_meta` that does not
//! agree, SEP-2243 headers that do not match the body, a missing `Content-Length`, `initialize`,
//! `server/discover`, GET and DELETE — goes to rmcp, so every refusal is rmcp's own answer. The
//! differential fuzz target (`tests/tests/it/fuzz/mcp.rs`) sends the same bytes to both and
//! compares status, headers and bodies. `STUDIO_MCP_FAST_PATH=off` sends everything to rmcp.

use std::sync::Arc;

use axum::body::Body;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rmcp::ErrorData as McpError;
use rmcp::model::{
    ClientRequest, ErrorCode, GetMeta, JsonRpcRequest, ProtocolVersion, ServerJsonRpcMessage,
    ServerResult,
};
use rmcp::transport::streamable_http_server::StreamableHttpService;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;

use crate::mcp::{Incoming, Traced};

const JSON: &str = "application/json";
const EVENT_STREAM: &str = "text/event-stream";

/// One door's MCP endpoint.
pub struct Front {
    server: Traced,
    rmcp: StreamableHttpService<Traced, NeverSessionManager>,
    /// The host rmcp's transport allows (`with_allowed_hosts`), lowercase, without brackets.
    host: String,
    max_body_bytes: usize,
    fast: bool,
    /// The versions the handler speaks, which a `_meta` version must be one of.
    versions: Vec<ProtocolVersion>,
}

impl Front {
    pub fn new(
        server: Traced,
        rmcp: StreamableHttpService<Traced, NeverSessionManager>,
        host: &str,
        max_body_bytes: usize,
        fast: bool,
    ) -> Self {
        let versions = rmcp::ServerHandler::supported_protocol_versions(&server).into_owned();
        Self {
            versions,
            server,
            rmcp,
            host: normalize_host(host),
            max_body_bytes,
            fast,
        }
    }

    async fn to_rmcp(&self, request: Request) -> Response {
        self.server.0.services.metrics.record_front(false);
        self.rmcp.handle(request).await.map(Body::new)
    }
}

/// `/mcp`: the fast path when it can take the request, rmcp otherwise.
pub async fn serve(State(front): State<Arc<Front>>, request: Request) -> Response {
    if !front.fast || !takes_headers(&front, &request) {
        return front.to_rmcp(request).await;
    }
    let (parts, body) = request.into_parts();
    // `takes_headers` saw a Content-Length within the limit; hyper holds the body to it.
    let bytes = match axum::body::to_bytes(body, front.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(_) => return unreadable_body(),
    };
    let Some(request) = decode(&bytes) else {
        return front
            .to_rmcp(Request::from_parts(parts, Body::from(bytes)))
            .await;
    };
    let Some(negotiated) = agrees(&front.versions, &parts.headers, &request) else {
        return front
            .to_rmcp(Request::from_parts(parts, Body::from(bytes)))
            .await;
    };
    drop(bytes);
    front.server.0.services.metrics.record_front(true);
    answer(&front.server, request, &parts, negotiated).await
}

/// What rmcp answers a body it could not read (the client went away mid-body).
fn unreadable_body() -> Response {
    (
        StatusCode::BAD_REQUEST,
        "Bad Request: the request body could not be read",
    )
        .into_response()
}

/// The checks rmcp's transport makes before reading the body, for a request the fast path can
/// take: POST, a `Host` rmcp allows, an `Accept` with both JSON and event streams, a JSON
/// `Content-Type`, and a `Content-Length` within the limit (a chunked body goes to rmcp, which
/// reads it under the same limit).
fn takes_headers(front: &Front, request: &Request) -> bool {
    let headers = request.headers();
    request.method() == Method::POST
        && host_allowed(&front.host, headers)
        && accepts_json_and_streams(headers)
        && is_json(headers)
        && headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            .is_some_and(|n| n <= front.max_body_bytes)
}

/// rmcp's DNS-rebinding check for one allowed host without a port: the `Host` header's host.
fn host_allowed(allowed: &str, headers: &HeaderMap) -> bool {
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| http::uri::Authority::try_from(v).ok())
        .is_some_and(|authority| normalize_host(authority.host()) == allowed)
}

fn normalize_host(host: &str) -> String {
    host.trim_matches('[')
        .trim_matches(']')
        .to_ascii_lowercase()
}

/// rmcp's `Accept` rule: both `application/json` and `text/event-stream` among the media
/// ranges not weighted zero (its parser, restated: quoted commas and semicolons are not
/// separators, a malformed weight is ignored).
fn accepts_json_and_streams(headers: &HeaderMap) -> bool {
    let (mut json, mut stream) = (false, false);
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for entry in split_unquoted(value, ',') {
            let mut parts = split_unquoted(entry, ';');
            let Some(essence) = parts.next().map(str::trim) else {
                continue;
            };
            let weighted_out = parts.any(|parameter| {
                parameter.split_once('=').is_some_and(|(name, value)| {
                    name.trim().eq_ignore_ascii_case("q") && !quality_is_acceptable(value.trim())
                })
            });
            if !weighted_out {
                json |= essence.eq_ignore_ascii_case(JSON);
                stream |= essence.eq_ignore_ascii_case(EVENT_STREAM);
            }
        }
    }
    json && stream
}

fn split_unquoted(value: &str, delimiter: char) -> impl Iterator<Item = &str> {
    let mut quoted = false;
    let mut escaped = false;
    value.split(move |character| {
        if escaped {
            escaped = false;
        } else if quoted && character == '\\' {
            escaped = true;
        } else if character == '"' {
            quoted = !quoted;
        } else if !quoted && character == delimiter {
            return true;
        }
        false
    })
}

/// A weight is zero only when it is a well-formed zero (`0`, `0.0`, `0.000`).
fn quality_is_acceptable(quality: &str) -> bool {
    let (whole, fraction) = quality.split_once('.').unwrap_or((quality, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|digit| digit.is_ascii_digit()) {
        return true;
    }
    whole != "0" || fraction.bytes().any(|digit| digit != b'0')
}

/// rmcp's `Content-Type` rule: the essence is `application/json`.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let essence = v.split_once(';').map_or(v, |(essence, _)| essence);
            essence.trim().eq_ignore_ascii_case(JSON)
        })
}

/// The body as one request of a method the fast path serves, decoded into rmcp's types as rmcp
/// decodes it, without trying every kind of message and request in turn: a first pass reads
/// only which keys the object has and its `method` (rmcp's own shape rule: `method` and `id`,
/// neither `result` nor `error`), then the body is decoded as that method's request. A body
/// either step refuses goes to rmcp, which gives its own answer.
fn decode(bytes: &Bytes) -> Option<JsonRpcRequest<ClientRequest>> {
    use rmcp::model::{
        CallToolRequest, ListResourceTemplatesRequest, ListResourcesRequest, ListToolsRequest,
        ReadResourceRequest,
    };
    let shape: Shape = serde_json::from_slice(bytes).ok()?;
    if !(shape.id && !shape.result && !shape.error) {
        return None;
    }
    fn typed<'a, R: serde::Deserialize<'a>>(
        bytes: &'a [u8],
        into: fn(R) -> ClientRequest,
    ) -> Option<JsonRpcRequest<ClientRequest>> {
        let request = serde_json::from_slice::<JsonRpcRequest<R>>(bytes).ok()?;
        Some(JsonRpcRequest {
            jsonrpc: request.jsonrpc,
            id: request.id,
            request: into(request.request),
        })
    }
    match shape.method? {
        Served::ToolsCall => typed::<CallToolRequest>(bytes, ClientRequest::CallToolRequest),
        Served::ToolsList => typed::<ListToolsRequest>(bytes, ClientRequest::ListToolsRequest),
        Served::ResourcesList => {
            typed::<ListResourcesRequest>(bytes, ClientRequest::ListResourcesRequest)
        }
        Served::ResourceTemplatesList => typed::<ListResourceTemplatesRequest>(
            bytes,
            ClientRequest::ListResourceTemplatesRequest,
        ),
        Served::ResourcesRead => {
            typed::<ReadResourceRequest>(bytes, ClientRequest::ReadResourceRequest)
        }
    }
}

/// The methods the fast path serves.
#[derive(Clone, Copy)]
enum Served {
    ToolsCall,
    ToolsList,
    ResourcesList,
    ResourceTemplatesList,
    ResourcesRead,
}

/// Which of the keys that classify a JSON-RPC message an object has (present, whatever their
/// value, as rmcp counts them), and its method if it is one the fast path serves.
#[derive(Default)]
struct Shape {
    method: Option<Served>,
    id: bool,
    result: bool,
    error: bool,
}

impl<'de> serde::Deserialize<'de> for Shape {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{IgnoredAny, MapAccess, Visitor};

        /// A key, unescaped, without allocating.
        enum Key {
            Method,
            Id,
            Result,
            Error,
            Other,
        }
        impl<'de> serde::Deserialize<'de> for Key {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct KeyVisitor;
                impl Visitor<'_> for KeyVisitor {
                    type Value = Key;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("a key")
                    }
                    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Key, E> {
                        Ok(match key {
                            "method" => Key::Method,
                            "id" => Key::Id,
                            "result" => Key::Result,
                            "error" => Key::Error,
                            _ => Key::Other,
                        })
                    }
                }
                d.deserialize_identifier(KeyVisitor)
            }
        }

        /// A method name, unescaped, without allocating; `None` for any other value.
        struct MethodName(Option<Served>);
        impl<'de> serde::Deserialize<'de> for MethodName {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct NameVisitor;
                impl Visitor<'_> for NameVisitor {
                    type Value = MethodName;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("a method")
                    }
                    fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<MethodName, E> {
                        Ok(MethodName(match name {
                            "tools/call" => Some(Served::ToolsCall),
                            "tools/list" => Some(Served::ToolsList),
                            "resources/list" => Some(Served::ResourcesList),
                            "resources/templates/list" => Some(Served::ResourceTemplatesList),
                            "resources/read" => Some(Served::ResourcesRead),
                            _ => None,
                        }))
                    }
                }
                // Anything but a string is no method of ours (serde_json hands a string to
                // `visit_str`, and anything else to a method the visitor does not have).
                d.deserialize_str(NameVisitor)
            }
        }

        struct ShapeVisitor;
        impl<'de> Visitor<'de> for ShapeVisitor {
            type Value = Shape;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON-RPC message")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
                let mut shape = Shape::default();
                let mut methods = 0;
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Method => {
                            methods += 1;
                            shape.method = map.next_value::<MethodName>()?.0;
                            continue;
                        }
                        Key::Id => shape.id = true,
                        Key::Result => shape.result = true,
                        Key::Error => shape.error = true,
                        Key::Other => {}
                    }
                    map.next_value::<IgnoredAny>()?;
                }
                // A repeated `method` is rmcp's to refuse.
                if methods != 1 {
                    shape.method = None;
                }
                Ok(shape)
            }
        }
        deserializer.deserialize_map(ShapeVisitor)
    }
}

/// Whether the request's headers and `_meta` pass every check rmcp's stateless transport and
/// its request handling make: `Some(negotiated)` (whether it carries its version in `_meta`,
/// the 2026-07-28 shape) if they do, `None` to leave it to rmcp.
///
/// - `MCP-Protocol-Version`, if present: UTF-8, and a version rmcp knows unless `_meta`
///   carries one, which the header must then equal; a 2026-07-28 header needs `_meta`'s.
/// - A `_meta` version must be one this server speaks, with every `_meta` key 2026-07-28
///   requires.
/// - From 2026-07-28 (SEP-2243), exactly one `Mcp-Method` equal to the body's method, and for
///   `tools/call` and `resources/read` exactly one plain `Mcp-Name` equal to the tool's name
///   or the URI. (`Mcp-Param-*` headers are checked only for tools whose schema declares
///   them, and none of ours does.)
fn agrees(
    versions: &[ProtocolVersion],
    headers: &HeaderMap,
    request: &JsonRpcRequest<ClientRequest>,
) -> Option<bool> {
    let meta_version = request.request.get_meta().protocol_version();
    let header_version = match headers.get("mcp-protocol-version") {
        Some(value) => Some(value.to_str().ok()?),
        None => None,
    };
    match (&meta_version, header_version) {
        (None, Some(version)) => {
            if !ProtocolVersion::KNOWN_VERSIONS
                .iter()
                .any(|v| v.as_str() == version)
                || version >= ProtocolVersion::V_2026_07_28.as_str()
            {
                return None;
            }
        }
        (None, None) => {}
        (Some(meta), Some(header)) if meta.as_str() == header => {
            if !versions.contains(meta)
                || !request
                    .request
                    .get_meta()
                    .missing_required_keys(&ProtocolVersion::V_2026_07_28)
                    .is_empty()
            {
                return None;
            }
        }
        (Some(_), _) => return None,
    }
    if header_version.is_some_and(|v| v >= ProtocolVersion::STANDARD_HEADERS.as_str()) {
        let method = request.request.method();
        if single(headers, "mcp-method")? != method {
            return None;
        }
        let name = match &request.request {
            ClientRequest::CallToolRequest(call) => Some(call.params.name.as_ref()),
            ClientRequest::ReadResourceRequest(read) => Some(read.params.uri.as_str()),
            _ => None,
        };
        if let Some(name) = name {
            let header = single(headers, "mcp-name")?;
            if header != name || header.starts_with("=?base64?") {
                return None;
            }
        }
    }
    Some(meta_version.is_some())
}

/// The one value of a header that must appear once, as text.
fn single<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    value.to_str().ok()
}

/// Dispatches the request and answers as rmcp's stateless JSON transport does: rmcp's request
/// handling around the method (the versions' result shapes, its error mapping), then one
/// JSON-RPC message; a 2026-07-28 request's protocol errors get HTTP statuses.
async fn answer(
    server: &Traced,
    request: JsonRpcRequest<ClientRequest>,
    parts: &http::request::Parts,
    negotiated: bool,
) -> Response {
    let JsonRpcRequest {
        id, mut request, ..
    } = request;
    let meta = std::mem::take(request.get_meta_mut());
    let incoming = Incoming {
        id: &id,
        protocol_version: Incoming::version_of(&meta, &parts.headers),
        meta: &meta,
        parts,
    };
    let modern = incoming.protocol_version.as_str() >= ProtocolVersion::V_2026_07_28.as_str();
    let result = dispatch(server, request, &incoming).await;
    let message = match result.and_then(|result| shaped(result, modern)) {
        Ok(result) => ServerJsonRpcMessage::response(result, id),
        Err(mut error) => {
            if modern && error.code == ErrorCode::RESOURCE_NOT_FOUND {
                error.code = ErrorCode::INVALID_PARAMS;
            }
            ServerJsonRpcMessage::error(error, Some(id))
        }
    };
    let status = if negotiated {
        status_of(&message)
    } else {
        StatusCode::OK
    };
    // Room for a typical answer at once, so the body is not grown (and copied) several times.
    let mut body = Vec::with_capacity(1024);
    match serde_json::to_writer(&mut body, &message) {
        Ok(()) => {
            let mut response = Response::new(Body::from(body));
            *response.status_mut() = status;
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "could not serialize an MCP answer");
            (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response()
        }
    }
}

/// The method, through the same dispatch rmcp's transport reaches.
async fn dispatch(
    server: &Traced,
    request: ClientRequest,
    incoming: &Incoming<'_>,
) -> Result<ServerResult, McpError> {
    match request {
        ClientRequest::ListToolsRequest(_) => server
            .tools_list(incoming)
            .await
            .map(ServerResult::ListToolsResult),
        ClientRequest::CallToolRequest(call) => {
            let response = server.tools_call(call.params, incoming).await?;
            // rmcp refuses a task answer to a client that did not declare tasks; none of our
            // tools answers with a task, but the rule stays the same.
            if matches!(response, rmcp::model::CallToolResponse::Task(_))
                && !incoming
                    .meta
                    .client_capabilities()
                    .is_some_and(|caps| caps.supports_tasks())
            {
                return Err(McpError::missing_required_client_capability(
                    rmcp::model::ClientCapabilities::builder()
                        .enable_tasks()
                        .build(),
                ));
            }
            Ok(ServerResult::from(response))
        }
        ClientRequest::ListResourcesRequest(_) => server
            .resources_list(incoming)
            .await
            .map(ServerResult::ListResourcesResult),
        ClientRequest::ListResourceTemplatesRequest(_) => server
            .resources_templates_list(incoming)
            .await
            .map(ServerResult::ListResourceTemplatesResult),
        ClientRequest::ReadResourceRequest(read) => server
            .resources_read(read.params, incoming)
            .await
            .map(ServerResult::from),
        _ => Err(McpError::internal_error(
            "the fast path took a method it does not serve",
            None,
        )),
    }
}

/// A result in the shape the request's version expects, as rmcp's request handling leaves it.
fn shaped(mut result: ServerResult, modern: bool) -> Result<ServerResult, McpError> {
    if matches!(result, ServerResult::InputRequiredResult(_)) && !modern {
        return Err(McpError::invalid_request(
            "InputRequiredResult requires negotiated protocol version 2026-07-28 or newer",
            None,
        ));
    }
    if modern {
        result.fill_missing_cache_hints();
    } else {
        result.strip_result_type_for_legacy_peer();
        result.strip_non_object_output_for_legacy_peer();
    }
    Ok(result)
}

/// The HTTP status rmcp gives a negotiated (2026-07-28) request's answer.
fn status_of(message: &ServerJsonRpcMessage) -> StatusCode {
    let ServerJsonRpcMessage::Error(error) = message else {
        return StatusCode::OK;
    };
    match error.error.code {
        ErrorCode::UNSUPPORTED_PROTOCOL_VERSION
        | ErrorCode::MISSING_REQUIRED_CLIENT_CAPABILITY
        | ErrorCode::HEADER_MISMATCH => StatusCode::BAD_REQUEST,
        ErrorCode::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        _ => StatusCode::OK,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn accept_needs_both_types_not_weighted_out() {
        let ok = |v: &str| accepts_json_and_streams(&headers(&[("accept", v)]));
        assert!(ok("application/json, text/event-stream"));
        assert!(ok("text/event-stream;q=0.5, Application/JSON"));
        assert!(ok("application/json;q=0.x, text/event-stream"));
        assert!(!ok("application/json"));
        assert!(!ok("application/json;q=0, text/event-stream"));
        assert!(!ok("application/json;q=0.000, text/event-stream"));
        assert!(!ok("*/*"));
        assert!(!ok(r#"application/json;x="a,text/event-stream""#));
    }

    /// Whatever the fast decode takes, rmcp decodes to the same request; what it leaves, rmcp
    /// answers itself.
    #[test]
    fn the_fast_decode_agrees_with_rmcp() {
        let bodies = [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}"#,
            r#"{"method":"tools/call","params":{"name":"w","arguments":{"a":[1,2.5,"x"]},"_meta":{"progressToken":"p"}},"id":"s","jsonrpc":"2.0"}"#,
            r#"{"jsonrpc":"2.0","id":1,"met\u0068od":"tools/list"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools\/list","params":{"cursor":"c"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"webflow://sites/x"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/templates/list"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/list","params":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"w"},"result":null}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","method":"tools/call","params":{"name":"w"}}"#,
            r#"{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"w"}}"#,
            r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"w"}}"#,
            r#"{"jsonrpc":"1.0","id":1,"method":"tools/call","params":{"name":"w"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":7}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
            r#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"} x"#,
        ];
        let mut taken = 0;
        for body in bodies {
            let bytes = Bytes::from(body);
            let Some(fast) = decode(&bytes) else { continue };
            taken += 1;
            let rmcp = serde_json::from_slice::<rmcp::model::ClientJsonRpcMessage>(body.as_bytes())
                .unwrap_or_else(|e| panic!("the fast path took what rmcp refuses ({e}): {body}"));
            assert_eq!(
                serde_json::to_value(rmcp::model::ClientJsonRpcMessage::Request(fast)).unwrap(),
                serde_json::to_value(rmcp).unwrap(),
                "{body}"
            );
        }
        assert_eq!(taken, 7, "the well-formed requests of the served methods");
    }

    #[test]
    fn a_header_version_must_be_known_and_older_than_2026() {
        let call: JsonRpcRequest<ClientRequest> = serde_json::from_value(serde_json::json!({
            "jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "whoami", "arguments": {}}
        }))
        .unwrap();
        let versions = ProtocolVersion::KNOWN_VERSIONS;
        assert_eq!(agrees(versions, &headers(&[]), &call), Some(false));
        let with = |v: &str| agrees(versions, &headers(&[("mcp-protocol-version", v)]), &call);
        assert_eq!(with("2025-11-25"), Some(false));
        assert_eq!(with("2099-01-01"), None);
        assert_eq!(with("2026-07-28"), None);
    }
}
