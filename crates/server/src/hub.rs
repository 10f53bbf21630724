//! The events hub: committed conflict changes fanned out to `/v1/events`
//! subscribers, each filtered and redacted for its party.
//!
//! Each subscriber has a bounded queue. Publishing never waits: when a
//! queue is full the event is dropped for that subscriber and counted, and
//! the subscriber's stream says so with a `lagged` event (then it should
//! re-read `GET /v1/conflicts`). One slow consumer never slows the driver.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use deconflict_engine::PartyId;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::model::{conflict_view, ConflictRecord, Viewer};
use crate::problem::ApiError;

/// A committed change, as published.
#[derive(Debug, Clone)]
pub struct HubEvent {
    /// `conflict.opened`, `conflict.updated` or `conflict.resolved`.
    pub kind: &'static str,
    pub record: ConflictRecord,
    pub full: [bool; 2],
    /// The log entry that records it (the SSE event id).
    pub log_index: u64,
}

/// What a subscriber's stream yields.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub kind: &'static str,
    pub id: Option<u64>,
    /// The event's `data` as JSON text, encoded once per event (a
    /// conflict: once per redaction, i.e. per distinct viewer among the
    /// subscribers) and shared by every stream it is queued on: the
    /// streams only copy it into their frames.
    pub data: Arc<str>,
}

impl Delivery {
    /// The WebSocket message of this delivery, `{"data", "id", "type"}`
    /// (`id` absent without one): the bytes `serde_json` writes for that
    /// object (its maps are sorted), without parsing `data` again.
    pub fn ws_text(&self) -> String {
        let kind = serde_json::to_string(self.kind).unwrap_or_default();
        let mut text = String::with_capacity(self.data.len() + kind.len() + 40);
        text.push_str("{\"data\":");
        text.push_str(&self.data);
        if let Some(id) = self.id {
            text.push_str(",\"id\":");
            text.push_str(&id.to_string());
        }
        text.push_str(",\"type\":");
        text.push_str(&kind);
        text.push('}');
        text
    }
}

/// JSON text of `value`, shared.
fn encode(value: &Value) -> Arc<str> {
    Arc::from(value.to_string())
}

#[derive(Debug)]
struct Subscriber {
    id: u64,
    viewer: Viewer,
    queue: mpsc::Sender<Delivery>,
    dropped: Arc<AtomicU64>,
}

/// Refused subscription: a limit of concurrent subscribers is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TooManySubscribers {
    /// All parties' streams together (the service's capacity: 503).
    #[error("{limit} event streams are open, the limit (--max-subscribers); try again later")]
    Total { limit: usize },
    /// This party's streams (one party cannot take every slot: 429).
    #[error(
        "this party has {limit} event streams open, the limit (--max-subscribers-per-party); close one first"
    )]
    Party { limit: usize },
}

impl From<TooManySubscribers> for ApiError {
    /// 503 when the service is full, 429 when the caller's party is; both
    /// say which flag sets the limit.
    fn from(refused: TooManySubscribers) -> Self {
        let (status, slug) = match refused {
            TooManySubscribers::Total { .. } => (StatusCode::SERVICE_UNAVAILABLE, "subscribers"),
            TooManySubscribers::Party { .. } => (StatusCode::TOO_MANY_REQUESTS, "subscribers-per-party"),
        };
        ApiError::new(status, slug, refused.to_string()).with_retry_after(5)
    }
}

#[derive(Debug)]
pub struct Hub {
    subscribers: Mutex<Vec<Subscriber>>,
    next_id: AtomicU64,
    max_subscribers: usize,
    max_per_party: usize,
    queue_len: usize,
}

/// A subscription: its receiving end, how many events it lost, and a guard
/// that unsubscribes when dropped (the client went away).
#[derive(Debug)]
pub struct Subscription {
    pub events: mpsc::Receiver<Delivery>,
    pub dropped: Arc<AtomicU64>,
    pub guard: Unsubscribe,
}

#[derive(Debug)]
pub struct Unsubscribe {
    hub: Arc<Hub>,
    id: u64,
}

impl Drop for Unsubscribe {
    fn drop(&mut self) {
        if let Ok(mut subscribers) = self.hub.subscribers.lock() {
            subscribers.retain(|s| s.id != self.id);
        }
        metrics::gauge!("deconflict_event_subscribers").decrement(1.0);
    }
}

impl Hub {
    pub fn new(max_subscribers: usize, queue_len: usize) -> Self {
        Self {
            subscribers: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            max_subscribers,
            max_per_party: max_subscribers,
            queue_len: queue_len.max(1),
        }
    }

