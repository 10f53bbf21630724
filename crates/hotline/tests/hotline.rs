//! The hotline on a virtual clock: deadlines, ladders, retries, restarts,
//! flash repeats, conflict acknowledgements, incidents, limits and every
//! refusal. No sleeps: time is a number the test moves.

use deconflict_engine::{ActivityId, PartyId, Timestamp};
use deconflict_hotline::*;

const US: PartyId = PartyId(1);
const RU: PartyId = PartyId(2);
const RU_HQ: PartyId = PartyId(3);
const BROKER: PartyId = PartyId(4);
const SECRET: &str = "whsec_0123456789abcdef";
const URL: &str = "https://ops.ru.example/hotline";

fn t0() -> Timestamp {
    Timestamp::from_unix_s(1_700_000_000)
}

fn at_s(s: i64) -> Timestamp {
    t0().plus_ms(s * 1000)
}

fn webhook(delay_s: u32) -> LadderStep {
    LadderStep {
        delay_s,
        contact: Contact::Webhook {
            url: URL.into(),
            secret: SECRET.into(),
        },
    }
}

fn party_step(delay_s: u32, party: PartyId) -> LadderStep {
    LadderStep {
        delay_s,
        contact: Contact::Party { party },
    }
}

fn tak(delay_s: u32) -> LadderStep {
    LadderStep {
        delay_s,
        contact: Contact::Tak,
    }
}

/// A driver on a virtual clock that stores every record and logs every
/// action with the time it was polled.
struct Harness {
    config: HotlineConfig,
    hotline: Hotline,
    now: Timestamp,
    journal: Vec<Record>,
    log: Vec<(Timestamp, Action)>,
}

impl Harness {
    fn new(config: HotlineConfig, ru_ladder: Vec<LadderStep>) -> Self {
        let mut hotline = Hotline::new(config.clone()).unwrap();
        for party in [US, RU_HQ, BROKER] {
            hotline.set_party(party, PartyContacts::default()).unwrap();
        }
        hotline
            .set_party(
                RU,
                PartyContacts {
                    escalation: ru_ladder,
                },
            )
            .unwrap();
        let mut harness = Self {
            config,
            hotline,
            now: t0(),
            journal: Vec::new(),
            log: Vec::new(),
        };
        harness.drain();
        harness
    }

    fn with_ladder(ru_ladder: Vec<LadderStep>) -> Self {
        Self::new(HotlineConfig::default(), ru_ladder)
    }

    /// Stores records, logs and returns the new actions.
    fn drain(&mut self) -> Vec<Action> {
        while let Some(record) = self.hotline.poll_record() {
            self.journal.push(record);
        }
        let actions: Vec<Action> = std::iter::from_fn(|| self.hotline.poll_action()).collect();
        self.log.extend(actions.iter().map(|a| (self.now, a.clone())));
        actions
    }

    /// Moves the clock to `until`, ticking at each deadline on the way, as a
    /// driver that sleeps until `next_deadline` does.
    fn run_until(&mut self, until: Timestamp) -> Vec<(Timestamp, Action)> {
        let start = self.log.len();
        while let Some(due) = self.hotline.next_deadline().filter(|&due| due <= until) {
            self.now = self.now.max(due);
            self.hotline.handle_tick(self.now);
            self.drain();
        }
        self.now = until;
        self.log[start..].to_vec()
    }

    fn send(&mut self, id: u64, priority: Priority, ack_within_s: Option<u32>) -> Vec<Action> {
        let spec = message(id, US, RU, priority, ack_within_s);
        self.hotline.send(self.now, spec).unwrap();
        self.drain()
    }

    /// A restart: the machine is rebuilt from the stored rows only.
    fn restart(&mut self) {
        self.hotline = Hotline::restore(self.config.clone(), self.journal.clone()).unwrap();
    }
}

fn message(
    id: u64,
    from: PartyId,
    to: PartyId,
    priority: Priority,
    ack_within_s: Option<u32>,
) -> MessageSpec {
    MessageSpec {
        id: MessageId(id),
        from,
        to,
        priority,
        body: "Patrol crossing the M4 at 14:00, please confirm".into(),
        ack_within_s,
        link: None,
    }
}

fn kinds(actions: &[(Timestamp, Action)]) -> Vec<(i64, String)> {
    actions
        .iter()
        .map(|(at, action)| {
            let what = match action {
                Action::Deliver { message, to } => format!("deliver {} to {}", message.0, to.0),
                Action::RepeatCot {
                    party,
                    message,
                    repeat,
                } => {
                    format!("cot {} to {} #{repeat}", message.0, party.0)
                }
                Action::AlertCot { party, subject, step } => {
                    format!("alert {subject} to {} step {step}", party.0)
                }
                Action::CallWebhook { call, .. } => format!("webhook {call}"),
                Action::PreserveTracks { incident, .. } => format!("preserve {}", incident.0),
                Action::Notify { to, event } => format!("{} to {}", event.type_name(), to.0),
            };
            ((at.0 - t0().0) / 1000, what)
        })
        .collect()
}

fn call_of(action: &Action) -> CallKey {
    match action {
        Action::CallWebhook { call, .. } => *call,
        other => panic!("expected a webhook call, got {other:?}"),
    }
}

// ---- deadlines -------------------------------------------------------------

#[test]
fn default_deadlines_follow_priority() {
    let mut h = Harness::with_ladder(vec![]);
    h.send(1, Priority::Routine, None);
    h.send(2, Priority::Priority, None);
    h.send(3, Priority::Flash, None);
    h.send(4, Priority::Routine, Some(120));
    let deadline = |id| h.hotline.message(MessageId(id)).unwrap().deadline();
    assert_eq!(deadline(1), None);
    assert_eq!(deadline(2), Some(at_s(300)));
    assert_eq!(deadline(3), Some(at_s(60)));
    assert_eq!(deadline(4), Some(at_s(120)));

    // Overdue exactly at the deadline, not a millisecond before.
    let before = h.run_until(at_s(60).plus_ms(-1));
    assert!(kinds(&before)
        .iter()
        .all(|(_, what)| !what.starts_with("message.overdue")));
    let overdue: Vec<_> = kinds(&h.run_until(at_s(400)))
        .into_iter()
        .filter(|(_, what)| what.starts_with("message.overdue"))
        .collect();
    assert_eq!(
        overdue,
        [
            (60, "message.overdue to 1".to_owned()),
            (60, "message.overdue to 2".to_owned()),
            (120, "message.overdue to 1".to_owned()),
            (120, "message.overdue to 2".to_owned()),
            (300, "message.overdue to 1".to_owned()),
            (300, "message.overdue to 2".to_owned()),
        ]
    );
    assert_eq!(
        h.hotline.message(MessageId(2)).unwrap().overdue_at,
        Some(at_s(300))
    );
    assert_eq!(h.hotline.message(MessageId(1)).unwrap().overdue_at, None);
}

