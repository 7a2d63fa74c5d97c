//! The revocation drill: issue a canary token, prove it works, revoke it through the admin API,
//! prove the very next request is refused, and report how long that took. Run it regularly so
//! "we can cut a client off" stays a fact, not a hope.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::runtime::admin::IssueRequest;
use crate::runtime::admin_client::AdminClient;

const WHOAMI: &str =
    r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}"#;

#[derive(Debug)]
pub struct DrillReport {
    pub tenant: String,
    pub token_id: String,
    /// From sending the revoke to the first refused request.
    pub revoke_to_refusal: Duration,
    /// Requests refused on the first try after revoke returned (should be 1).
    pub attempts_until_refused: u32,
}

async fn whoami(
    http: &reqwest::Client,
    mcp_url: &str,
    token: &str,
) -> anyhow::Result<(u16, Value)> {
    let response = http
        .post(mcp_url)
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

pub async fn revoke(
    admin: &AdminClient,
    mcp_url: &str,
    tenant: &str,
) -> anyhow::Result<DrillReport> {
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
        let (status, body) = whoami(&http, mcp_url, &issued.token).await?;
        let seen = body
            .pointer("/result/structuredContent/tenant")
            .and_then(Value::as_str);
        if status != 200 || seen != Some(tenant) {
            bail!("the canary did not work before revocation (HTTP {status}, tenant {seen:?})");
        }
        eprintln!("drill: canary works (whoami = {tenant})");

        let started = Instant::now();
        admin
            .revoke(&issued.record.id)
            .await
            .context("revoking the canary")?;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (status, _) = whoami(&http, mcp_url, &issued.token).await?;
            if status == 401 {
                break;
            }
            if attempts >= 50 {
                bail!("the revoked canary was still accepted after {attempts} requests");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok((started.elapsed(), attempts))
    }
    .await;

    // Whatever happened, the canary must not outlive the drill.
    if result.is_err() {
        let _ = admin.revoke(&issued.record.id).await;
    }
    let (elapsed, attempts) = result?;
    Ok(DrillReport {
        tenant: tenant.to_owned(),
        token_id: issued.record.id,
        revoke_to_refusal: elapsed,
        attempts_until_refused: attempts,
    })
}

pub fn print(report: &DrillReport) {
    crate::out!(
        "revocation drill passed for {}: canary {} refused {:.1} ms after revoke (attempt {})",
        report.tenant,
        report.token_id,
        report.revoke_to_refusal.as_secs_f64() * 1000.0,
        report.attempts_until_refused
    );
}
