//! Hostile input explored at random (proptest), beyond the fixed cases in `sessions.rs`,
//! `cookie_only.rs` and `header_transport.rs`: whatever a client sends as its cookies or its
//! token, and whatever bytes a store hands back as a session's record, a request gets a fresh
//! session, its own session, or a typed error: never a panic, never another session's data,
//! never an id the client chose, and no store read for a cookie that does not verify.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use http::{HeaderMap, HeaderValue, header};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use session_kit_core::{
    HeaderTransport, Keyring, Session, SessionStorage,
    driver::{Driver, PutOptions, bytes::Bytes},
    layers::CountingDriver,
};
use session_kit_memory::MemoryDriver;
use session_test_support::hostile;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Data {
    count: u64,
    user: Option<String>,
}

/// The count of the session every case attacks, and of a second one it must never reach.
const MINE: u64 = 7;
const OTHER: u64 = 9;

fn keyring() -> Keyring {
    Keyring::from_secrets(["hostile input secret, 32 bytes or more"]).unwrap()
}

type Store = CountingDriver<MemoryDriver>;

fn store() -> Arc<Store> {
    Arc::new(CountingDriver::new(MemoryDriver::new()))
}

/// Sessions with a signed id in the cookie (or a bearer token), their records in `driver`.
fn stored(driver: &Arc<Store>) -> SessionStorage<Data> {
    SessionStorage::builder(driver.clone())
        .keyring(keyring())
        .header_transport(HeaderTransport::bearer())
        .build()
        .unwrap()
}

/// Sessions sealed whole into the cookie.
fn sealed() -> SessionStorage<Data> {
    SessionStorage::<Data>::cookie_only()
        .keyring(keyring())
        .build()
        .unwrap()
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(future)
}

/// A committed session holding `count`: its cookie's `name=value`.
async fn session_with(storage: &SessionStorage<Data>, count: u64) -> String {
    let session = storage.get_session(None);
    session
        .update(move |d| {
            d.count = count;
            d.user = Some("ada".into());
        })
        .await
        .unwrap();
    let set = storage.commit_session(&session).await.unwrap().unwrap();
    set.as_str().split(';').next().unwrap().to_owned()
}

/// What a request whose session came from hostile input may see: a fresh session whose id the
/// client did not send, or (when `mine` is the id of the session under attack) that session
/// with its own data. Committing a change works either way.
async fn check(
    storage: &SessionStorage<Data>,
    session: Session<Data>,
    sent: &[u8],
    mine: &str,
) -> Result<(), TestCaseError> {
    let data = session.data().await.unwrap();
    let id = session.id().await.unwrap();
    if session.is_new().await.unwrap() {
        prop_assert_eq!(&data, &Data::default());
        let id = id.expose();
        prop_assert!(
            !sent.windows(id.len()).any(|w| w == id.as_bytes()),
            "a fresh session took an id the client sent"
        );
    } else {
        prop_assert_eq!(id.expose(), mine, "another session opened");
        // Its own data (each earlier check in the case added 100).
        prop_assert_eq!(data.count % 100, MINE);
    }
    session.update(|d| d.count += 100).await.unwrap();
    prop_assert!(storage.commit_session(&session).await.is_ok());
    Ok(())
}

