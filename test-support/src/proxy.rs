//! A loopback HTTP/1.1 proxy that breaks a real server in controlled ways.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{Shutdown, TcpListener, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    thread,
};

/// What the proxy does with each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// Forwards requests unchanged.
    Forward,
    /// Forwards requests without their `If-Match` and `If-None-Match` headers, like a server
    /// that ignores conditional writes.
    StripConditions,
    /// Answers every request itself with this status and an S3-style XML error body.
    Respond(u16),
    /// Answers every request itself with `429 Too Many Requests` and `Retry-After` of this
    /// many seconds.
    Throttle(u16),
    /// Closes the connection of every request without an answer, like a server that went
    /// away (requests already forwarded are answered).
    Cut,
}

/// A proxy on a free loopback port in front of `127.0.0.1:upstream`; it lives as long as the
/// test process.
#[derive(Debug, Clone)]
pub struct HttpProxy {
    /// The proxy's own port.
    pub port: u16,
    mode: Arc<Mutex<ProxyMode>>,
    requests: Arc<AtomicU64>,
}

impl HttpProxy {
    /// Starts forwarding to `127.0.0.1:upstream`.
    pub fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy = Self {
            port: listener.local_addr().unwrap().port(),
            mode: Arc::new(Mutex::new(ProxyMode::Forward)),
            requests: Arc::new(AtomicU64::new(0)),
        };
        let shared = proxy.clone();
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let shared = shared.clone();
                thread::spawn(move || shared.serve(client, upstream));
            }
        });
        proxy
    }

    /// Changes what the proxy does from the next request on.
    pub fn set_mode(&self, mode: ProxyMode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// Requests seen so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    fn serve(&self, client: TcpStream, upstream: u16) {
        let mut reader = BufReader::new(client.try_clone().unwrap());
        let mut to_client = client;
        let mut server: Option<TcpStream> = None;
        while let Some((head, body)) = read_request(&mut reader) {
            self.requests.fetch_add(1, Ordering::SeqCst);
            let mode = *self.mode.lock().unwrap();
            if mode == ProxyMode::Cut {
                let _ = to_client.shutdown(Shutdown::Both);
                break;
            }
            if let ProxyMode::Throttle(secs) = mode {
                let response = format!(
                    "HTTP/1.1 429 Too Many Requests\r\nRetry-After: {secs}\r\nContent-Length: 0\r\n\r\n"
                );
                if to_client.write_all(response.as_bytes()).is_err() {
                    break;
                }
                continue;
            }
            if let ProxyMode::Respond(status) = mode {
                let code = match status {
                    403 => "AccessDenied",
                    404 => "NoSuchBucket",
                    412 => "PreconditionFailed",
                    503 => "SlowDown",
                    _ => "InternalError",
                };
                let body = format!(
                    "<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>injected</Message></Error>"
                );
                let response = format!(
                    "HTTP/1.1 {status} Injected\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                if to_client.write_all(response.as_bytes()).is_err() {
                    break;
                }
                continue;
            }
            if server.is_none() {
                let Ok(stream) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    break;
                };
                let mut from_server = stream.try_clone().unwrap();
                let mut back = to_client.try_clone().unwrap();
                thread::spawn(move || {
                    let _ = std::io::copy(&mut from_server, &mut back);
                    let _ = back.shutdown(Shutdown::Both);
                });
                server = Some(stream);
            }
            let head: String = head
                .lines()
                .filter(|line| {
                    let lower = line.to_ascii_lowercase();
                    !(mode == ProxyMode::StripConditions
                        && (lower.starts_with("if-match:") || lower.starts_with("if-none-match:")))
                })
                .map(|line| format!("{line}\r\n"))
                .collect();
            let Some(stream) = server.as_mut() else { break };
            if stream.write_all(head.as_bytes()).is_err()
                || stream.write_all(b"\r\n").is_err()
                || stream.write_all(&body).is_err()
            {
                break;
            }
        }
        if let Some(stream) = server {
            let _ = stream.shutdown(Shutdown::Write);
        }
    }
}

/// One request: its head (without the blank line) and its body (`Content-Length` bodies only).
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<(String, Vec<u8>)> {
    let mut head = String::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(value) = lower.strip_prefix("content-length:") {
            length = value.trim().parse().ok()?;
        }
        assert!(
            !lower.starts_with("transfer-encoding:"),
            "the test proxy only handles Content-Length bodies"
        );
        head.push_str(line);
        head.push('\n');
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    Some((head, body))
}
