//! Session-layer behaviour over real drivers, with an injected clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use session_kit_core::layers::{CallCounts, CountingDriver};
use session_kit_core::{
    ConcurrentWrites, CookieOptions, Driver, DynamicData, ExpiryPolicy, Key, Keyring, Lifetime,
    ManualClock, SessionError, SessionStorage, SetCookie,
};
use session_kit_fs::FsDriver;
use session_kit_memory::MemoryDriver;

const MIN: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const SECRET: &str = "test secret that is at least 32 bytes long";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Data {
    count: u64,
    user: Option<String>,
    cart: Vec<String>,
}

struct Harness<T = Data> {
    storage: SessionStorage<T>,
    driver: Arc<CountingDriver<MemoryDriver>>,
    clock: Arc<ManualClock>,
}

fn policy() -> ExpiryPolicy {
    ExpiryPolicy::new()
        .idle_timeout(Some(HOUR))
        .absolute_timeout(Some(24 * HOUR))
}

fn harness_with(policy: ExpiryPolicy, keyring: Keyring) -> Harness {
    let clock = Arc::new(ManualClock::starting_now());
    let driver = Arc::new(CountingDriver::new(
        MemoryDriver::builder().clock(clock.clone()).build(),
    ));
    let storage = SessionStorage::<Data>::builder(driver.clone())
        .keyring(keyring)
        .expiry(policy)
        .clock(clock.clone())
        .build()
        .unwrap();
    Harness {
        storage,
        driver,
        clock,
    }
}

fn harness() -> Harness {
    harness_expiring(policy())
}

/// The `name=value` pair a browser sends back.
fn cookie(set: &SetCookie) -> String {
    set.as_str().split(';').next().unwrap().to_owned()
}

/// A harness with the test secret and `policy`.
fn harness_expiring(policy: ExpiryPolicy) -> Harness {
    harness_with(policy, Keyring::from_secrets([SECRET]).unwrap())
}

fn max_age(set: &SetCookie) -> u64 {
    let attr = set
        .as_str()
        .split("; ")
        .find_map(|a| a.strip_prefix("Max-Age="))
        .expect("Max-Age");
    attr.parse().unwrap()
}

impl Harness {
    /// A committed session with count = 1; resets the call counts.
    async fn logged_visit(&self) -> String {
        let s = self.storage.get_session(None);
        s.update(|d| d.count = 1).await.unwrap();
        let c = cookie(&self.storage.commit_session(&s).await.unwrap().unwrap());
        self.driver.take_counts();
        c
    }

    fn counts(&self) -> CallCounts {
        self.driver.take_counts()
    }
}

// ---- Cost contract ----

#[tokio::test]
async fn untouched_session_costs_nothing_and_sends_no_cookie() {
    let h = harness();
    let c = h.logged_visit().await;
    for header in [Some(c.as_str()), None, Some("session=garbage")] {
        let s = h.storage.get_session(header);
        assert_eq!(h.storage.commit_session(&s).await.unwrap(), None);
    }
    assert_eq!(h.counts().total(), 0);
}

#[tokio::test]
async fn commit_response_now_answers_only_when_no_store_call_is_needed() {
    let h = harness();
    let c = h.logged_visit().await;
    // Untouched, with or without a cookie: answered now, with no headers and no store call.
    for header in [Some(c.as_str()), None] {
        let s = h.storage.get_session(header);
        let now = h.storage.commit_response_now(&s).expect("answered now");
        assert!(now.unwrap().is_empty());
    }
    // A change needs the store: not answered now (nothing written), then committed.
    let s = h.storage.get_session(Some(&c));
    s.update(|d| d.count += 1).await.unwrap();
    assert!(h.storage.commit_response_now(&s).is_none());
    assert_eq!(h.counts().put, 0, "declining wrote nothing");
    h.storage.commit_response(&s).await.unwrap();
    assert_eq!(h.counts().put, 1);
    // Only read: answered now, no cookie, and no store call beyond the load.
    let s = h.storage.get_session(Some(&c));
    assert_eq!(s.read(|d| d.count).await.unwrap(), 2);
    h.counts();
    let now = h.storage.commit_response_now(&s).expect("answered now");
    assert!(now.unwrap().is_empty());
    assert_eq!(h.counts().total(), 0);
    // Only read, but the idle deadline is due for a refresh (a quarter of the idle timeout
    // passed): that needs the store, so it is not answered now; the awaited commit touches.
    h.clock.advance(HOUR / 2);
    let s = h.storage.get_session(Some(&c));
    assert_eq!(s.read(|d| d.count).await.unwrap(), 2);
    h.counts();
    assert!(h.storage.commit_response_now(&s).is_none());
    assert_eq!(h.counts().total(), 0, "declining called nothing");
    let refreshed = h.storage.commit_response(&s).await.unwrap();
    assert!(!refreshed.is_empty(), "the refreshed cookie");
    assert_eq!(h.counts().touch, 1);
    // Destroyed: the record must be deleted, so not answered now.
    let s = h.storage.get_session(Some(&c));
    s.destroy().await;
    assert!(h.storage.commit_response_now(&s).is_none());
    assert_eq!(h.counts().delete, 0, "declining deleted nothing");
}

/// A cookie signed with a retired key, on a session the request only read: re-signed with the
/// current key without awaiting (no store call), as the awaited commit would.
#[tokio::test]
async fn a_read_only_commit_re_signs_a_retired_key_s_cookie_now() {
    let old = Key::from_bytes("the old secret, at least 32 bytes long").unwrap();
    let new = Key::from_bytes("the new secret, at least 32 bytes long").unwrap();
    let h = harness_with(policy(), Keyring::new(old.clone()));
    let c_old = h.logged_visit().await;
    let rotated = SessionStorage::<Data>::builder(h.driver.clone())
        .keyring(Keyring::new(new).with_previous(old))
        .expiry(policy())
        .clock(h.clock.clone())
        .build()
        .unwrap();
    let s = rotated.get_session(Some(&c_old));
    assert_eq!(s.read(|d| d.count).await.unwrap(), 1);
    h.counts();
    let headers = rotated
        .commit_response_now(&s)
        .expect("answered now")
        .unwrap();
    assert_eq!(h.counts().total(), 0);
    let c_new = cookie(headers.set_cookie().expect("re-signed with the new key"));
    assert_ne!(c_new, c_old);
    let s = rotated.get_session(Some(&c_new));
    assert_eq!(s.read(|d| d.count).await.unwrap(), 1, "the same session");
}

/// Counts the storage's clock reads.
#[derive(Debug, Default)]
struct CountingClock(std::sync::atomic::AtomicU64);

impl session_kit_core::Clock for CountingClock {
    fn now(&self) -> std::time::SystemTime {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        std::time::SystemTime::now()
    }
}

/// A request that changes its session reads the storage's clock twice: when it loads the
/// record (is it still live?) and when it commits; the write takes the commit's time rather
/// than reading the clock again (a clock read was ~1 % of a `/count` on the memory driver).
#[tokio::test]
async fn a_changing_request_reads_the_clock_once_to_load_and_once_to_commit() {
    let clock = Arc::new(CountingClock::default());
    let storage = SessionStorage::<Data>::builder(Arc::new(MemoryDriver::new()))
        .keyring(Keyring::from_secrets([SECRET]).unwrap())
        .expiry(policy())
        .clock(clock.clone())
        .build()
        .unwrap();
    let s = storage.get_session(None);
    s.update(|d| d.count = 1).await.unwrap();
    let c = cookie(&storage.commit_session(&s).await.unwrap().unwrap());
    let reads = || clock.0.swap(0, std::sync::atomic::Ordering::Relaxed);
    reads();
    let s = storage.get_session(Some(&c));
    s.update(|d| d.count += 1).await.unwrap();
    assert_eq!(reads(), 1, "the load");
    storage.commit_session(&s).await.unwrap();
    assert_eq!(reads(), 1, "the commit and its write");
}

