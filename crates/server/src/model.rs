//! The service's records and how each caller sees them.
//!
//! Need-to-know lives here: [`Viewer`] and the `render_*` functions are the
//! only place that decides what of a conflict or an activity a party sees.

use deconflict_engine::{ActivityId, Finding, PartyId, TimeWindow, Timestamp, ZoneId};
use deconflict_formats::{format_rfc3339, Sharing};
use deconflict_geodesy::LonLat;
use serde_json::{json, Value};

use crate::jcs::Jcs;

/// Who is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Viewer {
    pub party: PartyId,
    /// A broker (the neutral cell) sees everything.
    pub broker: bool,
}

/// Party kinds of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PartyKind {
    Military,
    Humanitarian,
    Civil,
    Broker,
}

impl PartyKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            PartyKind::Military => "military",
            PartyKind::Humanitarian => "humanitarian",
            PartyKind::Civil => "civil",
            PartyKind::Broker => "broker",
        }
    }

    pub fn parse(text: &str) -> Option<PartyKind> {
        [
            PartyKind::Military,
            PartyKind::Humanitarian,
            PartyKind::Civil,
            PartyKind::Broker,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

/// A party as the service knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartyInfo {
    pub id: PartyId,
    pub name: String,
    pub kind: PartyKind,
}

impl PartyInfo {
    pub fn viewer(&self) -> Viewer {
        Viewer {
            party: self.id,
            broker: self.kind == PartyKind::Broker,
        }
    }
}

pub fn sharing_str(sharing: Sharing) -> &'static str {
    sharing.as_str()
}

pub fn parse_sharing(text: &str) -> Sharing {
    if text == "full" {
        Sharing::Full
    } else {
        Sharing::NeedToKnow
    }
}

/// What a conflict is between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    /// Two activities, lower id first (as the engine's key).
    Pair([ActivityId; 2]),
    /// An activity breaking a zone's rule.
    Zone { activity: ActivityId, zone: ZoneId },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictState {
    Open,
    /// Every involved party has acknowledged it.
    Acknowledged,
    Resolved,
}