#[test]
fn default_deadlines_are_configurable() {
    let config = HotlineConfig {
        ack_within: AckDefaults {
            routine_s: Some(3600),
            priority_s: Some(30),
            flash_s: Some(10),
        },
        ..HotlineConfig::default()
    };
    let mut h = Harness::new(config, vec![]);
    h.send(1, Priority::Routine, None);
    h.send(2, Priority::Priority, None);
    assert_eq!(
        h.hotline.message(MessageId(1)).unwrap().deadline(),
        Some(at_s(3600))
    );
    assert_eq!(h.hotline.next_deadline(), Some(at_s(30)));
}

#[test]
fn a_message_is_sent_then_delivered_then_acknowledged() {
    let mut h = Harness::with_ladder(vec![]);
    assert_eq!(
        h.send(1, Priority::Priority, None),
        [Action::Deliver {
            message: MessageId(1),
            to: RU
        }]
    );
    let state = |h: &Harness| h.hotline.message(MessageId(1)).unwrap().state();
    assert_eq!(state(&h), MessageState::Sent);
    h.hotline.delivered(at_s(1), MessageId(1)).unwrap();
    h.hotline.delivered(at_s(2), MessageId(1)).unwrap(); // the first report counts
    assert_eq!(state(&h), MessageState::Delivered);
    assert_eq!(
        h.hotline.message(MessageId(1)).unwrap().delivered_at,
        Some(at_s(1))
    );
    assert_eq!(h.hotline.ack(at_s(5), MessageId(1), RU), Ok(AckOutcome::Acked));
    assert_eq!(state(&h), MessageState::Acknowledged);
    assert_eq!(
        h.drain(),
        [Action::Notify {
            to: US,
            event: Event::MessageAcked {
                message: MessageId(1),
                from: US,
                to: RU,
                acked_at: at_s(5)
            }
        }]
    );
    assert_eq!(h.hotline.next_deadline(), None);
    assert!(h.run_until(at_s(10_000)).is_empty());
}

#[test]
fn an_ack_without_a_delivery_report_implies_delivery() {
    let mut h = Harness::with_ladder(vec![]);
    h.send(1, Priority::Routine, None);
    h.hotline.ack(at_s(7), MessageId(1), RU).unwrap();
    let message = h.hotline.message(MessageId(1)).unwrap();
    assert_eq!(
        (message.delivered_at, message.acked_at),
        (Some(at_s(7)), Some(at_s(7)))
    );
}

// ---- escalation --------------------------------------------------------------

#[test]
fn the_ladder_is_worked_in_order_with_its_delays() {
    let mut h = Harness::with_ladder(vec![webhook(0), party_step(60, RU_HQ), tak(30)]);
    h.send(1, Priority::Priority, None);
    let at_deadline = h.run_until(at_s(300));
    let call = call_of(&at_deadline[2].1);
    assert_eq!(
        kinds(&at_deadline),
        [
            (300, "message.overdue to 1".to_owned()),
            (300, "message.overdue to 2".to_owned()),
            (300, "webhook message/1/step/0/attempt/1".to_owned()),
        ]
    );
    // The ladder waits for the call's outcome before its next step.
    assert!(h.run_until(at_s(320)).is_empty());
    h.now = at_s(321);
    assert_eq!(h.hotline.webhook_succeeded(h.now, call), CallReport::Applied);
    let rest = h.run_until(at_s(10_000));
    assert_eq!(
        kinds(&rest),
        [
            (381, "escalation to 3".to_owned()),
            (411, "alert message/1 to 2 step 2".to_owned()),
            (411, "escalation.exhausted to 1".to_owned()),
            (411, "escalation.exhausted to 2".to_owned()),
        ]
    );
    let escalation = h.hotline.escalation(Subject::Message(MessageId(1))).unwrap();
    assert_eq!(escalation.phase, Phase::Exhausted { at: at_s(411) });
    assert_eq!(h.hotline.next_deadline(), None);
}

#[test]
fn an_ack_in_the_middle_of_the_ladder_stops_it_at_once() {
    let mut h = Harness::with_ladder(vec![party_step(0, RU_HQ), webhook(60), tak(30)]);
    h.send(1, Priority::Priority, None);
    h.run_until(at_s(360));
    let call = call_of(&h.log.last().unwrap().1);
    assert_eq!(call.step, 1);
    // RU acknowledges while the webhook call is out.
    h.now = at_s(365);
    assert_eq!(h.hotline.ack(h.now, MessageId(1), RU), Ok(AckOutcome::Acked));
    let after_ack = h.drain();
    assert_eq!(after_ack.len(), 1, "only the sender is told: {after_ack:?}");
    assert_eq!(
        h.hotline
            .escalation(Subject::Message(MessageId(1)))
            .unwrap()
            .phase,
        Phase::Stopped { at: at_s(365) }
    );
    // The outcome of the call that was out changes nothing.
    assert_eq!(h.hotline.webhook_succeeded(at_s(366), call), CallReport::Stale);
    assert_eq!(h.hotline.webhook_failed(at_s(366), call), CallReport::Stale);
    assert_eq!(h.hotline.next_deadline(), None);
    assert!(h.run_until(at_s(100_000)).is_empty());
}

