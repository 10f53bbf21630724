//! Who is connected, per party, and how CoT gets to them.
//!
//! Each connection has a bounded queue of outgoing documents drained by its
//! writer task ([`OutQueue`]). Sending never waits. When a connection's
//! queue is full:
//!
//! - a document of an episode that already has one queued (the same key,
//!   [`TakOutbound::send_episode_to_party`]: an alarm's clearing behind its
//!   opening) takes that one's place: the client gets the episode's latest
//!   state, where it would have got the first, and nothing is lost that
//!   it needs (CoT alarms are filed by uid; the later replaces the earlier
//!   anyway); counted as coalesced;
//! - any other document is dropped for that connection (drop-newest:
//!   what is queued is older and already promised) and counted; once the
//!   writer has written what was queued, it tells the client how many it
//!   missed, as a GeoChat line from `deconflict` (the `lagged` event of
//!   the SSE and WebSocket streams, for TAK clients), so that the client's
//!   user knows to look at the full picture (`GET /v1/tracks`, the event
//!   streams).
//!
//! A TAK client that cannot keep up misses alerts rather than making the
//! server buffer without bound, and the driver still has every alert on
//! its other channels (SSE, WebSocket).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};

use deconflict_engine::PartyId;
use tokio::sync::Notify;

use crate::listener::Stats;

/// A connection, numbered in accept order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectionId(pub u64);

/// One CoT document, shared by every connection it is queued on.
pub type CotBytes = Arc<[u8]>;

/// One open connection: its outgoing queue, and the signal that closes it.
#[derive(Debug)]
struct Open {
    connection: ConnectionId,
    queue: Arc<OutQueue>,
    close: Arc<Notify>,
}

/// What [`OutQueue::push`] did with a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    Queued,
    /// It took the place of its episode's queued document.
    Coalesced,
    /// The queue was full (counted toward the lagged notice) or closed.
    Dropped,
}

/// One connection's outgoing documents, bounded (see the module
/// documentation for what happens when it is full).
#[derive(Debug)]
pub(crate) struct OutQueue {
    state: Mutex<QueueState>,
    /// Signalled when there is something for the writer (a permit is kept
    /// when it is not waiting).
    ready: Notify,
    capacity: usize,
}

#[derive(Debug, Default)]
struct QueueState {
    /// In order, each with its episode's key if it has one.
    documents: VecDeque<(Option<u64>, CotBytes)>,
    /// Documents dropped since the writer last took the queue.
    lagged: u64,
    /// The connection is ending: nothing more is queued, and the writer
    /// stops once the queue is empty.
    closed: bool,
}

/// What the writer takes from its queue at once.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Taken {
    pub(crate) documents: Vec<CotBytes>,
    /// Documents dropped (the queue full) since the last take: to tell the
    /// client after these.
    pub(crate) lagged: u64,
}

