//! Conflicts in the contract's JSON shape.

use deconflict_engine::Finding;
use serde_json::{json, Value};

use crate::time::format_rfc3339;

/// How the caller names what the engine numbers: the conflict's id, the two
/// activities and their parties, in the order the caller wants them shown.
#[derive(Debug, Clone, PartialEq)]
pub struct ConflictNames {
    pub id: Value,
    pub activities: [Value; 2],
    pub parties: [Value; 2],
    /// `open`, `acknowledged` or `resolved`.
    pub state: &'static str,
}

/// `{id, activities, parties, start, end, min_distance_m, required_m,
/// location, state}` as in the contract. Distances are rounded to the
/// centimetre: the geometry is exact to far better, and users read metres.
pub fn conflict_json(finding: &Finding, names: ConflictNames) -> Value {
    let round_cm = |m: f64| (m * 100.0).round() / 100.0;
    json!({
        "id": names.id,
        "activities": names.activities,
        "parties": names.parties,
        "start": format_rfc3339(finding.window.start),
        "end": finding.window.end.map(format_rfc3339),
        "min_distance_m": round_cm(finding.min_distance_m),
        "required_m": round_cm(finding.required_m),
        "location": {
            "type": "Point",
            "coordinates": [finding.location.lon_deg, finding.location.lat_deg],
        },
        "state": names.state,
    })
}
