//! Moving an app's sessions to a new store while it runs (`SessionStorageBuilder::migrate_from`):
//! visitors keep their sessions, each session moves on its next request and changes only in
//! the new store from then on, and nothing deleted comes back from the old store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use futures::future::join_all;
use serde::{Deserialize, Serialize};
use session_kit_core::{
    Capabilities, Driver, DriverError, Entry, Keyring, PutOptions, SessionError, SessionStorage,
    SessionStorageBuilder, Version, async_trait,
    bytes::Bytes,
    layers::{CountingDriver, Layer, MigrateFromLayer},
};
use session_kit_memory::MemoryDriver;

const SECRET: &str = "test secret that is at least 32 bytes long";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Data {
    visits: u64,
    cart: Vec<String>,
}

fn storage(driver: Arc<dyn Driver>, old: Option<Arc<dyn Driver>>) -> SessionStorage<Data> {
    let mut builder =
        SessionStorage::builder(driver).keyring(Keyring::from_secrets([SECRET]).unwrap());
    if let Some(old) = old {
        builder = builder.migrate_from(old);
    }
    builder.build().unwrap()
}

/// A session committed through `storage`: its `name=value` cookie.
async fn session_in(storage: &SessionStorage<Data>, visits: u64) -> String {
    let s = storage.get_session(None);
    s.update(move |d| d.visits = visits).await.unwrap();
    let set = storage.commit_session(&s).await.unwrap().unwrap();
    set.as_str().split(';').next().unwrap().to_owned()
}

async fn stored_keys(driver: &dyn Driver) -> Vec<String> {
    driver.list("session:", None).await.unwrap().keys
}

#[tokio::test]
async fn a_session_of_the_old_store_moves_on_its_next_request() {
    let old = Arc::new(MemoryDriver::new());
    let cookie = session_in(&storage(old.clone(), None), 3).await;
    let new = Arc::new(CountingDriver::new(MemoryDriver::new()));
    let counted_old = Arc::new(CountingDriver::new(old.clone()));
    let app = storage(new.clone(), Some(counted_old.clone()));

    let s = app.get_session(Some(&cookie));
    assert_eq!(
        s.read(|d| d.visits).await.unwrap(),
        3,
        "the visitor kept it"
    );
    // The move, once (as the operations guide says): a read and a write of the new store
    // beyond the load's own read, a read and a delete of the old one.
    let (moved_new, moved_old) = (new.counts(), counted_old.counts());
    assert_eq!((moved_new.get, moved_new.put, moved_new.delete), (2, 1, 0));
    assert_eq!((moved_old.get, moved_old.put, moved_old.delete), (1, 0, 1));
    s.update(|d| d.visits += 1).await.unwrap();
    app.commit_session(&s).await.unwrap();
    assert!(stored_keys(old.as_ref()).await.is_empty(), "moved out");
    assert_eq!(stored_keys(new.as_ref()).await.len(), 1, "moved in");

    // From now on the session is read from the new store alone.
    let calls = counted_old.counts();
    let s = app.get_session(Some(&cookie));
    assert_eq!(s.read(|d| d.visits).await.unwrap(), 4);
    app.commit_session(&s).await.unwrap();
    assert_eq!(counted_old.counts(), calls, "no call to the old store");

    // An id neither store has (ended, or made elsewhere): the old store is asked too, and the
    // new one again (a concurrent request may have just moved it).
    let unknown = session_in(&storage(Arc::new(MemoryDriver::new()), None), 1).await;
    let (before_new, before_old) = (new.counts(), counted_old.counts());
    assert!(app.get_session(Some(&unknown)).is_new().await.unwrap());
    assert_eq!(new.counts().get - before_new.get, 2);
    assert_eq!(counted_old.counts().get - before_old.get, 1);
}

#[tokio::test]
async fn a_logout_deletes_the_session_from_both_stores_and_it_does_not_come_back() {
    let old = Arc::new(MemoryDriver::new());
    let before = storage(old.clone(), None);
    let (moved, unmoved) = (session_in(&before, 1).await, session_in(&before, 2).await);
    let new = Arc::new(MemoryDriver::new());
    let app = storage(new.clone(), Some(old.clone()));
    // One session moves in, then both log out; the other never moved.
    app.get_session(Some(&moved)).data().await.unwrap();
    for cookie in [&moved, &unmoved] {
        let s = app.get_session(Some(cookie));
        app.destroy_session(&s).await.unwrap();
    }
    assert!(stored_keys(old.as_ref()).await.is_empty());
    assert!(stored_keys(new.as_ref()).await.is_empty());
    for cookie in [&moved, &unmoved] {
        assert!(app.get_session(Some(cookie)).is_new().await.unwrap());
    }
}

