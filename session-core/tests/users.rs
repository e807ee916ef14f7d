//! Sessions per user: binding on login, listing a user's devices, revoking one, all, or all
//! but the current one, also against a request in flight; and the not-before stamp for
//! cookie-only sessions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use session_kit_core::{
    Clock, Driver, DynamicData, ExpiryPolicy, Keyring, ManualClock, Session, SessionStorage,
    SetCookie,
};
use session_kit_memory::MemoryDriver;

const SECRET: &str = "a secret of at least thirty-two bytes";

fn storage(driver: Arc<dyn Driver>, clock: Arc<ManualClock>) -> SessionStorage<DynamicData> {
    SessionStorage::builder(driver)
        .keyring(Keyring::from_secrets([SECRET]).unwrap())
        .clock(clock)
        .build()
        .unwrap()
}

fn cookie(set_cookie: Option<SetCookie>) -> String {
    set_cookie
        .unwrap()
        .as_str()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// A login from `device`: a new id, the user bound, a label; the cookie.
async fn login(storage: &SessionStorage<DynamicData>, user: &str, device: &str) -> String {
    let session = storage.get_session(None);
    session.regenerate().await.unwrap();
    session.bind_user(user).await.unwrap();
    session.set_user_label("device", device).await.unwrap();
    cookie(storage.commit_session(&session).await.unwrap())
}

async fn index_entries(driver: &Arc<dyn Driver>) -> usize {
    driver.list("user-index:", None).await.unwrap().keys.len()
}

#[tokio::test]
async fn devices_are_listed_and_revoked() {
    let clock = Arc::new(ManualClock::starting_now());
    let driver: Arc<dyn Driver> = Arc::new(MemoryDriver::builder().clock(clock.clone()).build());
    let storage = storage(driver.clone(), clock.clone());

    let laptop = login(&storage, "ada", "laptop").await;
    clock.advance(Duration::from_secs(60));
    let phone = login(&storage, "ada", "phone").await;
    let _other = login(&storage, "grace", "desktop").await;

    let listed = storage.user_sessions("ada").await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].labels["device"], "laptop", "oldest first");
    assert_eq!(listed[1].labels["device"], "phone");
    assert!(listed[0].created_at < listed[1].created_at);
    assert!(
        listed
            .iter()
            .all(|s| s.expires_at.is_some() && s.last_seen.is_some())
    );
    let on_laptop = storage.get_session(Some(&laptop));
    assert_eq!(
        on_laptop.id_hash().await.unwrap().as_deref(),
        Some(listed[0].id_hash.as_str())
    );
    assert_eq!(on_laptop.user().await.unwrap().as_deref(), Some("ada"));
    assert_eq!(storage.user_sessions("grace").await.unwrap().len(), 1);
    assert!(storage.user_sessions("nobody").await.unwrap().is_empty());

    // A change of privilege on the laptop: a new id, the binding and labels kept, the old
    // index entry gone.
    let session = storage.get_session(Some(&laptop));
    session.regenerate().await.unwrap();
    let laptop = cookie(storage.commit_session(&session).await.unwrap());
    let listed = storage.user_sessions("ada").await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].labels["device"], "laptop");
    assert_eq!(index_entries(&driver).await, 3, "ada's two and grace's one");

    // "Log out my other devices" from the laptop.
    let current = storage.get_session(Some(&laptop));
    assert_eq!(
        storage.revoke_user_except("ada", &current).await.unwrap(),
        1
    );
    assert!(storage.get_session(Some(&phone)).is_new().await.unwrap());
    assert!(!storage.get_session(Some(&laptop)).is_new().await.unwrap());

    // One device by its handle, as a "sessions" page would.
    let phone = login(&storage, "ada", "phone").await;
    let handle = storage
        .get_session(Some(&phone))
        .id_hash()
        .await
        .unwrap()
        .unwrap();
    assert!(storage.revoke_session("ada", &handle).await.unwrap());
    assert!(
        !storage.revoke_session("ada", &handle).await.unwrap(),
        "gone already"
    );
    assert!(
        !storage
            .revoke_session("grace", "not-a-session")
            .await
            .unwrap()
    );
    assert!(storage.get_session(Some(&phone)).is_new().await.unwrap());

    // Logout removes the session's entry; "log out everywhere" the rest.
    let tablet = login(&storage, "ada", "tablet").await;
    let session = storage.get_session(Some(&tablet));
    assert!(!session.is_new().await.unwrap());
    storage.destroy_session(&session).await.unwrap();
    assert_eq!(
        index_entries(&driver).await,
        2,
        "the laptop's and grace's: logout took its own"
    );
    assert_eq!(storage.user_sessions("ada").await.unwrap().len(), 1);
    assert_eq!(storage.revoke_user("ada").await.unwrap(), 1);
    assert!(storage.get_session(Some(&laptop)).is_new().await.unwrap());
    assert!(storage.user_sessions("ada").await.unwrap().is_empty());
    assert_eq!(index_entries(&driver).await, 1, "only grace's");
}

