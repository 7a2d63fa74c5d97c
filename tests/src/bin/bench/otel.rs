//! `bench otel`: what exporting traces costs. Three shared servers on one populated data dir
//! each (one tenant): export off, export on sampling every call (`always_on`), and export on
//! sampling 1% (`traceidratio` 0.01), to a collector in this process that answers every export
//! and counts it (on its own thread, so its work is not the load generator's). Rounds
//! interleave the three; each row says how many spans the server exported and dropped.

use std::sync::Arc;

use anyhow::{Context as _, bail};

use crate::args::RunArgs;
use crate::http::Target;
use crate::measure::{Pids, Window, measure};
use crate::populate::populate;
use crate::report::row;
use crate::results::median;
use crate::server::{Probe, Server, check_first_call, server_command};
use crate::system::{clock_ticks, free_port, online_cpus, which};

struct Variant {
    label: &'static str,
    env: Vec<(&'static str, String)>,
    server: Server,
    target: Target,
    admin: String,
    tokens: Arc<Vec<String>>,
    _dir: tempfile::TempDir,
}

/// A counting OTLP collector on a thread and runtime of its own; its endpoint.
fn collector() -> anyhow::Result<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("otlp-collector".into())
        .spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let collector = tests::otlp::Collector::counting().await;
                let _ = tx.send(collector.endpoint.clone());
                std::future::pending::<()>().await;
            });
        })?;
    Ok(rx.recv()?)
}

/// A counter's value on the server's `/metrics`.
async fn counter(admin: &str, token: &str, series: &str) -> u64 {
    let Ok(http) = common::upstream::http_client() else {
        return 0;
    };
    let Ok(response) = http
        .get(format!("{admin}/metrics"))
        .bearer_auth(token)
        .send()
        .await
    else {
        return 0;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .find_map(|line| line.strip_prefix(series))
        .and_then(|rest| rest.trim().parse().ok())
        .unwrap_or(0)
}

pub async fn otel(args: RunArgs) -> anyhow::Result<()> {
    let server_bin = match &args.server {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("shared-server"),
    };
    if !server_bin.is_file() {
        bail!("{} not found: build it first", server_bin.display());
    }
    let pin = !args.no_pin && online_cpus() >= 2 && which("taskset");
    let ticks = clock_ticks();
    let endpoint = collector()?;
    let plans: [(&str, Vec<(&str, String)>); 3] = [
        ("export off", vec![]),
        (
            "export on, sampled 1.0",
            vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.clone()),
                ("OTEL_TRACES_SAMPLER", "always_on".into()),
            ],
        ),
        (
            "export on, sampled 0.01",
            vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.clone()),
                ("OTEL_TRACES_SAMPLER", "traceidratio".into()),
                ("OTEL_TRACES_SAMPLER_ARG", "0.01".into()),
            ],
        ),
    ];
    let mut variants = Vec::new();
    for (label, env) in plans {
        let dir = tempfile::Builder::new()
            .prefix("studio-mcp-bench-otel-")
            .tempdir()?;
        let port = free_port()?;
        let admin_port = free_port()?;
        let public_url = format!("http://127.0.0.1:{port}");
        let tokens = Arc::new(populate(
            dir.path(),
            &public_url,
            1,
            args.tokens_per_tenant,
        )?);
        let mut command = server_command(&server_bin, pin, &args);
        command
            .arg("serve")
            .env("STUDIO_MCP_DATA_DIR", dir.path())
            .env("STUDIO_MCP_PUBLIC_URL", &public_url)
            .env("STUDIO_MCP_LISTEN", format!("127.0.0.1:{port}"))
            .env("STUDIO_MCP_ADMIN_LISTEN", format!("127.0.0.1:{admin_port}"));
        for (name, value) in &env {
            command.env(name, value);
        }
        let target = Target {
            addr: ([127, 0, 0, 1], port).into(),
            host: format!("127.0.0.1:{port}"),
            path: "/mcp".to_owned(),
        };
        let log = dir.path().join("server.log");
        let (server, _) = Server::start(
            &mut command,
            &log,
            &Probe::Health(target.addr, target.host.clone()),
        )
        .await
        .with_context(|| label.to_owned())?;
        check_first_call(&target, &tokens, "\"tenant\"").await?;
        variants.push(Variant {
            label,
            env,
            server,
            target,
            admin: format!("http://127.0.0.1:{admin_port}"),
            tokens,
            _dir: dir,
        });
    }
    let mut rows: Vec<(usize, usize, f64)> = Vec::new();
    for round in 1..=args.rounds {
        eprintln!("bench otel: round {round} of {}", args.rounds);
        for &concurrency in &args.concurrency {
            for (i, v) in variants.iter().enumerate() {
                let cell = measure(
                    &format!("whoami, {}", v.label),
                    &v.target,
                    &v.tokens,
                    Pids {
                        server: Some(v.server.pid()),
                        db: None,
                    },
                    concurrency,
                    Window::from(&args),
                    ticks,
                    1,
                )
                .await?;
                eprintln!("{}", row(&cell));
                rows.push((i, concurrency, cell.calls_per_sec));
            }
        }
    }
    println!();
    println!(
        "| export | clients | calls/s (median of {} rounds) | vs off | spans exported | dropped (queue full / failed) |",
        args.rounds
    );
    println!("|---|---|---|---|---|---|");
    for &concurrency in &args.concurrency {
        let median = |i: usize| {
            median(
                rows.iter()
                    .filter(|(j, c, _)| *j == i && *c == concurrency)
                    .map(|(_, _, r)| *r)
                    .collect(),
            )
        };
        let off = median(0);
        for (i, v) in variants.iter().enumerate() {
            let token =
                std::fs::read_to_string(v._dir.path().join("admin-token")).unwrap_or_default();
            let token = token.trim();
            let series =
                |outcome: &str| format!("studio_mcp_trace_spans_total{{outcome=\"{outcome}\"}}");
            let exported = counter(&v.admin, token, &series("exported")).await;
            let full = counter(&v.admin, token, &series("queue_full")).await;
            let failed = counter(&v.admin, token, &series("export_failed")).await;
            let _ = &v.env;
            println!(
                "| {} | {concurrency} | {:.0} | {:.3} | {exported} | {full} / {failed} |",
                v.label,
                median(i),
                median(i) / off
            );
        }
    }
    for v in variants {
        v.server.stop().await;
    }
    Ok(())
}