#[tokio::test]
async fn a_regenerated_id_leaves_nothing_of_the_old_one_in_either_store() {
    let old = Arc::new(MemoryDriver::new());
    let cookie = session_in(&storage(old.clone(), None), 5).await;
    let new = Arc::new(MemoryDriver::new());
    let app = storage(new.clone(), Some(old.clone()));
    let s = app.get_session(Some(&cookie));
    s.regenerate().await.unwrap();
    app.commit_session(&s).await.unwrap();
    assert!(stored_keys(old.as_ref()).await.is_empty());
    assert_eq!(stored_keys(new.as_ref()).await.len(), 1, "only the new id");
    assert!(app.get_session(Some(&cookie)).is_new().await.unwrap());
}

#[tokio::test]
async fn log_out_everywhere_reaches_sessions_still_in_the_old_store() {
    let old = Arc::new(MemoryDriver::new());
    let before = storage(old.clone(), None);
    let mut cookies = Vec::new();
    for _ in 0..3 {
        let s = before.get_session(None);
        s.bind_user("ada").await.unwrap();
        let set = before.commit_session(&s).await.unwrap().unwrap();
        cookies.push(set.as_str().split(';').next().unwrap().to_owned());
    }
    let new = Arc::new(MemoryDriver::new());
    let app = storage(new.clone(), Some(old.clone()));
    // One of the three has moved.
    app.get_session(Some(&cookies[0])).data().await.unwrap();
    assert_eq!(
        app.user_sessions("ada").await.unwrap().len(),
        3,
        "each listed once"
    );
    assert_eq!(app.revoke_user("ada").await.unwrap(), 3);
    for cookie in &cookies {
        assert!(app.get_session(Some(cookie)).is_new().await.unwrap());
    }
    assert!(app.user_sessions("ada").await.unwrap().is_empty());
}