impl ConflictState {
    pub const fn as_str(self) -> &'static str {
        match self {
            ConflictState::Open => "open",
            ConflictState::Acknowledged => "acknowledged",
            ConflictState::Resolved => "resolved",
        }
    }

    pub fn parse(text: &str) -> Option<ConflictState> {
        [
            ConflictState::Open,
            ConflictState::Acknowledged,
            ConflictState::Resolved,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// A conflict as the service records it (one row of `conflicts` or
/// `zone_conflicts`).
#[derive(Debug, Clone, PartialEq)]
pub struct ConflictRecord {
    pub id: u64,
    pub subject: Subject,
    /// The parties of the subject's sides: for a zone, the activity's party
    /// then the zone's owner.
    pub parties: [PartyId; 2],
    pub finding: Finding,
    pub state: ConflictState,
    /// When each side acknowledged (since the last change).
    pub acked_ms: [Option<i64>; 2],
    pub opened_at_ms: i64,
    pub updated_at_ms: i64,
    pub resolved_at_ms: Option<i64>,
    pub resolution: Option<String>,
}

impl ConflictRecord {
    /// The side of `party`, if involved.
    pub fn side_of(&self, party: PartyId) -> Option<usize> {
        self.parties.iter().position(|&p| p == party)
    }

    pub fn involves(&self, party: PartyId) -> bool {
        self.side_of(party).is_some()
    }

    pub fn visible_to(&self, viewer: &Viewer) -> bool {
        viewer.broker || self.involves(viewer.party)
    }
}

/// The finding as stored: exact floats (serde_json round-trips f64).
pub fn finding_to_json(finding: &Finding) -> Value {
    json!({
        "start_ms": finding.window.start.unix_ms(),
        "end_ms": finding.window.end.map(Timestamp::unix_ms),
        "min_distance_m": finding.min_distance_m,
        "required_m": finding.required_m,
        "lon_deg": finding.location.lon_deg,
        "lat_deg": finding.location.lat_deg,
    })
}

pub fn finding_from_json(value: &Value) -> Option<Finding> {
    Some(Finding {
        window: TimeWindow::new(
            Timestamp(value.get("start_ms")?.as_i64()?),
            match value.get("end_ms")? {
                Value::Null => None,
                v => Some(Timestamp(v.as_i64()?)),
            },
        ),
        min_distance_m: value.get("min_distance_m")?.as_f64()?,
        required_m: value.get("required_m")?.as_f64()?,
        location: LonLat::new(value.get("lon_deg")?.as_f64()?, value.get("lat_deg")?.as_f64()?),
    })
}

/// A conflict as `viewer` may see it, or `None` when it is none of their
/// business. `full[i]` says whether side `i` is shared in full (a zone
/// always is). The other side's need-to-know activity shows as `null`, and
/// so does its party: the viewer learns the overlap, the distance and the
/// closest point, nothing of the other plan.
pub fn render_conflict(record: &ConflictRecord, full: [bool; 2], viewer: &Viewer) -> Option<Value> {
    conflict_view(record, full, viewer).and_then(|view| serde_json::to_value(view).ok())
}

/// [`render_conflict`] as a typed value that serializes to the same bytes
/// (the contract's members, in the order serde_json's sorted maps give
/// them), for answers written straight into their body: a `Value` map per
/// conflict, built and dropped, was ~6 % of the tokio workers' time in the
/// W1 bench (crates/server/NOTES.md, `workers-s21`).
pub fn conflict_view(record: &ConflictRecord, full: [bool; 2], viewer: &Viewer) -> Option<ConflictView> {
    if !record.visible_to(viewer) {
        return None;
    }
    let shown = |side: usize| viewer.broker || record.parties[side] == viewer.party || full[side];
    let (activities, zone) = match record.subject {
        Subject::Pair([a, b]) => ([Some(a.0), Some(b.0)], None),
        Subject::Zone { activity, zone } => ([Some(activity.0), None], Some(zone.0)),
    };
    let side = |side: usize, value: Option<u64>| value.filter(|_| shown(side));
    let round_cm = |m: f64| (m * 100.0).round() / 100.0;
    let finding = &record.finding;
    Some(ConflictView {
        acknowledged_by: Acked(
            [0, 1].map(|s| record.acked_ms[s].and_then(|_| side(s, Some(record.parties[s].0)))),
        ),
        activities: [side(0, activities[0]), side(1, activities[1])],
        end: finding.window.end.map(format_rfc3339),
        id: record.id,
        location: PointView {
            coordinates: [finding.location.lon_deg, finding.location.lat_deg],
            kind: "Point",
        },
        min_distance_m: round_cm(finding.min_distance_m),
        parties: [
            side(0, Some(record.parties[0].0)),
            side(1, Some(record.parties[1].0)),
        ],
        required_m: round_cm(finding.required_m),
        resolution: record.resolution.clone(),
        resolved_at: record.resolved_at_ms.map(|at| format_rfc3339(Timestamp(at))),
        start: format_rfc3339(finding.window.start),
        state: record.state.as_str(),
        zone,
    })
}

/// See [`conflict_view`]. Members in sorted order; a double that is not
/// finite is written `null`, as a `Value` made from it is.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConflictView {
    acknowledged_by: Acked,
    activities: [Option<u64>; 2],
    end: Option<String>,
    id: u64,
    location: PointView,
    min_distance_m: f64,
    parties: [Option<u64>; 2],
    required_m: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    resolution: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resolved_at: Option<String>,
    start: String,
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    zone: Option<u64>,
}

/// The parties shown that acknowledged, side 0 first: a list of zero to two.
#[derive(Debug, Clone)]
struct Acked([Option<u64>; 2]);

impl serde::Serialize for Acked {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().flatten())
    }
}

#[derive(Debug, Clone, serde::Serialize)]
struct PointView {
    coordinates: [f64; 2],
    #[serde(rename = "type")]
    kind: &'static str,
}

/// The audit leaf payload of a conflict change: what happened to which
/// pair, for the involved parties (and brokers) to read in full. The
/// driver writes its leaf with [`conflict_leaf_bytes`] (the same bytes).
pub fn conflict_leaf_payload(record: &ConflictRecord) -> Value {
    let (activities, zone) = match record.subject {
        Subject::Pair([a, b]) => (json!([a.0, b.0]), Value::Null),
        Subject::Zone { activity, zone } => (json!([activity.0]), json!(zone.0)),
    };
    json!({
        "conflict": record.id,
        "activities": activities,
        "zone": zone,
        "parties": [record.parties[0].0, record.parties[1].0],
        "state": record.state.as_str(),
        "finding": finding_to_json(&record.finding),
        "acked_ms": record.acked_ms,
        "resolution": record.resolution,
    })
}

