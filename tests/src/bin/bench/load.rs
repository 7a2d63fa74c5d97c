//! `bench load`: the same `whoami` load against an endpoint someone else started.

use std::sync::Arc;

use anyhow::Context as _;

use crate::args::LoadArgs;
use crate::http::Target;
use crate::measure::{Pids, Window, measure};
use crate::report::{header, row};
use crate::server::check_first_call;
use crate::system::clock_ticks;

/// `bench load`: the same client against an endpoint someone else started.
pub async fn load(mut args: LoadArgs) -> anyhow::Result<()> {
    if let Some(path) = &args.tokens_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        args.tokens
            .extend(text.lines().filter(|l| !l.is_empty()).map(str::to_owned));
    }
    let rest = args
        .url
        .strip_prefix("http://")
        .context("--url must start with http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let addr = tokio::net::lookup_host(authority)
        .await?
        .next()
        .with_context(|| format!("cannot resolve {authority}"))?;
    let target = Target {
        addr,
        host: authority.to_owned(),
        path: path.to_owned(),
    };
    check_first_call(&target, &args.tokens, "\"result\"").await?;
    let tokens = Arc::new(args.tokens.clone());
    let window = Window {
        warmup_secs: args.warmup_secs,
        duration_secs: args.duration_secs,
        wait_quiet_secs: 0,
    };
    let ticks = clock_ticks();
    let mut cells = Vec::new();
    println!("{}", header());
    for &concurrency in &args.concurrency {
        let cell = measure(
            &args.label,
            &target,
            &tokens,
            Pids {
                server: args.pid,
                db: None,
            },
            concurrency,
            window,
            ticks,
            0,
        )
        .await?;
        println!("{}", row(&cell));
        cells.push(cell);
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&cells)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
