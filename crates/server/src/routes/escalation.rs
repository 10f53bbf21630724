//! `PUT /v1/parties/{id}/escalation` (issue 5): a party's escalation
//! ladder, worked in order when it misses an acknowledgement deadline.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use deconflict_engine::PartyId;
use deconflict_hotline::{Contact, LadderStep, PartyContacts};
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::driver::Command;
use crate::hotline::{render_ladder, HotlineCommand};
use crate::problem::{ApiError, FieldProblem};
use crate::routes::messages::problem;
use crate::routes::{commit, path_id, receipt, JsonBody};
use crate::state::AppState;

fn text(step: &Value, field: &str, at: &str, errors: &mut Vec<FieldProblem>) -> Option<String> {
    let found = step.get(field).and_then(Value::as_str).map(str::to_owned);
    if found.is_none() {
        errors.push(problem(&format!("{at}/{field}"), "required: a string"));
    }
    found
}

/// Parses `{escalation: [{delay_s?, kind, url?, secret?, party?}]}`; the
/// hotline then checks URLs, secret lengths, delays and contact parties.
fn parse_ladder(body: &Value) -> Result<PartyContacts, ApiError> {
    let Some(items) = body.get("escalation").and_then(Value::as_array) else {
        return Err(ApiError::field(
            "/escalation",
            "required: an array of steps {delay_s, kind: webhook|party|tak, url, secret, party}",
        ));
    };
    let mut errors = Vec::new();
    let mut steps = Vec::with_capacity(items.len());
    for (i, step) in items.iter().enumerate() {
        let at = format!("/escalation/{i}");
        let delay_s = match step.get("delay_s") {
            None | Some(Value::Null) => Some(0),
            Some(value) => value.as_u64().and_then(|d| u32::try_from(d).ok()).or_else(|| {
                errors.push(problem(&format!("{at}/delay_s"), "must be whole seconds"));
                None
            }),
        };
        let contact = match step.get("kind").and_then(Value::as_str) {
            Some("webhook") => {
                let url = text(step, "url", &at, &mut errors);
                let secret = text(step, "secret", &at, &mut errors);
                url.zip(secret)
                    .map(|(url, secret)| Contact::Webhook { url, secret })
            }
            Some("party") => match step.get("party").and_then(Value::as_u64) {
                Some(id) => Some(Contact::Party { party: PartyId(id) }),
                None => {
                    errors.push(problem(&format!("{at}/party"), "required: a party id"));
                    None
                }
            },
            Some("tak") => Some(Contact::Tak),
            _ => {
                errors.push(problem(&format!("{at}/kind"), "required: webhook, party or tak"));
                None
            }
        };
        if let (Some(delay_s), Some(contact)) = (delay_s, contact) {
            steps.push(LadderStep { delay_s, contact });
        }
    }
    if errors.is_empty() {
        Ok(PartyContacts { escalation: steps })
    } else {
        Err(ApiError::invalid("the escalation ladder is not valid", errors))
    }
}

/// Replaces a party's ladder (the party itself, or the admin). The answer
/// and the audit log show the ladder without its webhook secrets. A ladder
/// already being worked keeps the steps it started with.
#[utoipa::path(put, path = "/v1/parties/{id}/escalation", tag = "hotline", params(("id" = u64, Path)),
    request_body(content = Object, description = "`{escalation: [{delay_s, kind: webhook|party|tak, url?, secret?, party?}]}`"),
    responses((status = 200, description = "`{party, escalation, receipt}` (no secrets)"), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = [])))]
pub async fn set(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let id = path_id(&id, "party")?;
    if let Caller::Party(info) = &caller {
        if info.id.0 != id {
            return Err(ApiError::forbidden(
                "only the party itself or the admin sets its escalation contacts",
            ));
        }
    }
    let contacts = parse_ladder(&body)?;
    let committed = commit(&state, |reply| {
        Command::Hotline(HotlineCommand::SetEscalation {
            party: PartyId(id),
            contacts,
            reply,
        })
    })
    .await?;
    let receipt = receipt(&state, &committed).await?;
    Ok(Json(json!({
        "party": id,
        "escalation": render_ladder(&committed.value),
        "receipt": receipt,
    }))
    .into_response())
}