    /// Limits each party to `max_per_party` concurrent streams (without
    /// it, one party may take them all).
    pub fn with_max_per_party(mut self, max_per_party: usize) -> Self {
        self.max_per_party = max_per_party;
        self
    }

    pub fn subscribe(self: &Arc<Self>, viewer: Viewer) -> Result<Subscription, TooManySubscribers> {
        let full = TooManySubscribers::Total {
            limit: self.max_subscribers,
        };
        let mut subscribers = self.subscribers.lock().map_err(|_| full)?;
        if subscribers.len() >= self.max_subscribers {
            return Err(full);
        }
        let of_party = subscribers
            .iter()
            .filter(|s| s.viewer.party == viewer.party)
            .count();
        if of_party >= self.max_per_party {
            return Err(TooManySubscribers::Party {
                limit: self.max_per_party,
            });
        }
        let (queue, events) = mpsc::channel(self.queue_len);
        let dropped = Arc::new(AtomicU64::new(0));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        subscribers.push(Subscriber {
            id,
            viewer,
            queue,
            dropped: Arc::clone(&dropped),
        });
        metrics::gauge!("deconflict_event_subscribers").increment(1.0);
        Ok(Subscription {
            events,
            dropped,
            guard: Unsubscribe {
                hub: Arc::clone(self),
                id,
            },
        })
    }

