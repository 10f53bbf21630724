//! Who is connected, per party, and how CoT gets to them.
//!
//! Each connection has a bounded queue of outgoing documents drained by its
//! writer task. [`TakOutbound::send_to_party`] never waits: when a
//! connection's queue is full, the new document is dropped for that
//! connection (drop-newest) and counted. A TAK client that cannot keep up
//! misses alerts rather than making the server buffer without bound; CoT
//! alerts carry a uid and a stale time, so the next one for the same episode
//! replaces what was missed, and the driver still has every alert on its
//! other channels (SSE, WebSocket).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};

use deconflict_engine::PartyId;
use tokio::sync::{mpsc, Notify};

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
    queue: mpsc::Sender<CotBytes>,
    close: Arc<Notify>,
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
        queue: mpsc::Sender<CotBytes>,
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
    /// Connections it was queued on.
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
        let parties = self.registry.lock();
        let mut delivery = Delivery::default();
        for open in parties.get(&party).into_iter().flatten() {
            match open.queue.try_send(Arc::clone(&document)) {
                Ok(()) => delivery.queued += 1,
                Err(_) => delivery.dropped += 1,
            }
        }
        drop(parties);
        self.stats
            .outbound_queued
            .fetch_add(delivery.queued as u64, Ordering::Relaxed);
        self.stats
            .outbound_dropped
            .fetch_add(delivery.dropped as u64, Ordering::Relaxed);
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

    #[test]
    fn a_full_queue_drops_the_newest_and_counts_it() {
        let out = outbound(4);
        let (tx, mut rx) = mpsc::channel(2);
        let _registration = out
            .registry
            .register(PartyId(1), ConnectionId(1), tx, Arc::default())
            .unwrap();
        let doc = |text: &str| -> CotBytes { Arc::from(text.as_bytes()) };
        assert_eq!(
            out.send_to_party(PartyId(1), doc("a")),
            Delivery {
                queued: 1,
                dropped: 0
            }
        );
        assert_eq!(
            out.send_to_party(PartyId(1), doc("b")),
            Delivery {
                queued: 1,
                dropped: 0
            }
        );
        assert_eq!(
            out.send_to_party(PartyId(1), doc("c")),
            Delivery {
                queued: 0,
                dropped: 1
            }
        );
        assert_eq!(out.send_to_party(PartyId(2), doc("x")), Delivery::default());
        assert_eq!(&*rx.try_recv().unwrap(), b"a");
        assert_eq!(&*rx.try_recv().unwrap(), b"b");
        assert!(rx.try_recv().is_err(), "the newest was dropped, not an older one");
        assert_eq!(out.stats.outbound_dropped.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn closing_a_party_signals_each_of_its_connections_and_no_other() {
        let out = outbound(4);
        let channel = || mpsc::channel::<CotBytes>(1).0;
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
        let channel = || mpsc::channel::<CotBytes>(1).0;
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