/// The exact bytes `LeafEvent { kind, at_ms, payload:
/// &conflict_leaf_payload(record) }.encode()` gives, written directly in
/// RFC 8785 form (see `crate::jcs`): the driver writes one per conflict
/// change, a few per notification among 100k activities. The
/// members are in JCS order (sorted keys, also inside `finding`); the unit
/// test holds it byte-identical to the encoded payload.
pub fn conflict_leaf_bytes(
    kind: &str,
    at_ms: i64,
    record: &ConflictRecord,
) -> Result<Vec<u8>, deconflict_audit::Error> {
    let mut jcs = Jcs::leaf(kind, at_ms, 400)?;
    jcs.raw(b"{\"acked_ms\":[");
    for (side, acked) in record.acked_ms.iter().enumerate() {
        if side > 0 {
            jcs.raw(b",");
        }
        jcs.opt_int(*acked)?;
    }
    jcs.raw(b"],\"activities\":[");
    let zone = match record.subject {
        Subject::Pair([a, b]) => {
            jcs.uint(a.0)?;
            jcs.raw(b",");
            jcs.uint(b.0)?;
            None
        }
        Subject::Zone { activity, zone } => {
            jcs.uint(activity.0)?;
            Some(zone.0)
        }
    };
    jcs.raw(b"],\"conflict\":");
    jcs.uint(record.id)?;
    let finding = &record.finding;
    jcs.raw(b",\"finding\":{\"end_ms\":");
    jcs.opt_int(finding.window.end.map(Timestamp::unix_ms))?;
    jcs.raw(b",\"lat_deg\":");
    jcs.float(finding.location.lat_deg);
    jcs.raw(b",\"lon_deg\":");
    jcs.float(finding.location.lon_deg);
    jcs.raw(b",\"min_distance_m\":");
    jcs.float(finding.min_distance_m);
    jcs.raw(b",\"required_m\":");
    jcs.float(finding.required_m);
    jcs.raw(b",\"start_ms\":");
    jcs.int(finding.window.start.unix_ms())?;
    jcs.raw(b"},\"parties\":[");
    jcs.uint(record.parties[0].0)?;
    jcs.raw(b",");
    jcs.uint(record.parties[1].0)?;
    jcs.raw(b"],\"resolution\":");
    match &record.resolution {
        Some(text) => jcs.string(text)?,
        None => jcs.raw(b"null"),
    }
    jcs.raw(b",\"state\":");
    jcs.string(record.state.as_str())?;
    jcs.raw(b",\"zone\":");
    match zone {
        Some(zone) => jcs.uint(zone)?,
        None => jcs.raw(b"null"),
    }
    jcs.raw(b"}");
    Ok(jcs.end_leaf())
}

#[cfg(test)]
pub(crate) mod tests {
    use deconflict_audit::LeafEvent;
    use deconflict_engine::{ActivityId, Finding, PartyId, TimeWindow, Timestamp, ZoneId};
    use deconflict_geodesy::LonLat;

    use super::*;

    fn encoded(kind: &str, at_ms: i64, record: &ConflictRecord) -> Result<Vec<u8>, deconflict_audit::Error> {
        LeafEvent {
            kind,
            at_ms,
            payload: &conflict_leaf_payload(record),
        }
        .encode()
    }