/// The CHANGELOG's promise of a handler's session futures: the exclusive-writes hold (over 600
/// bytes of state) is boxed when taken, so `read` and `update` do not carry it on every request.
#[tokio::test]
async fn a_handler_s_read_and_update_futures_do_not_carry_the_exclusive_hold() {
    let h = harness();
    let s = h.storage.get_session(None);
    let read = s.read(|d| d.count);
    let update = s.update(|d| d.count += 1);
    let (read_size, update_size) = (size_of_val(&read), size_of_val(&update));
    println!("read {read_size} bytes, update {update_size} bytes");
    assert!(
        read_size < 600 && update_size < 600,
        "{read_size}, {update_size}"
    );
    assert_eq!(read.await.unwrap(), 0);
    update.await.unwrap();
}

#[tokio::test]
async fn read_only_request_is_one_get_and_no_write() {
    let h = harness();
    let c = h.logged_visit().await;
    let s = h.storage.get_session(Some(&c));
    assert_eq!(s.read(|d| d.count).await.unwrap(), 1);
    assert_eq!(s.data().await.unwrap().count, 1);
    assert_eq!(h.storage.commit_session(&s).await.unwrap(), None);
    assert_eq!(
        h.counts(),
        CallCounts {
            get: 1,
            ..Default::default()
        }
    );
}

#[tokio::test]
async fn changed_request_is_one_get_and_one_put() {
    let h = harness();
    let c = h.logged_visit().await;
    let s = h.storage.get_session(Some(&c));
    s.update(|d| d.count += 1).await.unwrap();
    assert_eq!(
        h.storage.commit_session(&s).await.unwrap(),
        None,
        "the browser's cookie names the same id and expires with the session: not sent again"
    );
    assert_eq!(
        h.counts(),
        CallCounts {
            get: 1,
            put: 1,
            ..Default::default()
        }
    );
}

#[tokio::test]
async fn new_visitor_costs_one_put_when_changed_and_nothing_otherwise() {
    let h = harness();
    let s = h.storage.get_session(None);
    assert_eq!(s.read(|d| d.count).await.unwrap(), 0);
    assert!(s.is_new().await.unwrap());
    assert_eq!(h.storage.commit_session(&s).await.unwrap(), None);
    assert_eq!(h.counts().total(), 0, "a read-only new visitor is free");

    let s = h.storage.get_session(None);
    s.update(|d| d.count = 5).await.unwrap();
    assert!(h.storage.commit_session(&s).await.unwrap().is_some());
    assert_eq!(
        h.counts(),
        CallCounts {
            put: 1,
            ..Default::default()
        }
    );
}

#[tokio::test]
async fn an_update_that_changes_nothing_writes_nothing() {
    let h = harness();
    let c = h.logged_visit().await;
    let s = h.storage.get_session(Some(&c));
    s.update(|d| d.count = 1).await.unwrap();
    assert!(!s.has_changed().await.unwrap());
    assert_eq!(h.storage.commit_session(&s).await.unwrap(), None);
    assert_eq!(h.counts().writes(), 0);
}

// ---- Expiry ----

#[tokio::test]
async fn sliding_expiry_touches_only_after_the_throttle_window() {
    let h = harness_expiring(policy().refresh_fraction(0.25));
    let c = h.logged_visit().await;

    h.clock.advance(10 * MIN); // within a quarter of the idle hour
    let s = h.storage.get_session(Some(&c));
    s.read(|_| ()).await.unwrap();
    assert_eq!(
        h.storage.commit_session(&s).await.unwrap(),
        None,
        "no cookie within the window"
    );
    assert_eq!(
        h.counts(),
        CallCounts {
            get: 1,
            ..Default::default()
        },
        "no write within the window"
    );

    h.clock.advance(6 * MIN); // 16 minutes since the last refresh
    let s = h.storage.get_session(Some(&c));
    s.read(|_| ()).await.unwrap();
    let set = h
        .storage
        .commit_session(&s)
        .await
        .unwrap()
        .expect("refresh re-sends Max-Age");
    assert_eq!(max_age(&set), 3600);
    assert_eq!(
        h.counts(),
        CallCounts {
            get: 1,
            touch: 1,
            ..Default::default()
        },
        "a touch, not a put"
    );

    h.clock.advance(MIN);
    let s = h.storage.get_session(Some(&c));
    s.read(|_| ()).await.unwrap();
    assert_eq!(h.storage.commit_session(&s).await.unwrap(), None);
    assert_eq!(h.counts().writes(), 0);
}

#[tokio::test]
async fn writes_extend_the_idle_deadline_as_reads_do_and_resend_the_cookie_only_then() {
    let h = harness_expiring(policy().refresh_fraction(0.25));
    let c = h.logged_visit().await;
    let write = |minutes: u32| {
        let (h, c) = (&h, c.clone());
        async move {
            h.clock.advance(minutes * MIN);
            let s = h.storage.get_session(Some(&c));
            s.update(|d| d.count += 1).await.unwrap();
            let set = h.storage.commit_session(&s).await.unwrap();
            assert_eq!(h.counts().put, 1, "every change is written");
            set
        }
    };

    // Within a quarter of the idle hour: written, deadline kept, no cookie.
    assert_eq!(write(10).await, None);
    assert_eq!(write(4).await, None);
    // 16 minutes since the last extension: the deadline moves and the cookie says so.
    let set = write(2).await.expect("a due refresh re-sends Max-Age");
    assert_eq!(cookie(&set), c, "same id");
    assert_eq!(max_age(&set), 3600);

    // The kept deadline is enforced: writes within the window do not extend it, so the
    // session ends an hour after the last extension, as the browser's cookie does.
    assert_eq!(write(10).await, None);
    h.clock.advance(50 * MIN + Duration::from_secs(1));
    let s = h.storage.get_session(Some(&c));
    assert!(
        s.is_new().await.unwrap(),
        "expired with the browser's cookie"
    );

    // `refresh_fraction(0.0)` extends, and re-sends the cookie, on every write.
    let h = harness_expiring(policy().refresh_fraction(0.0));
    let c = h.logged_visit().await;
    h.clock.advance(MIN);
    let s = h.storage.get_session(Some(&c));
    s.update(|d| d.count += 1).await.unwrap();
    let set = h
        .storage
        .commit_session(&s)
        .await
        .unwrap()
        .expect("a cookie");
    assert_eq!(max_age(&set), 3600);
}

#[tokio::test]
async fn active_sessions_slide_and_idle_ones_expire() {
    let h = harness();
    let c = h.logged_visit().await;
    for _ in 0..6 {
        h.clock.advance(50 * MIN);
        let s = h.storage.get_session(Some(&c));
        assert_eq!(s.read(|d| d.count).await.unwrap(), 1, "still alive");
        h.storage.commit_session(&s).await.unwrap();
    }
    h.clock.advance(61 * MIN);
    let s = h.storage.get_session(Some(&c));
    assert!(s.is_new().await.unwrap(), "idle past the timeout");
    assert_ne!(
        s.id().await.unwrap().expose(),
        c.split_once('=').unwrap().1.split('.').next().unwrap()
    );
    // The stale cookie is left alone: a verified id without a record may be one a concurrent
    // login just regenerated, and a removal would delete the browser's new cookie.
    assert_eq!(h.storage.commit_session(&s).await.unwrap(), None);
}

