//! The harness's moto serves one request at a time: a request waits while another is in the
//! app, so that moto's check-then-write conditional puts cannot interleave (they do on a bare
//! `moto_server`, whose threads run requests side by side). And processes that use moto take
//! turns through the lock file `SESSION_MOTO_LOCK` names.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use session_test_support::{MOTO_LOCK_ENV, http_request, moto};

#[test]
fn a_request_waits_for_the_one_in_progress() {
    let server = moto();
    let bucket = server.bucket();

    // A put whose body is half sent: moto is inside its handler, reading the body.
    let mut slow = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        slow,
        "PUT /{bucket}/slow HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 10\r\nConnection: close\r\n\r\n01234",
        server.port
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let port = server.port;
    let (done, listed) = mpsc::channel();
    let other = std::thread::spawn(move || {
        let _ = done.send(http_request(port, "GET", &format!("/{bucket}"), b""));
    });
    assert!(
        listed.recv_timeout(Duration::from_secs(1)).is_err(),
        "a second request was answered while the first was still in moto's handler"
    );

    slow.write_all(b"56789").unwrap();
    let mut response = String::new();
    slow.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let (status, body) = listed.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<Key>slow</Key>"), "{body}");
    other.join().unwrap();
}

#[test]
fn a_process_waits_for_its_turn_with_moto() {
    let dir = tempfile::tempdir().unwrap();
    let lock_path = dir.path().join("moto.lock");
    // Another process's turn: the lock is held here.
    let held = std::fs::File::create(&lock_path).unwrap();
    held.lock().unwrap();

    let mut server = Command::new(env!("CARGO_BIN_EXE_test-server"))
        .arg("moto")
        .env(MOTO_LOCK_ENV, &lock_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (url_tx, url) = mpsc::channel();
    let stdout = server.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let _ = url_tx.send(line.unwrap_or_default());
        }
    });
    let (said_tx, said) = mpsc::channel();
    let stderr = server.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let _ = said_tx.send(line.unwrap_or_default());
        }
    });

    let waiting = said.recv_timeout(Duration::from_secs(30));
    let early = url.recv_timeout(Duration::from_secs(2));
    drop(held);
    let started = url.recv_timeout(Duration::from_secs(60));
    let _ = server.kill();
    let _ = server.wait();

    let waiting = waiting.expect("test-server said nothing while the lock was held");
    assert!(waiting.contains("waiting for the moto lock"), "{waiting}");
    assert!(
        early.is_err(),
        "moto started while another process held the lock: {early:?}"
    );
    let started = started.expect("moto did not start once the lock was free");
    assert!(started.starts_with("http://127.0.0.1:"), "{started}");
}
