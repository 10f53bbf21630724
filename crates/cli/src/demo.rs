//! `deconflict demo`: the real service on a fresh temporary store with the
//! bundled north-east Syria scenario (illustrative) loaded over its API,
//! the day's script played on an accelerated clock, and the web map.
//! Ctrl-C stops it; the temporary store goes with it.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use clap::Args;
use deconflict_demo::{script::drive_units, DemoConfig};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address to serve the API and the web map on (port 0: any free port).
    #[arg(long, env = "DECONFLICT_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Scenario seconds per real second (60: the day's hours pass in minutes).
    #[arg(long, default_value_t = 60.0, value_parser = positive)]
    speed: f64,
    /// Also print, once the service is up, one line of JSON for programs
    /// (the browser tests): `{"url", "parties": [{id, name, kind, token}]}`.
    #[arg(long)]
    print_json: bool,
}

fn positive(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err("must be a number above 0".into()),
    }
}

pub fn run(args: DemoArgs) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DECONFLICT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let data = tempfile::Builder::new()
        .prefix("deconflict-demo-")
        .tempdir()
        .context("cannot make a temporary data directory")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let config = DemoConfig {
        data_dir: data.path().to_path_buf(),
        listen: args.listen,
        speed: args.speed,
    };
    let data_path = data.path().to_path_buf();
    runtime.block_on(async move {
        let mut say = |line: String| println!("{line}");
        let demo = deconflict_demo::start(config, &mut say)
            .await
            .context("the demo could not start")?;
        println!(
            "\nweb map: {}/   (sign in as any party below, or pick one there)",
            demo.url
        );
        let mut parties: Vec<_> = demo.parties.values().collect();
        parties.sort_by_key(|p| p.id);
        if args.print_json {
            let listed: Vec<_> = parties
                .iter()
                .map(|p| serde_json::json!({"id": p.id, "name": p.name, "kind": p.kind, "token": p.token}))
                .collect();
            println!("{}", serde_json::json!({"url": demo.url, "parties": listed}));
        }
        for party in parties {
            println!("  {:<20} {:<13} token {}", party.name, party.kind, party.token);
        }
        println!(
            "data: {} (temporary); the day plays at {}× — Ctrl-C stops\n",
            data_path.display(),
            args.speed
        );
        let played = tokio::select! {
            played = deconflict_demo::run_script(&demo, args.speed, &mut say) => Some(played),
            _ = tokio::signal::ctrl_c() => None,
        };
        if let Some(played) = played {
            let outcome = played.context("the day's script failed")?;
            if !outcome.skipped.is_empty() {
                println!(
                    "skipped (endpoints not on this server yet): {}",
                    outcome.skipped.join(", ")
                );
            }
            // The live units go round their window until Ctrl-C.
            let live = demo.scenario.script.iter().find_map(|(at, step)| match step {
                deconflict_demo::scenario::Step::Live { until } => deconflict_formats::parse_rfc3339(until)
                    .ok()
                    .map(|end| (*at, end)),
                _ => None,
            });
            let looping = live.filter(|_| outcome.track_reports > 0).map(|(from, to)| {
                println!("the script is done; the live units keep driving. Ctrl-C stops.");
                tokio::spawn(drive_units(demo.snapshot(), now_ms(), args.speed, from, to, true))
            });
            if looping.is_none() {
                println!("the script is done; the map stays up. Ctrl-C stops.");
            }
            let _ = tokio::signal::ctrl_c().await;
            if let Some(task) = looping {
                task.abort();
            }
        }
        println!("stopping");
        demo.stop().await.context("stopping the service")?;
        Ok::<_, anyhow::Error>(())
    })?;
    data.close().context("removing the temporary data directory")?;
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
