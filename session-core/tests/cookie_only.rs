//! Cookie-only sessions: the whole session sealed into the cookie.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use session_kit_core::{
    ExpiryPolicy, Key, Keyring, Lifetime, ManualClock, Session, SessionError, SessionStorage,
    SetCookie,
};

const HOUR: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Data {
    count: u64,
    user: Option<String>,
    notes: Vec<String>,
}

fn storage_with(keyring: Keyring, clock: Arc<ManualClock>) -> SessionStorage<Data> {
    SessionStorage::<Data>::cookie_only()
        .keyring(keyring)
        .expiry(
            ExpiryPolicy::new()
                .idle_timeout(Some(HOUR))
                .absolute_timeout(Some(24 * HOUR)),
        )
        .clock(clock)
        .build()
        .unwrap()
}

fn storage() -> (SessionStorage<Data>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::starting_now());
    let ring = Keyring::from_secrets(["cookie-only secret of 32 bytes or more"]).unwrap();
    (storage_with(ring, clock.clone()), clock)
}

fn cookie(set: &SetCookie) -> String {
    set.as_str().split(';').next().unwrap().to_owned()
}

async fn visit(
    storage: &SessionStorage<Data>,
    cookie_header: Option<&str>,
) -> (Data, Option<SetCookie>) {
    let s = storage.get_session(cookie_header);
    s.update(|d| d.count += 1).await.unwrap();
    let data = s.data().await.unwrap();
    (data, storage.commit_session(&s).await.unwrap())
}

#[tokio::test]
async fn the_session_lives_in_the_cookie() {
    let (storage, _) = storage();
    assert!(storage.driver().is_none());
    let (_, set) = visit(&storage, None).await;
    let c = cookie(&set.unwrap());
    let (data, set) = visit(&storage, Some(&c)).await;
    assert_eq!(data.count, 2);
    let c2 = cookie(set.as_ref().unwrap());
    assert!(!c2.contains("count"), "sealed, not readable");
    // Read-only and untouched requests send nothing.
    let s = storage.get_session(Some(&c2));
    assert_eq!(s.read(|d| d.count).await.unwrap(), 2);
    assert_eq!(storage.commit_session(&s).await.unwrap(), None);
    let s = storage.get_session(Some(&c2));
    assert_eq!(storage.commit_session(&s).await.unwrap(), None);
}

#[tokio::test]
async fn cookie_only_commits_are_answered_without_awaiting() {
    let (storage, _) = storage();
    // A new visitor's change: sealed now.
    let s = storage.get_session(None);
    s.update(|d| d.count += 1).await.unwrap();
    let headers = storage
        .commit_response_now(&s)
        .expect("answered now")
        .unwrap();
    let c = cookie(headers.set_cookie().expect("a sealed cookie"));
    let s = storage.get_session(Some(&c));
    assert_eq!(s.read(|d| d.count).await.unwrap(), 1);
    // Read only: nothing to send.
    let now = storage.commit_response_now(&s).expect("answered now");
    assert!(now.unwrap().is_empty());
    // While another handle of the session holds it, the caller is told to await instead;
    // the awaited commit then seals the change.
    let s = storage.get_session(Some(&c));
    s.update(|d| d.count += 1).await.unwrap();
    s.read(|_| assert!(storage.commit_response_now(&s).is_none()))
        .await
        .unwrap();
    let headers = storage.commit_response(&s).await.unwrap();
    let c = cookie(headers.set_cookie().expect("resealed"));
    let s = storage.get_session(Some(&c));
    assert_eq!(s.read(|d| d.count).await.unwrap(), 2);
    // Destroyed: the removal cookie, now.
    s.destroy().await;
    let headers = storage
        .commit_response_now(&s)
        .expect("answered now")
        .unwrap();
    assert!(headers.set_cookie().unwrap().as_str().contains("Max-Age=0"));
}

#[tokio::test]
async fn tampered_truncated_wrong_key_and_garbage_cookies_give_a_fresh_session() {
    let (storage, clock) = storage();
    let (_, set) = visit(&storage, None).await;
    let c = cookie(&set.unwrap());
    let value = c.split_once('=').unwrap().1;
    let mut flipped = value.as_bytes().to_vec();
    let mid = flipped.len() / 2;
    flipped[mid] = if flipped[mid] == b'A' { b'B' } else { b'A' };
    let other = storage_with(
        Keyring::from_secrets(["a different secret, 32 bytes or more"]).unwrap(),
        clock,
    );
    let (_, other_set) = visit(&other, None).await;
    for bad in [
        format!("session={}", String::from_utf8(flipped).unwrap()),
        format!("session={}", &value[..value.len() - 5]),
        format!("session={}", &value[..20]),
        cookie(&other_set.unwrap()),
        "session=garbage".into(),
        "session=".into(),
        format!("session={}", "A".repeat(3000)),
    ] {
        let s = storage.get_session(Some(&bad));
        assert!(s.is_new().await.unwrap(), "{bad}");
        assert_eq!(s.read(|d| d.count).await.unwrap(), 0, "{bad}");
        let set = storage.commit_session(&s).await.unwrap().unwrap();
        assert!(set.is_removal(), "the bad cookie is cleared");
    }
}

