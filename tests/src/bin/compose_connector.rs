//! A connector through Caddy, over HTTPS: run by `tests/compose/run.sh` against the docker
//! compose deployment it brought up (a driver, not a test of its own: it needs that deployment).
//! For each server in the plan, a person invited through the admin API, a passkey registered,
//! consent given and tokens exchanged on the connector door, then `tools/list` — and nothing of
//! OAuth on the static host. A failed step panics with what went wrong; `run.sh` reports it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test driver: a failed step is a panic with its message

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// What `tests/compose/run.sh` hands the connector check: Caddy's root certificate, the port
/// Caddy's 443 is published on at 127.0.0.1, and one entry per server to connect to.
#[derive(serde::Deserialize)]
struct ConnectorPlan {
    ca: PathBuf,
    https_port: u16,
    doors: Vec<DoorPlan>,
    /// Where to append every secret the flows were handed (invite, session, code, tokens), one
    /// a line, for the run's search of logs and `docker inspect`.
    secrets_out: Option<PathBuf>,
}

/// One server of the deployment: its two public URLs, its admin API (on the host's loopback)
/// and a read its tenant may call.
#[derive(serde::Deserialize)]
struct DoorPlan {
    tenant: String,
    /// The static door's origin, e.g. `https://mcp.localhost`.
    static_url: String,
    /// The connector door, e.g. `https://connect.localhost/mcp`.
    connector_url: String,
    admin_url: String,
    admin_token_file: PathBuf,
    /// A static bearer token of `tenant` for the static door (refused on the connector door).
    static_token_file: Option<PathBuf>,
    /// A read the tenant may call besides `whoami` (listed by `tools/list`).
    tool: String,
}

/// An HTTPS client that trusts Caddy's local CA only (verification on), reaches every host of
/// the plan at 127.0.0.1:<https_port> (Host and SNI keep the real names), and never follows a
/// redirect, so each 303 is seen.
fn caddy_client(plan: &ConnectorPlan) -> reqwest::Client {
    common::upstream::install_crypto_provider();
    let pem = std::fs::read(&plan.ca).unwrap();
    let ca = reqwest::Certificate::from_pem(&pem).unwrap();
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], plan.https_port));
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .tls_certs_only([ca])
        .timeout(std::time::Duration::from_secs(30));
    for door in &plan.doors {
        for url in [&door.static_url, &door.connector_url] {
            let host = reqwest::Url::parse(url)
                .unwrap()
                .host_str()
                .unwrap()
                .to_owned();
            builder = builder.resolve(&host, address);
        }
    }
    builder.build().unwrap()
}

/// A JSON-RPC answer from `/mcp`: a JSON body, or the last `data:` event of an SSE stream.
fn jsonrpc(answer: &tests::connector::Answer) -> Value {
    if let Ok(value) = serde_json::from_str(&answer.text) {
        return value;
    }
    answer
        .text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .next_back()
        .unwrap_or(Value::Null)
}

async fn mcp_post(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: &Value,
) -> tests::connector::Answer {
    let mut request = http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_string());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    tests::connector::Answer::read(request.send().await.unwrap()).await
}

async fn get(http: &reqwest::Client, url: &str) -> tests::connector::Answer {
    tests::connector::Answer::read(http.get(url).send().await.unwrap()).await
}

fn initialize() -> Value {
    serde_json::from_str(tests::connector::INITIALIZE).unwrap()
}

/// `initialize`, then `tools/list` and `whoami` (twice) with `token` on `url`: the tool names.
async fn list_tools_and_whoami(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    tenant: &str,
) -> Vec<String> {
    let init = mcp_post(http, url, Some(token), &initialize()).await;
    assert_eq!(init.status, 200, "{url}: initialize: {}", init.text);
    assert!(
        jsonrpc(&init)["result"]["serverInfo"].is_object(),
        "{url}: {}",
        init.text
    );
    let list = mcp_post(
        http,
        url,
        Some(token),
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    )
    .await;
    assert_eq!(list.status, 200, "{url}: tools/list: {}", list.text);
    let tools: Vec<String> = jsonrpc(&list)["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{url}: tools/list: {}", list.text))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    // Twice in a row: behind replicas balanced round robin, one call lands on each.
    for id in [3, 4] {
        let call = mcp_post(
            http,
            url,
            Some(token),
            &json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                    "params": {"name": "whoami", "arguments": {}}}),
        )
        .await;
        assert_eq!(call.status, 200, "{url}: whoami: {}", call.text);
        let result = &jsonrpc(&call)["result"];
        assert_ne!(result["isError"], true, "{url}: whoami: {}", call.text);
        assert_eq!(
            result["structuredContent"]["tenant"], tenant,
            "{url}: whoami: {}",
            call.text
        );
    }
    tools
}

