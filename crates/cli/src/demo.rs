//! `deconflict demo`: a simulated day near Qamishli, driven through the
//! engine on a virtual clock (notifications, delays, cancellations, time
//! passing) and narrated. Illustrative: the activities are drawn from the
//! benchmark distribution over the region, not from any real plan. When the
//! service lands, the demo will serve this day on the web map.

use anyhow::{anyhow, Result};
use deconflict_engine::{Event, Resolution, Timestamp};
use deconflict_sim::scenario::{dense_day_shape, run as run_scenario, Scenario};

/// Events printed in full; the rest are counted.
const SHOWN_EVENTS: usize = 40;

fn clock(t: Timestamp, day_start: Timestamp) -> String {
    let minutes = (t.unix_ms() - day_start.unix_ms()).div_euclid(60_000);
    format!("{:02}:{:02}", minutes.div_euclid(60), minutes.rem_euclid(60))
}

fn narrate(event: &Event, at: &str) -> Option<String> {
    Some(match event {
        Event::ConflictOpened(c) => format!(
            "{at} conflict opened   activities {:>3} (party {}) and {:>3} (party {}): {:>6.0} m apart, {:>5.0} m required, near {:.4} N {:.4} E",
            c.key.activities()[0].0,
            c.parties[0].0,
            c.key.activities()[1].0,
            c.parties[1].0,
            c.finding.min_distance_m,
            c.finding.required_m,
            c.finding.location.lat_deg,
            c.finding.location.lon_deg
        ),
        Event::ConflictUpdated(c) => format!("{at} conflict updated  activities {:?}", c.key.activities().map(|a| a.0)),
        Event::ConflictResolved { conflict, resolution } => format!(
            "{at} conflict resolved activities {:?}: {}",
            conflict.key.activities().map(|a| a.0),
            match resolution {
                Resolution::Cancelled { activity } => format!("activity {} cancelled", activity.0),
                Resolution::NoLongerConflicting => "moved clear".to_owned(),
                Resolution::Expired { activity } => format!("activity {} ended", activity.0),
            }
        ),
        Event::ActivityExpired { .. } => return None,
    })
}

pub fn run(seed: u64) -> Result<()> {
    let shape = dense_day_shape();
    let day_start = shape.start;
    let scenario = Scenario::generate(seed, 300, shape);
    println!(
        "deconflict demo: a simulated day of 6 parties near Qamishli, 8 October 2022 UTC (seed {seed})\n"
    );
    // The run checks the engine's invariants at every step as it goes.
    let summary =
        run_scenario(&scenario, 50).map_err(|violation| anyhow!("invariant broken: {violation}"))?;
    let lines: Vec<String> = summary
        .events
        .iter()
        .filter_map(|(_, now, event)| narrate(event, &clock(*now, day_start)))
        .collect();
    for line in lines.iter().take(SHOWN_EVENTS) {
        println!("{line}");
    }
    if lines.len() > SHOWN_EVENTS {
        println!("… and {} more events", lines.len() - SHOWN_EVENTS);
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
    Ok(())
}
