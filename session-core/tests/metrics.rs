//! What the session layer reports through the `metrics` facade (feature `metrics`; on in the
//! workspace's test run, where session-kit's `metrics` feature is enabled by the demo).
#![cfg(feature = "metrics")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use metrics_util::{
    CompositeKey,
    debugging::{DebugValue, DebuggingRecorder},
};
use session_kit_core::{DynamicData, Keyring, SessionStorage, metrics as names};
use session_kit_memory::MemoryDriver;

/// One snapshot (taking it resets the recorder's counters).
type Snapshot = Vec<(
    CompositeKey,
    Option<metrics::Unit>,
    Option<metrics::SharedString>,
    DebugValue,
)>;

/// The value of counter `name` with exactly these labels (0 when never incremented).
fn counter(snapshot: &Snapshot, name: &str, labels: &[(&str, &str)]) -> u64 {
    snapshot
        .iter()
        .filter(|(key, ..)| {
            let key = key.key();
            let mut got: Vec<(String, String)> = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            let mut want: Vec<(String, String)> = labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            got.sort();
            want.sort();
            key.name() == name && got == want
        })
        .map(|(.., value)| match value {
            DebugValue::Counter(n) => *n,
            other => panic!("{name} is not a counter: {other:?}"),
        })
        .sum()
}

/// Samples recorded in histogram `name` with these labels.
fn samples(snapshot: &Snapshot, name: &str, labels: &[(&str, &str)]) -> usize {
    snapshot
        .iter()
        .filter(|(key, ..)| {
            let key = key.key();
            key.name() == name
                && labels
                    .iter()
                    .all(|(k, v)| key.labels().any(|l| l.key() == *k && l.value() == *v))
        })
        .map(|(.., value)| match value {
            DebugValue::Histogram(v) => v.len(),
            other => panic!("{name} is not a histogram: {other:?}"),
        })
        .sum()
}

fn storage(driver: Arc<MemoryDriver>) -> SessionStorage<DynamicData> {
    SessionStorage::builder(driver)
        .keyring(Keyring::from_secrets(["a secret of at least thirty-two bytes"]).unwrap())
        .build()
        .unwrap()
}

/// What `run` reports, recorded on this thread (a current-thread runtime keeps every task on
/// it).
fn recorded(run: impl std::future::Future<Output = ()>) -> Snapshot {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || runtime.block_on(run));
    snapshotter.snapshot().into_vec()
}

fn cookie(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

#[test]
fn loads_commits_merges_errors_and_store_operations_are_counted() {
    let snapshot = recorded(async {
        let driver = Arc::new(MemoryDriver::new());
        let (a, b) = (storage(driver.clone()), storage(driver.clone()));

        // A new visitor's first write.
        let s = a.get_session(None);
        s.insert("n", 1).await.unwrap();
        let c = cookie(a.commit_session(&s).await.unwrap().unwrap().as_str());

        // Two app servers load the same session; b commits first, so a's compare-and-swap
        // meets b's change and merges it.
        let on_a = a.get_session(Some(&c));
        let on_b = b.get_session(Some(&c));
        on_a.update(|d| d.insert("a".into(), 1.into()))
            .await
            .unwrap();
        on_b.update(|d| d.insert("b".into(), 1.into()))
            .await
            .unwrap();
        b.commit_session(&on_b).await.unwrap();
        a.commit_session(&on_a).await.unwrap();

        // A forged cookie, and a signed one whose record is gone.
        let forged = a.get_session(Some("session=AAAA.BBBB"));
        assert!(forged.is_new().await.unwrap());
        a.destroy_session(&a.get_session(Some(&c))).await.unwrap();
        assert!(a.get_session(Some(&c)).is_new().await.unwrap());

        // A session used but not changed: a commit that writes nothing.
        let idle = a.get_session(None);
        idle.is_new().await.unwrap();
        a.commit_session(&idle).await.unwrap();
    });
    let c = |name, labels: &[(&str, &str)]| counter(&snapshot, name, labels);
    assert_eq!(c(names::LOADS, &[("outcome", "new")]), 2);
    assert_eq!(
        c(names::LOADS, &[("outcome", "found")]),
        2,
        "on_a and on_b (destroy needs no load)"
    );
    assert_eq!(c(names::LOADS, &[("outcome", "invalid")]), 1);
    assert_eq!(c(names::LOADS, &[("outcome", "not_found")]), 1);
    assert_eq!(c(names::COMMITS, &[("outcome", "create")]), 1);
    assert_eq!(c(names::COMMITS, &[("outcome", "update")]), 2);
    assert_eq!(c(names::COMMITS, &[("outcome", "nothing")]), 1);
    assert_eq!(c(names::COMMITS, &[("outcome", "destroy")]), 1);
    assert_eq!(c(names::CONFLICTS_MERGED, &[]), 1);
    let ok_puts = c(
        names::STORE_OPERATIONS,
        &[
            ("driver", "memory"),
            ("operation", "put"),
            ("outcome", "ok"),
        ],
    );
    let conflicts = c(
        names::STORE_OPERATIONS,
        &[
            ("driver", "memory"),
            ("operation", "put"),
            ("outcome", "conflict"),
        ],
    );
    assert_eq!(
        (ok_puts, conflicts),
        (3, 1),
        "create, b's write, a's merged write; a's first try"
    );
    // on_a, on_b and the load after destroy; the forged cookie costs no read, the merge reads
    // with get_latest.
    let gets = samples(
        &snapshot,
        names::STORE_DURATION,
        &[("driver", "memory"), ("operation", "get")],
    );
    assert_eq!(gets, 3);
    assert_eq!(
        c(
            names::ERRORS,
            &[("during", "commit"), ("kind", "store_unavailable")]
        ),
        0
    );
}

#[test]
fn errors_are_counted_by_kind() {
    let snapshot = recorded(async {
        // A cookie-only session grown past what a browser keeps.
        let storage = SessionStorage::<DynamicData>::cookie_only()
            .keyring(Keyring::from_secrets(["a secret of at least thirty-two bytes"]).unwrap())
            .build()
            .unwrap();
        let s = storage.get_session(None);
        s.insert("big", "x".repeat(5000)).await.unwrap();
        assert!(storage.commit_session(&s).await.is_err());
    });
    assert_eq!(
        counter(
            &snapshot,
            names::ERRORS,
            &[("during", "commit"), ("kind", "cookie_too_large")]
        ),
        1
    );
}
