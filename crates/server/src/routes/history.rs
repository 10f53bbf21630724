//! `GET /v1/history?from=&to=`: the recorded history the web map's
//! timeline replays: every version of the activities the caller may see,
//! and the conflicts it may see with when they opened and resolved.
//!
//! Need-to-know as everywhere: versions come from
//! `ledger::activity_versions` (own, `full`, all for a broker), conflicts
//! are rendered by `model::render_conflict` (the other side of a
//! need-to-know conflict stays `null`). Track positions are not part of it:
//! the track thread keeps only each unit's latest report, so the service
//! has no positions to replay (the page replays the ones it polled).

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use deconflict_engine::Timestamp;
use deconflict_formats::format_rfc3339;
use serde_json::{json, Value};

use crate::auth::Party;
use crate::ledger::{self, ActivityVersion};
use crate::model::render_conflict;
use crate::problem::ApiError;
use crate::routes::activities::{parse_query, query_problem, query_time};
use crate::routes::blocking;
use crate::state::AppState;

/// Keeps, of each activity's versions (sorted by activity then version),
/// those recorded at or after `from_ms` and the one in force at `from_ms`:
/// enough to know the picture at any instant from `from_ms` on.
fn from_instant(versions: Vec<ActivityVersion>, from_ms: Option<i64>) -> Vec<ActivityVersion> {
    let Some(from_ms) = from_ms else {
        return versions;
    };
    let mut out: Vec<ActivityVersion> = Vec::with_capacity(versions.len());
    for version in versions {
        if version.at_ms <= from_ms {
            // A later version of the same activity, still not after
            // `from`, supersedes the one kept so far.
            if let Some(last) = out.last_mut() {
                if last.id == version.id && last.at_ms <= from_ms {
                    *last = version;
                    continue;
                }
            }
        }
        out.push(version);
    }
    out
}

fn version_json(version: &ActivityVersion) -> Value {
    let feature = version.feature.clone().map(|mut feature| {
        if let Some(object) = feature.as_object_mut() {
            object.insert("id".into(), json!(version.id.0));
            if let Some(Value::Object(properties)) = object.get_mut("properties") {
                properties.insert("version".into(), json!(version.version));
                properties.insert("party".into(), json!(version.party.0));
            }
        }
        feature
    });
    json!({
        "id": version.id.0,
        "version": version.version,
        "party": version.party.0,
        "at": format_rfc3339(Timestamp(version.at_ms)),
        "feature": feature,
    })
}

/// The recorded history the caller may see, for replaying the day.
#[utoipa::path(get, path = "/v1/history", tag = "history",
    params(("from" = Option<String>, Query, description = "RFC 3339: the versions in force at this instant and everything recorded after"),
        ("to" = Option<String>, Query, description = "RFC 3339: only what was recorded before this instant")),
    responses((status = 200, description = "`{activities: [{id, version, party, at, feature (null: cancelled)}], conflicts: [Conflict with opened_at, resolved_at]}`; no track positions (the service keeps only the latest)"),
        (status = 401), (status = 422, description = "a bad query parameter, or more than --max-list versions or conflicts")),
    security(("bearer" = [])))]
pub async fn history(
    party: Party,
    State(state): State<AppState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let query = parse_query(query)?;
    let time = |name: &str| query_time(&query, name);
    let (from_ms, to_ms) = (time("from")?, time("to")?);
    let max_list = state.config.limits.max_list;
    let viewer = party.viewer();
    let store = std::sync::Arc::clone(&state.store);
    let (versions, conflicts) = blocking(move || {
        store.read(|conn| {
            let versions = ledger::activity_versions(conn, &viewer, to_ms, max_list)?;
            let conflicts = ledger::conflicts_for(conn, &viewer, None)?;
            Ok((versions, conflicts))
        })
    })
    .await?;
    let too_many = |what: &str| {
        query_problem(
            "from",
            format!("more than {max_list} {what} match (--max-list): narrow the history with from and to"),
        )
    };
    let versions = versions.ok_or_else(|| too_many("activity versions"))?;
    let activities: Vec<Value> = from_instant(versions, from_ms).iter().map(version_json).collect();
    let mut rendered = Vec::new();
    for (record, full) in &conflicts {
        let before_to = to_ms.is_none_or(|to| record.opened_at_ms < to);
        let after_from = from_ms.is_none_or(|from| record.resolved_at_ms.is_none_or(|r| r >= from));
        if !(before_to && after_from) {
            continue;
        }
        let Some(mut conflict) = render_conflict(record, *full, &viewer) else {
            continue;
        };
        if rendered.len() == max_list {
            return Err(too_many("conflicts"));
        }
        conflict["opened_at"] = json!(format_rfc3339(Timestamp(record.opened_at_ms)));
        conflict["updated_at"] = json!(format_rfc3339(Timestamp(record.updated_at_ms)));
        rendered.push(conflict);
    }
    Ok(Json(json!({"activities": activities, "conflicts": rendered})).into_response())
}

#[cfg(test)]
mod tests {
    use deconflict_engine::{ActivityId, PartyId};

    use super::*;

    fn version(id: u64, version: u64, at_ms: i64) -> ActivityVersion {
        ActivityVersion {
            id: ActivityId(id),
            party: PartyId(1),
            version,
            at_ms,
            feature: None,
        }
    }

    #[test]
    fn from_instant_keeps_the_version_in_force_and_everything_after() {
        let all = vec![
            version(1, 1, 10),
            version(1, 2, 20),
            version(1, 3, 40),
            version(2, 1, 5),
            version(3, 1, 50),
        ];
        let kept: Vec<(u64, u64)> = from_instant(all.clone(), Some(30))
            .iter()
            .map(|v| (v.id.0, v.version))
            .collect();
        assert_eq!(kept, vec![(1, 2), (1, 3), (2, 1), (3, 1)]);
        assert_eq!(from_instant(all.clone(), None).len(), all.len());
        let exactly: Vec<(u64, u64)> = from_instant(all, Some(20))
            .iter()
            .map(|v| (v.id.0, v.version))
            .collect();
        assert_eq!(exactly, vec![(1, 2), (1, 3), (2, 1), (3, 1)]);
    }
}
