//! A simulated day around al-Qahtaniyah and Qamishli, driven through the
//! engine on a virtual clock: notifications, delays, cancellations and time
//! passing, with every conflict event printed as it happens.
//!
//! `cargo run --release -p deconflict-sim --example day [SEED]`
//!
//! Illustrative: the activities are drawn from the benchmark distribution
//! over the region, not from any real plan.

use deconflict_engine::{Event, Resolution, Timestamp};
use deconflict_sim::scenario::{dense_day_shape, run, Scenario};

fn clock(t: Timestamp, day_start: Timestamp) -> String {
    let minutes = (t.unix_ms() - day_start.unix_ms()).div_euclid(60_000);
    format!("{:02}:{:02}", minutes.div_euclid(60), minutes.rem_euclid(60))
}

fn main() {
    let seed: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2022);
    let shape = dense_day_shape();
    let day_start = shape.start;
    let scenario = Scenario::generate(seed, 300, shape);
    println!("deconflict: a simulated day of 6 parties near Qamishli (seed {seed}), 8 October 2022 UTC");
    let summary = match run(&scenario, 50) {
        Ok(summary) => summary,
        Err(violation) => {
            eprintln!("invariant broken: {violation}");
            std::process::exit(1);
        }
    };
    let mut shown = 0;
    for (_, now, event) in &summary.events {
        {
            let at = clock(*now, day_start);
            let line = match event {
                Event::ConflictOpened(c) => format!(
                    "{at} conflict opened   activities {:>3} ({:?}) and {:>3} ({:?}): {:>6.0} m apart, {:>5.0} m required, near {:.4} N {:.4} E",
                    c.key.activities()[0].0,
                    c.parties[0],
                    c.key.activities()[1].0,
                    c.parties[1],
                    c.finding.min_distance_m,
                    c.finding.required_m,
                    c.finding.location.lat_deg,
                    c.finding.location.lon_deg
                ),
                Event::ConflictUpdated(c) => {
                    format!("{at} conflict updated  activities {:?}", c.key.activities().map(|a| a.0))
                }
                Event::ConflictResolved { conflict, resolution } => format!(
                    "{at} conflict resolved activities {:?}: {}",
                    conflict.key.activities().map(|a| a.0),
                    match resolution {
                        Resolution::Cancelled { activity } => format!("activity {} cancelled", activity.0),
                        Resolution::NoLongerConflicting => "moved clear".to_owned(),
                        Resolution::Expired { activity } => format!("activity {} ended", activity.0),
                    }
                ),
                Event::ActivityExpired { .. } => continue,
            };
            if shown < 40 {
                println!("{line}");
            }
            shown += 1;
        }
    }
    if shown > 40 {
        println!("… and {} more events", shown - 40);
    }
    println!(
        "\n{} notified, {} moved, {} cancelled, {} ended; conflicts: {} opened, {} updated, {} resolved, {} still open",
        summary.notified,
        summary.shifted,
        summary.cancelled,
        summary.expired,
        summary.opened,
        summary.updated,
        summary.resolved,
        summary.open_at_end
    );
}