#[tokio::test]
async fn absolute_timeout_ends_even_an_active_session() {
    let h = harness_expiring(
        ExpiryPolicy::new()
            .idle_timeout(Some(HOUR))
            .absolute_timeout(Some(3 * HOUR)),
    );
    let c = h.logged_visit().await;
    let mut alive = 0;
    for _ in 0..8 {
        h.clock.advance(30 * MIN);
        let s = h.storage.get_session(Some(&c));
        if s.is_new().await.unwrap() {
            break;
        }
        alive += 1;
        s.update(|d| d.count += 1).await.unwrap();
        // Each write is due for a refresh (half the idle hour has passed), so the cookie is
        // sent again until the idle deadline reaches the absolute one; from then on the
        // browser's cookie already expires when the session does.
        let set = h.storage.commit_session(&s).await.unwrap();
        let now: u64 = alive * 30 * 60;
        assert_eq!(set.is_some(), now + 3600 <= 3 * 3600, "at {now} s");
        if let Some(set) = set {
            assert!(
                max_age(&set) <= 3 * 3600 - now,
                "Max-Age never exceeds the absolute deadline"
            );
        }
    }
    assert_eq!(alive, 5, "alive at 0.5 h .. 2.5 h, gone at 3 h");
}

#[tokio::test]
async fn remember_me_lifetime_is_kept_in_the_record() {
    let h = harness();
    let s = h.storage.get_session(None);
    s.update(|d| d.user = Some("ada".into())).await.unwrap();
    s.set_lifetime(Lifetime::new(Some(30 * 24 * HOUR), Some(90 * 24 * HOUR)))
        .await
        .unwrap();
    let set = h.storage.commit_session(&s).await.unwrap().unwrap();
    assert_eq!(max_age(&set), 30 * 24 * 3600);
    let c = cookie(&set);
    h.clock.advance(48 * HOUR); // past the default idle (1 h) and absolute (24 h) timeouts
    let s = h.storage.get_session(Some(&c));
    assert_eq!(
        s.read(|d| d.user.clone()).await.unwrap().as_deref(),
        Some("ada")
    );
}

#[tokio::test]
async fn renew_restarts_the_absolute_timeout() {
    let h = harness_expiring(
        ExpiryPolicy::new()
            .idle_timeout(Some(HOUR))
            .absolute_timeout(Some(2 * HOUR)),
    );
    let c = h.logged_visit().await;
    h.clock.advance(50 * MIN);
    let s = h.storage.get_session(Some(&c));
    s.renew().await.unwrap();
    assert!(s.has_changed().await.unwrap());
    h.storage.commit_session(&s).await.unwrap().unwrap();
    h.clock.advance(50 * MIN);
    let s = h.storage.get_session(Some(&c));
    s.read(|_| ()).await.unwrap();
    h.storage.commit_session(&s).await.unwrap();
    h.clock.advance(50 * MIN); // 150 min after creation: past the first absolute deadline
    assert!(
        !h.storage.get_session(Some(&c)).is_new().await.unwrap(),
        "renew moved it"
    );
    h.clock.advance(60 * MIN); // 160 min after renew
    assert!(h.storage.get_session(Some(&c)).is_new().await.unwrap());
}

#[tokio::test]
async fn sessions_without_timeouts_get_browser_session_cookies() {
    let h = harness_expiring(
        ExpiryPolicy::new()
            .idle_timeout(None)
            .absolute_timeout(None),
    );
    let s = h.storage.get_session(None);
    s.update(|d| d.count = 1).await.unwrap();
    let set = h.storage.commit_session(&s).await.unwrap().unwrap();
    assert!(!set.as_str().contains("Max-Age"), "{set}");
}

// ---- Cookies and keys ----

#[tokio::test]
async fn every_bad_cookie_gives_a_fresh_session_without_a_store_read() {
    let h = harness();
    let good = h.logged_visit().await;
    let value = good.split_once('=').unwrap().1.to_owned();
    let (id, tag) = value.split_once('.').unwrap();
    let mut tampered_id = id.as_bytes().to_vec();
    tampered_id[5] = if tampered_id[5] == b'A' { b'B' } else { b'A' };
    let tampered_id = String::from_utf8(tampered_id).unwrap();
    let other_key = {
        let other = harness_with(
            policy(),
            Keyring::from_secrets(["a different secret, also 32+ bytes"]).unwrap(),
        );
        other.logged_visit().await
    };
    let bad = [
        format!("session={tampered_id}.{tag}"),
        format!("session={id}.{}", &tag[..tag.len() - 3]),
        format!("session={value}x"),
        format!("session={}", "A".repeat(5000)),
        other_key,
        "session=garbage".into(),
        "session=".into(),
        "session=.".into(),
        "session=💥".into(),
        "session=%00%ff".into(),
        format!("session={id}"),
        "=;;;session;==".into(),
    ];
    for header in &bad {
        let s = h.storage.get_session(Some(header));
        assert!(s.is_new().await.unwrap(), "{header}");
        assert_eq!(s.read(|d| d.count).await.unwrap(), 0, "{header}");
        let new_id = s.id().await.unwrap();
        assert_ne!(new_id.expose(), id, "never adopt the client's id");
    }
    assert_eq!(
        h.counts().get,
        0,
        "forged cookies are rejected before any store read"
    );
}

#[tokio::test]
async fn a_correctly_signed_unknown_id_is_replaced() {
    let h = harness();
    let c = h.logged_visit().await;
    let s = h.storage.get_session(Some(&c));
    h.storage.destroy_session(&s).await.unwrap();
    let s = h.storage.get_session(Some(&c));
    assert!(s.is_new().await.unwrap());
    s.update(|d| d.count = 9).await.unwrap();
    let set = h.storage.commit_session(&s).await.unwrap().unwrap();
    assert_ne!(cookie(&set), c, "a new id, never the client's");
}

#[tokio::test]
async fn one_valid_cookie_among_several_is_found() {
    let h = harness();
    let c = h.logged_visit().await;
    let header = format!("session=junk; other=1; {c}");
    let s = h.storage.get_session(Some(&header));
    assert_eq!(s.read(|d| d.count).await.unwrap(), 1);

    let mut headers = http::HeaderMap::new();
    headers.append(http::header::COOKIE, "session=junk".parse().unwrap());
    headers.append(http::header::COOKIE, c.parse().unwrap());
    let s = h.storage.get_session_from_headers(&headers);
    assert_eq!(s.read(|d| d.count).await.unwrap(), 1);
}

