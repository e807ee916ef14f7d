//! Write combining: concurrent commits of one session in one process become one store write.
//!
//! Every session that a request changes has a [`Slot`] while such requests are in flight (an
//! idle one is kept until its shard fills up, so the session's next write reuses it).
//! The first commit to arrive leads: it writes its own changes. Commits that arrive while a
//! write is under way queue; when it ends, the first of them leads the next write, which
//! carries the changes of everything queued (each request's operations run again, in order,
//! on the newest record). So commits of one session in one process never meet each other as a
//! compare-and-swap conflict in the store: N pending commits cost one store write, and a
//! conflict can only come from another process.
//!
//! A leader whose request is cancelled mid-write (a client that hung up) hands the lead on as
//! it is dropped; the commits it carried see their answer channel close and queue again. A
//! queued commit cancelled after the lead was sent to it, before it took it, passes it on too.

use std::{
    collections::HashMap,
    hash::BuildHasher,
    sync::{Arc, Mutex, MutexGuard, OnceLock},
};

use tokio::sync::oneshot;

use crate::{SessionError, intent::Intent, key_hash::KeyTailState, model::Landed};

const SHARDS: usize = 16;

/// One shard's slots. Idle slots (no request holds them) stay until the shard is full, so a
/// session's next write finds its slot without allocating one; a full shard drops its idle
/// slots, and doubles its room when most of them are held.
struct Shard<T> {
    map: HashMap<Arc<str>, Arc<Slot<T>>, KeyTailState>,
    room: usize,
}

/// Room of a shard before it first drops idle slots (16 shards: 1,024 sessions).
const FIRST_ROOM: usize = 64;

/// The slots of one storage, by storage key.
pub(crate) struct Slots<T> {
    shards: [Mutex<Shard<T>>; SHARDS],
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Self {
            shards: std::array::from_fn(|_| {
                Mutex::new(Shard {
                    map: HashMap::with_hasher(KeyTailState),
                    room: FIRST_ROOM,
                })
            }),
        }
    }
}

fn lock<V>(m: &Mutex<V>) -> MutexGuard<'_, V> {
    // Nothing that runs under these locks can panic half-way through a change.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether only the shard holds `slot` (clones are made under the shard's lock only).
fn idle<T>(slot: &Arc<Slot<T>>) -> bool {
    Arc::strong_count(slot) == 1
}

impl<T> Slots<T> {
    fn shard(&self, key: &str) -> &Mutex<Shard<T>> {
        // Middle bits: the map inside the shard uses the low ones and the top seven.
        let i = (KeyTailState.hash_one(key) >> 32) as usize % SHARDS;
        &self.shards[i]
    }

    /// The slot of `key`, kept while the returned reference lives.
    pub(crate) fn enter(&self, key: &str) -> SlotRef<T> {
        let mut shard = lock(self.shard(key));
        let slot = match shard.map.get(key) {
            Some(slot) => Arc::clone(slot),
            None => {
                if shard.map.len() >= shard.room {
                    shard.map.retain(|_, slot| !idle(slot));
                    if shard.map.len() >= shard.room / 2 {
                        shard.room *= 2;
                    }
                }
                let slot = Arc::new(Slot::default());
                shard.map.insert(Arc::from(key), Arc::clone(&slot));
                slot
            }
        };
        drop(shard);
        SlotRef { slot }
    }

    /// How many sessions are held by requests now.
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| lock(s).map.values().filter(|slot| !idle(slot)).count())
            .sum()
    }

    /// How many slots are kept, held or idle.
    #[cfg(test)]
    fn kept(&self) -> usize {
        self.shards.iter().map(|s| lock(s).map.len()).sum()
    }
}

/// One session's in-process commit state.
pub(crate) struct Slot<T> {
    state: Mutex<SlotState<T>>,
    /// Held by the request that has the session to itself, with
    /// [`ConcurrentWrites::Exclusive`](crate::ConcurrentWrites::Exclusive) (made on first use).
    exclusive: OnceLock<Arc<tokio::sync::Mutex<()>>>,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Self {
            state: Mutex::new(SlotState {
                busy: false,
                queue: Vec::new(),
                latest: None,
            }),
            exclusive: OnceLock::new(),
        }
    }
}

struct SlotState<T> {
    /// A leader is writing.
    busy: bool,
    /// Commits waiting for the next write.
    queue: Vec<Waiting<T>>,
    /// What this process last wrote for the session: the base of the next write for
    /// requests that loaded before it.
    latest: Option<Landed>,
}

