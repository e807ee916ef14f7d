//! The harness's moto serves one request at a time: a request waits while another is in the
//! app, so that moto's check-then-write conditional puts cannot interleave (they do on a bare
//! `moto_server`, whose threads run requests side by side).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{Read, Write},
    net::TcpStream,
    sync::mpsc,
    time::Duration,
};

use session_test_support::{http_request, moto};

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
