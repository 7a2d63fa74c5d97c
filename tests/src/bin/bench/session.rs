//! `bench session`: a replayed assistant session. About fifty tool calls, as an assistant
//! working on a client's CMS makes them (list sites, collections, items page by page, single
//! items, a content audit, analytics, repository checks, a few drafts and their re-reads),
//! against the sandbox upstreams with a realistic latency and Webflow's quota of 60 requests a
//! minute, once with the upstream read cache off and once on, each on a fresh sandbox and
//! server (in this process). A "retry after N s" answer is retried after N s, as an assistant
//! would. Reported side by side: upstream requests (the sandbox's log), quota waits (the
//! server's metrics), retries, wall time, and whether every answer was the same apart from
//! freshness (`cached_for_secs`, and timestamps the run itself wrote).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use rmcp::model::CallToolResult;
use serde_json::{Value, json};
use tests::harness::{McpClient, TestServer, config_for, try_call};
use tests::sandbox::{Fixture, OwnerFixture, Sandbox};

use crate::args::SessionArgs;

/// One mode's run: what it cost and what it answered.
struct Replay {
    cache: bool,
    calls: usize,
    upstream: usize,
    webflow: usize,
    quota_waits: u64,
    retries: usize,
    cached_answers: usize,
    wall: Duration,
    answers: Vec<Value>,
}

pub async fn session(args: SessionArgs) -> anyhow::Result<()> {
    common::upstream::install_crypto_provider();
    let mut replays = Vec::new();
    for cache in [false, true] {
        replays.push(replay(&args, cache).await?);
    }
    print(&args, &replays);
    Ok(())
}

async fn replay(args: &SessionArgs, cache: bool) -> anyhow::Result<Replay> {
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await?;
    let owner = sandbox
        .fixture()
        .owner("acme")
        .context("the sandbox's acme")?
        .clone();
    let dir = tempfile::tempdir()?;
    let mut config = config_for(dir.path(), &sandbox.base_url());
    // What production runs with, not the test harness's generous quota.
    config.webflow_rate_per_min = args.webflow_per_min;
    config.max_retry_wait_ms = 2_000;
    config.upstream_timeout_ms = 10_000;
    config.upstream_cache = cache;
    let server = TestServer::try_start_spec(config, &shared_server::SHARED).await?;
    let tenant = server
        .provision_with(
            &owner,
            json!({"writable_collections": [owner.collection_ids[0]]}),
        )
        .await;
    let client = server.try_client(&tenant.token, None).await?;
    sandbox.set_latency(Duration::from_millis(args.latency_ms));
    sandbox.clear_requests();

    let started = Instant::now();
    let stamp = tests::sandbox::now_rfc3339();
    let mut answers = Vec::new();
    let mut retries = 0;
    let mut cached_answers = 0;
    let script = script(&owner);
    for step in &script {
        let (tool, args) = step.call(&answers);
        let (result, tries) = call_retrying(&client, tool, args).await?;
        retries += tries;
        let answer = answer_of(&result);
        if answer.get("cached_for_secs").is_some() {
            cached_answers += 1;
        }
        answers.push(answer);
    }
    let wall = started.elapsed();
    let requests = sandbox.requests();
    let metrics = server.metrics().await;
    server.stop().await;
    Ok(Replay {
        cache,
        calls: script.len(),
        upstream: requests.len(),
        webflow: requests
            .iter()
            .filter(|r| r.path.starts_with("/v2/"))
            .count(),
        quota_waits: counter(
            &metrics,
            "studio_mcp_upstream_waits_total",
            "reason=\"quota\"",
        ),
        retries,
        cached_answers,
        wall,
        answers: answers.iter().map(|a| normalized(a, &stamp)).collect(),
    })
}