/// The static door, through Caddy: MCP with static tokens and nothing of OAuth — no metadata
/// at any of the paths a client probes, no OAuth endpoint, a bare `Bearer` challenge, an
/// access token refused, and `/connector` gone with a pointer to the connector door.
async fn static_door_has_no_oauth(http: &reqwest::Client, door: &DoorPlan, access: &str) {
    let origin = door.static_url.trim_end_matches('/');
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-authorization-server",
        "/.well-known/oauth-authorization-server/mcp",
        "/.well-known/openid-configuration",
        "/authorize",
    ] {
        let answer = get(http, &format!("{origin}{path}")).await;
        assert_eq!(answer.status, 404, "{origin}{path}: {}", answer.text);
    }
    for path in ["/token", "/register", "/revoke"] {
        let answer = tests::connector::Answer::read(
            http.post(format!("{origin}{path}")).send().await.unwrap(),
        )
        .await;
        assert_eq!(answer.status, 404, "POST {origin}{path}: {}", answer.text);
    }
    let mcp = format!("{origin}/mcp");
    let bare = mcp_post(http, &mcp, None, &initialize()).await;
    assert_eq!(bare.status, 401, "{mcp}: {}", bare.text);
    let challenge = bare.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer") && !challenge.contains("resource_metadata"),
        "{mcp}: {challenge}"
    );
    let refused = mcp_post(http, &mcp, Some(access), &initialize()).await;
    assert_eq!(
        refused.status, 401,
        "an access token on {mcp}: {}",
        refused.text
    );
    let gone = get(http, &format!("{origin}/connector")).await;
    assert_eq!(gone.status, 410, "{origin}/connector: {}", gone.text);
    assert!(gone.text.contains(&door.connector_url), "{}", gone.text);
}

