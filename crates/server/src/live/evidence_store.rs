//! Every SQL statement of incident evidence (migration 4), in one place and
//! in plain SQL that SQLite and PostgreSQL read alike: the track thread's
//! writes, its restart, and the reads of `GET /v1/incidents/{id}/evidence`.

use deconflict_engine::{PartyId, Timestamp};
use deconflict_geodesy::LonLat;
use deconflict_hotline::{Incident, IncidentId, Record};
use deconflict_store::{params, Db, StoreError};

use super::evidence::{CaptureSpec, EvidencePoint, EvidenceWrites};
use super::history::HistoryPoint;

fn sql(value: u64) -> i64 {
    value as i64
}

/// Writes what the captures made (inside one transaction). Idempotent: a
/// capture already started, or a position already kept, is left as it is,
/// so writes retried after a failure or repeated by a resumed capture
/// change nothing.
pub fn write(db: &mut Db<'_>, writes: &EvidenceWrites, now: Timestamp) -> Result<(), StoreError> {
    for spec in &writes.started {
        db.execute(
            "INSERT INTO incident_evidence (incident_id, from_ms, to_ms, radius_m, started_at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (incident_id) DO NOTHING",
            params![
                sql(spec.incident.0),
                spec.from.unix_ms(),
                spec.to.unix_ms(),
                spec.radius_m,
                now.unix_ms()
            ],
        )?;
    }
    for (incident, kept) in &writes.points {
        let p = &kept.point;
        db.execute(
            "INSERT INTO incident_evidence_points \
             (incident_id, party_id, uid, time_ms, lon_deg, lat_deg, alt_m, speed_mps, course_deg) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
             ON CONFLICT (incident_id, party_id, uid, time_ms) DO NOTHING",
            params![
                sql(incident.0),
                sql(kept.party.0),
                &kept.uid,
                p.time.unix_ms(),
                p.position.lon_deg,
                p.position.lat_deg,
                p.alt_m,
                p.speed_mps,
                p.course_deg
            ],
        )?;
    }
    for (incident, at, truncated) in &writes.completed {
        db.execute(
            "UPDATE incident_evidence SET complete = 1, truncated = ?2, completed_at_ms = ?3 \
             WHERE incident_id = ?1 AND complete = 0",
            params![sql(incident.0), i64::from(*truncated), at.unix_ms()],
        )?;
    }
    Ok(())
}

fn incident_of(key: &str, text: &str) -> Result<Incident, StoreError> {
    match serde_json::from_str(text) {
        Ok(Record::Incident(incident)) => Ok(incident),
        Ok(_) => Err(StoreError::Rejected(format!(
            "hotline row {key} is not an incident"
        ))),
        Err(e) => Err(StoreError::Rejected(format!(
            "hotline row {key} does not parse: {e}"
        ))),
    }
}

/// One incident, whoever may see it.
pub fn incident(db: &mut Db<'_>, id: IncidentId) -> Result<Option<Incident>, StoreError> {
    let key = format!("incident/{}", id.0);
    let text = db.query_opt(
        "SELECT record FROM hotline_records WHERE key = ?1",
        params![&key],
        |row| row.get_text(0),
    )?;
    text.map(|t| incident_of(&key, &t)).transpose()
}

/// A capture pending when the service stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingCapture {
    pub spec: CaptureSpec,
    pub involved: Vec<(PartyId, String)>,
    pub points: usize,
    pub truncated: bool,
}

/// What a start finds: captures to resume, and incidents reported whose
/// capture never started (the service stopped between the incident's
/// commit and the track thread taking it).
#[derive(Debug, Default)]
pub struct Unfinished {
    pub pending: Vec<PendingCapture>,
    pub unstarted: Vec<Incident>,
}

pub fn unfinished(db: &mut Db<'_>) -> Result<Unfinished, StoreError> {
    let mut out = Unfinished::default();
    db.query_each(
        "SELECT h.key, h.record, e.incident_id, e.from_ms, e.to_ms, e.radius_m, e.truncated \
         FROM hotline_records h LEFT JOIN incident_evidence e \
         ON e.incident_id = CAST(substr(h.key, 10) AS BIGINT) \
         WHERE h.kind = 'incident' AND (e.incident_id IS NULL OR e.complete = 0) ORDER BY h.key",
        params![],
        |row| {
            let key = row.get_text(0)?;
            let incident = incident_of(&key, &row.get_text(1)?)?;
            if row.get_opt_i64(2)?.is_none() {
                out.unstarted.push(incident);
                return Ok(true);
            }
            let mut spec = CaptureSpec::of(&incident, row.get_f64(5)?);
            spec.from = Timestamp(row.get_i64(3)?);
            spec.to = Timestamp(row.get_i64(4)?);
            out.pending.push(PendingCapture {
                spec,
                involved: Vec::new(),
                points: 0,
                truncated: row.get_i64(6)? != 0,
            });
            Ok(true)
        },
    )?;
    for capture in &mut out.pending {
        let units = db.query_map(
            "SELECT party_id, uid, COUNT(*) FROM incident_evidence_points WHERE incident_id = ?1 \
             GROUP BY party_id, uid ORDER BY party_id, uid",
            params![sql(capture.spec.incident.0)],
            |row| Ok((PartyId(row.get_u64(0)?), row.get_text(1)?, row.get_u64(2)?)),
        )?;
        for (party, uid, count) in units {
            capture.involved.push((party, uid));
            capture.points += count as usize;
        }
    }
    Ok(out)
}

/// A capture as `GET /v1/incidents/{id}/evidence` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvidence {
    pub from: Timestamp,
    pub to: Timestamp,
    pub radius_m: f64,
    pub complete: bool,
    pub truncated: bool,
    /// By party, uid, then time.
    pub points: Vec<EvidencePoint>,
}

/// The capture of an incident, `None` while it has not started.
pub fn evidence(db: &mut Db<'_>, id: IncidentId) -> Result<Option<StoredEvidence>, StoreError> {
    let head = db.query_opt(
        "SELECT from_ms, to_ms, radius_m, complete, truncated FROM incident_evidence WHERE incident_id = ?1",
        params![sql(id.0)],
        |row| {
            Ok((
                row.get_i64(0)?,
                row.get_i64(1)?,
                row.get_f64(2)?,
                row.get_i64(3)?,
                row.get_i64(4)?,
            ))
        },
    )?;
    let Some((from, to, radius_m, complete, truncated)) = head else {
        return Ok(None);
    };
    let points = db.query_map(
        "SELECT party_id, uid, time_ms, lon_deg, lat_deg, alt_m, speed_mps, course_deg \
         FROM incident_evidence_points WHERE incident_id = ?1 ORDER BY party_id, uid, time_ms",
        params![sql(id.0)],
        |row| {
            Ok(EvidencePoint {
                party: PartyId(row.get_u64(0)?),
                uid: row.get_text(1)?,
                point: HistoryPoint {
                    time: Timestamp(row.get_i64(2)?),
                    position: LonLat::new(row.get_f64(3)?, row.get_f64(4)?),
                    alt_m: row.get_opt_f64(5)?,
                    speed_mps: row.get_opt_f64(6)?,
                    course_deg: row.get_opt_f64(7)?,
                    activity: None,
                },
            })
        },
    )?;
    Ok(Some(StoredEvidence {
        from: Timestamp(from),
        to: Timestamp(to),
        radius_m,
        complete: complete != 0,
        truncated: truncated != 0,
        points,
    }))
}