impl OutQueue {
    pub(crate) fn new(capacity: usize) -> Arc<Self> {
        Arc::new(OutQueue {
            state: Mutex::new(QueueState::default()),
            ready: Notify::new(),
            capacity: capacity.max(1),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        // Every change is one call: the state is valid after any panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `document`; `episode` lets it take its episode's place when
    /// the queue is full. `counted`: a drop counts toward the lagged
    /// notice (not for a pong: a full queue already proves the link alive).
    pub(crate) fn push(&self, episode: Option<u64>, document: CotBytes, counted: bool) -> Pushed {
        let mut state = self.lock();
        if state.closed {
            return Pushed::Dropped;
        }
        if state.documents.len() < self.capacity {
            state.documents.push_back((episode, document));
            drop(state);
            self.ready.notify_one();
            return Pushed::Queued;
        }
        if let Some(episode) = episode {
            if let Some(queued) = state.documents.iter_mut().find(|(key, _)| *key == Some(episode)) {
                queued.1 = document;
                return Pushed::Coalesced;
            }
        }
        if counted {
            state.lagged += 1;
            drop(state);
            // The writer must say so even if it finds nothing else queued.
            self.ready.notify_one();
        }
        Pushed::Dropped
    }

    /// Ends the queue: what is queued is still taken, then [`Self::take`]
    /// answers `None`.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
    }

    /// Everything queued (and how many were dropped before), waiting until
    /// there is something; `None` once closed and empty.
    pub(crate) async fn take(&self) -> Option<Taken> {
        loop {
            {
                let mut state = self.lock();
                if !state.documents.is_empty() || state.lagged > 0 {
                    return Some(Taken {
                        documents: state.documents.drain(..).map(|(_, d)| d).collect(),
                        lagged: std::mem::take(&mut state.lagged),
                    });
                }
                if state.closed {
                    return None;
                }
            }
            self.ready.notified().await;
        }
    }
}

/// The open connections of each party.
type Queues = BTreeMap<PartyId, Vec<Open>>;

#[derive(Debug)]
pub(crate) struct Registry {
    parties: Mutex<Queues>,
    max_per_party: usize,
    /// Each accepted connection's party, for whoever has something waiting
    /// for it (the hotline's undelivered messages). A broadcast: a receiver
    /// that falls more than [`CONNECTED_BACKLOG`] behind is told it lagged.
    connected: tokio::sync::broadcast::Sender<PartyId>,
}

/// Connection notices a slow [`TakOutbound::connected`] receiver may fall
/// behind by before older ones are lost (it then sees `Lagged`).
pub(crate) const CONNECTED_BACKLOG: usize = 256;

/// Removes the connection from the registry when dropped.
#[derive(Debug)]
pub(crate) struct Registration {
    registry: Arc<Registry>,
    party: PartyId,
    connection: ConnectionId,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut parties = self.registry.lock();
        if let Some(connections) = parties.get_mut(&self.party) {
            connections.retain(|open| open.connection != self.connection);
            if connections.is_empty() {
                parties.remove(&self.party);
            }
        }
    }
}

impl Registry {
    pub(crate) fn new(max_per_party: usize) -> Self {
        Registry {
            parties: Mutex::new(BTreeMap::new()),
            max_per_party,
            connected: tokio::sync::broadcast::channel(CONNECTED_BACKLOG).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queues> {
        // The map is valid after any panic (every change is one call), so a
        // poisoned lock is still usable.
        self.parties.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a connection of `party`, or `None` if the party already has its
    /// maximum number of connections. `close` is notified when the
    /// connection must end ([`TakOutbound::close_party`]).
    pub(crate) fn register(
        self: &Arc<Self>,
        party: PartyId,
        connection: ConnectionId,
        queue: Arc<OutQueue>,
        close: Arc<Notify>,
    ) -> Option<Registration> {
        let mut parties = self.lock();
        let connections = parties.entry(party).or_default();
        if connections.len() >= self.max_per_party {
            if connections.is_empty() {
                parties.remove(&party);
            }
            return None;
        }
        connections.push(Open {
            connection,
            queue,
            close,
        });
        drop(parties);
        // No receiver is not an error: nobody waits for connections.
        let _ = self.connected.send(party);
        Some(Registration {
            registry: Arc::clone(self),
            party,
            connection,
        })
    }
}

/// What happened to one document sent to a party.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Delivery {
    /// Connections it was queued on (in its episode's place, when their
    /// queue was full and held one: [`TakOutbound::send_episode_to_party`]).
    pub queued: usize,
    /// Connections whose queue was full, or that were closing.
    pub dropped: usize,
}

/// The driver's handle for sending CoT to connected TAK clients. Cheap to
/// clone; usable from any thread, async or not.
#[derive(Debug, Clone)]
pub struct TakOutbound {
    pub(crate) registry: Arc<Registry>,
    pub(crate) stats: Arc<Stats>,
}

impl TakOutbound {
    /// Queues one CoT document (for example [`deconflict_formats::CotAlert::to_xml`])
    /// on every connection of `party`. Never waits; see the module
    /// documentation for the drop policy.
    pub fn send_to_party(&self, party: PartyId, document: CotBytes) -> Delivery {
        self.send(party, None, document)
    }

    /// As [`Self::send_to_party`], for a document of an episode (an alarm,
    /// its clearing: one `episode` key, such as the alert's id): on a
    /// connection whose queue is full, it takes the place of the queued
    /// document of the same episode, if any, rather than being dropped.
    pub fn send_episode_to_party(&self, party: PartyId, episode: u64, document: CotBytes) -> Delivery {
        self.send(party, Some(episode), document)
    }

    fn send(&self, party: PartyId, episode: Option<u64>, document: CotBytes) -> Delivery {
        let parties = self.registry.lock();
        let mut delivery = Delivery::default();
        let mut coalesced = 0u64;
        for open in parties.get(&party).into_iter().flatten() {
            match open.queue.push(episode, Arc::clone(&document), true) {
                Pushed::Queued => delivery.queued += 1,
                Pushed::Coalesced => {
                    delivery.queued += 1;
                    coalesced += 1;
                }
                Pushed::Dropped => delivery.dropped += 1,
            }
        }
        drop(parties);
        self.stats
            .outbound_queued
            .fetch_add(delivery.queued as u64, Ordering::Relaxed);
        self.stats
            .outbound_dropped
            .fetch_add(delivery.dropped as u64, Ordering::Relaxed);
        self.stats
            .outbound_coalesced
            .fetch_add(coalesced, Ordering::Relaxed);
        delivery
    }

    /// The party of every connection accepted from now on, once it can
    /// receive (it is registered, so [`Self::send_to_party`] reaches it).
    pub fn connected(&self) -> tokio::sync::broadcast::Receiver<PartyId> {
        self.registry.connected.subscribe()
    }

    /// Closes every open connection of `party` (its revocation): each stops
    /// reading at once, and closes after what is queued for it is written.
    /// Returns how many were told. To keep the party from reconnecting, its
    /// certificates must also be refused ([`crate::Revocations`]).
    pub fn close_party(&self, party: PartyId) -> usize {
        let parties = self.registry.lock();
        let connections = parties.get(&party).map_or(&[][..], Vec::as_slice);
        for open in connections {
            // Stores a permit when the connection is not waiting yet, so a
            // close never goes unseen.
            open.close.notify_one();
        }
        connections.len()
    }

    /// How many connections `party` has open now.
    pub fn connections_of(&self, party: PartyId) -> usize {
        self.registry.lock().get(&party).map_or(0, Vec::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbound(max_per_party: usize) -> TakOutbound {
        TakOutbound {
            registry: Arc::new(Registry::new(max_per_party)),
            stats: Arc::new(Stats::default()),
        }
    }

    fn doc(text: &str) -> CotBytes {
        Arc::from(text.as_bytes())
    }

    fn texts(taken: &Taken) -> Vec<&str> {
        taken
            .documents
            .iter()
            .map(|d| std::str::from_utf8(d).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn a_full_queue_drops_the_newest_and_counts_it() {
        let out = outbound(4);
        let queue = OutQueue::new(2);
        let _registration = out
            .registry
            .register(PartyId(1), ConnectionId(1), Arc::clone(&queue), Arc::default())
            .unwrap();
        let one = Delivery {
            queued: 1,
            dropped: 0,
        };
        assert_eq!(out.send_to_party(PartyId(1), doc("a")), one);
        assert_eq!(out.send_to_party(PartyId(1), doc("b")), one);
        assert_eq!(
            out.send_to_party(PartyId(1), doc("c")),
            Delivery {
                queued: 0,
                dropped: 1
            }
        );
        assert_eq!(out.send_to_party(PartyId(2), doc("x")), Delivery::default());
        let taken = queue.take().await.unwrap();
        assert_eq!(
            texts(&taken),
            ["a", "b"],
            "the newest was dropped, not an older one"
        );
        assert_eq!(taken.lagged, 1, "the writer is told how many it missed");
        assert_eq!(out.stats.outbound_dropped.load(Ordering::Relaxed), 1);
        // Said once: the next take starts from zero.
        assert_eq!(out.send_to_party(PartyId(1), doc("d")), one);
        assert_eq!(
            queue.take().await.unwrap(),
            Taken {
                documents: vec![doc("d")],
                lagged: 0
            }
        );
    }

    /// A full queue: an episode's document takes the place of the one of
    /// the same episode queued (in its place in the order), another
    /// episode's is dropped and counted; with room, both are queued.
    #[tokio::test]
    async fn a_full_queue_keeps_each_episodes_latest_document() {
        let out = outbound(4);
        let queue = OutQueue::new(3);
        let _registration = out
            .registry
            .register(PartyId(1), ConnectionId(1), Arc::clone(&queue), Arc::default())
            .unwrap();
        let one = Delivery {
            queued: 1,
            dropped: 0,
        };
        assert_eq!(out.send_episode_to_party(PartyId(1), 7, doc("open 7")), one);
        assert_eq!(out.send_episode_to_party(PartyId(1), 8, doc("open 8")), one);
        assert_eq!(out.send_to_party(PartyId(1), doc("chat")), one);
        // Full: 7's clearing replaces its opening; 9 is dropped.
        assert_eq!(out.send_episode_to_party(PartyId(1), 7, doc("clear 7")), one);
        assert_eq!(
            out.send_episode_to_party(PartyId(1), 9, doc("open 9")),
            Delivery {
                queued: 0,
                dropped: 1
            }
        );
        assert_eq!(out.stats.outbound_coalesced.load(Ordering::Relaxed), 1);
        assert_eq!(out.stats.outbound_dropped.load(Ordering::Relaxed), 1);
        let taken = queue.take().await.unwrap();
        assert_eq!(texts(&taken), ["clear 7", "open 8", "chat"]);
        assert_eq!(taken.lagged, 1);
        // Room again: an episode's documents are all queued, in order.
        out.send_episode_to_party(PartyId(1), 9, doc("open 9"));
        out.send_episode_to_party(PartyId(1), 9, doc("clear 9"));
        assert_eq!(texts(&queue.take().await.unwrap()), ["open 9", "clear 9"]);
        // Closed: what is queued is still taken, then nothing.
        out.send_to_party(PartyId(1), doc("last"));
        queue.close();
        assert_eq!(
            out.send_to_party(PartyId(1), doc("late")),
            Delivery {
                queued: 0,
                dropped: 1
            }
        );
        assert_eq!(texts(&queue.take().await.unwrap()), ["last"]);
        assert_eq!(queue.take().await, None);
    }

    #[test]
    fn closing_a_party_signals_each_of_its_connections_and_no_other() {
        let out = outbound(4);
        let channel = || OutQueue::new(1);
        let closes: Vec<Arc<Notify>> = (0..3).map(|_| Arc::default()).collect();
        let _a = out
            .registry
            .register(PartyId(1), ConnectionId(1), channel(), Arc::clone(&closes[0]))
            .unwrap();
        let _b = out
            .registry
            .register(PartyId(1), ConnectionId(2), channel(), Arc::clone(&closes[1]))
            .unwrap();
        let _c = out
            .registry
            .register(PartyId(2), ConnectionId(3), channel(), Arc::clone(&closes[2]))
            .unwrap();
        assert_eq!(out.close_party(PartyId(1)), 2);
        assert_eq!(out.close_party(PartyId(9)), 0);
        // The signal is kept for a connection that was not waiting yet.
        let signalled = |close: &Notify| std::pin::pin!(close.notified()).enable();
        assert!(signalled(&closes[0]) && signalled(&closes[1]));
        assert!(!signalled(&closes[2]), "party 2 was not closed");
    }

    #[test]
    fn connections_per_party_are_capped_and_released() {
        let out = outbound(2);
        let channel = || OutQueue::new(1);
        let first = out
            .registry
            .register(PartyId(1), ConnectionId(1), channel(), Arc::default())
            .unwrap();
        let _second = out
            .registry
            .register(PartyId(1), ConnectionId(2), channel(), Arc::default())
            .unwrap();
        assert!(out
            .registry
            .register(PartyId(1), ConnectionId(3), channel(), Arc::default())
            .is_none());
        assert!(out
            .registry
            .register(PartyId(2), ConnectionId(4), channel(), Arc::default())
            .is_some());
        assert_eq!(out.connections_of(PartyId(1)), 2);
        drop(first);
        let mut connected = out.connected();
        let _third = out
            .registry
            .register(PartyId(3), ConnectionId(6), channel(), Arc::default())
            .unwrap();
        assert_eq!(
            connected.try_recv().unwrap(),
            PartyId(3),
            "a new connection is announced"
        );
        assert!(out
            .registry
            .register(PartyId(3), ConnectionId(7), channel(), Arc::default())
            .is_some());
        assert_eq!(connected.try_recv().unwrap(), PartyId(3));
        assert_eq!(out.connections_of(PartyId(1)), 1);
        assert!(out
            .registry
            .register(PartyId(1), ConnectionId(5), channel(), Arc::default())
            .is_some());
    }
}