#[tokio::test]
async fn key_rotation_keeps_old_cookies_and_reissues_them_with_the_new_key() {
    let old = Key::from_bytes("the old secret, at least 32 bytes long").unwrap();
    let new = Key::from_bytes("the new secret, at least 32 bytes long").unwrap();
    let h = harness_with(policy(), Keyring::new(old.clone()));
    let c_old = h.logged_visit().await;

    let rotated = SessionStorage::<Data>::builder(h.driver.clone())
        .keyring(Keyring::new(new.clone()).with_previous(old.clone()))
        .expiry(policy())
        .clock(h.clock.clone())
        .build()
        .unwrap();
    let s = rotated.get_session(Some(&c_old));
    assert_eq!(
        s.read(|d| d.count).await.unwrap(),
        1,
        "an old-key cookie still loads"
    );
    let set = rotated
        .commit_session(&s)
        .await
        .unwrap()
        .expect("re-signed with the new key");
    let c_new = cookie(&set);
    assert_ne!(c_new, c_old);
    assert_eq!(
        c_new.split('.').next(),
        c_old.split('.').next(),
        "same id, new signature"
    );
    assert_eq!(h.counts().writes(), 0, "re-signing writes nothing");
    // A change within the refresh window keeps the idle deadline, but an old-key cookie is
    // still re-issued with the new key.
    let s = rotated.get_session(Some(&c_old));
    s.update(|d| d.count += 1).await.unwrap();
    let set = rotated
        .commit_session(&s)
        .await
        .unwrap()
        .expect("a change re-signs an old-key cookie");
    assert_eq!(cookie(&set), c_new);
    assert_eq!(h.counts().put, 1);

    let new_only = SessionStorage::<Data>::builder(h.driver.clone())
        .keyring(Keyring::new(new))
        .clock(h.clock.clone())
        .build()
        .unwrap();
    assert_eq!(
        new_only
            .get_session(Some(&c_new))
            .read(|d| d.count)
            .await
            .unwrap(),
        2
    );
    assert!(
        new_only.get_session(Some(&c_old)).is_new().await.unwrap(),
        "old key retired"
    );
    assert!(
        h.storage.get_session(Some(&c_new)).is_new().await.unwrap(),
        "old-only ring rejects new cookies"
    );
}

#[tokio::test]
async fn committed_cookies_have_safe_defaults() {
    let h = harness();
    let s = h.storage.get_session(None);
    s.update(|d| d.count = 1).await.unwrap();
    let set = h.storage.commit_session(&s).await.unwrap().unwrap();
    for attr in [
        "HttpOnly",
        "Secure",
        "SameSite=Lax",
        "Path=/",
        "Max-Age=3600",
    ] {
        assert!(set.as_str().contains(attr), "{set} lacks {attr}");
    }
    assert!(set.to_header_value().is_ok());
    assert!(
        !format!("{set:?}").contains(&cookie(&set)),
        "Debug hides the cookie value"
    );
}

#[test]
fn weak_or_missing_secrets_are_refused() {
    assert!(matches!(
        Key::from_bytes("short"),
        Err(SessionError::Config(_))
    ));
    assert!(Keyring::from_secrets(Vec::<String>::new()).is_err());
    let err = SessionStorage::<Data>::builder(Arc::new(MemoryDriver::new()))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("keyring is required"), "{err}");
    let key = Key::generate().unwrap();
    assert!(!format!("{key:?}").contains(&key.expose_base64()));
    assert_eq!(
        Key::from_base64(&key.expose_base64())
            .unwrap()
            .expose_base64(),
        key.expose_base64()
    );
}

#[test]
fn invalid_configurations_are_refused() {
    let ring = || Keyring::from_secrets([SECRET]).unwrap();
    let memory = || Arc::new(MemoryDriver::new()) as Arc<dyn Driver>;
    assert!(
        SessionStorage::<u32>::builder(memory())
            .keyring(ring())
            .build()
            .is_err(),
        "not a map"
    );
    assert!(
        SessionStorage::<Data>::builder(memory())
            .keyring(ring())
            .cookie(CookieOptions::new().name("bad name"))
            .build()
            .is_err()
    );
    assert!(
        SessionStorage::<Data>::builder(memory())
            .keyring(ring())
            .namespace("x".repeat(5000))
            .build()
            .is_err(),
        "keys longer than the driver accepts"
    );
}

// ---- Session semantics ----

#[tokio::test]
async fn flash_is_read_once_and_reflash_keeps_it_one_more_request() {
    let h = harness();
    let s = h.storage.get_session(None);
    s.flash("error", "Invalid email/password").await.unwrap();
    let c = cookie(&h.storage.commit_session(&s).await.unwrap().unwrap());

    let read = |c: String| {
        let storage = h.storage.clone();
        async move {
            let s = storage.get_session(Some(&c));
            let v: Option<String> = s.take_flash("error").await.unwrap();
            (s, v)
        }
    };
    let (s, v) = read(c.clone()).await;
    assert_eq!(v.as_deref(), Some("Invalid email/password"));
    s.reflash().await.unwrap();
    h.storage.commit_session(&s).await.unwrap();

    let (s, v) = read(c.clone()).await;
    assert!(v.is_some(), "reflash kept it");
    h.storage.commit_session(&s).await.unwrap();

    let (_, v) = read(c).await;
    assert!(v.is_none(), "consumed");
}

#[tokio::test]
async fn peeking_at_a_flash_leaves_it_for_the_next_request() {
    let h = harness();
    let s = h.storage.get_session(None);
    s.flash("notice", "saved").await.unwrap();
    let c = cookie(&h.storage.commit_session(&s).await.unwrap().unwrap());

    let s = h.storage.get_session(Some(&c));
    let peeked: Option<String> = s.peek_flash("notice").await.unwrap();
    assert_eq!(peeked.as_deref(), Some("saved"));
    assert!(!s.has_changed().await.unwrap(), "a peek changes nothing");
    assert!(h.storage.commit_session(&s).await.unwrap().is_none());

    let s = h.storage.get_session(Some(&c));
    assert_eq!(
        s.take_flash::<String>("notice").await.unwrap().as_deref(),
        Some("saved")
    );
    assert_eq!(
        s.peek_flash::<String>("notice").await.unwrap(),
        None,
        "taken by this request"
    );
}

#[tokio::test]
async fn regenerate_moves_the_data_and_deletes_the_old_record() {
    let h = harness();
    let c = h.logged_visit().await;
    let s = h.storage.get_session(Some(&c));
    let old_id = s.id().await.unwrap();
    s.regenerate().await.unwrap();
    s.update(|d| d.user = Some("ada".into())).await.unwrap();
    let c2 = cookie(&h.storage.commit_session(&s).await.unwrap().unwrap());
    assert_ne!(c, c2);
    assert!(
        h.driver
            .get(&old_id.storage_key("session:"))
            .await
            .unwrap()
            .is_none(),
        "old record deleted"
    );
    let s = h.storage.get_session(Some(&c2));
    assert_eq!(
        s.data().await.unwrap(),
        Data {
            count: 1,
            user: Some("ada".into()),
            cart: vec![]
        }
    );
    assert!(h.storage.get_session(Some(&c)).is_new().await.unwrap());
}

/// A login in one tab (a regenerated id) while other requests of the same browser are in
/// flight with the old cookie: their responses must not delete the new cookie the browser
/// got from the login, whichever arrives last.
#[tokio::test]
async fn requests_racing_a_login_do_not_remove_the_new_cookie() {
    let h = harness();
    let c = h.logged_visit().await;
    // A request that loaded the session before the login, and changes it after.
    let before = h.storage.get_session(Some(&c));
    before.read(|d| d.count).await.unwrap();
    let login = h.storage.get_session(Some(&c));
    login.regenerate().await.unwrap();
    h.storage.commit_session(&login).await.unwrap().unwrap();
    before.update(|d| d.count += 1).await.unwrap();
    assert_eq!(
        h.storage.commit_session(&before).await.unwrap(),
        None,
        "its change is dropped, as after a logout, with no removal"
    );
    // A read sent with the old cookie, arriving after the login.
    let after = h.storage.get_session(Some(&c));
    assert!(after.is_new().await.unwrap(), "the old id gives nothing");
    assert_eq!(h.storage.commit_session(&after).await.unwrap(), None);
}