/// A browser may send several cookies of the session's name (set for several paths or
/// domains): the first that opens is the session, whichever header or position holds it.
#[tokio::test]
async fn of_several_session_cookies_the_first_that_opens_is_the_session() {
    let (storage, _) = storage();
    let (_, set) = visit(&storage, None).await;
    let first = cookie(&set.unwrap());
    let (_, set) = visit(&storage, Some(&first)).await;
    let second = cookie(&set.unwrap());
    for (header, count) in [
        (format!("session=garbage; theme=dark; {second}"), 2),
        (format!("{second}; {first}"), 2),
        (format!("{first}; {second}"), 1),
        (format!("session=; session=garbage; {first}"), 1),
    ] {
        let s = storage.get_session(Some(&header));
        assert!(!s.is_new().await.unwrap(), "{header}");
        assert_eq!(s.read(|d| d.count).await.unwrap(), count, "{header}");
    }
    let s = storage.get_session_from_raw([b"session=garbage".as_slice(), second.as_bytes()]);
    assert_eq!(
        s.read(|d| d.count).await.unwrap(),
        2,
        "over two Cookie headers"
    );
}

#[tokio::test]
async fn key_rotation_opens_old_seals_and_reseals_with_the_new_key() {
    let clock = Arc::new(ManualClock::starting_now());
    let old = Key::from_bytes("the old sealing secret, 32+ bytes").unwrap();
    let new = Key::from_bytes("the new sealing secret, 32+ bytes").unwrap();
    let before = storage_with(Keyring::new(old.clone()), clock.clone());
    let (_, set) = visit(&before, None).await;
    let c_old = cookie(&set.unwrap());

    let rotated = storage_with(Keyring::new(new.clone()).with_previous(old), clock.clone());
    let s = rotated.get_session(Some(&c_old));
    assert_eq!(s.read(|d| d.count).await.unwrap(), 1);
    let c_new = cookie(
        &rotated
            .commit_session(&s)
            .await
            .unwrap()
            .expect("re-sealed"),
    );
    assert_ne!(c_new, c_old);

    let new_only = storage_with(Keyring::new(new), clock);
    assert_eq!(
        new_only
            .get_session(Some(&c_new))
            .read(|d| d.count)
            .await
            .unwrap(),
        1
    );
    assert!(new_only.get_session(Some(&c_old)).is_new().await.unwrap());
}

#[tokio::test]
async fn expiry_lives_inside_the_seal() {
    let (storage, clock) = storage();
    let (_, set) = visit(&storage, None).await;
    let c = cookie(&set.unwrap());
    clock.advance(HOUR + Duration::from_secs(1));
    assert!(
        storage.get_session(Some(&c)).is_new().await.unwrap(),
        "idle timeout"
    );

    let (_, set) = visit(&storage, None).await;
    let mut c = cookie(&set.unwrap());
    let mut alive = 0;
    for _ in 0..30 {
        clock.advance(50 * 60 * Duration::from_secs(1));
        let s = storage.get_session(Some(&c));
        if s.is_new().await.unwrap() {
            break;
        }
        alive += 1;
        // A read-only request past the throttle window re-seals with a later idle deadline.
        if let Some(set) = storage.commit_session(&s).await.unwrap() {
            c = cookie(&set);
        }
    }
    assert_eq!(
        alive, 28,
        "sliding kept it alive until the 24 h absolute timeout (28 x 50 min)"
    );
}