#[test]
fn failed_webhook_calls_back_off_then_the_ladder_moves_on() {
    let config = HotlineConfig {
        retry: RetryPolicy {
            base_s: 5,
            cap_s: 15,
            max_attempts: 4,
        },
        webhook_timeout_s: 30,
        ..HotlineConfig::default()
    };
    let mut h = Harness::new(config, vec![webhook(0), tak(10)]);
    h.send(1, Priority::Priority, None);

    let first = h.run_until(at_s(300));
    let call1 = call_of(&first.last().unwrap().1);
    assert_eq!(call1.attempt, 1);
    assert_eq!(h.hotline.webhook_failed(at_s(300), call1), CallReport::Applied);
    // Attempt 2 after 5 s.
    let second = h.run_until(at_s(305));
    assert_eq!(
        kinds(&second),
        [(305, "webhook message/1/step/0/attempt/2".to_owned())]
    );
    h.now = at_s(305);
    assert_eq!(
        h.hotline.webhook_failed(h.now, call_of(&second[0].1)),
        CallReport::Applied
    );
    // Attempt 3 after 10 s; its outcome never comes: it times out after 30 s,
    // then attempt 4 follows after min(20, cap 15) s.
    let third_and_fourth = h.run_until(at_s(360));
    assert_eq!(
        kinds(&third_and_fourth),
        [
            (315, "webhook message/1/step/0/attempt/3".to_owned()),
            (360, "webhook message/1/step/0/attempt/4".to_owned()),
        ]
    );
    // A late answer to attempt 3 is stale.
    let call3 = call_of(&third_and_fourth[0].1);
    assert_eq!(h.hotline.webhook_succeeded(at_s(361), call3), CallReport::Stale);
    // The last attempt fails: no more retries, the next step after its delay.
    h.now = at_s(361);
    assert_eq!(
        h.hotline.webhook_failed(h.now, call_of(&third_and_fourth[1].1)),
        CallReport::Applied
    );
    let next = h.run_until(at_s(1000));
    assert_eq!(
        kinds(&next)[0],
        (371, "alert message/1 to 2 step 1".to_owned()),
        "{:?}",
        kinds(&next)
    );
}

#[test]
fn webhook_payloads_are_json_signed_with_the_step_secret() {
    let mut h = Harness::with_ladder(vec![webhook(0)]);
    h.hotline
        .send(
            at_s(0),
            MessageSpec {
                link: Some(Link::Conflict(ConflictId(9))),
                ..message(1, US, RU, Priority::Flash, None)
            },
        )
        .unwrap();
    h.drain();
    let actions = h.run_until(at_s(60));
    let Some((
        _,
        Action::CallWebhook {
            call,
            url,
            payload,
            signature,
        },
    )) = actions
        .iter()
        .find(|(_, a)| matches!(a, Action::CallWebhook { .. }))
    else {
        panic!("no webhook call in {actions:?}")
    };
    assert_eq!(url, URL);
    let now_s = at_s(60).0 / 1000;
    assert_eq!(
        verify_signature(SECRET.as_bytes(), signature, payload, now_s, 300),
        Ok(now_s)
    );
    let json: serde_json::Value = serde_json::from_slice(payload).unwrap();
    assert_eq!(json["type"], "message.overdue");
    assert_eq!(json["delivery"], call.to_string());
    assert_eq!(json["attempt"], 1);
    assert_eq!(json["party"], 2);
    assert_eq!(json["deadline_unix_ms"], at_s(60).0);
    assert_eq!(json["message"]["priority"], "flash");
    assert_eq!(json["message"]["conflict_id"], 9);
    assert_eq!(
        json["message"]["body"],
        "Patrol crossing the M4 at 14:00, please confirm"
    );
}

#[test]
fn a_party_without_a_ladder_is_only_told_it_is_overdue() {
    let mut h = Harness::with_ladder(vec![]);
    h.send(1, Priority::Priority, None);
    assert_eq!(h.run_until(at_s(10_000)).len(), 2);
    assert!(h.hotline.escalation(Subject::Message(MessageId(1))).is_none());
}

#[test]
fn changing_contacts_does_not_disturb_a_ladder_in_progress() {
    let mut h = Harness::with_ladder(vec![tak(0), party_step(60, RU_HQ)]);
    h.send(1, Priority::Priority, None);
    h.run_until(at_s(300));
    h.hotline.set_party(RU, PartyContacts::default()).unwrap();
    let rest = h.run_until(at_s(1000));
    assert_eq!(kinds(&rest)[0], (360, "escalation to 3".to_owned()));
}

// ---- restarts ----------------------------------------------------------------

#[test]
fn a_restart_fires_missed_deadlines_at_the_first_tick_in_deadline_order() {
    let mut h = Harness::with_ladder(vec![]);
    h.send(1, Priority::Priority, Some(200));
    h.send(2, Priority::Priority, Some(100));
    h.send(3, Priority::Priority, Some(300));
    h.now = at_s(50);
    h.hotline.ack(h.now, MessageId(3), RU).unwrap();
    h.drain();
    // The service is down from 60 s to 1000 s.
    h.restart();
    h.now = at_s(1000);
    assert!(h.hotline.next_deadline().unwrap() <= h.now);
    h.hotline.handle_tick(h.now);
    let fired = h.drain();
    let deadlines: Vec<(MessageId, Timestamp)> = fired
        .iter()
        .filter_map(|a| match a {
            Action::Notify {
                to,
                event: Event::MessageOverdue {
                    message, deadline, ..
                },
            } if *to == US => Some((*message, *deadline)),
            _ => None,
        })
        .collect();
    assert_eq!(deadlines, [(MessageId(2), at_s(100)), (MessageId(1), at_s(200))]);
    assert_eq!(
        h.hotline.message(MessageId(2)).unwrap().overdue_at,
        Some(at_s(1000))
    );
    assert_eq!(h.hotline.next_deadline(), None);
}

#[test]
fn a_restart_resumes_a_ladder_where_it_was() {
    let mut h = Harness::with_ladder(vec![tak(0), webhook(60), party_step(10, RU_HQ)]);
    h.send(1, Priority::Priority, None);
    h.run_until(at_s(360));
    assert_eq!(
        kinds(&h.log).last().unwrap().1,
        "webhook message/1/step/1/attempt/1"
    );
    // The service stops with the call out; its outcome is lost.
    h.restart();
    let resumed = h.run_until(at_s(395));
    // Timed out at 390 s, retried 5 s later as attempt 2.
    assert_eq!(
        kinds(&resumed),
        [(395, "webhook message/1/step/1/attempt/2".to_owned())]
    );
    h.now = at_s(396);
    assert_eq!(
        h.hotline.webhook_succeeded(h.now, call_of(&resumed[0].1)),
        CallReport::Applied
    );
    let rest = h.run_until(at_s(1000));
    assert_eq!(kinds(&rest)[0], (406, "escalation to 3".to_owned()));
}