/// One tool call of the script; the arguments of some depend on earlier answers (the item a
/// draft created).
enum Step {
    Call(&'static str, Value),
    /// `tool` with `args` plus `item_id` = the id in answer `from`.
    OnCreated(&'static str, Value, usize),
}

impl Step {
    fn call(&self, answers: &[Value]) -> (&'static str, Value) {
        match self {
            Step::Call(tool, args) => (tool, args.clone()),
            Step::OnCreated(tool, args, from) => {
                let mut args = args.clone();
                let id = answers
                    .get(*from)
                    .and_then(|a| a.get("id"))
                    .cloned()
                    .unwrap_or(Value::Null);
                if let Some(fields) = args.as_object_mut() {
                    fields.insert("item_id".into(), id);
                }
                (tool, args)
            }
        }
    }
}

/// The session: what an assistant asked to tidy up a client's blog does, re-reads included.
fn script(owner: &OwnerFixture) -> Vec<Step> {
    use Step::{Call, OnCreated};
    let blog = owner.collection_ids[0].as_str();
    let authors = owner.collection_ids[1].as_str();
    let items: Vec<&str> = owner
        .item_ids
        .iter()
        .filter(|(c, _)| c == blog)
        .map(|(_, i)| i.as_str())
        .collect();
    let author_items: Vec<&str> = owner
        .item_ids
        .iter()
        .filter(|(c, _)| c == authors)
        .map(|(_, i)| i.as_str())
        .collect();
    let item = |id: &str| json!({"collection_id": blog, "item_id": id});
    let page = |offset: u32| json!({"collection_id": blog, "offset": offset, "limit": 2});
    let mut steps = vec![
        Call("whoami", json!({})),
        Call("webflow_list_sites", json!({})),
        Call("webflow_get_site", json!({})),
        Call("site_status", json!({})),
        Call("webflow_list_collections", json!({})),
        Call("webflow_get_collection", json!({"collection_id": blog})),
        Call("webflow_get_collection", json!({"collection_id": authors})),
        Call("webflow_list_items", page(0)),
        Call("webflow_list_items", page(2)),
        Call("webflow_list_items", page(4)),
    ];
    steps.extend(items.iter().map(|id| Call("webflow_get_item", item(id))));
    steps.push(Call(
        "webflow_list_items",
        json!({"collection_id": authors}),
    ));
    steps.extend(author_items.iter().map(|id| {
        Call(
            "webflow_get_item",
            json!({"collection_id": authors, "item_id": id}),
        )
    }));
    steps.push(Call("webflow_list_pages", json!({})));
    steps.extend(
        owner
            .page_ids
            .iter()
            .map(|id| Call("webflow_get_page_content", json!({"page_id": id}))),
    );
    steps.push(Call("content_audit", json!({})));
    // The audit's findings, one by one: every blog item and page again.
    steps.extend(items.iter().map(|id| Call("webflow_get_item", item(id))));
    steps.push(Call("webflow_list_pages", json!({})));
    steps.extend(
        owner
            .page_ids
            .iter()
            .map(|id| Call("webflow_get_page_content", json!({"page_id": id}))),
    );
    steps.extend([
        Call(
            "analytics_query",
            json!({"metrics": ["visitors", "pageviews"], "date_range": "30d"}),
        ),
        Call(
            "analytics_query",
            json!({"metrics": ["visitors"], "date_range": "30d", "dimensions": ["event:page"]}),
        ),
        Call("github_get_repo", json!({})),
        Call("github_list_commits", json!({})),
        Call("github_list_workflow_runs", json!({})),
        // Back to the blog: the schema again before writing, then two drafts and a fix.
        Call("webflow_get_collection", json!({"collection_id": blog})),
        Call("webflow_list_items", page(0)),
    ]);
    let created_at = steps.len();
    steps.extend([
        Call(
            "webflow_create_item",
            json!({"collection_id": blog, "field_data": {"name": "Spring launch", "slug": "spring-launch", "seo-description": "What is new this spring."}}),
        ),
        OnCreated("webflow_get_item", json!({"collection_id": blog}), created_at),
        Call(
            "webflow_create_item",
            json!({"collection_id": blog, "field_data": {"name": "Summer plans", "slug": "summer-plans"}}),
        ),
        Call("webflow_list_items", page(4)),
        Call("webflow_list_items", page(6)),
        Call(
            "webflow_update_item",
            json!({"collection_id": blog, "item_id": items[4], "field_data": {"seo-description": "Now with a description."}}),
        ),
        Call("webflow_get_item", item(items[4])),
        OnCreated(
            "webflow_update_item",
            json!({"collection_id": blog, "field_data": {"post-body": "<p>Draft text.</p>"}}),
            created_at,
        ),
        OnCreated("webflow_get_item", json!({"collection_id": blog}), created_at),
        // Checking the work: the audit and the listings again, as an assistant does.
        Call("content_audit", json!({})),
        Call("webflow_list_items", page(0)),
        Call("webflow_list_items", page(2)),
        Call("webflow_get_item", item(items[0])),
        Call("webflow_get_item", item(items[1])),
        Call("site_status", json!({})),
        Call("webflow_get_site", json!({})),
    ]);
    steps
}

/// Calls `tool`; a "retry after N s" answer is waited out and the call made again (at most
/// five times). The result, and how many retries it took.
async fn call_retrying(
    client: &McpClient,
    tool: &str,
    args: Value,
) -> anyhow::Result<(CallToolResult, usize)> {
    let mut retries = 0;
    loop {
        let result = try_call(client, tool, args.clone())
            .await
            .with_context(|| format!("tools/call {tool}"))?;
        match retry_after(&result) {
            Some(secs) if retries < 5 => {
                retries += 1;
                tokio::time::sleep(Duration::from_secs(secs)).await;
            }
            _ => return Ok((result, retries)),
        }
    }
}

/// The N of a "retry after N s" tool error.
fn retry_after(result: &CallToolResult) -> Option<u64> {
    if result.is_error != Some(true) {
        return None;
    }
    let text = result
        .content
        .iter()
        .find_map(|c| c.as_text())?
        .text
        .clone();
    let (_, rest) = text.split_once("retry after ")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// A call's answer: its structured result, or its error text.
fn answer_of(result: &CallToolResult) -> Value {
    if result.is_error == Some(true) {
        let text: Vec<_> = result
            .content
            .iter()
            .filter_map(|c| c.as_text().map(|t| t.text.clone()))
            .collect();
        return json!({"error": text.join("\n")});
    }
    result.structured_content.clone().unwrap_or(Value::Null)
}

/// `answer` without what may differ between two faithful runs: its `cached_for_secs`, and
/// timestamps written during this run (`stamp` is when it began; RFC 3339 in UTC sorts as
/// text).
fn normalized(answer: &Value, stamp: &str) -> Value {
    match answer {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .filter(|(k, _)| k.as_str() != "cached_for_secs")
                .map(|(k, v)| (k.clone(), normalized(v, stamp)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| normalized(v, stamp)).collect()),
        Value::String(text) if looks_like_time(text) && text.as_str() >= stamp => {
            Value::String("<during the run>".into())
        }
        other => other.clone(),
    }
}

fn looks_like_time(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() >= 20 && bytes[4] == b'-' && bytes[10] == b'T' && text.ends_with('Z')
}

/// The sum of `name`'s samples whose labels contain `label`, in Prometheus text.
fn counter(metrics: &str, name: &str, label: &str) -> u64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(name) && line.contains(label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn print(args: &SessionArgs, replays: &[Replay]) {
    println!();
    println!(
        "Replayed assistant session: {} tool calls, sandbox latency {} ms, Webflow {} requests/min",
        replays.first().map_or(0, |r| r.calls),
        args.latency_ms,
        args.webflow_per_min
    );
    println!();
    println!(
        "| upstream cache | upstream requests | of them Webflow | quota waits | retries after \"retry after\" | answers from cache | wall time |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in replays {
        println!(
            "| {} | {} | {} | {} | {} | {} | {:.1} s |",
            if r.cache { "on" } else { "off" },
            r.upstream,
            r.webflow,
            r.quota_waits,
            r.retries,
            r.cached_answers,
            r.wall.as_secs_f64()
        );
    }
    if let [off, on] = replays {
        let differ: Vec<usize> = off
            .answers
            .iter()
            .zip(&on.answers)
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .map(|(i, _)| i + 1)
            .collect();
        println!();
        if differ.is_empty() {
            println!(
                "Answers identical apart from freshness: yes, all {} calls.",
                off.answers.len()
            );
        } else {
            println!("Answers identical apart from freshness: NO; calls {differ:?} differ.");
        }
    }
}