/// One change to a valid value.
#[derive(Debug, Clone)]
enum Mutation {
    Replace(prop::sample::Index, u8),
    Insert(prop::sample::Index, u8),
    Delete(prop::sample::Index),
    Truncate(prop::sample::Index),
    SwapNeighbours(prop::sample::Index),
    /// The start of this value up to the index, the other session's value after it.
    Splice(prop::sample::Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let index = any::<prop::sample::Index>();
    prop_oneof![
        (index.clone(), any::<u8>()).prop_map(|(i, b)| Mutation::Replace(i, b)),
        (index.clone(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        index.clone().prop_map(Mutation::Delete),
        index.clone().prop_map(Mutation::Truncate),
        index.clone().prop_map(Mutation::SwapNeighbours),
        index.prop_map(Mutation::Splice),
    ]
}

impl Mutation {
    fn apply(&self, value: &[u8], other: &[u8]) -> Vec<u8> {
        let mut out = value.to_vec();
        match self {
            Self::Replace(i, b) => out[i.index(value.len())] = *b,
            Self::Insert(i, b) => out.insert(i.index(value.len() + 1), *b),
            Self::Delete(i) => {
                out.remove(i.index(value.len()));
            }
            Self::Truncate(i) => out.truncate(i.index(value.len())),
            Self::SwapNeighbours(i) => {
                let i = i.index(value.len() - 1);
                out.swap(i, i + 1);
            }
            Self::Splice(i) => {
                let i = i.index(value.len().min(other.len()));
                out.truncate(i);
                out.extend_from_slice(&other[i..]);
            }
        }
        out
    }
}

/// The id of the session behind `cookie` (a valid one).
async fn id_of(storage: &SessionStorage<Data>, cookie: &str) -> String {
    let session = storage.get_session(Some(cookie));
    assert!(!session.is_new().await.unwrap());
    session.id().await.unwrap().expose().to_owned()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_cookie_headers_give_a_fresh_session_and_never_cost_the_real_one(
        headers in hostile::cookie_headers("session"),
    ) {
        block_on(async {
            let driver = store();
            let all = headers.concat();
            for storage in [stored(&driver), sealed()] {
                let mine = session_with(&storage, MINE).await;
                let id = id_of(&storage, &mine).await;
                driver.take_counts();
                let session = storage.get_session_from_raw(headers.iter().map(Vec::as_slice));
                prop_assert!(session.is_new().await.unwrap());
                check(&storage, session, &all, "").await?;
                let reads = driver.counts().get;
                prop_assert_eq!(reads, 0, "a store read for a cookie that does not verify");
                // The same garbage before the visitor's cookie does not cost them the session.
                let with_mine = headers.iter().map(Vec::as_slice).chain([mine.as_bytes()]);
                let session = storage.get_session_from_raw(with_mine);
                prop_assert!(!session.is_new().await.unwrap());
                check(&storage, session, &all, &id).await?;
            }
            Ok(())
        })?;
    }

    #[test]
    fn a_changed_cookie_opens_its_own_session_or_a_fresh_one(
        change in mutation(),
        sealed_cookie in any::<bool>(),
    ) {
        block_on(async {
            let driver = store();
            let storage = if sealed_cookie { sealed() } else { stored(&driver) };
            let mine = session_with(&storage, MINE).await;
            let other = session_with(&storage, OTHER).await;
            let id = id_of(&storage, &mine).await;
            let sent = change.apply(mine.as_bytes(), other.as_bytes());
            prop_assume!(sent != mine.as_bytes() && sent != other.as_bytes());
            let session = storage.get_session_from_raw([sent.as_slice()]);
            check(&storage, session, &sent, &id).await
        })?;
    }

    #[test]
    fn arbitrary_and_changed_tokens_give_their_own_session_or_a_fresh_one(
        random in prop::collection::vec(any::<u8>(), 0..200),
        change in mutation(),
    ) {
        block_on(async {
            let driver = store();
            let storage = stored(&driver);
            let mine = session_with(&storage, MINE).await;
            let other = session_with(&storage, OTHER).await;
            let id = id_of(&storage, &mine).await;
            let (mine, other) = (token(&mine), token(&other));
            let changed = change.apply(mine.as_bytes(), other.as_bytes());
            prop_assume!(changed != mine.as_bytes() && changed != other.as_bytes());
            for sent in [random.clone(), changed] {
                // Through the sans-IO call, where any text can arrive...
                let text = String::from_utf8_lossy(&sent).into_owned();
                let session = storage.get_session_from_token(Some(&text));
                check(&storage, session, text.as_bytes(), &id).await?;
                // ... and through a header, where any bytes `http` accepts can.
                let bearer = [b"Bearer ", sent.as_slice()].concat();
                if let Ok(value) = HeaderValue::from_bytes(&bearer) {
                    let mut headers = HeaderMap::new();
                    headers.insert(header::AUTHORIZATION, value);
                    let session = storage.get_session_from_headers(&headers);
                    check(&storage, session, &sent, &id).await?;
                }
            }
            Ok(())
        })?;
    }

    #[test]
    fn a_damaged_record_gives_a_fresh_session_or_a_typed_error(
        change in mutation(),
        random in prop::option::of(prop::collection::vec(any::<u8>(), 0..200)),
    ) {
        block_on(async {
            let driver = store();
            let storage = stored(&driver);
            let cookie = session_with(&storage, MINE).await;
            let page = driver.list("", None).await.unwrap();
            prop_assert_eq!(page.keys.len(), 1);
            let key = &page.keys[0];
            let record = driver.get(key).await.unwrap().unwrap().value;
            let damaged = random.unwrap_or_else(|| change.apply(&record, b"{}"));
            driver.put(key, Bytes::from(damaged), PutOptions::new()).await.unwrap();

            // The store is trusted for what it holds (a changed digit is a changed count), but
            // whatever it holds, the request gets an answer.
            let session = storage.get_session(Some(&cookie));
            match session.data().await {
                Ok(data) => {
                    if data != Data::default() {
                        prop_assert!(!session.is_new().await.unwrap());
                    }
                    session.update(|d| d.count += 1).await.unwrap();
                    let committed = storage.commit_session(&session).await;
                    prop_assert!(committed.is_ok(), "{:?}", committed.err());
                }
                // A record that decodes but whose data is not a `Data`.
                Err(e) => prop_assert!(!e.is_retryable(), "{e}"),
            }
            Ok(())
        })?;
    }
}

/// The value of a session cookie, which is also its token.
fn token(cookie: &str) -> String {
    cookie.split_once('=').unwrap().1.to_owned()
}