#[tokio::test]
async fn a_revoked_session_stays_revoked_for_a_request_in_flight() {
    let clock = Arc::new(ManualClock::starting_now());
    let driver: Arc<dyn Driver> = Arc::new(MemoryDriver::builder().clock(clock.clone()).build());
    let storage = storage(driver.clone(), clock);
    let laptop = login(&storage, "ada", "laptop").await;

    // A request of the laptop has loaded its session and is about to change it...
    let in_flight: Session<DynamicData> = storage.get_session(Some(&laptop));
    in_flight.insert("cart", vec!["book"]).await.unwrap();
    // ... when the user logs out everywhere from another device.
    assert_eq!(storage.revoke_user("ada").await.unwrap(), 1);
    let _ = storage.commit_session(&in_flight).await;

    assert!(
        storage.get_session(Some(&laptop)).is_new().await.unwrap(),
        "not resurrected"
    );
    assert!(storage.user_sessions("ada").await.unwrap().is_empty());
}

#[tokio::test]
async fn ended_sessions_leave_the_listing_and_their_entries_are_cleaned_up() {
    let clock = Arc::new(ManualClock::starting_now());
    let driver: Arc<dyn Driver> = Arc::new(MemoryDriver::builder().clock(clock.clone()).build());
    let storage = SessionStorage::<DynamicData>::builder(driver.clone())
        .keyring(Keyring::from_secrets([SECRET]).unwrap())
        .clock(clock.clone())
        .expiry(
            ExpiryPolicy::new()
                .idle_timeout(Some(Duration::from_secs(600)))
                .absolute_timeout(None),
        )
        .build()
        .unwrap();
    let laptop = login(&storage, "ada", "laptop").await;
    let phone = login(&storage, "ada", "phone").await;

    // The phone's user unbinds it (a "forget this device"), the laptop goes idle.
    let session = storage.get_session(Some(&phone));
    session.unbind_user().await.unwrap();
    storage.commit_session(&session).await.unwrap();
    assert_eq!(storage.user_sessions("ada").await.unwrap().len(), 1);
    assert_eq!(index_entries(&driver).await, 1);

    clock.advance(Duration::from_secs(601));
    assert!(storage.user_sessions("ada").await.unwrap().is_empty());
    assert_eq!(index_entries(&driver).await, 0, "cleaned up on listing");
    assert!(storage.get_session(Some(&laptop)).is_new().await.unwrap());
}

