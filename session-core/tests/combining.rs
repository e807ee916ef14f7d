//! Write combining under cancellation and abandonment: the per-session commit state of a
//! process ends with its last request, and a commit whose request is cancelled mid-write
//! hands its place on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{sync::Arc, time::Duration};

use session_kit_core::bytes::Bytes;
use session_kit_memory::MemoryDriver;
use tokio::sync::Semaphore;

use session_kit_core::{
    Capabilities, Driver, DriverError, DynamicData, Entry, Keyring, ListPage, PutOptions,
    SessionStorage, Version, async_trait,
};

/// Memory, whose writes wait for a permit while `gate` is closed.
struct Gated {
    inner: MemoryDriver,
    gate: Arc<Semaphore>,
}

#[async_trait]
impl Driver for Gated {
    fn name(&self) -> &str {
        "gated"
    }
    fn capabilities(&self) -> &Capabilities {
        self.inner.capabilities()
    }
    async fn get(&self, key: &str) -> Result<Option<Entry>, DriverError> {
        self.inner.get(key).await
    }
    async fn put(&self, key: &str, value: Bytes, o: PutOptions) -> Result<Version, DriverError> {
        self.gate.acquire().await.unwrap().forget();
        self.inner.put(key, value, o).await
    }
    async fn delete(&self, key: &str) -> Result<(), DriverError> {
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<ListPage, DriverError> {
        self.inner.list(prefix, cursor).await
    }
}

fn storage(driver: Arc<dyn Driver>) -> SessionStorage<DynamicData> {
    SessionStorage::builder(driver)
        .keyring(Keyring::from_secrets(["a secret of at least thirty-two bytes"]).unwrap())
        .build()
        .unwrap()
}

async fn counter(storage: &SessionStorage<DynamicData>) -> String {
    let s = storage.get_session(None);
    s.insert("n", 0).await.unwrap();
    let set = storage.commit_session(&s).await.unwrap().unwrap();
    set.as_str().split(';').next().unwrap().to_owned()
}

async fn increment(storage: &SessionStorage<DynamicData>, cookie: &str) {
    let s = storage.get_session(Some(cookie));
    s.update(|d| {
        let n = d.get("n").and_then(|v| v.as_u64()).unwrap_or(0);
        d.insert("n".into(), (n + 1).into());
    })
    .await
    .unwrap();
    storage.commit_session(&s).await.unwrap();
}

/// A storage over a gated memory driver, its gate (closed once the counter session is
/// created) and that session's cookie.
async fn gated() -> (SessionStorage<DynamicData>, Arc<Semaphore>, String) {
    let gate = Arc::new(Semaphore::new(1));
    let storage = storage(Arc::new(Gated {
        inner: MemoryDriver::new(),
        gate: gate.clone(),
    }));
    let cookie = counter(&storage).await;
    (storage, gate, cookie)
}

/// An increment in a task of its own.
fn spawn_increment(
    storage: &SessionStorage<DynamicData>,
    cookie: &str,
) -> tokio::task::JoinHandle<()> {
    let (storage, cookie) = (storage.clone(), cookie.to_owned());
    tokio::spawn(async move { increment(&storage, &cookie).await })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_end_with_the_last_request_of_their_session() {
    let storage = storage(Arc::new(MemoryDriver::new()));
    let cookie = counter(&storage).await;
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (storage, cookie) = (storage.clone(), cookie.clone());
            tokio::spawn(async move {
                if i % 4 == 0 {
                    // Changed, never committed: the slot must still go.
                    let s = storage.get_session(Some(&cookie));
                    s.insert("abandoned", i).await.unwrap();
                } else {
                    increment(&storage, &cookie).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(storage.sessions_in_flight(), 0);
    let s = storage.get_session(Some(&cookie));
    assert_eq!(s.get::<u64>("n").await.unwrap(), Some(12));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cancelled_mid_write_hands_the_lead_on() {
    let (storage, gate, cookie) = gated().await;
    // The leader's write hangs (gate closed); a second commit queues behind it.
    let leader = spawn_increment(&storage, &cookie);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let follower = spawn_increment(&storage, &cookie);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!follower.is_finished());
    // The client of the leader hangs up: its request future is dropped mid-write.
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    gate.add_permits(100);
    tokio::time::timeout(Duration::from_secs(5), follower)
        .await
        .expect("the queued commit took over the lead")
        .unwrap();
    let s = storage.get_session(Some(&cookie));
    assert_eq!(s.get::<u64>("n").await.unwrap(), Some(1));
    drop(s);
    assert_eq!(storage.sessions_in_flight(), 0);
}

/// Memory shared with other storages, whose reads wait while the gate is closed.
struct ReadGated {
    inner: Arc<MemoryDriver>,
    open: tokio::sync::watch::Sender<bool>,
}

#[async_trait]
impl Driver for ReadGated {
    fn name(&self) -> &str {
        "read-gated"
    }
    fn capabilities(&self) -> &Capabilities {
        self.inner.capabilities()
    }
    async fn get(&self, key: &str) -> Result<Option<Entry>, DriverError> {
        let mut open = self.open.subscribe();
        let _ = open.wait_for(|open| *open).await;
        self.inner.get(key).await
    }
    async fn put(&self, key: &str, value: Bytes, o: PutOptions) -> Result<Version, DriverError> {
        self.inner.put(key, value, o).await
    }
    async fn delete(&self, key: &str) -> Result<(), DriverError> {
        self.inner.delete(key).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_and_save_answers_from_the_record_written_after_a_reload() {
    // Process A reads through a gate; process B shares the store directly.
    let memory = Arc::new(MemoryDriver::new());
    let (open, _) = tokio::sync::watch::channel(true);
    let gated = Arc::new(ReadGated {
        inner: memory.clone(),
        open: open.clone(),
    });
    let (a, b) = (storage(gated), storage(memory));
    let cookie = counter(&b).await;
    // In A, two requests change the session; the first commits while the second is still in
    // flight, so A keeps what it wrote as the base of its next write.
    let (p1, p2) = (a.get_session(Some(&cookie)), a.get_session(Some(&cookie)));
    for p in [&p1, &p2] {
        p.update(|d| {
            let n = d.get("n").and_then(|v| v.as_u64()).unwrap_or(0);
            d.insert("n".into(), (n + 1).into());
        })
        .await
        .unwrap();
    }
    // Q starts loading in A before that commit lands, and its read is held.
    open.send_replace(false);
    let q = {
        let (a, cookie) = (a.clone(), cookie.clone());
        tokio::spawn(async move {
            let s = a.get_session(Some(&cookie));
            let answer = s
                .update_and_save(|d| {
                    let n = d.get("n").and_then(|v| v.as_u64()).unwrap_or(0) + 1;
                    d.insert("n".into(), n.into());
                    n
                })
                .await
                .unwrap();
            a.commit_session(&s).await.unwrap();
            answer
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    a.commit_session(&p1).await.unwrap(); // A writes n = 1
    increment(&b, &cookie).await; // B writes n = 2
    // Q now reads B's record (newer than what A wrote) and saves n = 3: its first write goes
    // out on A's older base, meets B's write, and is redone on the record Q had loaded.
    open.send_replace(true);
    let answer = tokio::time::timeout(Duration::from_secs(5), q)
        .await
        .unwrap()
        .unwrap();
    let stored = b.get_session(Some(&cookie)).get::<u64>("n").await.unwrap();
    assert_eq!(
        Some(answer),
        stored,
        "update_and_save answered what was stored"
    );
    assert_eq!(answer, 3);
    a.commit_session(&p2).await.unwrap();
    let stored = b.get_session(Some(&cookie)).get::<u64>("n").await.unwrap();
    assert_eq!(stored, Some(4));
}

/// A queued commit whose request is cancelled right after the lead was handed to it (sent,
/// not yet taken) passes the lead on: the commits behind it, and every later commit of the
/// session, still get written. (Found by the HTTP benchmark: `wrk` hanging up 32 requests of
/// one session at the end of a run left the session's commits waiting forever.)
#[tokio::test(flavor = "current_thread")]
async fn a_commit_cancelled_as_it_is_handed_the_lead_passes_it_on() {
    let (storage, gate, cookie) = gated().await;
    // The leader's write waits at the gate.
    let leader = spawn_increment(&storage, &cookie);
    tokio::time::sleep(Duration::from_millis(20)).await;
    // A second commit queues (polled once, then never again: its request is about to go).
    let mut cancelled = Box::pin(increment(&storage, &cookie));
    assert!(futures::poll!(cancelled.as_mut()).is_pending());
    // A third queues behind it.
    let third = spawn_increment(&storage, &cookie);
    tokio::time::sleep(Duration::from_millis(20)).await;
    // The leader writes and hands the lead to the second commit, which never takes it.
    gate.add_permits(100);
    leader.await.unwrap();
    drop(cancelled);
    tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .expect("the commit behind the cancelled one was written")
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), increment(&storage, &cookie))
        .await
        .expect("a later commit of the session was written");
    let s = storage.get_session(Some(&cookie));
    // The leader's, the third's and the later one; the cancelled request's never was.
    assert_eq!(s.get::<u64>("n").await.unwrap(), Some(3));
    drop(s);
    assert_eq!(storage.sessions_in_flight(), 0);
}