/// A cookie kept by a read-only response is remembered opened (the next request skips the
/// decryption); what it says is checked again on every request all the same.
#[tokio::test]
async fn a_remembered_cookie_still_expires_and_altered_ones_still_fail() {
    let (storage, clock) = storage();
    let (_, set) = visit(&storage, None).await;
    let c = cookie(&set.unwrap());
    for _ in 0..3 {
        let s = storage.get_session(Some(&c));
        assert_eq!(s.read(|d| d.count).await.unwrap(), 1);
        assert_eq!(storage.commit_session(&s).await.unwrap(), None);
    }
    // A change, then the old cookie again (a second tab): still the old data, as sealed.
    let (data, set) = visit(&storage, Some(&c)).await;
    assert_eq!(data.count, 2);
    let newer = cookie(&set.unwrap());
    let s = storage.get_session(Some(&c));
    assert_eq!(s.read(|d| d.count).await.unwrap(), 1);
    let s = storage.get_session(Some(&newer));
    assert_eq!(s.read(|d| d.count).await.unwrap(), 2);
    // One character changed in the middle (the end, which the memo hashes, is the same):
    // refused, remembered value or not.
    let value = c.split_once('=').unwrap().1;
    let mut bytes = value.as_bytes().to_vec();
    let mid = bytes.len() / 2;
    bytes[mid] = if bytes[mid] == b'A' { b'B' } else { b'A' };
    let altered = format!("session={}", String::from_utf8(bytes).unwrap());
    assert!(storage.get_session(Some(&altered)).is_new().await.unwrap());
    // Past the idle timeout the remembered cookie opens to an expired session: a new one.
    clock.advance(HOUR + Duration::from_secs(1));
    let s = storage.get_session(Some(&c));
    assert!(s.is_new().await.unwrap(), "expired, remembered or not");
    assert!(
        storage
            .commit_session(&s)
            .await
            .unwrap()
            .unwrap()
            .is_removal()
    );
}

/// Commits `s` twice: both fail as too large (a failed commit can be retried as it was, and
/// fails the same way).
async fn fails_twice_too_large(storage: &SessionStorage<Data>, s: &Session<Data>) {
    for _ in 0..2 {
        assert!(matches!(
            storage.commit_session(s).await,
            Err(SessionError::CookieTooLarge { .. })
        ));
    }
}

#[tokio::test]
async fn a_cookie_over_the_browser_limit_is_a_typed_error() {
    let (storage, _) = storage();
    let s = storage.get_session(None);
    s.update(|d| {
        d.notes = (0..200)
            .map(|i| format!("note number {i} with some text"))
            .collect()
    })
    .await
    .unwrap();
    // A retried commit of the same session fails the same way: nothing is dropped silently.
    for _ in 0..2 {
        match storage.commit_session(&s).await {
            Err(SessionError::CookieTooLarge { size, limit }) => {
                assert!(size > limit && limit == 4096)
            }
            other => panic!("expected CookieTooLarge, got {other:?}"),
        }
    }
    // The same for a session that was already stored.
    let s = storage.get_session(None);
    s.update(|d| d.notes = vec!["first".into()]).await.unwrap();
    let c = cookie(&storage.commit_session(&s).await.unwrap().unwrap());
    let s = storage.get_session(Some(&c));
    s.update(|d| d.notes = vec!["x".repeat(5000)])
        .await
        .unwrap();
    fails_twice_too_large(&storage, &s).await;
    // The failed commits left the session as it was loaded: set back to that, nothing has
    // changed; changed otherwise, the next commit seals exactly the new data.
    s.update(|d| d.notes = vec!["first".into()]).await.unwrap();
    assert!(!s.has_changed().await.unwrap());
    assert!(storage.commit_session(&s).await.unwrap().is_none());
    s.update(|d| d.notes = vec!["second".into()]).await.unwrap();
    let c = cookie(&storage.commit_session(&s).await.unwrap().unwrap());
    let s = storage.get_session(Some(&c));
    assert_eq!(s.read(|d| d.notes.clone()).await.unwrap(), ["second"]);
    let s = storage.get_session(None);
    s.update(|d| d.notes = vec!["small".into()]).await.unwrap();
    let set = storage.commit_session(&s).await.unwrap().unwrap();
    assert!(set.as_str().len() <= 4096);
}

/// A regeneration with flash, a user binding and a lifetime that fails to seal (too large)
/// leaves the session as loaded and all of it pending: retried as it was, it fails again; a
/// `reflash` asked afterwards still finds the flash message the failed commit had taken; with
/// the data shrunk, the next commit seals every part of it under the new id.
#[tokio::test]
async fn a_failed_seal_of_a_regeneration_leaves_every_change_pending() {
    let (storage, _) = storage();
    let s = storage.get_session(None);
    s.update(|d| d.notes = vec!["first".into()]).await.unwrap();
    s.flash("kept", 1).await.unwrap();
    let c = cookie(&storage.commit_session(&s).await.unwrap().unwrap());

    let s = storage.get_session(Some(&c));
    let old_id = s.id().await.unwrap();
    s.regenerate().await.unwrap();
    s.take_flash::<u32>("kept").await.unwrap();
    s.flash("next", 2).await.unwrap();
    s.bind_user("ada").await.unwrap();
    s.set_lifetime(Lifetime::new(Some(30 * 24 * HOUR), None))
        .await
        .unwrap();
    s.update(|d| d.notes = vec!["x".repeat(5000)])
        .await
        .unwrap();
    fails_twice_too_large(&storage, &s).await;
    s.reflash().await.unwrap();
    s.update(|d| d.notes = vec!["first".into()]).await.unwrap();
    let set = storage.commit_session(&s).await.unwrap().unwrap();
    assert!(set.as_str().contains("Max-Age=2592000"), "{}", set.as_str());
    let s = storage.get_session(Some(&cookie(&set)));
    assert_ne!(s.id().await.unwrap(), old_id, "a new id");
    assert_eq!(s.user().await.unwrap().as_deref(), Some("ada"));
    assert_eq!(
        s.take_flash::<u32>("kept").await.unwrap(),
        Some(1),
        "kept by reflash"
    );
    assert_eq!(s.take_flash::<u32>("next").await.unwrap(), Some(2));
    assert_eq!(s.read(|d| d.notes.clone()).await.unwrap(), ["first"]);
}

