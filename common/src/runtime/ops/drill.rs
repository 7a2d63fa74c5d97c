//! The revocation drill: issue a canary token, prove it works, revoke it through the admin API,
//! prove the very next request is refused, and report how long that took. Run it regularly so
//! "we can cut a client off" stays a fact, not a hope. With several replicas, give each one's
//! endpoint: the canary must work on every one first, and be refused by every one after.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::runtime::admin::IssueRequest;
use crate::runtime::admin::client::AdminClient;

const WHOAMI: &str =
    r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}"#;

#[derive(Debug)]
pub struct DrillReport {
    pub tenant: String,
    pub token_id: String,
    /// From sending the revoke to the last endpoint's first refused request.
    pub revoke_to_refusal: Duration,
    /// The most requests any endpoint needed after revoke returned to refuse (should be 1).
    pub attempts_until_refused: u32,
    /// Each endpoint: its URL, the time from sending the revoke to its refusal, and attempts.
    pub endpoints: Vec<(String, Duration, u32)>,
}

/// The `Host` a request to `url`'s server carries (host, and port if one is given): what a
/// drill names when it reaches that server by another address.
pub fn host_of(url: &str) -> Option<String> {
    let url = reqwest::Url::parse(url).ok()?;
    let host = url.host_str()?;
    Some(
        url.port()
            .map_or(host.to_owned(), |p| format!("{host}:{p}")),
    )
}

pub(super) async fn whoami(
    http: &reqwest::Client,
    mcp_url: &str,
    host: Option<&str>,
    token: &str,
) -> anyhow::Result<(u16, Value)> {
    let mut request = http.post(mcp_url);
    if let Some(host) = host {
        request = request.header("host", host);
    }
    let response = request
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(WHOAMI)
        .send()
        .await
        .with_context(|| format!("cannot reach {mcp_url}"))?;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    Ok((status, body))
}

/// Runs the drill against every endpoint in `mcp_urls` (one per replica; at least one),
/// naming `host` (the public URL's) to each when they are reached by another address.
pub async fn revoke(
    admin: &AdminClient,
    mcp_urls: &[&str],
    tenant: &str,
    host: Option<&str>,
) -> anyhow::Result<DrillReport> {
    if mcp_urls.is_empty() {
        bail!("the drill needs at least one MCP endpoint");
    }
    let http = crate::upstream::http_client().context("cannot build the HTTP client")?;
    let request = IssueRequest {
        label: Some("drill-canary".into()),
        ttl_days: Some(1),
    };
    let issued = admin
        .issue_token(tenant, &request)
        .await
        .context("issuing the canary token")?;
    eprintln!("drill: issued canary {} for {tenant}", issued.record.id);

    let result = async {
        for mcp_url in mcp_urls {
            let (status, body) = whoami(&http, mcp_url, host, &issued.token).await?;
            let seen = body
                .pointer("/result/structuredContent/tenant")
                .and_then(Value::as_str);
            if status != 200 || seen != Some(tenant) {
                bail!(
                    "the canary did not work at {mcp_url} before revocation (HTTP {status}, \
                     tenant {seen:?})"
                );
            }
        }
        eprintln!(
            "drill: canary works (whoami = {tenant}) at {} endpoint(s)",
            mcp_urls.len()
        );

        let started = Instant::now();
        admin
            .revoke(&issued.record.id)
            .await
            .context("revoking the canary")?;
        let refusals = mcp_urls.iter().map(|mcp_url| {
            let (http, token) = (&http, &issued.token);
            async move {
                let mut attempts = 0;
                loop {
                    attempts += 1;
                    let (status, _) = whoami(http, mcp_url, host, token).await?;
                    if status == 401 {
                        return Ok(((*mcp_url).to_owned(), started.elapsed(), attempts));
                    }
                    if attempts >= 50 {
                        bail!(
                            "the revoked canary was still accepted at {mcp_url} after {attempts} \
                             requests"
                        );
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        });
        futures::future::try_join_all(refusals).await
    }
    .await;

    // Whatever happened, the canary must not outlive the drill.
    if result.is_err() {
        let _ = admin.revoke(&issued.record.id).await;
    }
    let endpoints = result?;
    Ok(DrillReport {
        tenant: tenant.to_owned(),
        token_id: issued.record.id,
        revoke_to_refusal: endpoints.iter().map(|e| e.1).max().unwrap_or_default(),
        attempts_until_refused: endpoints.iter().map(|e| e.2).max().unwrap_or_default(),
        endpoints,
    })
}

pub fn print(report: &DrillReport) {
    crate::out!(
        "revocation drill passed for {}: canary {} refused {:.1} ms after revoke (attempt {}){}",
        report.tenant,
        report.token_id,
        report.revoke_to_refusal.as_secs_f64() * 1000.0,
        report.attempts_until_refused,
        if report.endpoints.len() > 1 {
            " by every endpoint:"
        } else {
            ""
        }
    );
    if report.endpoints.len() > 1 {
        for (url, elapsed, attempts) in &report.endpoints {
            crate::out!(
                "  {url}: refused {:.1} ms after revoke (attempt {attempts})",
                elapsed.as_secs_f64() * 1000.0
            );
        }
    }
}