#[tokio::test]
async fn destroy_without_loading_deletes_and_later_changes_start_a_new_session() {
    let h = harness();
    let c = h.logged_visit().await;
    let s = h.storage.get_session(Some(&c));
    s.destroy().await;
    assert_eq!(h.counts().get, 0, "destroy reads nothing");
    assert!(s.has_changed().await.unwrap());
    s.flash("notice", "logged out").await.unwrap();
    let set = h.storage.commit_session(&s).await.unwrap().unwrap();
    assert!(!set.is_removal(), "the new session's cookie");
    assert_ne!(cookie(&set), c);
    assert!(h.storage.get_session(Some(&c)).is_new().await.unwrap());
    let s = h.storage.get_session(Some(&cookie(&set)));
    assert_eq!(
        s.take_flash::<String>("notice").await.unwrap().as_deref(),
        Some("logged out")
    );
    assert_eq!(s.read(|d| d.count).await.unwrap(), 0);
}

#[tokio::test]
async fn destroy_session_clears_the_cookie() {
    let h = harness();
    let c = h.logged_visit().await;
    let s = h.storage.get_session(Some(&c));
    let set = h.storage.destroy_session(&s).await.unwrap();
    assert!(
        set.is_removal() && set.as_str().starts_with("session=;"),
        "{set}"
    );
    assert_eq!(
        h.counts(),
        CallCounts {
            delete: 1,
            ..Default::default()
        }
    );
}

#[tokio::test]
async fn defaults_fill_new_sessions_and_missing_fields() {
    let clock = Arc::new(ManualClock::starting_now());
    let driver: Arc<dyn Driver> = Arc::new(MemoryDriver::builder().clock(clock.clone()).build());
    let ring = Keyring::from_secrets([SECRET]).unwrap();
    let dynamic = SessionStorage::<DynamicData>::builder(driver.clone())
        .keyring(ring.clone())
        .clock(clock.clone())
        .build()
        .unwrap();
    let s = dynamic.get_session(None);
    s.insert("user", "ada").await.unwrap();
    let c = cookie(&dynamic.commit_session(&s).await.unwrap().unwrap());

    let defaults = Data {
        count: 10,
        user: None,
        cart: vec!["starter".into()],
    };
    let typed = SessionStorage::builder_with_defaults(driver.clone(), defaults.clone())
        .keyring(ring.clone())
        .clock(clock.clone())
        .build()
        .unwrap();
    assert_eq!(typed.get_session(None).data().await.unwrap(), defaults);
    let loaded = typed.get_session(Some(&c)).data().await.unwrap();
    assert_eq!(
        loaded,
        Data {
            user: Some("ada".into()),
            ..defaults
        }
    );

    // Changes are measured against the defaults overlaid with the stored record: setting a
    // field to its default changes nothing; other values are written and read back.
    let s = typed.get_session(Some(&c));
    s.update(|d| d.count = 10).await.unwrap();
    assert!(!s.has_changed().await.unwrap());
    s.update(|d| d.count = 11).await.unwrap();
    assert!(s.has_changed().await.unwrap());
    typed.commit_session(&s).await.unwrap();
    let loaded = typed.get_session(Some(&c)).data().await.unwrap();
    assert_eq!((loaded.count, loaded.user.as_deref()), (11, Some("ada")));
    // A dynamic session with defaults: removing a key that is both stored and a default
    // removes it once; a default key removed is gone after the commit.
    let mut map = DynamicData::new();
    map.insert("user".into(), "nobody".into());
    map.insert("theme".into(), "dark".into());
    let with_defaults = SessionStorage::builder_with_defaults(driver.clone(), map)
        .keyring(ring.clone())
        .clock(clock.clone())
        .build()
        .unwrap();
    let s = with_defaults.get_session(Some(&c));
    assert_eq!(
        s.get::<String>("theme").await.unwrap().as_deref(),
        Some("dark")
    );
    assert_eq!(
        s.get::<String>("user").await.unwrap().as_deref(),
        Some("ada")
    );
    s.remove("user").await.unwrap();
    s.remove("theme").await.unwrap();
    assert!(s.has_changed().await.unwrap());
    with_defaults.commit_session(&s).await.unwrap();
    let s = dynamic.get_session(Some(&c));
    assert_eq!(s.get::<String>("user").await.unwrap(), None);

    // A stored value of the wrong type starts a new session rather than failing every request.
    let s = dynamic.get_session(Some(&c));
    s.insert("count", "not a number").await.unwrap();
    dynamic.commit_session(&s).await.unwrap();
    let s = typed.get_session(Some(&c));
    assert!(s.is_new().await.unwrap());
}

#[tokio::test]
async fn dynamic_sessions_get_insert_and_remove_by_key() {
    let storage = SessionStorage::<DynamicData>::builder(Arc::new(MemoryDriver::new()))
        .keyring(Keyring::from_secrets([SECRET]).unwrap())
        .build()
        .unwrap();
    let s = storage.get_session(None);
    s.insert("cart", vec!["apple", "pear"]).await.unwrap();
    s.insert("user", "ada").await.unwrap();
    let c = cookie(&storage.commit_session(&s).await.unwrap().unwrap());
    let s = storage.get_session(Some(&c));
    assert_eq!(
        s.get::<Vec<String>>("cart").await.unwrap().unwrap(),
        ["apple", "pear"]
    );
    assert!(matches!(
        s.get::<u32>("user").await,
        Err(SessionError::Deserialize { .. })
    ));
    s.remove("user").await.unwrap();
    storage.commit_session(&s).await.unwrap();
    let s = storage.get_session(Some(&c));
    assert_eq!(s.get::<String>("user").await.unwrap(), None);
    assert!(s.get::<Vec<String>>("cart").await.unwrap().is_some());
}

#[tokio::test]
async fn a_session_belongs_to_its_storage() {
    let a = harness();
    let b = harness();
    let s = a.storage.get_session(None);
    assert!(matches!(
        b.storage.commit_session(&s).await,
        Err(SessionError::ForeignSession)
    ));
}

// ---- Concurrency ----