#[tokio::test]
async fn same_session_api_flash_regenerate_destroy_renew() {
    let (storage, clock) = storage();
    let s = storage.get_session(None);
    s.flash("error", "Invalid email/password").await.unwrap();
    let c = cookie(&storage.commit_session(&s).await.unwrap().unwrap());

    let s = storage.get_session(Some(&c));
    assert_eq!(
        s.take_flash::<String>("error").await.unwrap().as_deref(),
        Some("Invalid email/password")
    );
    let old_id = s.id().await.unwrap();
    s.regenerate().await.unwrap();
    s.update(|d| d.user = Some("ada".into())).await.unwrap();
    s.set_lifetime(Lifetime::new(Some(30 * 24 * HOUR), None))
        .await
        .unwrap();
    let c = cookie(&storage.commit_session(&s).await.unwrap().unwrap());
    let s = storage.get_session(Some(&c));
    assert_ne!(s.id().await.unwrap(), old_id, "a new id");
    assert_eq!(
        s.take_flash::<String>("error").await.unwrap(),
        None,
        "consumed"
    );
    clock.advance(48 * HOUR);
    let s = storage.get_session(Some(&c));
    assert_eq!(
        s.read(|d| d.user.clone()).await.unwrap().as_deref(),
        Some("ada"),
        "remember me"
    );
    s.renew().await.unwrap();
    assert!(storage.commit_session(&s).await.unwrap().is_some());

    let s = storage.get_session(Some(&c));
    let removal = storage.destroy_session(&s).await.unwrap();
    assert!(removal.is_removal());
}

/// A cookie sealed by a release before the compact layout (JSON: `{"i":<id>,"r":<record>}`,
/// user "ada" and n = 7, deadlines in 2100) still opens; the next change reseals the session
/// in the compact layout, with its data and deadlines.
#[tokio::test]
async fn a_cookie_sealed_in_the_earlier_json_layout_opens_and_is_resealed_compactly() {
    use session_kit_core::DynamicData;
    let storage = SessionStorage::<DynamicData>::cookie_only()
        .keyring(Keyring::from_secrets(["a secret that is at least 32 bytes"]).unwrap())
        .build()
        .unwrap();
    let old = "session=LEWY7xoVzyoYiRwD4mGL9aMUySAL7204Vi7_OSOLTz9m30dA8E0nhd9WJ-X91zladlV2ZB8ZKA4Z\
               d83pk3U-Jf2Y3ROBoK8v-I5nkKbLBdHYvpkM6YrJmCTOHmSWG3_OnyO1j1B2BIu03lt45IjrUhn2xTMIfIc4\
               Xs1L5jmYOuXi3BaP_xb743tIRI_gB-3EXMBmRUorpVlIEzUTCzGEgn-oeUefPzy5hUoavQzU";
    let s = storage.get_session(Some(old));
    assert!(!s.is_new().await.unwrap());
    assert_eq!(
        s.get::<String>("user").await.unwrap().as_deref(),
        Some("ada")
    );
    assert_eq!(s.get::<u32>("n").await.unwrap(), Some(7));
    let id = s.id().await.unwrap();
    // Read only: the cookie stays as it is.
    assert!(storage.commit_session(&s).await.unwrap().is_none());

    let s = storage.get_session(Some(old));
    s.insert("n", 8).await.unwrap();
    let new = cookie(&storage.commit_session(&s).await.unwrap().unwrap());
    assert!(
        new.len() + 60 < old.len(),
        "resealed compactly: {} against {} characters",
        new.len(),
        old.len()
    );
    let s = storage.get_session(Some(&new));
    assert_eq!(s.id().await.unwrap(), id);
    assert_eq!(
        s.get::<String>("user").await.unwrap().as_deref(),
        Some("ada")
    );
    assert_eq!(s.get::<u32>("n").await.unwrap(), Some(8));
}
