//! `CommitAfter`, the future a framework's middleware returns: the handler, then the commit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    future::{Future, ready},
    pin::pin,
    sync::Arc,
    task::{Context, Poll, Waker},
};

use session_kit_core::layers::{CallCounts, CountingDriver};
use session_kit_core::{CommitAfter, DynamicData, Keyring, SessionStorage};
use session_kit_memory::MemoryDriver;

type Storage = SessionStorage<DynamicData>;

fn storage() -> (Storage, Arc<CountingDriver<MemoryDriver>>) {
    let driver = Arc::new(CountingDriver::new(MemoryDriver::new()));
    let storage = SessionStorage::builder(driver.clone())
        .keyring(Keyring::from_secrets(["commit-after secret of 32 bytes or more"]).unwrap())
        .build()
        .unwrap();
    (storage, driver)
}

/// Polls once: `Some` when the future completed without waiting.
fn poll_once<F: Future>(future: F) -> Option<F::Output> {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

#[tokio::test]
async fn the_handler_s_answer_comes_back_with_the_commit_s_headers() {
    let (storage, driver) = storage();
    let owner = Arc::new(storage.clone());

    // An untouched session: answered at the handler's answer, nothing to send, no store call.
    let session = storage.get_session(None);
    let after = CommitAfter::new(ready(Ok::<_, ()>("page")), owner.clone(), |s| &**s, session);
    let (back, response, committed) = poll_once(after).expect("no I/O").unwrap();
    assert!(Arc::ptr_eq(&back, &owner), "the owner is handed back");
    assert_eq!(response, "page");
    assert!(committed.unwrap().is_empty());
    assert_eq!(driver.counts(), CallCounts::default());

    // A change: written to the store (the boxed commit), and the cookie comes back.
    let session = storage.get_session(None);
    let handler = {
        let session = session.clone();
        async move {
            session.insert("n", 1).await.unwrap();
            Ok::<_, ()>("changed")
        }
    };
    let (_, response, committed) = CommitAfter::new(handler, owner.clone(), |s| &**s, session)
        .await
        .unwrap();
    assert_eq!(response, "changed");
    let cookie = committed
        .unwrap()
        .set_cookie()
        .expect("a new session's cookie")
        .clone();
    assert_eq!(driver.counts().put, 1);
    let cookie = cookie.as_str().split(';').next().unwrap().to_owned();
    let again = storage.get_session(Some(&cookie));
    assert_eq!(again.get::<u64>("n").await.unwrap(), Some(1));

    // The handler's error is the future's error, and nothing is committed.
    let session = storage.get_session(None);
    session.insert("n", 2).await.unwrap();
    let failed = CommitAfter::new(ready(Err::<&str, _>("boom")), owner, |s| &**s, session);
    assert!(matches!(poll_once(failed), Some(Err("boom"))));
    assert_eq!(driver.counts().put, 1, "no write for a failed handler");
}

/// A store commit is boxed once per request that writes, and the box is copied whole: its
/// future stays small. Each async layer that took the changes by value kept its own copy
/// (3,072 bytes then; 2,472 since they are lent down the layers).
#[test]
fn a_store_commit_s_future_stays_under_two_and_a_half_kilobytes() {
    let (storage, _) = storage();
    let session = storage.get_session(None);
    let size = std::mem::size_of_val(&storage.commit_response(&session));
    assert!(size <= 2560, "the commit's future is {size} bytes");
}