    /// A small deterministic generator (xorshift64) for test values of
    /// every scale; `seed` must not be 0.
    pub(crate) fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        }
    }

    /// The directly written conflict leaf is byte for byte the leaf of its
    /// payload, over both subjects, every optional member, doubles that JCS
    /// rewrites (exponents, `-0`, non-finite) and strings that need escapes.
    #[test]
    fn conflict_leaf_bytes_equal_the_encoded_payload() {
        let doubles = [
            0.0,
            -0.0,
            1e21,
            1e-7,
            5000.0,
            123.456_789_012_345_67,
            -179.999_999_999_999_97,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::NAN,
            f64::INFINITY,
        ];
        // A small deterministic generator for more doubles of every scale.
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        let mut cases = 0;
        for round in 0..400 {
            let pick = |n: u64| doubles[(n % doubles.len() as u64) as usize];
            let random = f64::from_bits(next());
            let finding = Finding {
                window: TimeWindow::new(
                    Timestamp(-(round as i64) * 1_000_003),
                    (round % 3 != 0).then_some(Timestamp(1_790_000_000_123 + round as i64)),
                ),
                min_distance_m: if round % 2 == 0 { random } else { pick(next()) },
                required_m: pick(next()),
                location: LonLat::new(pick(next()), f64::from_bits(next())),
            };
            let subject = if round % 4 == 1 {
                Subject::Zone {
                    activity: ActivityId(round),
                    zone: ZoneId(7),
                }
            } else {
                Subject::Pair([ActivityId(round), ActivityId((1 << 53) - 1)])
            };
            let resolution = match round % 5 {
                0 => None,
                1 => Some("no_longer_conflicting".to_owned()),
                2 => Some("é \u{1F600} \"quoted\" back\\slash \n\t\u{1}\u{7f}".to_owned()),
                3 => Some(String::new()),
                _ => Some(format!("resolved_by_party_{round}")),
            };
            let state = [
                ConflictState::Open,
                ConflictState::Acknowledged,
                ConflictState::Resolved,
            ][(round % 3) as usize];
            let record = ConflictRecord {
                id: round + 1,
                subject,
                parties: [PartyId(round % 11), PartyId(0)],
                finding,
                state,
                acked_ms: [
                    (round % 2 == 0).then_some(-5),
                    (round % 3 == 0).then_some(1_790_000_000_000),
                ],
                opened_at_ms: 0,
                updated_at_ms: 0,
                resolved_at_ms: None,
                resolution,
            };
            for (kind, at_ms) in [("conflict.opened", 1_790_000_000_123_i64), ("k\"ind\\", -1)] {
                let direct = conflict_leaf_bytes(kind, at_ms, &record).unwrap();
                crate::jcs::assert_same_leaf(direct, kind, at_ms, &conflict_leaf_payload(&record));
                cases += 1;
            }
        }
        assert_eq!(cases, 800);
    }

    /// `render_conflict` as it was: the formats crate's `conflict_json` map
    /// with the zone, acknowledgements and resolution inserted.
    fn render_conflict_as_before(record: &ConflictRecord, full: [bool; 2], viewer: &Viewer) -> Option<Value> {
        use deconflict_formats::{conflict_json, ConflictNames};
        if !record.visible_to(viewer) {
            return None;
        }
        let shown = |side: usize| viewer.broker || record.parties[side] == viewer.party || full[side];
        let (activities, zone) = match record.subject {
            Subject::Pair([a, b]) => ([json!(a.0), json!(b.0)], None),
            Subject::Zone { activity, zone } => ([json!(activity.0), Value::Null], Some(zone.0)),
        };
        let activity_of = |side: usize| {
            if shown(side) {
                activities[side].clone()
            } else {
                Value::Null
            }
        };
        let party_of = |side: usize| {
            if shown(side) {
                json!(record.parties[side].0)
            } else {
                Value::Null
            }
        };
        let mut value = conflict_json(
            &record.finding,
            ConflictNames {
                id: json!(record.id),
                activities: [activity_of(0), activity_of(1)],
                parties: [party_of(0), party_of(1)],
                state: record.state.as_str(),
            },
        );
        let object = value.as_object_mut()?;
        if let Some(zone) = zone {
            object.insert("zone".into(), json!(zone));
        }
        let acked: Vec<Value> = (0..2)
            .filter(|&side| shown(side))
            .filter_map(|side| record.acked_ms[side].map(|_| json!(record.parties[side].0)))
            .collect();
        object.insert("acknowledged_by".into(), Value::Array(acked));
        if let Some(at) = record.resolved_at_ms {
            object.insert("resolved_at".into(), json!(format_rfc3339(Timestamp(at))));
        }
        if let Some(resolution) = &record.resolution {
            object.insert("resolution".into(), json!(resolution));
        }
        Some(value)
    }

    /// The typed view serializes to the bytes of the `Value` the answer
    /// held before, and `render_conflict` is that `Value`: over both
    /// subjects, every viewer (either party, a broker, a stranger), every
    /// sharing, acknowledgement and optional member, and doubles of every
    /// form (`-0`, exponents, halves that round, non-finite ones).
    #[test]
    fn the_conflict_view_is_the_rendered_value() {
        let doubles = [
            0.0,
            -0.0,
            0.005,
            -0.015,
            1e21,
            1e-7,
            5000.0,
            123.456_789_012_345_67,
            -179.999_999_999_999_97,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        let (mut cases, mut hidden, mut shown_null) = (0, 0, 0);
        for round in 0..3_000_u64 {
            let mut pick = || {
                let n = next();
                if n.is_multiple_of(3) {
                    f64::from_bits(next())
                } else {
                    doubles[(n % doubles.len() as u64) as usize]
                }
            };
            let finding = Finding {
                window: TimeWindow::new(
                    Timestamp(1_790_000_000_000 - (round as i64) * 1_000_003),
                    (round % 3 != 0).then_some(Timestamp(1_790_000_000_123 + round as i64)),
                ),
                min_distance_m: pick(),
                required_m: pick(),
                location: LonLat::new(pick(), pick()),
            };
            let subject = if next() % 4 == 1 {
                Subject::Zone {
                    activity: ActivityId(next() % 100),
                    zone: ZoneId(next() >> 11),
                }
            } else {
                Subject::Pair([ActivityId(next() % 100), ActivityId(next() >> 11)])
            };
            let resolution = match next() % 4 {
                0 | 1 => None,
                2 => Some("é \u{1F600} \"quoted\" back\\slash \n\t\u{1}\u{7f}".to_owned()),
                _ => Some(format!("resolved_by_party_{round}")),
            };
            let state = [
                ConflictState::Open,
                ConflictState::Acknowledged,
                ConflictState::Resolved,
            ][(next() % 3) as usize];
            let record = ConflictRecord {
                id: next() >> 11,
                subject,
                parties: [PartyId(next() % 4), PartyId(next() % 4)],
                finding,
                state,
                acked_ms: [
                    (next().is_multiple_of(2)).then_some(-5),
                    (next().is_multiple_of(2)).then_some(7),
                ],
                opened_at_ms: 0,
                updated_at_ms: 0,
                resolved_at_ms: (next().is_multiple_of(3)).then_some(1_790_000_000_000 + round as i64),
                resolution,
            };
            let full = [next().is_multiple_of(2), next().is_multiple_of(2)];
            let viewer = Viewer {
                party: PartyId(next() % 5),
                broker: next().is_multiple_of(5),
            };
            let before = render_conflict_as_before(&record, full, &viewer);
            let view = conflict_view(&record, full, &viewer);
            assert_eq!(render_conflict(&record, full, &viewer), before);
            match (before, view) {
                (None, None) => hidden += 1,
                (Some(before), Some(view)) => {
                    assert_eq!(
                        serde_json::to_string(&view).unwrap(),
                        serde_json::to_string(&before).unwrap(),
                        "{record:?} {full:?} {viewer:?}"
                    );
                    shown_null += usize::from(before["parties"].as_array().unwrap().contains(&Value::Null));
                    cases += 1;
                }
                (before, view) => panic!("{before:?} against {view:?}"),
            }
        }
        assert!(
            cases > 1_200 && hidden > 1_200 && shown_null > 300,
            "{cases} {hidden} {shown_null}"
        );
    }

    /// The same limits as `LeafEvent::encode`: an integer a double cannot
    /// hold exactly, or an empty kind, is refused by both.
    #[test]
    fn conflict_leaf_bytes_refuse_what_encode_refuses() {
        let finding = Finding {
            window: TimeWindow::new(Timestamp(0), None),
            min_distance_m: 1.0,
            required_m: 2.0,
            location: LonLat::new(13.0, 52.0),
        };
        let record = |id: u64, acked: Option<i64>| ConflictRecord {
            id,
            subject: Subject::Pair([ActivityId(1), ActivityId(2)]),
            parties: [PartyId(1), PartyId(2)],
            finding,
            state: ConflictState::Open,
            acked_ms: [acked, None],
            opened_at_ms: 0,
            updated_at_ms: 0,
            resolved_at_ms: None,
            resolution: None,
        };
        for (kind, at_ms, record) in [
            ("conflict.opened", 0, record(1 << 53, None)),
            ("conflict.opened", 0, record(1, Some(-(1 << 53)))),
            ("conflict.opened", 1 << 53, record(1, None)),
            ("", 0, record(1, None)),
        ] {
            assert!(encoded(kind, at_ms, &record).is_err());
            assert!(conflict_leaf_bytes(kind, at_ms, &record).is_err());
        }
    }
}