/// A queued commit.
pub(crate) struct Waiting<T> {
    pub(crate) intent: Arc<Intent<T>>,
    reply: oneshot::Sender<Reply<T>>,
}

impl<T> Waiting<T> {
    /// Sends this commit its outcome (a commit whose request is gone is ignored).
    pub(crate) fn answer(self, outcome: Result<Option<Landed>, SessionError>) {
        let _ = self.reply.send(Reply::Done(outcome));
    }
}

enum Reply<T> {
    /// The commit was written (or failed) as part of another's write.
    Done(Result<Option<Landed>, SessionError>),
    /// The commit leads the next write, carrying these queued commits too.
    Lead(Vec<Waiting<T>>),
}

/// A request's hold on its session's slot.
pub(crate) struct SlotRef<T> {
    slot: Arc<Slot<T>>,
}

impl<T> Drop for SlotRef<T> {
    fn drop(&mut self) {
        // The last hold (the shard's and ours are the last two): the slot goes idle, and
        // what it kept as the base of the next write (a whole record) is let go. A request
        // entering meanwhile loaded after that write, so it never needed it. (Two last holds
        // dropped at once may both miss this: the record then waits for the slot's next
        // write or its sweep, never used, since whoever enters next loaded after it.)
        if Arc::strong_count(&self.slot) == 2 {
            lock(&self.slot.state).latest = None;
        }
    }
}

/// What a commit that waited for its slot does next.
pub(crate) enum Turn<T> {
    /// Write: its own intent, then these queued ones. The guard hands the lead on when dropped.
    Lead(LeaderGuard<T>, Vec<Waiting<T>>),
    /// Another commit wrote this one's changes.
    Done(Result<Option<Landed>, SessionError>),
}

impl<T> SlotRef<T> {
    /// Leads the slot's next write at once when no write is under way (no await: on the
    /// common path the commit's future holds no waiting state); `None` when the slot is
    /// busy, then queue with [`wait_turn`](Self::wait_turn).
    pub(crate) fn lead(&self) -> Option<LeaderGuard<T>> {
        let mut state = lock(&self.slot.state);
        if state.busy {
            return None;
        }
        state.busy = true;
        drop(state);
        Some(self.leader())
    }

    /// A commit that found the slot busy: waits for the outcome of the write that carried
    /// `intent`, or for the lead.
    pub(crate) async fn wait_turn(&self, intent: &Arc<Intent<T>>) -> Turn<T> {
        loop {
            let mut waiting = {
                let mut state = lock(&self.slot.state);
                if state.busy {
                    let (reply, rx) = oneshot::channel();
                    state.queue.push(Waiting {
                        intent: Arc::clone(intent),
                        reply,
                    });
                    Pending {
                        rx,
                        slot: &self.slot,
                    }
                } else {
                    state.busy = true;
                    return Turn::Lead(self.leader(), Vec::new());
                }
            };
            match (&mut waiting.rx).await {
                Ok(Reply::Done(outcome)) => return Turn::Done(outcome),
                Ok(Reply::Lead(others)) => return Turn::Lead(self.leader(), others),
                // The leader carrying this commit was cancelled: queue again.
                Err(_) => continue,
            }
        }
    }

    /// Waits until no other request of this process has the session to itself, then has it
    /// until the guard is dropped.
    pub(crate) async fn exclusive(&self) -> tokio::sync::OwnedMutexGuard<()> {
        Arc::clone(self.slot.exclusive.get_or_init(Arc::default))
            .lock_owned()
            .await
    }

    fn leader(&self) -> LeaderGuard<T> {
        LeaderGuard {
            slot: Arc::clone(&self.slot),
        }
    }

    /// What this process last wrote for the session, if it wrote after `loaded_seq` (the
    /// storage's write sequence number when the request loaded it).
    pub(crate) fn latest_after(&self, loaded_seq: u64) -> Option<Landed> {
        let state = lock(&self.slot.state);
        match &state.latest {
            Some(landed) if landed.seq > loaded_seq => Some(landed.clone()),
            _ => None,
        }
    }
}

/// The lead of a slot's write; dropping it hands the lead to the first queued commit.
pub(crate) struct LeaderGuard<T> {
    slot: Arc<Slot<T>>,
}

