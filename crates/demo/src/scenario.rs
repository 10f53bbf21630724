//! The bundled scenario file (`crates/sim/scenarios/*.json`), read and
//! checked: parties, zones, activities, the script and the live units.

use std::collections::HashSet;

use deconflict_engine::Timestamp;
use deconflict_formats::{format_rfc3339, parse_rfc3339};
use serde::Deserialize;
use serde_json::Value;

/// What is wrong with a scenario file.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("not a scenario: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{pointer}: {message}")]
    Field { pointer: String, message: String },
}

fn field(pointer: impl Into<String>, message: impl Into<String>) -> ScenarioError {
    ScenarioError::Field {
        pointer: pointer.into(),
        message: message.into(),
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct PartySpec {
    pub key: String,
    pub name: String,
    pub kind: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ZoneSpec {
    pub key: String,
    pub party: String,
    /// Keys of the excluded (exclusion) or bound (demarcation) parties.
    #[serde(default)]
    pub parties: Vec<String>,
    pub feature: Value,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ActivitySpec {
    pub key: String,
    pub party: String,
    pub feature: Value,
}

/// A live unit: it drives its activity's route at constant speed over the
/// activity's window.
#[derive(Debug, Clone, Deserialize)]
pub struct UnitSpec {
    pub uid: String,
    pub party: String,
    pub activity: String,
}

/// One step of the day.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case")]
pub enum Step {
    Message {
        key: String,
        from: String,
        to: String,
        priority: String,
        body: String,
        #[serde(default)]
        ack_within_s: Option<u64>,
        /// The two activities whose conflict the message is about.
        #[serde(default)]
        about: Option<[String; 2]>,
    },
    AckMessage {
        by: String,
        message: String,
    },
    AckConflict {
        by: String,
        about: [String; 2],
    },
    /// Moves an activity later by `minutes` (a PUT with `If-Match`).
    Delay {
        by: String,
        activity: String,
        minutes: i64,
    },
    /// Starts the live units until `until`.
    Live {
        until: String,
    },
    Incident {
        by: String,
        severity: String,
        at_place: [f64; 2],
        summary: String,
        description: String,
        /// The other parties involved (keys); each is told, and may read the
        /// evidence.
        #[serde(default)]
        parties: Vec<String>,
        /// Units (uids) whose tracks are evidence, wherever they were.
        #[serde(default)]
        units: Vec<String>,
    },
}

#[derive(Debug, Clone, Deserialize)]
pub struct TimedStep {
    pub at: String,
    #[serde(flatten)]
    pub step: Step,
}

#[derive(Debug, Clone, Deserialize)]
struct ScenarioFile {
    name: String,
    illustrative: String,
    origin: String,
    parties: Vec<PartySpec>,
    zones: Vec<ZoneSpec>,
    activities: Vec<ActivitySpec>,
    script: Vec<TimedStep>,
    units: Vec<UnitSpec>,
}

/// A checked scenario: every key it refers to exists, every time parses,
/// the script is in time order.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    /// Says the scenario is illustrative, and from what.
    pub illustrative: String,
    /// The planning hour: placed at the moment the demo starts.
    pub origin: Timestamp,
    pub parties: Vec<PartySpec>,
    pub zones: Vec<ZoneSpec>,
    pub activities: Vec<ActivitySpec>,
    pub script: Vec<(Timestamp, Step)>,
    pub units: Vec<UnitSpec>,
}

fn time(text: &str, pointer: &str) -> Result<Timestamp, ScenarioError> {
    parse_rfc3339(text).map_err(|e| field(pointer, e.to_string()))
}

impl Scenario {
    /// North-east Syria, 8 October 2022 (`deconflict_sim::bundled`).
    pub fn bundled() -> Result<Scenario, ScenarioError> {
        Scenario::parse(deconflict_sim::bundled::NE_SYRIA_2022_10_08)
    }

    pub fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        let file: ScenarioFile = serde_json::from_str(text)?;
        let origin = time(&file.origin, "/origin")?;
        let parties: HashSet<&str> = file.parties.iter().map(|p| p.key.as_str()).collect();
        let activities: HashSet<&str> = file.activities.iter().map(|a| a.key.as_str()).collect();
        let party = |key: &str, pointer: String| {
            if parties.contains(key) {
                Ok(())
            } else {
                Err(field(pointer, format!("no party {key:?}")))
            }
        };
        let activity = |key: &str, pointer: String| {
            if activities.contains(key) {
                Ok(())
            } else {
                Err(field(pointer, format!("no activity {key:?}")))
            }
        };
        for (i, zone) in file.zones.iter().enumerate() {
            party(&zone.party, format!("/zones/{i}/party"))?;
            for (j, key) in zone.parties.iter().enumerate() {
                party(key, format!("/zones/{i}/parties/{j}"))?;
            }
        }
        for (i, a) in file.activities.iter().enumerate() {
            party(&a.party, format!("/activities/{i}/party"))?;
        }
        for (i, unit) in file.units.iter().enumerate() {
            party(&unit.party, format!("/units/{i}/party"))?;
            activity(&unit.activity, format!("/units/{i}/activity"))?;
        }
        let mut script = Vec::new();
        let mut messages = HashSet::new();
        let mut last = origin;
        for (i, timed) in file.script.iter().enumerate() {
            let at = time(&timed.at, &format!("/script/{i}/at"))?;
            if at < last {
                return Err(field(format!("/script/{i}/at"), "steps must be in time order"));
            }
            last = at;
            let p = |name: &str| format!("/script/{i}/{name}");
            match &timed.step {
                Step::Message {
                    key, from, to, about, ..
                } => {
                    party(from, p("from"))?;
                    party(to, p("to"))?;
                    for (j, key) in about.iter().flatten().enumerate() {
                        activity(key, format!("/script/{i}/about/{j}"))?;
                    }
                    messages.insert(key.clone());
                }
                Step::AckMessage { by, message } => {
                    party(by, p("by"))?;
                    if !messages.contains(message) {
                        return Err(field(p("message"), format!("no earlier message {message:?}")));
                    }
                }
                Step::AckConflict { by, about } => {
                    party(by, p("by"))?;
                    for (j, key) in about.iter().enumerate() {
                        activity(key, format!("/script/{i}/about/{j}"))?;
                    }
                }
                Step::Delay {
                    by, activity: key, ..
                } => {
                    party(by, p("by"))?;
                    activity(key, p("activity"))?;
                }
                Step::Live { until } => {
                    time(until, &p("until"))?;
                }
                Step::Incident { by, parties, .. } => {
                    party(by, p("by"))?;
                    for (j, key) in parties.iter().enumerate() {
                        party(key, format!("/script/{i}/parties/{j}"))?;
                    }
                }
            }
            script.push((at, timed.step.clone()));
        }
        Ok(Scenario {
            name: file.name,
            illustrative: file.illustrative,
            origin,
            parties: file.parties,
            zones: file.zones,
            activities: file.activities,
            script,
            units: file.units,
        })
    }

    pub fn activity(&self, key: &str) -> Option<&ActivitySpec> {
        self.activities.iter().find(|a| a.key == key)
    }
}

/// `feature` with its `start`/`end` moved by `shift_ms` (and, for a zone,
/// `properties.parties` set to the given party ids).
pub fn shifted(feature: &Value, shift_ms: i64, parties: Option<&[u64]>) -> Result<Value, ScenarioError> {
    let mut feature = feature.clone();
    if let Some(Value::Object(properties)) = feature.get_mut("properties") {
        for name in ["start", "end"] {
            if let Some(Value::String(text)) = properties.get(name) {
                let at = time(text, &format!("/properties/{name}"))?;
                properties.insert(
                    name.into(),
                    Value::String(format_rfc3339(Timestamp(at.unix_ms() + shift_ms))),
                );
            }
        }
        if let Some(ids) = parties.filter(|ids| !ids.is_empty()) {
            properties.insert("parties".into(), Value::from(ids.to_vec()));
        }
    }
    Ok(feature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_scenario_is_complete_and_says_it_is_illustrative() {
        let scenario = Scenario::bundled().unwrap();
        assert!(scenario.illustrative.starts_with("ILLUSTRATIVE"));
        let kinds: HashSet<&str> = scenario.parties.iter().map(|p| p.kind.as_str()).collect();
        assert!(kinds.contains("broker") && kinds.contains("humanitarian"));
        let zone_kinds: HashSet<&str> = scenario
            .zones
            .iter()
            .filter_map(|z| z.feature["properties"]["kind"].as_str())
            .collect();
        assert_eq!(
            zone_kinds,
            HashSet::from(["exclusion", "demarcation", "protected"])
        );
        assert!(scenario
            .activities
            .iter()
            .any(|a| a.feature["properties"]["sharing"] == "full"));
        assert!(scenario
            .activities
            .iter()
            .any(|a| a.feature["properties"]["kind"] == "flight"
                && a.feature["properties"]["alt_max_m"].is_number()));
    }

    #[test]
    fn a_bad_reference_is_named_by_its_pointer() {
        let text = deconflict_sim::bundled::NE_SYRIA_2022_10_08.replace(
            r#""do": "delay", "by": "us", "activity": "us-patrol""#,
            r#""do": "delay", "by": "us", "activity": "no-such-patrol""#,
        );
        let error = Scenario::parse(&text).unwrap_err().to_string();
        assert!(
            error.starts_with("/script/") && error.contains("/activity: no activity"),
            "{error}"
        );
    }

    #[test]
    fn shifting_moves_both_ends_and_keeps_open_ends() {
        let feature = serde_json::json!({"properties": {"start": "2022-10-08T08:00:00Z", "end": null}});
        let moved = shifted(&feature, 3_600_000, Some(&[2])).unwrap();
        assert_eq!(moved["properties"]["start"], "2022-10-08T09:00:00Z");
        assert_eq!(moved["properties"]["end"], Value::Null);
        assert_eq!(moved["properties"]["parties"], serde_json::json!([2]));
    }
}