#[test]
fn a_journal_and_a_snapshot_restore_the_same_machine() {
    let mut h = Harness::with_ladder(vec![webhook(0), party_step(60, RU_HQ)]);
    h.send(1, Priority::Flash, None);
    h.send(2, Priority::Priority, None);
    h.hotline
        .require_conflict_ack(h.now, ConflictId(5), &[US, RU])
        .unwrap();
    h.hotline
        .require_conflict_ack(h.now, ConflictId(6), &[US, RU])
        .unwrap();
    h.drain();
    h.run_until(at_s(1000));
    h.hotline.conflict_resolved(h.now, ConflictId(6)).unwrap();
    h.hotline.ack(h.now, MessageId(1), RU).unwrap();
    h.drain();
    let from_journal = Hotline::restore(h.config.clone(), h.journal.clone()).unwrap();
    let from_snapshot = Hotline::restore(h.config.clone(), h.hotline.snapshot()).unwrap();
    assert_eq!(from_journal, h.hotline);
    assert_eq!(from_snapshot, h.hotline);
    // Rows of different keys may come in any order.
    let mut shuffled = h.hotline.snapshot();
    shuffled.reverse();
    assert_eq!(Hotline::restore(h.config.clone(), shuffled).unwrap(), h.hotline);
}

#[test]
fn records_that_refer_to_missing_rows_are_refused() {
    let mut h = Harness::with_ladder(vec![tak(0), tak(600)]);
    h.send(1, Priority::Priority, None);
    h.run_until(at_s(301));
    let snapshot = h.hotline.snapshot();
    let without_message: Vec<Record> = snapshot
        .iter()
        .filter(|r| !matches!(r, Record::Message(_)))
        .cloned()
        .collect();
    let error = Hotline::restore(h.config.clone(), without_message).unwrap_err();
    assert_eq!(
        error,
        RestoreError::Inconsistent {
            key: "escalation/message/1".into(),
            reason: "its subject has no row"
        }
    );
    let without_parties: Vec<Record> = snapshot
        .iter()
        .filter(|r| !matches!(r, Record::Party { .. }))
        .cloned()
        .collect();
    assert!(matches!(
        Hotline::restore(h.config.clone(), without_parties),
        Err(RestoreError::Inconsistent { .. })
    ));
    let bad_config = HotlineConfig {
        webhook_timeout_s: 0,
        ..HotlineConfig::default()
    };
    assert_eq!(
        Hotline::restore(bad_config, snapshot),
        Err(RestoreError::Config(ConfigError::Zero {
            field: "webhook_timeout_s"
        }))
    );
}

#[test]
fn record_keys_are_stable_text() {
    let mut h = Harness::with_ladder(vec![tak(0)]);
    h.send(1, Priority::Priority, None);
    h.hotline
        .require_conflict_ack(h.now, ConflictId(3), &[US, RU])
        .unwrap();
    h.drain();
    h.run_until(at_s(2000));
    h.hotline.conflict_resolved(h.now, ConflictId(3)).unwrap();
    h.drain();
    let keys: std::collections::BTreeSet<String> = h.journal.iter().map(|r| r.key().to_string()).collect();
    let expected = [
        "conflict/3",
        // US has no ladder, so only RU's is a row.
        "escalation/conflict/3/party/2",
        "escalation/message/1",
        "message/1",
        "party/1",
        "party/2",
        "party/3",
        "party/4",
    ];
    assert_eq!(keys.iter().map(String::as_str).collect::<Vec<_>>(), expected);
    let removals: Vec<String> = h
        .journal
        .iter()
        .filter(|r| r.is_removal())
        .map(|r| r.key().to_string())
        .collect();
    assert_eq!(removals, ["conflict/3", "escalation/conflict/3/party/2"]);
}