impl<T> LeaderGuard<T> {
    /// Whether another request of this session holds the slot now, besides the leader (a
    /// heuristic: a request may join right after).
    pub(crate) fn others_in_flight(&self) -> bool {
        // The map's hold, the leader's own and this guard's.
        Arc::strong_count(&self.slot) > 3
    }

    /// Records what was written (`None`: unknown, or the session is gone).
    pub(crate) fn written(&self, latest: Option<Landed>) {
        lock(&self.slot.state).latest = latest;
    }
}

impl<T> Drop for LeaderGuard<T> {
    fn drop(&mut self) {
        hand_on(&self.slot, Vec::new());
    }
}

/// Passes the lead of `slot`'s writes on: to the first of `carried` (commits handed over with
/// the lead, first in line) and then the queued commits that can still take it, the others
/// going with it; with none left, the slot is free.
fn hand_on<T>(slot: &Slot<T>, carried: Vec<Waiting<T>>) {
    let mut state = lock(&slot.state);
    let mut queue = carried;
    queue.append(&mut state.queue);
    while !queue.is_empty() {
        let next = queue.remove(0);
        match next.reply.send(Reply::Lead(queue)) {
            Ok(()) => return,
            // That request is gone: offer the lead to the next one.
            Err(Reply::Lead(rest)) => queue = rest,
            // Not sent above; were it, the queued commits would see their channel close
            // and queue again.
            Err(Reply::Done(_)) => break,
        }
    }
    state.busy = false;
}

/// A queued commit waiting for its answer. Dropped unanswered (its request was cancelled),
/// it makes sure a lead already sent to it is not lost with it: the lead goes on to the
/// next commit in line, or the slot is freed. (Without this, a request cancelled between
/// being handed the lead and taking it would leave the slot busy with nobody writing, and
/// every later commit of the session waiting forever.)
struct Pending<'a, T> {
    rx: oneshot::Receiver<Reply<T>>,
    slot: &'a Slot<T>,
}

impl<T> Drop for Pending<'_, T> {
    fn drop(&mut self) {
        // No answer can arrive after this; one that arrived before is taken here (after a
        // received answer there is none left).
        self.rx.close();
        if let Ok(Reply::Lead(carried)) = self.rx.try_recv() {
            hand_on(self.slot, carried);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: usize) -> String {
        format!("ns:{:064x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    #[test]
    fn idle_slots_are_reused_then_dropped_when_a_shard_is_full() {
        let slots: Slots<()> = Slots::default();
        let first = slots.enter(&key(1));
        let again = slots.enter(&key(1));
        assert!(
            Arc::ptr_eq(&first.slot, &again.slot),
            "one slot per session"
        );
        assert_eq!(slots.len(), 1);
        drop((first, again));
        assert_eq!(slots.len(), 0, "no request holds it");
        let reused = slots.enter(&key(1));
        drop(reused);
        // Many sessions, one at a time: the idle ones are dropped as shards fill up.
        for i in 0..SHARDS * FIRST_ROOM * 8 {
            drop(slots.enter(&key(i)));
        }
        assert_eq!(slots.len(), 0);
        assert!(slots.kept() <= SHARDS * FIRST_ROOM, "{} kept", slots.kept());
    }

    #[test]
    fn held_slots_are_never_dropped_and_the_room_grows() {
        let slots: Slots<()> = Slots::default();
        let held: Vec<_> = (0..SHARDS * FIRST_ROOM * 4)
            .map(|i| slots.enter(&key(i)))
            .collect();
        assert_eq!(slots.len(), held.len());
        for (i, slot) in held.iter().enumerate() {
            assert!(Arc::ptr_eq(&slots.enter(&key(i)).slot, &slot.slot));
        }
        drop(held);
        assert_eq!(slots.len(), 0);
    }

    #[test]
    fn the_last_hold_lets_the_kept_record_go() {
        let slots: Slots<()> = Slots::default();
        let a = slots.enter(&key(7));
        let b = slots.enter(&key(7));
        lock(&a.slot.state).latest = Some(Landed {
            version: crate::Version::from_u64(1),
            record: Arc::new(crate::record::Record::empty()),
            merged: false,
            seq: 5,
        });
        drop(b);
        assert!(a.latest_after(0).is_some(), "kept while a request holds it");
        drop(a);
        let c = slots.enter(&key(7));
        assert!(c.latest_after(0).is_none(), "an idle slot keeps no record");
    }
}