/// Invite → passkey → consent → tokens → `tools/list` on one connector door, as a person's
/// browser and an assistant (claude.ai) do it, every request through Caddy over verified HTTPS.
async fn connector_through_caddy(
    http: &reqwest::Client,
    door: &DoorPlan,
    secrets: &mut Vec<String>,
) {
    use tests::connector::{
        Answer, REDIRECT, STATE, VERIFIER, hidden_fields, pkce_challenge, with,
    };
    let url = door.connector_url.as_str();
    let origin = url
        .strip_suffix("/mcp")
        .unwrap_or_else(|| panic!("{url} ends in /mcp"));
    let token_of = |file: &Path| std::fs::read_to_string(file).unwrap().trim().to_owned();

    // Discovery, as claude.ai does it from the URL the person pastes.
    let challenge = mcp_post(http, url, None, &initialize()).await;
    assert_eq!(challenge.status, 401, "{url}: {}", challenge.text);
    let www = challenge.header("www-authenticate").unwrap_or_default();
    let metadata_url = format!("{origin}/.well-known/oauth-protected-resource/mcp");
    assert!(
        www.contains(&format!("resource_metadata=\"{metadata_url}\"")),
        "{url}: {www}"
    );
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let answer = get(http, &format!("{origin}{path}")).await;
        assert_eq!(answer.status, 200, "{origin}{path}: {}", answer.text);
        let prm = answer.json();
        assert_eq!(prm["resource"], url, "{origin}{path}: {}", answer.text);
        assert_eq!(
            prm["authorization_servers"],
            json!([origin]),
            "{}",
            answer.text
        );
    }
    let answer = get(
        http,
        &format!("{origin}/.well-known/oauth-authorization-server"),
    )
    .await;
    assert_eq!(answer.status, 200, "{origin}: AS metadata: {}", answer.text);
    let meta = answer.json();
    assert_eq!(meta["issuer"], origin);
    for (key, path) in [
        ("authorization_endpoint", "/authorize"),
        ("token_endpoint", "/token"),
        ("registration_endpoint", "/register"),
    ] {
        assert_eq!(
            meta[key],
            format!("{origin}{path}"),
            "{key}: {}",
            answer.text
        );
    }

    // A static token belongs to the static door only.
    if let Some(file) = &door.static_token_file {
        let refused = mcp_post(http, url, Some(&token_of(file)), &initialize()).await;
        assert_eq!(
            refused.status, 401,
            "a static token on {url}: {}",
            refused.text
        );
    }

    // The studio invites a person; the link and the connector URL are on the connector origin.
    let admin = common::runtime::admin::client::AdminClient::new(
        door.admin_url.clone(),
        token_of(&door.admin_token_file),
    )
    .unwrap();
    let invited = admin
        .invite_person(
            &door.tenant,
            &common::runtime::admin::InviteRequest {
                name: "Compose Test".into(),
                email: None,
                role: None,
                expires_days: None,
            },
        )
        .await
        .unwrap();
    assert!(
        invited.invite_url.starts_with(&format!("{origin}/invite/")),
        "{}",
        invited.invite_url
    );
    assert_eq!(invited.connector_url, url);

    // Their browser opens the link and registers a passkey (the software authenticator, with
    // the connector origin in clientDataJSON, as a browser on that page would).
    let (_passkey, cookie) = tests::passkey::register_with_invite(http, &invited.invite_url).await;
    assert!(
        cookie.starts_with("__Host-"),
        "an HTTPS origin's session cookie is __Host-: {cookie}"
    );

    // The assistant registers itself, the person allows it, the assistant gets its tokens.
    let registered = Answer::read(
        http.post(format!("{origin}/register"))
            .json(&json!({
                "client_name": "Compose Test Assistant",
                "redirect_uris": [REDIRECT],
                "token_endpoint_auth_method": "none",
            }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(registered.status, 201, "register: {}", registered.text);
    let client_id = registered.json()["client_id"].as_str().unwrap().to_owned();
    let params: Vec<(String, String)> = [
        ("response_type", "code"),
        ("client_id", client_id.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_challenge", &pkce_challenge(VERIFIER)),
        ("code_challenge_method", "S256"),
        ("state", STATE),
        ("resource", url),
        ("scope", "mcp"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let page = Answer::read(
        http.get(format!("{origin}/authorize"))
            .query(&params)
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(page.status, 200, "consent page: {}", page.text);
    let form = hidden_fields(&page.text);
    let consent = Answer::read(
        http.post(format!("{origin}/authorize"))
            .header("cookie", &cookie)
            .header("origin", origin)
            .form(&with(&form, "decision", "allow"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let (back_to, query) = consent.redirect();
    assert_eq!(back_to, REDIRECT);
    assert_eq!(query["state"], STATE);
    let exchange = |form: Vec<(&'static str, String)>| {
        let request = http.post(format!("{origin}/token")).form(&form);
        async move { Answer::read(request.send().await.unwrap()).await }
    };
    let tokens = exchange(vec![
        ("grant_type", "authorization_code".into()),
        ("code", query["code"].clone()),
        ("client_id", client_id.clone()),
        ("redirect_uri", REDIRECT.into()),
        ("code_verifier", VERIFIER.into()),
        ("resource", url.into()),
    ])
    .await;
    assert_eq!(tokens.status, 200, "token: {}", tokens.text);
    let access = tokens.json()["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens.json()["refresh_token"].as_str().unwrap().to_owned();

    // The assistant's MCP calls on the connector door, with the person's grant.
    let tools = list_tools_and_whoami(http, url, &access, &door.tenant).await;
    for tool in ["whoami", door.tool.as_str()] {
        assert!(
            tools.iter().any(|t| t == tool),
            "{url}: {tool} not in {tools:?}"
        );
    }
    // A refreshed access token works the same.
    let refreshed = exchange(vec![
        ("grant_type", "refresh_token".into()),
        ("refresh_token", refresh.clone()),
        ("client_id", client_id),
    ])
    .await;
    assert_eq!(refreshed.status, 200, "refresh: {}", refreshed.text);
    let access2 = refreshed.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    list_tools_and_whoami(http, url, &access2, &door.tenant).await;
    let invite_secret = invited.invite_url.rsplit('/').next().unwrap().to_owned();
    let session = cookie.split_once('=').unwrap().1.to_owned();
    secrets.extend([
        invite_secret,
        session,
        query["code"].clone(),
        access.clone(),
        refresh,
        access2.clone(),
        refreshed.json()["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned(),
    ]);

    static_door_has_no_oauth(http, door, &access2).await;
    println!(
        "PASS {url} as {}: invite, passkey, consent, tokens, refresh, tools/list ({} tools) and \
         whoami; {} serves no OAuth",
        door.tenant,
        tools.len(),
        door.static_url
    );
}

/// Run by `tests/compose/run.sh` against the deployment it brought up: for each server in the
/// plan (`COMPOSE_CONNECTOR_PLAN`, a JSON file), a person invited through the admin API, a
/// passkey registered, consent given and tokens exchanged on the connector door, then
/// `tools/list` there — all through Caddy over HTTPS, Caddy's CA the only one trusted.
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let file = std::env::var("COMPOSE_CONNECTOR_PLAN")
        .expect("COMPOSE_CONNECTOR_PLAN: the plan file tests/compose/run.sh writes");
    let plan: ConnectorPlan = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    assert!(!plan.doors.is_empty());
    let http = caddy_client(&plan);
    let mut secrets = Vec::new();
    for door in &plan.doors {
        connector_through_caddy(&http, door, &mut secrets).await;
    }
    if let Some(out) = &plan.secrets_out {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(out)
            .unwrap();
        for secret in secrets {
            assert!(!secret.is_empty() && !secret.contains(char::is_whitespace));
            writeln!(file, "{secret}").unwrap();
        }
    }
}