#[cfg(feature = "serde")]
#[test]
fn records_survive_json() {
    let mut h = Harness::with_ladder(vec![webhook(0), party_step(5, RU_HQ), tak(5)]);
    h.send(1, Priority::Flash, None);
    h.hotline
        .require_conflict_ack(h.now, ConflictId(3), &[US, RU])
        .unwrap();
    h.hotline
        .report_incident(
            h.now,
            IncidentSpec {
                entities: vec!["ANDROID-1".into()],
                ..incident(1, US, vec![US, RU])
            },
        )
        .unwrap();
    h.drain();
    h.run_until(at_s(1000));
    let json: Vec<String> = h
        .journal
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect();
    let back: Vec<Record> = json
        .iter()
        .map(|text| serde_json::from_str(text).unwrap())
        .collect();
    assert_eq!(back, h.journal);
    assert!(
        json.iter().any(|text| text.contains(r#""priority":"flash""#)),
        "{json:?}"
    );
    assert_eq!(Hotline::restore(h.config.clone(), back).unwrap(), h.hotline);
}

// ---- flash -------------------------------------------------------------------

#[test]
fn flash_messages_repeat_as_cot_until_acknowledged() {
    let mut h = Harness::with_ladder(vec![]);
    let sent = h.send(1, Priority::Flash, None);
    assert_eq!(
        sent,
        [
            Action::Deliver {
                message: MessageId(1),
                to: RU
            },
            Action::RepeatCot {
                party: RU,
                message: MessageId(1),
                repeat: 0
            },
        ]
    );
    let cot: Vec<_> = kinds(&h.run_until(at_s(95)))
        .into_iter()
        .filter(|(_, what)| what.starts_with("cot"))
        .collect();
    assert_eq!(
        cot,
        [
            (30, "cot 1 to 2 #1".to_owned()),
            (60, "cot 1 to 2 #2".to_owned()),
            (90, "cot 1 to 2 #3".to_owned()),
        ]
    );
    h.now = at_s(100);
    h.hotline.ack(h.now, MessageId(1), RU).unwrap();
    h.drain();
    assert!(h.run_until(at_s(10_000)).is_empty());
    assert_eq!(h.hotline.message(MessageId(1)).unwrap().cot_sends, 4);
}

#[test]
fn flash_repeats_stop_at_the_configured_cap() {
    let config = HotlineConfig {
        max_flash_repeats: 3,
        flash_repeat_every_s: 10,
        ..HotlineConfig::default()
    };
    let mut h = Harness::new(config, vec![]);
    h.send(1, Priority::Flash, Some(3600));
    let cot = kinds(&h.run_until(at_s(10_000)))
        .into_iter()
        .filter(|(_, w)| w.starts_with("cot"))
        .count();
    assert_eq!(cot, 2, "two repeats after the first send");
    assert_eq!(h.hotline.message(MessageId(1)).unwrap().cot_sends, 3);
    assert_eq!(h.hotline.message(MessageId(1)).unwrap().next_cot_at, None);
}

// ---- conflicts ---------------------------------------------------------------

#[test]
fn a_new_conflict_needs_both_parties_ack_in_time() {
    let mut h = Harness::with_ladder(vec![party_step(0, RU_HQ), tak(60)]);
    h.hotline
        .require_conflict_ack(h.now, ConflictId(7), &[US, RU])
        .unwrap();
    assert!(h.drain().is_empty());
    assert_eq!(h.hotline.next_deadline(), Some(at_s(900)));
    h.now = at_s(60);
    assert_eq!(
        h.hotline.conflict_acked(h.now, ConflictId(7), US),
        Ok(AckOutcome::Acked)
    );
    assert_eq!(
        h.drain(),
        [Action::Notify {
            to: RU,
            event: Event::ConflictAcked {
                conflict: ConflictId(7),
                party: US,
                acked_at: at_s(60)
            }
        }]
    );
    assert_eq!(
        h.hotline.conflict_acked(at_s(61), ConflictId(7), US),
        Ok(AckOutcome::AlreadyAcked { acked_at: at_s(60) })
    );
    let overdue = h.run_until(at_s(900));
    assert_eq!(
        kinds(&overdue),
        [
            (900, "conflict.overdue to 1".to_owned()),
            (900, "conflict.overdue to 2".to_owned()),
            (900, "escalation to 3".to_owned()),
        ]
    );
    assert!(matches!(
        overdue[0].1,
        Action::Notify { event: Event::ConflictOverdue { party: RU, deadline, .. }, .. } if deadline == at_s(900)
    ));
    let row = h.hotline.conflict_ack(ConflictId(7)).unwrap();
    assert_eq!(row.parties[1].overdue_at, Some(at_s(900)));
    h.now = at_s(930);
    h.hotline.conflict_acked(h.now, ConflictId(7), RU).unwrap();
    h.drain();
    assert!(
        h.run_until(at_s(10_000)).is_empty(),
        "RU's ack stopped its ladder before the TAK step"
    );
    assert!(h.hotline.conflict_ack(ConflictId(7)).unwrap().all_acked());
}

#[test]
fn both_late_parties_are_escalated_and_resolution_stops_everything() {
    let mut h = Harness::with_ladder(vec![tak(0), tak(600)]);
    h.hotline
        .set_party(
            US,
            PartyContacts {
                escalation: vec![tak(0), tak(600)],
            },
        )
        .unwrap();
    h.hotline
        .require_conflict_ack(h.now, ConflictId(7), &[US, RU])
        .unwrap();
    h.drain();
    let overdue = h.run_until(at_s(900));
    assert_eq!(
        kinds(&overdue),
        [
            (900, "conflict.overdue to 1".to_owned()),
            (900, "conflict.overdue to 2".to_owned()),
            (900, "conflict.overdue to 1".to_owned()),
            (900, "conflict.overdue to 2".to_owned()),
            // Steps without delay are timers due at once, fired in the same tick.
            (900, "alert conflict/7/party/1 to 1 step 0".to_owned()),
            (900, "alert conflict/7/party/2 to 2 step 0".to_owned()),
        ]
    );
    h.now = at_s(901);
    h.hotline.conflict_resolved(h.now, ConflictId(7)).unwrap();
    assert!(h.drain().is_empty());
    assert!(h.hotline.conflict_ack(ConflictId(7)).is_none());
    assert!(h.hotline.escalations().next().is_none());
    assert!(h.run_until(at_s(10_000)).is_empty());
    assert_eq!(
        h.hotline.conflict_resolved(h.now, ConflictId(7)),
        Err(HotlineError::UnknownConflict {
            conflict: ConflictId(7)
        })
    );
}

#[test]
fn conflict_acknowledgement_errors_name_the_field() {
    let mut h = Harness::with_ladder(vec![]);
    let now = h.now;
    h.hotline
        .require_conflict_ack(now, ConflictId(1), &[US, RU])
        .unwrap();
    let cases: Vec<(Result<(), HotlineError>, HotlineError, Option<&str>)> = vec![
        (
            h.hotline.require_conflict_ack(now, ConflictId(1), &[US, RU]),
            HotlineError::DuplicateConflict {
                conflict: ConflictId(1),
            },
            Some("/id"),
        ),
        (
            h.hotline.require_conflict_ack(now, ConflictId(2), &[]),
            HotlineError::NoConflictParties,
            Some("/parties"),
        ),
        (
            h.hotline.require_conflict_ack(now, ConflictId(2), &[US, US]),
            HotlineError::DuplicateParty { index: 1, party: US },
            Some("/parties/1"),
        ),
        (
            h.hotline
                .require_conflict_ack(now, ConflictId(2), &[US, PartyId(99)]),
            HotlineError::UnknownParty {
                index: 1,
                party: PartyId(99),
            },
            Some("/parties/1"),
        ),
        (
            h.hotline
                .require_conflict_ack(now, ConflictId(2), &[PartyId(1); 9]),
            HotlineError::TooMany {
                field: "parties",
                len: 9,
                max: 8,
            },
            Some("/parties"),
        ),
        (
            h.hotline.conflict_acked(now, ConflictId(2), US).map(drop),
            HotlineError::UnknownConflict {
                conflict: ConflictId(2),
            },
            None,
        ),
        (
            h.hotline.conflict_acked(now, ConflictId(1), BROKER).map(drop),
            HotlineError::NotInvolved {
                conflict: ConflictId(1),
                party: BROKER,
            },
            None,
        ),
    ];
    for (got, expected, pointer) in cases {
        let error = got.unwrap_err();
        assert_eq!(error, expected);
        assert_eq!(error.pointer().as_deref(), pointer, "{error}");
    }
    assert_eq!(
        h.hotline
            .conflict_acked(now, ConflictId(1), BROKER)
            .unwrap_err()
            .class(),
        ErrorClass::Forbidden
    );
}

// ---- refusals ----------------------------------------------------------------

#[test]
fn every_bad_message_is_refused_naming_its_field() {
    let mut h = Harness::with_ladder(vec![]);
    h.send(1, Priority::Routine, None);
    let good = message(2, US, RU, Priority::Priority, None);
    let max_body = h.config.limits.max_body_bytes;
    let cases: Vec<(MessageSpec, HotlineError, Option<&str>, ErrorClass)> = vec![
        (
            MessageSpec {
                from: PartyId(99),
                ..good.clone()
            },
            HotlineError::UnknownSender { party: PartyId(99) },
            Some("/from"),
            ErrorClass::BadInput,
        ),
        (
            MessageSpec {
                to: PartyId(99),
                ..good.clone()
            },
            HotlineError::UnknownRecipient { party: PartyId(99) },
            Some("/to"),
            ErrorClass::BadInput,
        ),
        (
            MessageSpec {
                to: US,
                ..good.clone()
            },
            HotlineError::MessageToSelf { party: US },
            Some("/to"),
            ErrorClass::BadInput,
        ),
        (
            MessageSpec {
                body: String::new(),
                ..good.clone()
            },
            HotlineError::EmptyBody,
            Some("/body"),
            ErrorClass::BadInput,
        ),
        (
            MessageSpec {
                body: " \n\t".into(),
                ..good.clone()
            },
            HotlineError::EmptyBody,
            Some("/body"),
            ErrorClass::BadInput,
        ),
        (
            MessageSpec {
                body: "é".repeat(max_body / 2 + 1),
                ..good.clone()
            },
            HotlineError::BodyTooLong {
                len: max_body + 2,
                max: max_body,
            },
            Some("/body"),
            ErrorClass::BadInput,
        ),
        (
            MessageSpec {
                ack_within_s: Some(0),
                ..good.clone()
            },
            HotlineError::AckWithinOutOfRange {
                value: 0,
                max: 604_800,
            },
            Some("/ack_within_s"),
            ErrorClass::BadInput,
        ),
        (
            MessageSpec {
                ack_within_s: Some(604_801),
                ..good.clone()
            },
            HotlineError::AckWithinOutOfRange {
                value: 604_801,
                max: 604_800,
            },
            Some("/ack_within_s"),
            ErrorClass::BadInput,
        ),
        (
            MessageSpec {
                link: Some(Link::Incident(IncidentId(5))),
                ..good.clone()
            },
            HotlineError::UnknownIncidentLink {
                incident: IncidentId(5),
            },
            Some("/incident_id"),
            ErrorClass::BadInput,
        ),
        (
            MessageSpec {
                id: MessageId(1),
                ..good.clone()
            },
            HotlineError::DuplicateMessage { id: MessageId(1) },
            Some("/id"),
            ErrorClass::Duplicate,
        ),
    ];
    for (spec, expected, pointer, class) in cases {
        let error = h.hotline.send(h.now, spec).unwrap_err();
        assert_eq!(error, expected);
        assert_eq!(error.pointer().as_deref(), pointer, "{error}");
        assert_eq!(error.class(), class, "{error}");
        assert!(!error.to_string().is_empty());
    }
    // Refusals change nothing.
    assert!(h.drain().is_empty());
    assert_eq!(h.hotline.messages().count(), 1);
    // A body of exactly the limit is accepted.
    let full = MessageSpec {
        body: "x".repeat(max_body),
        ..good
    };
    assert_eq!(h.hotline.send(h.now, full), Ok(()));
}

#[test]
fn acknowledgement_errors_and_double_acks() {
    let mut h = Harness::with_ladder(vec![]);
    h.send(1, Priority::Priority, None);
    let unknown = h.hotline.ack(h.now, MessageId(9), RU).unwrap_err();
    assert_eq!(unknown, HotlineError::UnknownMessage { id: MessageId(9) });
    assert_eq!((unknown.class(), unknown.pointer()), (ErrorClass::NotFound, None));
    let by_sender = h.hotline.ack(h.now, MessageId(1), US).unwrap_err();
    assert_eq!(
        by_sender,
        HotlineError::NotRecipient {
            message: MessageId(1),
            party: US,
            recipient: RU
        }
    );
    assert_eq!(by_sender.class(), ErrorClass::Forbidden);
    assert_eq!(
        h.hotline.ack(h.now, MessageId(1), BROKER),
        Err(HotlineError::NotRecipient {
            message: MessageId(1),
            party: BROKER,
            recipient: RU
        })
    );
    assert!(h.drain().is_empty());
    assert_eq!(h.hotline.ack(at_s(10), MessageId(1), RU), Ok(AckOutcome::Acked));
    h.drain();
    // A second ack is idempotent: same answer, original time, no record, no action.
    let journal_len = h.journal.len();
    assert_eq!(
        h.hotline.ack(at_s(20), MessageId(1), RU),
        Ok(AckOutcome::AlreadyAcked { acked_at: at_s(10) })
    );
    assert!(h.drain().is_empty());
    assert_eq!(h.journal.len(), journal_len);
    assert_eq!(
        h.hotline.delivered(h.now, MessageId(9)),
        Err(HotlineError::UnknownMessage { id: MessageId(9) })
    );
}

#[test]
fn bad_configurations_are_refused() {
    let config = HotlineConfig {
        retry: RetryPolicy {
            max_attempts: 0,
            ..RetryPolicy::default()
        },
        ..HotlineConfig::default()
    };
    assert_eq!(
        Hotline::new(config).unwrap_err(),
        ConfigError::Zero {
            field: "retry.max_attempts"
        }
    );
}

// ---- limits ------------------------------------------------------------------

#[test]
fn open_messages_per_party_are_limited_until_acknowledged() {
    let mut config = HotlineConfig::default();
    config.limits.max_open_messages_per_party = 2;
    let mut h = Harness::new(config, vec![]);
    h.send(1, Priority::Routine, None);
    h.send(2, Priority::Routine, None);
    let error = h
        .hotline
        .send(h.now, message(3, US, RU, Priority::Routine, None))
        .unwrap_err();
    assert_eq!(error, HotlineError::TooManyOpenMessages { party: US, max: 2 });
    assert_eq!(error.class(), ErrorClass::LimitReached);
    // Another sender is not affected.
    h.hotline
        .send(h.now, message(4, RU, US, Priority::Routine, None))
        .unwrap();
    h.hotline.ack(h.now, MessageId(1), RU).unwrap();
    assert_eq!(h.hotline.open_messages(US), 1);
    h.hotline
        .send(h.now, message(3, US, RU, Priority::Routine, None))
        .unwrap();
    assert_eq!(h.hotline.open_messages(US), 2);
    // The count survives a restart.
    h.drain();
    h.restart();
    assert_eq!(h.hotline.open_messages(US), 2);
}

#[test]
fn parties_ladders_and_conflicts_are_limited() {
    let mut config = HotlineConfig::default();
    config.limits.max_parties = 4;
    config.limits.max_open_conflicts = 1;
    config.limits.max_ladder_steps = 2;
    let mut h = Harness::new(config, vec![]);
    assert_eq!(
        h.hotline.set_party(PartyId(5), PartyContacts::default()),
        Err(HotlineError::TooManyParties { max: 4 })
    );
    // Replacing a known party's contacts is not a new party.
    h.hotline
        .set_party(
            US,
            PartyContacts {
                escalation: vec![tak(0), tak(1)],
            },
        )
        .unwrap();
    let error = h
        .hotline
        .set_party(
            US,
            PartyContacts {
                escalation: vec![tak(0); 3],
            },
        )
        .unwrap_err();
    assert_eq!(error, HotlineError::TooManyLadderSteps { len: 3, max: 2 });
    assert_eq!(error.pointer().as_deref(), Some("/escalation"));
    h.hotline
        .require_conflict_ack(h.now, ConflictId(1), &[US, RU])
        .unwrap();
    assert_eq!(
        h.hotline.require_conflict_ack(h.now, ConflictId(2), &[US, RU]),
        Err(HotlineError::TooManyOpenConflicts { max: 1 })
    );
    h.hotline.conflict_resolved(h.now, ConflictId(1)).unwrap();
    h.hotline
        .require_conflict_ack(h.now, ConflictId(2), &[US, RU])
        .unwrap();
}

// ---- incidents ---------------------------------------------------------------

fn incident(id: u64, reporter: PartyId, parties: Vec<PartyId>) -> IncidentSpec {
    IncidentSpec {
        id: IncidentId(id),
        reporter,
        occurred_at: at_s(-120),
        lon_deg: 41.23,
        lat_deg: 36.78,
        parties,
        description: "Warning shots near the al-Qahtaniyah oil field".into(),
        activities: vec![ActivityId(11), ActivityId(12)],
        messages: vec![],
        entities: vec![],
    }
}

#[test]
fn an_incident_keeps_the_track_history_around_it() {
    let mut h = Harness::with_ladder(vec![]);
    h.send(1, Priority::Flash, None);
    let spec = IncidentSpec {
        messages: vec![MessageId(1)],
        entities: vec!["ANDROID-us-7".into(), "ru-btr-12".into()],
        ..incident(1, US, vec![US, RU, BROKER])
    };
    h.hotline.report_incident(h.now, spec).unwrap();
    let actions = h.drain();
    assert_eq!(
        actions[0],
        Action::PreserveTracks {
            incident: IncidentId(1),
            entities: vec!["ANDROID-us-7".into(), "ru-btr-12".into()],
            from: at_s(-720),
            to: at_s(480),
        }
    );
    let told: Vec<PartyId> = actions[1..]
        .iter()
        .map(|a| match a {
            Action::Notify {
                to,
                event:
                    Event::Incident {
                        incident,
                        reporter,
                        occurred_at,
                    },
            } => {
                assert_eq!(
                    (*incident, *reporter, *occurred_at),
                    (IncidentId(1), US, at_s(-120))
                );
                *to
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(told, [RU, BROKER]);
    let stored = h.hotline.incident(IncidentId(1)).unwrap();
    assert_eq!(
        (stored.reported_at, stored.evidence_from, stored.evidence_to),
        (t0(), at_s(-720), at_s(480))
    );
    // A message can then refer to the incident.
    let linked = MessageSpec {
        link: Some(Link::Incident(IncidentId(1))),
        ..message(2, RU, US, Priority::Routine, None)
    };
    h.hotline.send(h.now, linked).unwrap();
}

#[test]
fn the_evidence_window_is_configurable_and_kept_with_or_without_entities() {
    let config = HotlineConfig {
        evidence_before_s: 60,
        evidence_after_s: 30,
        ..HotlineConfig::default()
    };
    let mut h = Harness::new(config, vec![]);
    h.hotline
        .report_incident(h.now, incident(1, US, vec![RU]))
        .unwrap();
    // Without uids the driver still captures the parties' units near the place.
    assert!(h.drain().contains(&Action::PreserveTracks {
        incident: IncidentId(1),
        entities: vec![],
        from: at_s(-180),
        to: at_s(-90),
    }));
    let spec = IncidentSpec {
        entities: vec!["uid".into()],
        ..incident(2, US, vec![RU])
    };
    h.hotline.report_incident(h.now, spec).unwrap();
    assert!(h.drain().contains(&Action::PreserveTracks {
        incident: IncidentId(2),
        entities: vec!["uid".into()],
        from: at_s(-180),
        to: at_s(-90),
    }));
}

#[test]
fn every_bad_incident_is_refused_naming_its_field() {
    let mut h = Harness::with_ladder(vec![]);
    h.hotline
        .send(h.now, message(1, RU, RU_HQ, Priority::Routine, None))
        .unwrap();
    h.hotline
        .report_incident(h.now, incident(1, US, vec![RU]))
        .unwrap();
    h.drain();
    let good = incident(2, US, vec![US, RU]);
    let limits = h.config.limits;
    let cases: Vec<(IncidentSpec, HotlineError, &str)> = vec![
        (
            incident(1, US, vec![RU]),
            HotlineError::DuplicateIncident { id: IncidentId(1) },
            "/id",
        ),
        (
            IncidentSpec {
                reporter: PartyId(99),
                ..good.clone()
            },
            HotlineError::UnknownReporter { party: PartyId(99) },
            "/reporter",
        ),
        (
            IncidentSpec {
                occurred_at: at_s(301),
                ..good.clone()
            },
            HotlineError::OccurredInFuture {
                occurred_at: at_s(301),
                now: t0(),
            },
            "/time",
        ),
        (
            IncidentSpec {
                lon_deg: 180.5,
                ..good.clone()
            },
            HotlineError::BadCoordinate {
                field: "lon",
                value: 180.5,
                min: -180.0,
                max: 180.0,
            },
            "/lon",
        ),
        (
            IncidentSpec {
                lat_deg: -90.5,
                ..good.clone()
            },
            HotlineError::BadCoordinate {
                field: "lat",
                value: -90.5,
                min: -90.0,
                max: 90.0,
            },
            "/lat",
        ),
        (
            IncidentSpec {
                description: "  ".into(),
                ..good.clone()
            },
            HotlineError::EmptyDescription,
            "/description",
        ),
        (
            IncidentSpec {
                description: "x".repeat(limits.max_description_bytes + 1),
                ..good.clone()
            },
            HotlineError::DescriptionTooLong {
                len: limits.max_description_bytes + 1,
                max: limits.max_description_bytes,
            },
            "/description",
        ),
        (
            IncidentSpec {
                parties: vec![RU, US, RU],
                ..good.clone()
            },
            HotlineError::DuplicateParty { index: 2, party: RU },
            "/parties/2",
        ),
        (
            IncidentSpec {
                parties: vec![PartyId(99)],
                ..good.clone()
            },
            HotlineError::UnknownParty {
                index: 0,
                party: PartyId(99),
            },
            "/parties/0",
        ),
        (
            IncidentSpec {
                parties: (100..133).map(PartyId).collect(),
                ..good.clone()
            },
            HotlineError::TooMany {
                field: "parties",
                len: 33,
                max: 32,
            },
            "/parties",
        ),
        (
            IncidentSpec {
                activities: vec![ActivityId(1); 257],
                ..good.clone()
            },
            HotlineError::TooMany {
                field: "activities",
                len: 257,
                max: 256,
            },
            "/activities",
        ),
        (
            IncidentSpec {
                entities: vec!["u".into(); 257],
                ..good.clone()
            },
            HotlineError::TooMany {
                field: "entities",
                len: 257,
                max: 256,
            },
            "/entities",
        ),
        (
            IncidentSpec {
                messages: vec![MessageId(7)],
                ..good.clone()
            },
            HotlineError::UnknownMessageLink {
                index: 0,
                id: MessageId(7),
            },
            "/messages/0",
        ),
        (
            IncidentSpec {
                messages: vec![MessageId(1)],
                ..good.clone()
            },
            HotlineError::MessageNotVisible {
                index: 0,
                id: MessageId(1),
            },
            "/messages/0",
        ),
        (
            IncidentSpec {
                entities: vec!["a".into(), String::new()],
                ..good.clone()
            },
            HotlineError::EmptyEntityUid { index: 1 },
            "/entities/1",
        ),
        (
            IncidentSpec {
                entities: vec!["u".repeat(257)],
                ..good.clone()
            },
            HotlineError::EntityUidTooLong {
                index: 0,
                len: 257,
                max: 256,
            },
            "/entities/0",
        ),
    ];
    for (spec, expected, pointer) in cases {
        let error = h.hotline.report_incident(h.now, spec).unwrap_err();
        assert_eq!(error, expected);
        assert_eq!(error.pointer().as_deref(), Some(pointer), "{error}");
    }
    let nan = IncidentSpec {
        lon_deg: f64::NAN,
        ..good.clone()
    };
    assert!(matches!(
        h.hotline.report_incident(h.now, nan),
        Err(HotlineError::BadCoordinate { field: "lon", .. })
    ));
    assert!(h.drain().is_empty());
    // Within the allowed clock skew is fine.
    h.hotline
        .report_incident(
            h.now,
            IncidentSpec {
                occurred_at: at_s(300),
                ..good
            },
        )
        .unwrap();
}

#[test]
fn conflict_webhook_payloads_name_the_conflict_and_its_parties() {
    let mut h = Harness::with_ladder(vec![webhook(0)]);
    h.hotline
        .require_conflict_ack(h.now, ConflictId(42), &[US, RU])
        .unwrap();
    h.drain();
    let actions = h.run_until(at_s(900));
    let Some((
        _,
        Action::CallWebhook {
            call,
            payload,
            signature,
            ..
        },
    )) = actions.last()
    else {
        panic!("no webhook call in {actions:?}")
    };
    assert_eq!(call.to_string(), "conflict/42/party/2/step/0/attempt/1");
    let now_s = at_s(900).0 / 1000;
    assert_eq!(
        verify_signature(SECRET.as_bytes(), signature, payload, now_s, 0),
        Ok(now_s)
    );
    let json: serde_json::Value = serde_json::from_slice(payload).unwrap();
    assert_eq!(json["type"], "conflict.overdue");
    assert_eq!(json["party"], 2);
    assert_eq!(json["conflict"], serde_json::json!({"id": 42, "parties": [1, 2]}));
}

#[test]
fn a_party_coming_back_gets_what_was_never_delivered_to_it() {
    let mut h = Harness::with_ladder(Vec::new());
    h.send(1, Priority::Routine, None);
    h.send(2, Priority::Routine, None);
    h.send(3, Priority::Routine, None);
    // Message 1 reached a stream, 2 was acknowledged without one, 3 did not.
    h.hotline.delivered(at_s(1), MessageId(1)).unwrap();
    h.hotline.ack(at_s(2), MessageId(2), RU).unwrap();
    h.drain();
    assert_eq!(h.hotline.redeliver(US), [], "nothing waits for the sender");
    assert_eq!(h.hotline.redeliver(RU), [MessageId(3)]);
    assert!(h.hotline.poll_record().is_none(), "redelivering writes nothing");
    assert_eq!(
        h.drain(),
        [Action::Deliver {
            message: MessageId(3),
            to: RU
        }]
    );
    h.hotline.delivered(at_s(9), MessageId(3)).unwrap();
    assert_eq!(
        h.hotline.message(MessageId(3)).unwrap().delivered_at,
        Some(at_s(9)),
        "delivered when it reached the party, not when it was sent"
    );
    assert_eq!(h.hotline.redeliver(RU), [], "each message is delivered once");
}
