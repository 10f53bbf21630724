//! Incidents: what a party reports happened, and the track history kept as
//! evidence around it.

use deconflict_engine::{ActivityId, PartyId, Timestamp};

use crate::action::{Action, Event};
use crate::error::HotlineError;
use crate::ids::{IncidentId, MessageId};
use crate::machine::Hotline;
use crate::record::Incident;

/// An incident as the reporter describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentSpec {
    pub id: IncidentId,
    pub reporter: PartyId,
    /// When it happened (not when it is reported).
    pub occurred_at: Timestamp,
    pub lon_deg: f64,
    pub lat_deg: f64,
    /// The parties involved; each is told.
    pub parties: Vec<PartyId>,
    pub description: String,
    /// Linked activities (not checked here: activities live in the engine).
    pub activities: Vec<ActivityId>,
    /// Linked hotline messages; the reporter must have sent or received each.
    pub messages: Vec<MessageId>,
    /// Track uids whose history around `occurred_at` is evidence.
    pub entities: Vec<String>,
}

impl Hotline {
    /// Records an incident, tells the parties involved, and asks the driver
    /// to keep the involved entities' track history from
    /// `occurred_at - evidence_before_s` to `occurred_at + evidence_after_s`.
    pub fn report_incident(&mut self, now: Timestamp, spec: IncidentSpec) -> Result<(), HotlineError> {
        self.check_incident(now, &spec)?;
        let incident = Incident {
            id: spec.id,
            reporter: spec.reporter,
            occurred_at: spec.occurred_at,
            reported_at: now,
            lon_deg: spec.lon_deg,
            lat_deg: spec.lat_deg,
            evidence_from: spec
                .occurred_at
                .plus_ms(-i64::from(self.config.evidence_before_s) * 1000),
            evidence_to: spec
                .occurred_at
                .plus_ms(i64::from(self.config.evidence_after_s) * 1000),
            parties: spec.parties,
            description: spec.description,
            activities: spec.activities,
            messages: spec.messages,
            entities: spec.entities,
        };
        // Always: the units involved are also found by place and linked
        // activity, not only by the uids listed.
        self.actions.push_back(Action::PreserveTracks {
            incident: incident.id,
            entities: incident.entities.clone(),
            from: incident.evidence_from,
            to: incident.evidence_to,
        });
        for &party in incident.parties.iter().filter(|&&p| p != incident.reporter) {
            self.actions.push_back(Action::Notify {
                to: party,
                event: Event::Incident {
                    incident: incident.id,
                    reporter: incident.reporter,
                    occurred_at: incident.occurred_at,
                },
            });
        }
        let id = incident.id;
        self.incidents.insert(id, incident);
        self.record_incident(id);
        Ok(())
    }

    fn check_incident(&self, now: Timestamp, spec: &IncidentSpec) -> Result<(), HotlineError> {
        let limits = &self.config.limits;
        if self.incidents.contains_key(&spec.id) {
            return Err(HotlineError::DuplicateIncident { id: spec.id });
        }
        if !self.parties.contains_key(&spec.reporter) {
            return Err(HotlineError::UnknownReporter { party: spec.reporter });
        }
        let latest = now.plus_ms(i64::from(limits.max_future_skew_s) * 1000);
        if spec.occurred_at > latest {
            return Err(HotlineError::OccurredInFuture {
                occurred_at: spec.occurred_at,
                now,
            });
        }
        // `contains` is false for NaN, so NaN is refused too.
        if !(-180.0..=180.0).contains(&spec.lon_deg) {
            return Err(HotlineError::BadCoordinate {
                field: "lon",
                value: spec.lon_deg,
                min: -180.0,
                max: 180.0,
            });
        }
        if !(-90.0..=90.0).contains(&spec.lat_deg) {
            return Err(HotlineError::BadCoordinate {
                field: "lat",
                value: spec.lat_deg,
                min: -90.0,
                max: 90.0,
            });
        }
        if spec.description.trim().is_empty() {
            return Err(HotlineError::EmptyDescription);
        }
        if spec.description.len() > limits.max_description_bytes {
            return Err(HotlineError::DescriptionTooLong {
                len: spec.description.len(),
                max: limits.max_description_bytes,
            });
        }
        if spec.parties.len() > limits.max_incident_parties {
            return Err(HotlineError::TooMany {
                field: "parties",
                len: spec.parties.len(),
                max: limits.max_incident_parties,
            });
        }
        for (index, party) in spec.parties.iter().enumerate() {
            if spec.parties[..index].contains(party) {
                return Err(HotlineError::DuplicateParty { index, party: *party });
            }
            if !self.parties.contains_key(party) {
                return Err(HotlineError::UnknownParty { index, party: *party });
            }
        }
        let lists = [
            ("activities", spec.activities.len()),
            ("messages", spec.messages.len()),
            ("entities", spec.entities.len()),
        ];
        for (field, len) in lists {
            if len > limits.max_incident_links {
                return Err(HotlineError::TooMany {
                    field,
                    len,
                    max: limits.max_incident_links,
                });
            }
        }
        for (index, &id) in spec.messages.iter().enumerate() {
            let message = self
                .messages
                .get(&id)
                .ok_or(HotlineError::UnknownMessageLink { index, id })?;
            if message.from != spec.reporter && message.to != spec.reporter {
                return Err(HotlineError::MessageNotVisible { index, id });
            }
        }
        for (index, uid) in spec.entities.iter().enumerate() {
            if uid.trim().is_empty() {
                return Err(HotlineError::EmptyEntityUid { index });
            }
            if uid.len() > limits.max_entity_uid_bytes {
                return Err(HotlineError::EntityUidTooLong {
                    index,
                    len: uid.len(),
                    max: limits.max_entity_uid_bytes,
                });
            }
        }
        Ok(())
    }
}