#[tokio::test]
async fn cookie_only_sessions_are_refused_by_the_not_before_stamp() {
    let clock = Arc::new(ManualClock::starting_now());
    let stamps: Arc<Mutex<Option<SystemTime>>> = Arc::default();
    let lookup = stamps.clone();
    let storage = SessionStorage::<DynamicData>::cookie_only()
        .keyring(Keyring::from_secrets([SECRET]).unwrap())
        .clock(clock.clone())
        .user_not_before(move |user| (user == "ada").then(|| *lookup.lock().unwrap()).flatten())
        .build()
        .unwrap();
    let session = storage.get_session(None);
    session.bind_user("ada").await.unwrap();
    let laptop = cookie(storage.commit_session(&session).await.unwrap());
    let err = storage.user_sessions("ada").await.unwrap_err();
    assert!(err.to_string().contains("user_not_before"), "{err}");

    clock.advance(Duration::from_secs(5));
    assert!(!storage.get_session(Some(&laptop)).is_new().await.unwrap());
    // "Log out everywhere": the app stamps the user with now.
    *stamps.lock().unwrap() = Some(clock.now());
    assert!(storage.get_session(Some(&laptop)).is_new().await.unwrap());
    // A login after the stamp works.
    clock.advance(Duration::from_secs(1));
    let session = storage.get_session(None);
    session.bind_user("ada").await.unwrap();
    let again = cookie(storage.commit_session(&session).await.unwrap());
    assert!(!storage.get_session(Some(&again)).is_new().await.unwrap());
}

/// Two storages on one store are two server processes: each remembers the cookies it verified
/// or opened and the records it read; a revocation made in one must still log the user out in
/// the other, on its next request.
#[tokio::test]
async fn a_user_logged_out_everywhere_in_one_process_is_logged_out_in_the_other() {
    let clock = Arc::new(ManualClock::starting_now());
    let driver: Arc<dyn Driver> = Arc::new(MemoryDriver::builder().clock(clock.clone()).build());
    let (a, b) = (
        storage(driver.clone(), clock.clone()),
        storage(driver.clone(), clock.clone()),
    );
    let laptop = login(&a, "ada", "laptop").await;
    // Process B serves the laptop twice: its cookie verified, its record read and kept.
    for _ in 0..2 {
        let s = b.get_session(Some(&laptop));
        assert_eq!(s.user().await.unwrap().as_deref(), Some("ada"));
        assert!(b.commit_session(&s).await.unwrap().is_none());
    }
    assert_eq!(a.revoke_user("ada").await.unwrap(), 1);
    assert!(b.get_session(Some(&laptop)).is_new().await.unwrap());
    assert!(b.user_sessions("ada").await.unwrap().is_empty());
}

/// The same for cookie-only sessions, whose "log out everywhere" is the app's not-before
/// stamp: a process that already opened the cookie (and remembers what it holds) refuses it
/// once the other process stamped the user.
#[tokio::test]
async fn a_not_before_stamp_set_by_one_process_is_honoured_by_the_other() {
    let clock = Arc::new(ManualClock::starting_now());
    // The app's shared user table (a database in production).
    let stamps: Arc<Mutex<Option<SystemTime>>> = Arc::default();
    let process = || {
        let lookup = stamps.clone();
        SessionStorage::<DynamicData>::cookie_only()
            .keyring(Keyring::from_secrets([SECRET]).unwrap())
            .clock(clock.clone())
            .user_not_before(move |user| (user == "ada").then(|| *lookup.lock().unwrap()).flatten())
            .build()
            .unwrap()
    };
    let (a, b) = (process(), process());
    let session = a.get_session(None);
    session.bind_user("ada").await.unwrap();
    let laptop = cookie(a.commit_session(&session).await.unwrap());
    clock.advance(Duration::from_secs(5));
    for _ in 0..2 {
        let s = b.get_session(Some(&laptop));
        assert_eq!(s.user().await.unwrap().as_deref(), Some("ada"));
        assert!(b.commit_session(&s).await.unwrap().is_none());
    }
    // Process A logs the user out everywhere.
    *stamps.lock().unwrap() = Some(clock.now());
    let s = b.get_session(Some(&laptop));
    assert!(s.is_new().await.unwrap());
    let removal = b.commit_session(&s).await.unwrap().unwrap();
    assert!(removal.is_removal(), "the refused cookie is removed");
}