    /// Delivers committed events, in commit order, to whoever may see them.
    pub fn publish(&self, events: &[HubEvent]) {
        if events.is_empty() {
            return;
        }
        let Ok(subscribers) = self.subscribers.lock() else {
            return;
        };
        // Each event's redaction depends on the viewer only: encoded once
        // per distinct viewer (a party's streams, the brokers) and shared.
        let mut encoded: Vec<(Viewer, Option<Arc<str>>)> = Vec::new();
        for event in events {
            encoded.clear();
            for subscriber in subscribers.iter() {
                let viewer = subscriber.viewer;
                let data = match encoded.iter().find(|(seen, _)| *seen == viewer) {
                    Some((_, data)) => data.clone(),
                    None => {
                        let data = conflict_view(&event.record, event.full, &viewer)
                            .and_then(|view| serde_json::to_string(&view).ok())
                            .map(Arc::from);
                        encoded.push((viewer, data.clone()));
                        data
                    }
                };
                let Some(data) = data else {
                    continue;
                };
                let delivery = Delivery {
                    kind: event.kind,
                    id: Some(event.log_index),
                    data,
                };
                match subscriber.queue.try_send(delivery) {
                    Ok(()) => metrics::counter!("deconflict_events_sent_total").increment(1),
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        subscriber.dropped.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!("deconflict_events_dropped_total").increment(1);
                    }
                    // The stream is closing; its guard removes it.
                    Err(mpsc::error::TrySendError::Closed(_)) => {}
                }
            }
        }
    }

    /// Ends every stream (the service is stopping): dropping the senders
    /// closes each subscriber's queue, so its SSE response completes and a
    /// graceful shutdown does not wait on it.
    pub fn close(&self) {
        if let Ok(mut subscribers) = self.subscribers.lock() {
            subscribers.clear();
        }
    }

    /// Ends every stream of `party` (its token was revoked or rotated):
    /// dropping their senders ends each SSE response and WebSocket pump.
    /// Returns how many streams were ended.
    pub fn close_party(&self, party: PartyId) -> usize {
        let Ok(mut subscribers) = self.subscribers.lock() else {
            return 0;
        };
        let before = subscribers.len();
        subscribers.retain(|s| s.viewer.party != party);
        before - subscribers.len()
    }

    /// Delivers one event to every stream of the parties in `to` (the
    /// hotline's events, which are addressed, not filtered); returns how
    /// many streams took it.
    pub fn publish_to(&self, to: &[PartyId], kind: &'static str, data: &Value) -> usize {
        let data = encode(data);
        let Ok(subscribers) = self.subscribers.lock() else {
            return 0;
        };
        let mut delivered = 0;
        for subscriber in subscribers.iter().filter(|s| to.contains(&s.viewer.party)) {
            let delivery = Delivery {
                kind,
                id: None,
                data: Arc::clone(&data),
            };
            match subscriber.queue.try_send(delivery) {
                Ok(()) => {
                    delivered += 1;
                    metrics::counter!("deconflict_events_sent_total").increment(1);
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    subscriber.dropped.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("deconflict_events_dropped_total").increment(1);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        delivered
    }

    /// Delivers an event that is not in the audit log (a live-track alert:
    /// no SSE id) to the subscribers of `parties` and to brokers, with the
    /// same bounded queues and drop policy as conflict events.
    pub fn publish_to_parties(
        &self,
        parties: &[deconflict_engine::PartyId],
        kind: &'static str,
        data: &Value,
    ) {
        // Encoded before the lock (the track thread's publish must not
        // hold up subscribing streams with JSON work), once for all.
        let data = encode(data);
        let Ok(subscribers) = self.subscribers.lock() else {
            return;
        };
        for subscriber in subscribers.iter() {
            if !(subscriber.viewer.broker || parties.contains(&subscriber.viewer.party)) {
                continue;
            }
            let delivery = Delivery {
                kind,
                id: None,
                data: Arc::clone(&data),
            };
            match subscriber.queue.try_send(delivery) {
                Ok(()) => metrics::counter!("deconflict_events_sent_total").increment(1),
                Err(mpsc::error::TrySendError::Full(_)) => {
                    subscriber.dropped.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("deconflict_events_dropped_total").increment(1);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
    }

    pub fn subscriber_count(&self) -> usize {
        self.subscribers.lock().map_or(0, |s| s.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{render_conflict, ConflictState, Subject};
    use deconflict_engine::{ActivityId, Finding, PartyId, TimeWindow, Timestamp};
    use deconflict_geodesy::LonLat;

    fn event(parties: [u64; 2], log_index: u64) -> HubEvent {
        HubEvent {
            kind: "conflict.opened",
            record: ConflictRecord {
                id: log_index,
                subject: Subject::Pair([ActivityId(1), ActivityId(2)]),
                parties: [PartyId(parties[0]), PartyId(parties[1])],
                finding: Finding {
                    window: TimeWindow::new(Timestamp(0), Some(Timestamp(10))),
                    min_distance_m: 0.0,
                    required_m: 1.0,
                    location: LonLat::new(0.0, 0.0),
                },
                state: ConflictState::Open,
                acked_ms: [None, None],
                opened_at_ms: 0,
                updated_at_ms: 0,
                resolved_at_ms: None,
                resolution: None,
            },
            full: [false, false],
            log_index,
        }
    }

    fn viewer(party: u64, broker: bool) -> Viewer {
        Viewer {
            party: PartyId(party),
            broker,
        }
    }

    #[tokio::test]
    async fn events_reach_only_the_involved_parties_and_brokers() {
        let hub = Arc::new(Hub::new(10, 8));
        let mut a = hub.subscribe(viewer(1, false)).unwrap();
        let mut c = hub.subscribe(viewer(3, false)).unwrap();
        let mut broker = hub.subscribe(viewer(4, true)).unwrap();
        hub.publish(&[event([1, 2], 7)]);
        let got = a.events.recv().await.unwrap();
        assert_eq!(got.id, Some(7));
        // Party 1 sees its side; party 2's need-to-know side is redacted.
        assert_eq!(parsed(&got)["parties"], serde_json::json!([1, null]));
        assert_eq!(
            parsed(&broker.events.recv().await.unwrap())["parties"],
            serde_json::json!([1, 2])
        );
        assert!(c.events.try_recv().is_err(), "party 3 is not involved");
    }

    fn parsed(delivery: &Delivery) -> Value {
        serde_json::from_str(&delivery.data).unwrap()
    }

    /// Events encoded once per viewer and shared: every stream gets the
    /// bytes `render_conflict` gives for its own viewer (the encoding per
    /// subscriber it replaces), the streams of one viewer share one
    /// encoding, and hotline and alert events are the `Value`'s text.
    #[tokio::test]
    async fn shared_encodings_are_each_viewers_own_rendering() {
        let viewers = [
            viewer(1, false),
            viewer(1, false),
            viewer(2, false),
            viewer(3, false),
            viewer(4, true),
            viewer(5, true),
            viewer(1, false),
        ];
        let hub = Arc::new(Hub::new(10, 64));
        let mut subscriptions: Vec<_> = viewers.iter().map(|v| hub.subscribe(*v).unwrap()).collect();
        let mut events = vec![event([1, 2], 1), event([2, 3], 2), event([1, 3], 3)];
        events[1].full = [true, false];
        events[2].kind = "conflict.resolved";
        events[2].record.acked_ms = [Some(5), None];
        hub.publish(&events);
        let alert = serde_json::json!({"id": 9, "state": "open", "tracks": [{"party": 1, "uid": "a\"b"}]});
        hub.publish_to_parties(&[PartyId(1)], "proximity", &alert);
        let mut by_viewer: Vec<(Viewer, Vec<Arc<str>>)> = Vec::new();
        for (viewer, subscription) in viewers.iter().zip(&mut subscriptions) {
            let mut got = Vec::new();
            while let Ok(delivery) = subscription.events.try_recv() {
                got.push(delivery);
            }
            let expected: Vec<(&str, Option<u64>, String)> = events
                .iter()
                .filter_map(|e| {
                    render_conflict(&e.record, e.full, viewer)
                        .map(|data| (e.kind, Some(e.log_index), data.to_string()))
                })
                .chain(
                    (viewer.broker || viewer.party == PartyId(1))
                        .then(|| ("proximity", None, alert.to_string())),
                )
                .collect();
            let actual: Vec<(&str, Option<u64>, String)> =
                got.iter().map(|d| (d.kind, d.id, d.data.to_string())).collect();
            assert_eq!(actual, expected, "{viewer:?}");
            let shared: Vec<Arc<str>> = got.iter().map(|d| Arc::clone(&d.data)).collect();
            match by_viewer.iter().find(|(seen, _)| seen == viewer) {
                Some((_, first)) => {
                    assert!(
                        first.iter().zip(&shared).all(|(a, b)| Arc::ptr_eq(a, b)),
                        "one encoding per viewer"
                    );
                }
                None => by_viewer.push((*viewer, shared)),
            }
        }
        assert!(by_viewer.len() >= 4, "the viewers differ: {}", by_viewer.len());
    }

    /// The WebSocket message written from the shared text is the one
    /// built as a `Value` before (same bytes, with and without an id).
    #[test]
    fn ws_text_is_the_value_messages_bytes() {
        // As the hub encodes them: a `Value`'s text.
        let data = [
            serde_json::json!({"a": [1, null], "b": "x\"y\n", "c": {"d": 1.5e-7}}),
            serde_json::json!({}),
            serde_json::json!({"id": 3, "state": "cleared"}),
        ]
        .map(|value| value.to_string());
        for (i, text) in data.iter().enumerate() {
            for id in [None, Some(0), Some(u64::MAX), Some(i as u64 * 977)] {
                for kind in ["conflict.opened", "zone.entered", "lagged"] {
                    let delivery = Delivery {
                        kind,
                        id,
                        data: Arc::from(text.as_str()),
                    };
                    let value: Value = serde_json::from_str(text).unwrap();
                    let mut message = serde_json::json!({"type": kind, "data": value});
                    if let Some(id) = id {
                        message["id"] = serde_json::json!(id);
                    }
                    assert_eq!(delivery.ws_text(), message.to_string());
                }
            }
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_the_limit_holds() {
        let hub = Arc::new(Hub::new(1, 2));
        let slow = hub.subscribe(viewer(1, false)).unwrap();
        assert_eq!(
            hub.subscribe(viewer(2, false)).unwrap_err(),
            TooManySubscribers::Total { limit: 1 }
        );
        hub.publish(&[
            event([1, 2], 1),
            event([1, 2], 2),
            event([1, 2], 3),
            event([1, 2], 4),
        ]);
        assert_eq!(slow.dropped.load(Ordering::Relaxed), 2);
        drop(slow);
        assert_eq!(hub.subscriber_count(), 0);
        assert!(hub.subscribe(viewer(2, false)).is_ok(), "a slot freed up");
    }

    #[test]
    fn one_party_cannot_take_every_stream() {
        let hub = Arc::new(Hub::new(3, 2).with_max_per_party(2));
        let _first = hub.subscribe(viewer(1, false)).unwrap();
        let second = hub.subscribe(viewer(1, false)).unwrap();
        let refused = hub.subscribe(viewer(1, false)).unwrap_err();
        assert_eq!(refused, TooManySubscribers::Party { limit: 2 });
        assert_eq!(ApiError::from(refused).status(), StatusCode::TOO_MANY_REQUESTS);
        let _other = hub
            .subscribe(viewer(2, false))
            .expect("another party has its own share");
        assert_eq!(
            ApiError::from(hub.subscribe(viewer(3, false)).unwrap_err()).status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "the total is the service's"
        );
        drop(second);
        let _again = hub
            .subscribe(viewer(1, false))
            .expect("a closed stream frees its party's slot and the service's");
        assert_eq!(
            hub.subscribe(viewer(2, false)).unwrap_err(),
            TooManySubscribers::Total { limit: 3 },
            "the total is reached again"
        );
    }
}