async fn overlapping_requests_both_survive(driver: Arc<dyn Driver>) {
    let storage = SessionStorage::<Data>::builder(driver.clone())
        .keyring(Keyring::from_secrets([SECRET]).unwrap())
        .build()
        .unwrap();
    let s = storage.get_session(None);
    s.update(|d| d.user = Some("ada".into())).await.unwrap();
    let c = cookie(&storage.commit_session(&s).await.unwrap().unwrap());

    let (r1, r2) = (storage.get_session(Some(&c)), storage.get_session(Some(&c)));
    r1.update(|d| d.count += 1).await.unwrap();
    r2.update(|d| d.cart.push("apple".into())).await.unwrap();
    storage.commit_session(&r1).await.unwrap();
    assert!(!r1.merged_concurrent_changes().await, "r1 wrote first");
    storage.commit_session(&r2).await.unwrap();
    assert!(
        r2.merged_concurrent_changes().await,
        "r2's write merged r1's change"
    );
    assert_eq!(r2.data().await.unwrap().count, 1, "and r2 now sees it");
    let data = storage.get_session(Some(&c)).data().await.unwrap();
    assert_eq!(
        data,
        Data {
            count: 1,
            user: Some("ada".into()),
            cart: vec!["apple".into()]
        }
    );

    // Many overlapping increments of one key are merged, none lost.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (storage, c) = (storage.clone(), c.clone());
            tokio::spawn(async move {
                let s = storage.get_session(Some(&c));
                s.update(|d| d.cart.push("x".into())).await.unwrap();
                storage.commit_session(&s).await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let data = storage.get_session(Some(&c)).data().await.unwrap();
    assert_eq!(data.count, 1);
    let mut expected = vec!["apple".to_owned()];
    expected.extend(std::iter::repeat_n("x".to_owned(), 8));
    assert_eq!(data.cart, expected, "every concurrent push survived");
}

/// `tasks` concurrent requests, each `rounds` times: load the session, increment `count`
/// through `update`, push to `cart`, commit. Each task uses the storage `storages[task % n]`
/// (several storages on one driver are what several server processes are to each other).
async fn hammer(storages: &[SessionStorage<Data>], cookie: &str, tasks: usize, rounds: usize) {
    let phase = storages.len();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let storage = storages[t % storages.len()].clone();
            let cookie = cookie.to_owned();
            tokio::spawn(async move {
                for r in 0..rounds {
                    let s = storage.get_session(Some(&cookie));
                    s.update(|d| d.count += 1).await.unwrap();
                    let item = format!("{phase}-{t}-{r}");
                    s.update(move |d| d.cart.push(item.clone())).await.unwrap();
                    // No cookie, or the same one: never a removal.
                    let set = storage.commit_session(&s).await.unwrap();
                    assert!(set.is_none_or(|c| !c.is_removal()));
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
}

async fn exact_counts_under_contention(driver: Arc<dyn Driver>) {
    let storages: Vec<_> = (0..2)
        .map(|_| {
            SessionStorage::<Data>::builder(driver.clone())
                .keyring(Keyring::from_secrets([SECRET]).unwrap())
                .build()
                .unwrap()
        })
        .collect();
    let s = storages[0].get_session(None);
    s.update(|d| d.user = Some("ada".into())).await.unwrap();
    let c = cookie(&storages[0].commit_session(&s).await.unwrap().unwrap());

    // One process: 8 requests x 25 rounds.
    hammer(&storages[..1], &c, 8, 25).await;
    let data = storages[0].get_session(Some(&c)).data().await.unwrap();
    assert_eq!(data.count, 200);
    assert_eq!(data.cart.len(), 200);
    // Two processes on one store: 16 requests x 10 rounds.
    hammer(&storages, &c, 16, 10).await;
    let data = storages[1].get_session(Some(&c)).data().await.unwrap();
    assert_eq!(data.count, 360);
    let mut cart = data.cart.clone();
    cart.sort();
    cart.dedup();
    assert_eq!(cart.len(), 360, "no push lost or doubled");
    assert_eq!(data.user.as_deref(), Some("ada"));
}

/// Each process keeps the records it read and wrote, decoded: it must still see every write
/// of another process on the next read, and a destroyed session as gone.
#[tokio::test]
async fn a_process_reads_what_another_wrote_never_its_own_older_copy() {
    let driver = Arc::new(MemoryDriver::new());
    let storage = || {
        SessionStorage::<Data>::builder(driver.clone())
            .keyring(Keyring::from_secrets([SECRET]).unwrap())
            .build()
            .unwrap()
    };
    let (a, b) = (storage(), storage());
    let s = a.get_session(None);
    s.update(|d| d.count = 1).await.unwrap();
    let c = cookie(&a.commit_session(&s).await.unwrap().unwrap());
    let count = |st: &SessionStorage<Data>| {
        let s = st.get_session(Some(&c));
        async move { s.data().await.unwrap().count }
    };
    let increment = |st: &SessionStorage<Data>| {
        let (st, s) = (st.clone(), st.get_session(Some(&c)));
        async move {
            s.update(|d| d.count += 1).await.unwrap();
            st.commit_session(&s).await.unwrap();
        }
    };
    for expected in 1..=6 {
        // Each reads twice (the second read is the one a kept record could answer), then the
        // processes take turns writing.
        for st in [&a, &b, &a, &b] {
            assert_eq!(count(st).await, expected);
        }
        increment(if expected % 2 == 0 { &a } else { &b }).await;
    }
    let s = b.get_session(Some(&c));
    s.destroy().await;
    b.commit_session(&s).await.unwrap();
    let s = a.get_session(Some(&c));
    assert!(s.is_new().await.unwrap(), "destroyed by the other process");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_are_exact_on_memory() {
    exact_counts_under_contention(Arc::new(MemoryDriver::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_are_exact_on_fs() {
    let dir = tempfile::tempdir().unwrap();
    exact_counts_under_contention(Arc::new(FsDriver::builder(dir.path()).build().unwrap())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_in_one_process_never_conflict_in_the_store() {
    // Every commit of one session in one process is combined: the store sees no
    // compare-and-swap conflict, so no write is repeated and no record re-read.
    let driver = Arc::new(CountingDriver::new(MemoryDriver::new()));
    let storage = SessionStorage::<Data>::builder(driver.clone())
        .keyring(Keyring::from_secrets([SECRET]).unwrap())
        .build()
        .unwrap();
    let s = storage.get_session(None);
    s.update(|d| d.count = 0).await.unwrap();
    s.update(|d| d.user = Some("ada".into())).await.unwrap();
    let c = cookie(&storage.commit_session(&s).await.unwrap().unwrap());
    let before = driver.counts();
    // Every request loads before any commits: all 32 commits meet concurrent changes.
    let sessions: Vec<_> = (0..32).map(|_| storage.get_session(Some(&c))).collect();
    for s in &sessions {
        s.update(|d| d.count += 1).await.unwrap();
    }
    let commits: Vec<_> = sessions.iter().map(|s| storage.commit_session(s)).collect();
    for result in futures::future::join_all(commits).await {
        assert!(result.unwrap().is_none_or(|c| !c.is_removal()));
    }
    let counts = driver.counts();
    assert_eq!(
        counts.get - before.get,
        32,
        "one load per request, no reload"
    );
    assert!(
        counts.put - before.put <= 32,
        "at most one write per commit: {:?}",
        counts
    );
    let data = storage.get_session(Some(&c)).data().await.unwrap();
    assert_eq!(data.count, 32);
    // Each request's view after its commit includes the others' changes.
    assert!(sessions[31].read(|d| d.count).await.unwrap() >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_and_save_returns_the_value_that_was_saved() {
    let storage = SessionStorage::<Data>::builder(Arc::new(MemoryDriver::new()))
        .keyring(Keyring::from_secrets([SECRET]).unwrap())
        .build()
        .unwrap();
    let s = storage.get_session(None);
    s.update(|d| d.user = Some("ada".into())).await.unwrap();
    let c = cookie(&storage.commit_session(&s).await.unwrap().unwrap());
    // All load first, so each one's own view says 1.
    let sessions: Vec<_> = (0..16).map(|_| storage.get_session(Some(&c))).collect();
    for s in &sessions {
        assert!(!s.is_new().await.unwrap());
    }
    let saves = sessions.iter().map(|s| {
        let storage = storage.clone();
        async move {
            let n = s
                .update_and_save(|d| {
                    d.count += 1;
                    d.count
                })
                .await
                .unwrap();
            // The layer's final commit sends the save's cookie if it had one (here none: the
            // browser's is still current), never a removal.
            let set = storage.commit_session(s).await.unwrap();
            assert!(set.is_none_or(|c| !c.is_removal()));
            n
        }
    });
    let mut seen = futures::future::join_all(saves).await;
    seen.sort_unstable();
    assert_eq!(
        seen,
        (1..=16).collect::<Vec<u64>>(),
        "each saw its exact count"
    );

    // A session destroyed first: nothing saved, a typed error.
    let (late, ender) = (storage.get_session(Some(&c)), storage.get_session(Some(&c)));
    assert!(!late.is_new().await.unwrap());
    storage.destroy_session(&ender).await.unwrap();
    let err = late.update_and_save(|d| d.count += 1).await.unwrap_err();
    assert!(matches!(err, SessionError::Vanished), "{err:?}");
    assert!(storage.get_session(Some(&c)).is_new().await.unwrap());
}

#[tokio::test]
async fn save_inside_a_handler_keeps_the_cookie_for_the_final_commit() {
    let h = harness();
    // A new session saved early: the record exists at once, and the final commit (with
    // nothing more to write) returns the cookie.
    let s = h.storage.get_session(None);
    s.update(|d| d.count = 1).await.unwrap();
    s.save().await.unwrap();
    assert_eq!(h.driver.counts().put, 1);
    let set = h.storage.commit_session(&s).await.unwrap().unwrap();
    assert_eq!(h.driver.counts().put, 1, "nothing left to write");
    let c = cookie(&set);
    assert_eq!(
        h.storage
            .get_session(Some(&c))
            .read(|d| d.count)
            .await
            .unwrap(),
        1
    );

    // Changes after the save are written by the final commit.
    let s = h.storage.get_session(Some(&c));
    s.update(|d| d.count += 1).await.unwrap();
    s.save().await.unwrap();
    s.update(|d| d.count += 1).await.unwrap();
    // Both writes keep the id and the idle deadline: the browser's cookie is still current.
    assert_eq!(h.storage.commit_session(&s).await.unwrap(), None);
    assert_eq!(
        h.storage
            .get_session(Some(&c))
            .read(|d| d.count)
            .await
            .unwrap(),
        3
    );

    // A destroy after a save removes the cookie instead.
    let s = h.storage.get_session(None);
    s.update(|d| d.count = 1).await.unwrap();
    s.save().await.unwrap();
    s.destroy().await;
    let set = h.storage.commit_session(&s).await.unwrap().unwrap();
    assert!(set.is_removal());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closure_that_panics_on_newer_data_fails_only_its_own_request() {
    let storage = SessionStorage::<Data>::builder(Arc::new(MemoryDriver::new()))
        .keyring(Keyring::from_secrets([SECRET]).unwrap())
        .build()
        .unwrap();
    let s = storage.get_session(None);
    s.update(|d| d.cart = vec!["a".into()]).await.unwrap();
    let c = cookie(&storage.commit_session(&s).await.unwrap().unwrap());
    let (fragile, other) = (storage.get_session(Some(&c)), storage.get_session(Some(&c)));
    // Fine on this request's view (one item), a panic on the newer one (none).
    fragile
        .update(|d| d.user = Some(d.cart[0].clone()))
        .await
        .unwrap();
    other.update(|d| d.cart.clear()).await.unwrap();
    storage.commit_session(&other).await.unwrap();
    let err = storage.commit_session(&fragile).await.unwrap_err();
    assert!(matches!(err, SessionError::UpdatePanicked), "{err:?}");
    let data = storage.get_session(Some(&c)).data().await.unwrap();
    assert!(data.cart.is_empty() && data.user.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_requests_on_memory() {
    overlapping_requests_both_survive(Arc::new(MemoryDriver::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_requests_on_fs() {
    let dir = tempfile::tempdir().unwrap();
    overlapping_requests_both_survive(Arc::new(FsDriver::builder(dir.path()).build().unwrap()))
        .await;
}

#[tokio::test]
async fn last_write_wins_overwrites_a_concurrent_commit_but_not_a_destroy() {
    let driver = Arc::new(CountingDriver::new(MemoryDriver::new()));
    let storage = SessionStorage::<Data>::builder(driver.clone())
        .keyring(Keyring::from_secrets([SECRET]).unwrap())
        .concurrent_writes(ConcurrentWrites::LastWriteWins)
        .build()
        .unwrap();
    let s = storage.get_session(None);
    s.update(|d| d.user = Some("ada".into())).await.unwrap();
    let c = cookie(&storage.commit_session(&s).await.unwrap().unwrap());

    // Two overlapping requests, the first over before the second changes anything: each
    // commit is one plain write, no reload; the later one replaces the whole record, so the
    // first one's change is gone.
    let before = driver.counts();
    let r2 = storage.get_session(Some(&c));
    assert!(!r2.is_new().await.unwrap());
    {
        let r1 = storage.get_session(Some(&c));
        r1.update(|d| d.count += 1).await.unwrap();
        storage.commit_session(&r1).await.unwrap();
    }
    r2.update(|d| d.cart.push("apple".into())).await.unwrap();
    storage.commit_session(&r2).await.unwrap();
    let counts = driver.counts();
    assert_eq!((counts.get - before.get, counts.put - before.put), (2, 2));
    let data = storage.get_session(Some(&c)).data().await.unwrap();
    assert_eq!(
        data,
        Data {
            count: 0,
            user: Some("ada".into()),
            cart: vec!["apple".into()]
        }
    );

    // A session destroyed meanwhile is not written back by a late commit (update-only).
    let (late, ender) = (storage.get_session(Some(&c)), storage.get_session(Some(&c)));
    late.update(|d| d.count += 1).await.unwrap();
    storage.destroy_session(&ender).await.unwrap();
    let set = storage.commit_session(&late).await.unwrap();
    assert_eq!(
        set, None,
        "nothing written, no cookie: the destroy removed it"
    );
    assert!(storage.get_session(Some(&c)).is_new().await.unwrap());
}

// ---- Failures ----

#[tokio::test]
async fn a_store_that_fails_gives_a_typed_retryable_or_permanent_error() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("sessions");
    let driver = Arc::new(FsDriver::builder(&base).build().unwrap());
    let storage = SessionStorage::<Data>::builder(driver)
        .keyring(Keyring::from_secrets([SECRET]).unwrap())
        .build()
        .unwrap();
    let s = storage.get_session(None);
    s.update(|d| d.count = 1).await.unwrap();
    let c = cookie(&storage.commit_session(&s).await.unwrap().unwrap());

    // Break the store for real: the base directory becomes a file.
    std::fs::remove_dir_all(&base).unwrap();
    std::fs::write(&base, b"not a directory").unwrap();
    let s = storage.get_session(Some(&c));
    let err = s.read(|d| d.count).await.unwrap_err();
    assert!(matches!(err, SessionError::Driver { .. }), "{err}");
    assert!(!err.to_string().contains(SECRET));
    let s = storage.get_session(None);
    s.update(|d| d.count = 1).await.unwrap();
    assert!(storage.commit_session(&s).await.is_err());
}

// ---- Exclusive requests ----

fn exclusive(driver: Arc<dyn Driver>, wait: Duration) -> SessionStorage<Data> {
    SessionStorage::<Data>::builder(driver)
        .keyring(Keyring::from_secrets([SECRET]).unwrap())
        .concurrent_writes(ConcurrentWrites::Exclusive)
        .exclusive_wait(wait)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusive_requests_make_read_then_write_handlers_exact() {
    // Two storages on one store: the lease keeps them apart as it would two processes.
    let driver: Arc<dyn Driver> = Arc::new(MemoryDriver::new());
    let storages = [
        exclusive(driver.clone(), Duration::from_secs(10)),
        exclusive(driver.clone(), Duration::from_secs(10)),
    ];
    let s = storages[0].get_session(None);
    s.update(|d| d.count = 0).await.unwrap();
    s.update(|d| d.user = Some("ada".into())).await.unwrap();
    let c = cookie(&storages[0].commit_session(&s).await.unwrap().unwrap());
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let (storage, c) = (storages[t % 2].clone(), c.clone());
            tokio::spawn(async move {
                for _ in 0..10 {
                    let s = storage.get_session(Some(&c));
                    // Read, yield (as a handler awaiting something would), write back.
                    let mut data = s.data().await.unwrap();
                    tokio::task::yield_now().await;
                    data.count += 1;
                    s.set(data).await.unwrap();
                    storage.commit_session(&s).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let s = storages[1].get_session(Some(&c));
    assert_eq!(s.read(|d| d.count).await.unwrap(), 80);
    storages[1].commit_session(&s).await.unwrap();
    // Every lease was released.
    let page = driver.list("session:", None).await.unwrap();
    assert!(
        page.keys.iter().all(|k| !k.ends_with(".lock")),
        "{:?}",
        page.keys
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exclusive_request_waits_then_fails_busy_and_a_dropped_one_lets_go() {
    let driver: Arc<dyn Driver> = Arc::new(MemoryDriver::new());
    let (a, b) = (
        exclusive(driver.clone(), Duration::from_millis(200)),
        exclusive(driver.clone(), Duration::from_millis(200)),
    );
    let s = a.get_session(None);
    s.update(|d| d.count = 1).await.unwrap();
    let c = cookie(&a.commit_session(&s).await.unwrap().unwrap());

    // Another process's request holds the session: this one waits, then gives up, retryably.
    let holder = a.get_session(Some(&c));
    assert_eq!(holder.read(|d| d.count).await.unwrap(), 1);
    let waiter = b.get_session(Some(&c));
    let err = waiter.read(|d| d.count).await.unwrap_err();
    assert!(matches!(err, SessionError::Busy { .. }), "{err:?}");
    assert!(err.is_retryable());
    // In the same process too.
    let err = a.get_session(Some(&c)).read(|d| d.count).await.unwrap_err();
    assert!(matches!(err, SessionError::Busy { .. }), "{err:?}");

    // Dropped without a commit (a handler that panicked): the lock goes at once, the lease
    // in the background.
    drop(holder);
    let next = b.get_session(Some(&c));
    assert_eq!(next.read(|d| d.count).await.unwrap(), 1);
    next.update(|d| d.count += 1).await.unwrap();
    b.commit_session(&next).await.unwrap();
    let last = a.get_session(Some(&c));
    assert_eq!(last.read(|d| d.count).await.unwrap(), 2);
}

#[test]
fn exclusive_needs_a_store() {
    let err = SessionStorage::<Data>::cookie_only()
        .keyring(Keyring::from_secrets([SECRET]).unwrap())
        .concurrent_writes(ConcurrentWrites::Exclusive)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("Exclusive"), "{err}");
}

/// Options that only mean something for sessions in a store fail the build of a cookie-only
/// storage instead of doing nothing.
#[test]
fn store_options_are_refused_for_cookie_only_sessions() {
    let err = SessionStorage::<Data>::cookie_only()
        .keyring(Keyring::from_secrets([SECRET]).unwrap())
        .namespace("app:")
        .max_commit_attempts(5)
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "session configuration: `namespace` applies to sessions kept in a store; cookie-only \
         sessions are sealed into the cookie (set: namespace, max_commit_attempts)"
    );
}

/// A driver built in code does no argument checks itself: the storage puts the validate layer
/// around it, so an oversized session is refused before it reaches the store.
#[tokio::test]
async fn a_driver_built_in_code_is_validated_by_the_storage() {
    let h = harness();
    let s = h.storage.get_session(None);
    let huge = "x".repeat(session_kit_memory::MAX_VALUE_SIZE + 1);
    s.update(move |d| d.user = Some(huge.clone()))
        .await
        .unwrap();
    let err = h.storage.commit_session(&s).await.unwrap_err();
    assert!(
        matches!(
            err,
            SessionError::Driver {
                source: session_kit_core::DriverError::ValueTooLarge { .. },
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        h.driver.counts().put,
        0,
        "the write never reached the driver"
    );
}

/// A new visitor's request stores a session exactly when it did something beyond reading:
/// the shortcut that skips the commit of an untouched new session must see every such change.
#[tokio::test]
async fn a_new_visitor_is_stored_only_for_a_change() {
    type Step = fn(
        &session_kit_core::Session<Data>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>;
    let cases: [(&str, bool, Step); 8] = [
        ("read", false, |s| {
            Box::pin(async { s.read(|d| d.count).await.map(drop).unwrap() })
        }),
        ("take a flash", false, |s| {
            Box::pin(async { s.take_flash::<String>("m").await.map(drop).unwrap() })
        }),
        ("an update that changes nothing", false, |s| {
            Box::pin(async { s.update(|d| d.count = 0).await.unwrap() })
        }),
        ("update", true, |s| {
            Box::pin(async { s.update(|d| d.count = 1).await.unwrap() })
        }),
        ("flash", true, |s| {
            Box::pin(async { s.flash("m", "hi").await.unwrap() })
        }),
        ("renew", true, |s| {
            Box::pin(async { s.renew().await.unwrap() })
        }),
        ("lifetime", true, |s| {
            Box::pin(async {
                s.set_lifetime(Lifetime::new(Some(HOUR), None))
                    .await
                    .unwrap()
            })
        }),
        ("bind a user", true, |s| {
            Box::pin(async { s.bind_user("ada").await.unwrap() })
        }),
    ];
    for (what, stored, step) in cases {
        let h = harness();
        let s = h.storage.get_session(None);
        step(&s).await;
        let set = h.storage.commit_session(&s).await.unwrap();
        assert_eq!(set.is_some(), stored, "{what}: cookie sent");
        let puts = h.driver.take_counts().put;
        assert_eq!(puts > 0, stored, "{what}: {puts} puts");
    }
}

/// With `builder` (defaults `T::default()`), a new session's data is `T::default()` itself,
/// not a JSON round trip of it: a field serde skips keeps its `Default` value. A stored
/// session is read back through serde, which gives a skipped field the type's default.
#[tokio::test]
async fn a_new_session_starts_as_the_default_value() {
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Prefs {
        theme: String,
        #[serde(skip)]
        hits: u32,
    }
    impl Default for Prefs {
        fn default() -> Self {
            Self {
                theme: "light".into(),
                hits: 7,
            }
        }
    }
    let storage = SessionStorage::<Prefs>::builder(Arc::new(MemoryDriver::new()))
        .keyring(Keyring::from_secrets(["a secret of at least thirty-two bytes"]).unwrap())
        .build()
        .unwrap();
    let s = storage.get_session(None);
    assert_eq!(
        s.read(|p| (p.theme.clone(), p.hits)).await.unwrap(),
        ("light".into(), 7)
    );
    // Compared with the defaults as serialised: the same value is no change.
    s.update(|p| p.theme = "light".into()).await.unwrap();
    assert!(!s.has_changed().await.unwrap());
    s.update(|p| p.theme = "dark".into()).await.unwrap();
    let c = cookie(&storage.commit_session(&s).await.unwrap().unwrap());
    let loaded = storage.get_session(Some(&c));
    assert_eq!(
        loaded.read(|p| (p.theme.clone(), p.hits)).await.unwrap(),
        ("dark".into(), 0)
    );
}