/// Once every session has moved, the old store can go: a moved session's user-index entry
/// came along, so "log out everywhere" still finds it (sessions without an absolute timeout
/// outlive any migration window).
#[tokio::test]
async fn a_moved_session_of_a_user_is_found_without_the_old_store() {
    let old = Arc::new(MemoryDriver::new());
    let before = SessionStorage::<Data>::builder(old.clone())
        .keyring(Keyring::from_secrets([SECRET]).unwrap())
        .namespace("app:")
        .build()
        .unwrap();
    let s = before.get_session(None);
    s.bind_user("ada").await.unwrap();
    let set = before.commit_session(&s).await.unwrap().unwrap();
    let cookie = set.as_str().split(';').next().unwrap().to_owned();

    let new = Arc::new(MemoryDriver::new());
    let during = SessionStorage::<Data>::builder(new.clone())
        .migrate_from(old.clone())
        .keyring(Keyring::from_secrets([SECRET]).unwrap())
        .namespace("app:")
        .build()
        .unwrap();
    during.get_session(Some(&cookie)).data().await.unwrap();
    assert!(
        old.list("", None).await.unwrap().keys.is_empty(),
        "the session and its index entry left the old store"
    );

    let after = SessionStorage::<Data>::builder(new.clone())
        .keyring(Keyring::from_secrets([SECRET]).unwrap())
        .namespace("app:")
        .build()
        .unwrap();
    assert_eq!(after.user_sessions("ada").await.unwrap().len(), 1);
    assert_eq!(after.revoke_user("ada").await.unwrap(), 1);
    assert!(after.get_session(Some(&cookie)).is_new().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_requests_of_a_session_all_find_it_and_lose_no_change() {
    for _ in 0..20 {
        let old = Arc::new(MemoryDriver::new());
        let cookie = session_in(&storage(old.clone(), None), 100).await;
        let app = storage(Arc::new(MemoryDriver::new()), Some(old.clone()));
        let pushes = (0..16).map(|i| {
            let (app, cookie) = (app.clone(), cookie.clone());
            tokio::spawn(async move {
                let s = app.get_session(Some(&cookie));
                assert!(!s.is_new().await.unwrap(), "request {i} found the session");
                s.update(move |d| {
                    d.visits += 1;
                    d.cart.push(format!("item-{i}"));
                })
                .await
                .unwrap();
                app.commit_session(&s).await.unwrap();
            })
        });
        for push in join_all(pushes).await {
            push.unwrap();
        }
        let data = app.get_session(Some(&cookie)).data().await.unwrap();
        assert_eq!(data.visits, 116);
        assert_eq!(data.cart.len(), 16);
        assert!(stored_keys(old.as_ref()).await.is_empty());
    }
}

/// A memory store whose first read misses: what a request sees when another request (or
/// process) moves the key in right after its read.
struct MissesFirstRead(MemoryDriver, std::sync::atomic::AtomicBool);

#[async_trait]
impl Driver for MissesFirstRead {
    fn name(&self) -> &str {
        "misses-first-read"
    }
    fn capabilities(&self) -> &Capabilities {
        self.0.capabilities()
    }
    async fn get(&self, key: &str) -> Result<Option<Entry>, DriverError> {
        if !self.1.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Ok(None);
        }
        self.0.get(key).await
    }
    async fn put(&self, key: &str, value: Bytes, o: PutOptions) -> Result<Version, DriverError> {
        self.0.put(key, value, o).await
    }
    async fn delete(&self, key: &str) -> Result<(), DriverError> {
        self.0.delete(key).await
    }
}

async fn put(driver: &MemoryDriver, value: &'static [u8]) {
    driver
        .put("k", Bytes::from_static(value), PutOptions::new())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_key_moved_in_by_someone_else_meanwhile_is_read_from_the_new_store_unchanged() {
    // Moved, and its old copy deleted, between our miss and our read of the old store.
    let new = MemoryDriver::new();
    put(&new, b"moved and changed").await;
    let app = MigrateFromLayer::new(Arc::new(MemoryDriver::new()))
        .layer(Arc::new(MissesFirstRead(new, Default::default())));
    let entry = app.get("k").await.unwrap().expect("found in the new store");
    assert_eq!(&entry.value[..], b"moved and changed");

    // Moved and changed, its old copy not deleted yet: the move finds it there and keeps it.
    let (old, new) = (Arc::new(MemoryDriver::new()), MemoryDriver::new());
    put(&old, b"as it was").await;
    put(&new, b"moved and changed").await;
    let app = MigrateFromLayer::new(old.clone())
        .layer(Arc::new(MissesFirstRead(new, Default::default())));
    let entry = app.get("k").await.unwrap().unwrap();
    assert_eq!(&entry.value[..], b"moved and changed", "not overwritten");
    assert!(
        old.get("k").await.unwrap().is_none(),
        "the old copy is gone"
    );
}

#[tokio::test]
async fn new_sessions_go_to_the_new_store_only() {
    let old = Arc::new(MemoryDriver::new());
    let new = Arc::new(MemoryDriver::new());
    let app = storage(new.clone(), Some(old.clone()));
    let cookie = session_in(&app, 7).await;
    assert!(stored_keys(old.as_ref()).await.is_empty());
    assert_eq!(stored_keys(new.as_ref()).await.len(), 1);
    let s = app.get_session(Some(&cookie));
    assert_eq!(s.read(|d| d.visits).await.unwrap(), 7);
}

#[tokio::test]
async fn listings_page_through_both_stores() {
    let (old, new) = (Arc::new(MemoryDriver::new()), Arc::new(MemoryDriver::new()));
    for key in ["k/old-1", "k/old-2", "k/both"] {
        old.put(key, Bytes::from_static(b"o"), PutOptions::new())
            .await
            .unwrap();
    }
    for key in ["k/new-1", "k/both"] {
        new.put(key, Bytes::from_static(b"n"), PutOptions::new())
            .await
            .unwrap();
    }
    let app = MigrateFromLayer::new(old.clone()).layer(new.clone());
    let (mut keys, mut cursor) = (Vec::new(), None);
    loop {
        let page = app.list("k/", cursor.as_deref()).await.unwrap();
        keys.extend(page.keys);
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    keys.sort();
    assert_eq!(keys, ["k/both", "k/new-1", "k/old-1", "k/old-2"]);
    assert!(app.list("k/", Some("elsewhere")).await.is_err());
    assert_eq!(app.clear("k/").await.unwrap(), 5);
    assert!(old.list("", None).await.unwrap().keys.is_empty());
}

/// A memory store declaring no create-only writes, as Cloudflare KV does.
struct LastWriteWins(MemoryDriver, Capabilities);

#[async_trait]
impl Driver for LastWriteWins {
    fn name(&self) -> &str {
        "last-write-wins"
    }
    fn capabilities(&self) -> &Capabilities {
        &self.1
    }
    async fn get(&self, key: &str) -> Result<Option<Entry>, DriverError> {
        self.0.get(key).await
    }
    async fn put(&self, key: &str, value: Bytes, o: PutOptions) -> Result<Version, DriverError> {
        self.0.put(key, value, o).await
    }
    async fn delete(&self, key: &str) -> Result<(), DriverError> {
        self.0.delete(key).await
    }
}

/// The configuration error `builder`, moving sessions from a memory store, fails with.
fn refused(builder: SessionStorageBuilder<Data>) -> String {
    let built = builder
        .keyring(Keyring::from_secrets([SECRET]).unwrap())
        .migrate_from(Arc::new(MemoryDriver::new()))
        .build();
    match built {
        Err(SessionError::Config(message)) => message,
        Err(other) => panic!("not a configuration error: {other}"),
        Ok(_) => panic!("built"),
    }
}

#[test]
fn a_store_without_create_only_writes_is_refused_and_so_are_cookie_only_sessions() {
    let memory = MemoryDriver::new();
    let mut caps = memory.capabilities().clone();
    caps.create_only = false;
    caps.update_only = false;
    caps.compare_and_swap = false;
    let lww = SessionStorage::builder(Arc::new(LastWriteWins(memory, caps)));
    assert!(refused(lww).contains("create-only"));
    assert!(refused(SessionStorage::cookie_only()).contains("migrate_from"));
}
