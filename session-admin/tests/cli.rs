//! `session-admin` against real stores, as an operator runs it: sessions written by an app on
//! fs are listed, shown redacted, revoked by handle and by user, swept, counted, migrated fs ->
//! SQLite -> Redis with counts checked (twice: a second run copies nothing), and still open in
//! the app on the new store; bad configs fail clearly without printing secrets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{process::Command, time::Duration};

use session_kit::{DynamicData, ExpiryPolicy, Keyring, SessionStorage};
use session_test_support::redis::RedisServer;

const SECRET: &str = "a secret of at least thirty-two bytes";

/// Runs `session-admin --driver <driver> <args>`: (exit code, stdout, stderr).
fn admin(driver: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_session-admin"))
        .arg("--driver")
        .arg(driver)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn storage(driver: &str, idle: Duration) -> SessionStorage<DynamicData> {
    session_kit::storage::<DynamicData>(driver)
        .await
        .unwrap()
        .keyring(Keyring::from_secrets([SECRET]).unwrap())
        .expiry(ExpiryPolicy::new().idle_timeout(Some(idle)))
        .build()
        .unwrap()
}

/// A session written by the app: its cookie.
async fn write(storage: &SessionStorage<DynamicData>, n: usize, user: Option<&str>) -> String {
    let session = storage.get_session(None);
    session.insert("n", n).await.unwrap();
    session.insert("password", "hunter2").await.unwrap();
    if let Some(user) = user {
        session.bind_user(user).await.unwrap();
        session
            .set_user_label("device", format!("device {n}"))
            .await
            .unwrap();
    }
    let set_cookie = storage.commit_session(&session).await.unwrap().unwrap();
    set_cookie.as_str().split(';').next().unwrap().to_owned()
}

fn lines(text: &str) -> usize {
    text.lines().filter(|l| !l.is_empty()).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operate_and_migrate_fs_to_sqlite_to_redis() {
    let dir = tempfile::tempdir().unwrap();
    let fs = format!("fs://{}/sessions", dir.path().display());
    let sqlite = format!("sqlite://{}/sessions.db", dir.path().display());
    let redis_server = RedisServer::start();
    let redis = redis_server.url();

    // 40 sessions for a day, 10 of them ada's, and 5 that end in a second.
    let app = storage(&fs, Duration::from_secs(86_400)).await;
    let mut cookies = Vec::new();
    for n in 0..40 {
        cookies.push(write(&app, n, (n < 10).then_some("ada")).await);
    }
    let short = storage(&fs, Duration::from_secs(1)).await;
    for n in 40..45 {
        write(&short, n, None).await;
    }

    let (code, out, _) = admin(&fs, &["list", "--limit", "1000"]);
    assert_eq!((code, lines(&out)), (0, 45), "{out}");
    let (_, out, _) = admin(&fs, &["list", "--user", "ada", "--json"]);
    assert_eq!(lines(&out), 10, "{out}");
    let first: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(first["user"], "ada");
    let handle = first["id_hash"].as_str().unwrap().to_owned();

    // Paged: 20 at a time, the cursor printed to go on.
    let mut seen = std::collections::BTreeSet::new();
    let mut cursor: Option<String> = None;
    for expected in [20, 20, 5] {
        let mut args = vec!["list", "--limit", "20"];
        if let Some(c) = &cursor {
            args.extend(["--cursor", c.as_str()]);
        }
        let (code, page, err) = admin(&fs, &args);
        assert_eq!((code, lines(&page)), (0, expected), "{page}{err}");
        seen.extend(
            page.lines()
                .map(|l| l.split(' ').next().unwrap().to_owned()),
        );
        cursor = err.split("--cursor ").nth(1).map(|c| c.trim().to_owned());
    }
    assert_eq!(
        (seen.len(), cursor),
        (45, None),
        "every session once, then no cursor"
    );

    // Shown with its secrets redacted, then revoked.
    let (code, shown, _) = admin(&fs, &["show", &handle]);
    assert_eq!(code, 0, "{shown}");
    assert!(
        shown.contains("[redacted]") && !shown.contains("hunter2"),
        "{shown}"
    );
    assert!(shown.contains("device"), "{shown}");
    assert_eq!(admin(&fs, &["revoke", &handle]).0, 0);
    assert_eq!(admin(&fs, &["show", &handle]).0, 1, "gone");
    assert_eq!(
        admin(&fs, &["revoke", &handle]).0,
        1,
        "nothing left to revoke"
    );
    let (_, out, _) = admin(&fs, &["revoke", "--user", "ada"]);
    assert!(out.contains("revoked 9 sessions of ada"), "{out}");
    assert!(app.get_session(Some(&cookies[0])).is_new().await.unwrap());

    // The short ones end, and a sweep deletes them.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (code, out, _) = admin(&fs, &["sweep"]);
    assert_eq!(code, 0);
    assert!(out.contains("swept 5 expired sessions"), "{out}");
    let (_, out, _) = admin(&fs, &["stats"]);
    assert!(out.contains("sessions: 30"), "{out}");
    assert!(out.contains("ending within a day: 30"), "{out}");

    // fs -> SQLite -> Redis, verified by count; a second run copies nothing more.
    let (code, out, err) = admin(&fs, &["migrate", "--to", &sqlite]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("copied 30 sessions") && out.contains("verified: the target has 30"),
        "{out}"
    );
    let (code, out, _) = admin(&fs, &["migrate", "--to", &sqlite]);
    assert_eq!(code, 0);
    assert!(
        out.contains("copied 0 sessions (30 were there already"),
        "{out}"
    );
    let (code, out, err) = admin(&sqlite, &["migrate", "--to", &redis]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("verified: the target has 30"), "{out}");
    assert!(admin(&redis, &["stats"]).1.contains("sessions: 30"));

    // The app, moved to Redis, still knows its visitors (same keyring, same keys, time left).
    let moved = storage(&redis, Duration::from_secs(86_400)).await;
    let visitor = moved.get_session(Some(&cookies[39]));
    assert_eq!(visitor.get::<usize>("n").await.unwrap(), Some(39));
    assert!(
        moved.get_session(Some(&cookies[0])).is_new().await.unwrap(),
        "revoked stays revoked"
    );
}

#[test]
fn bad_configs_fail_clearly_without_secrets() {
    let (code, _, err) = admin("nosuch://x", &["stats"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("cannot open") && err.contains("drivers compiled in"),
        "{err}"
    );
    let (code, _, err) = admin("redis://:hunter2@127.0.0.1:1", &["stats"]);
    assert_ne!(code, 0);
    assert!(!err.contains("hunter2"), "{err}");
    let (code, _, err) = admin("memory", &["show", "not-a-handle"]);
    assert_eq!(code, 2);
    assert!(err.contains("not a session handle"), "{err}");
}
