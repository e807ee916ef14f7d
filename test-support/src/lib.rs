//! Helpers for tests that run real servers: every process a test starts listens on a free
//! loopback port and ends with the test process, even when that process is killed.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a failure here is a test failure

mod down;
pub mod hostile;
mod outage;
mod proxy;
pub mod redis;
pub mod sql;

pub use down::DownDriver;
pub use outage::{OutageReport, load_through_outage};
pub use proxy::{HttpProxy, ProxyMode};

use std::{
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, Stdio},
    time::{Duration, Instant},
};

/// A TCP port on 127.0.0.1 that nothing is bound to, chosen below the kernel's ephemeral
/// range (`/proc/sys/net/ipv4/ip_local_port_range`).
///
/// A port from `bind(0)` comes from the ephemeral range, where every outgoing connection of
/// every process also takes its local port: between this call and the server binding it, a
/// client socket of a test running beside it can take it (a Redis Cluster node's bus port
/// did in CI, and the node exited with "Address already in use"). Below that range only a
/// listener can take it. Falls back to `bind(0)` when no port there is free.
pub fn free_port() -> u16 {
    let low = ephemeral_low();
    let first = low.saturating_sub(16_384).max(1024);
    if first < low {
        let span = u32::from(low - first);
        for _ in 0..200 {
            let candidate = first + u16::try_from(random_u32() % span).unwrap_or(0);
            if TcpListener::bind(("127.0.0.1", candidate)).is_ok() {
                return candidate;
            }
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The first port of the kernel's ephemeral range (Linux's default 32768 where it cannot
/// be read).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// A random number from the standard library's per-process hash keys (no generator needed
/// to pick a port).
fn random_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    // Truncation intended: any 32 bits of the hash are as random as the others.
    hasher.finish() as u32
}

/// Whether something accepts connections on `127.0.0.1:port`.
fn accepts_connections(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Waits until something accepts connections on `127.0.0.1:port`; panics after `limit`.
pub fn wait_for_port(port: u16, what: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    while !accepts_connections(port) {
        assert!(
            Instant::now() < deadline,
            "{what} did not start listening on port {port} within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Panics with `install` unless `program` exists (a path, or a name on `PATH`).
pub fn require_binary(program: &Path, install: &str) {
    assert!(
        located(program).is_some(),
        "{} not found: {install}",
        program.display()
    );
}

/// Where `program` is: itself when it is a path, else the first match on `PATH`.
fn located(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return program.exists().then(|| program.to_path_buf());
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}

/// A child process that ends when this test process ends, even if it is killed: a shell holds
/// it and sends it SIGTERM when our end of its stdin pipe closes. The shell exits when the
/// process does, so [`Tied::has_exited`] sees a server that could not start.
#[derive(Debug)]
pub struct Tied(Child);

impl Tied {
    /// Starts `program args` with extra environment variables; stdout is piped.
    pub fn spawn(program: &Path, args: &[String], envs: &[(&str, &str)]) -> Self {
        Self::spawn_logged(program, args, envs, None)
    }

    /// Like [`Tied::spawn`], with standard error appended to `log` (for chatty servers)
    /// instead of the test's own. The log is removed when the process is ended through its
    /// [`Tied`] (dropped, or the test process exiting): read it before, for example in the
    /// error of a server that did not start.
    pub fn spawn_logged(
        program: &Path,
        args: &[String],
        envs: &[(&str, &str)],
        log: Option<&Path>,
    ) -> Self {
        let stderr = match log {
            Some(path) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display())),
            ),
            None => Stdio::inherit(),
        };
        let mut command = Command::new("sh");
        command
            .arg("-c")
            // The program runs in the background; a watcher reads our stdin pipe (fd 3: a
            // background job's own stdin is /dev/null), kills it at end of file and removes
            // its log (`$1`, when not empty); the shell waits for the program, so it ends with
            // it and with its exit status. The shell's own stderr is then closed to the test
            // (the program keeps it): `dash` would print "Terminated" for each program ended.
            .arg(concat!(
                "log=$1; shift; exec 3<&0; ",
                r#""$@" 3<&- & p=$!; "#,
                r#"{ cat <&3; kill $p; [ -z "$log" ] || rm -f "$log"; } >/dev/null 2>&1 & "#,
                "exec 3<&- 2>/dev/null; wait $p",
            ))
            .arg("tied")
            .arg(log.map(Path::as_os_str).unwrap_or_default())
            .arg(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr);
        for (k, v) in envs {
            command.env(k, v);
        }
        Self(
            command
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display())),
        )
    }

    /// The child's standard output (once).
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.0.stdout.take()
    }

    /// Whether the process has exited by itself (for example a server whose port was
    /// taken).
    pub fn has_exited(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(Some(_)))
    }

    /// Kills the process at once (SIGKILL: a crash, with no clean-up of its own) and waits
    /// for it to be gone.
    pub fn crash(&mut self) {
        // The shell's children: the program, and the watcher (whose `cat` ends when this
        // handle closes its pipe).
        let shell = self.0.id();
        let children = std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children"))
            .unwrap_or_default();
        // Without its program killed, the shell would wait for it: fail instead of hanging.
        assert!(
            !children.trim().is_empty() || self.has_exited(),
            "cannot find the program of shell {shell} in /proc to kill it"
        );
        for pid in children.split_whitespace() {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
        let _ = self.0.wait();
    }

    /// Ends the process (SIGTERM) and waits for it.
    pub fn stop(mut self) {
        self.end();
    }

    fn end(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

impl Drop for Tied {
    fn drop(&mut self) {
        self.end();
    }
}

/// The Redis binaries: `$REDIS_SERVER` / `$REDIS_CLI`, or `redis-server` / `redis-cli` on `PATH`.
/// Panics with the install command when missing.
pub fn redis_binary(tool: &str) -> PathBuf {
    let var = if tool == "redis-cli" {
        "REDIS_CLI"
    } else {
        "REDIS_SERVER"
    };
    let path = PathBuf::from(std::env::var(var).unwrap_or_else(|_| tool.into()));
    require_binary(
        &path,
        "install Redis: sudo apt-get install -y redis-server \
         (or run `bash scripts/test`, which installs it), or set REDIS_SERVER and REDIS_CLI",
    );
    path
}

/// A `redis-server` without persistence on `127.0.0.1:port`, working in `dir`, with extra
/// arguments (for example cluster options); listening when this returns. Panics when it
/// cannot start (use [`redis_server`] or [`redis::RedisServer::start`] for a server on
/// whichever free port works).
pub fn redis_server_on(port: u16, dir: &Path, extra: &[String]) -> Tied {
    try_redis_server_on(port, dir, extra).unwrap_or_else(|why| panic!("{why}"))
}

/// [`redis_server_on`], or why the server did not start (it exited, for example because a
/// port was taken, or did not listen within ten seconds).
pub(crate) fn try_redis_server_on(port: u16, dir: &Path, extra: &[String]) -> Result<Tied, String> {
    let mut args: Vec<String> = [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        &dir.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().cloned());
    let mut server = Tied::spawn(&redis_binary("redis-server"), &args, &[]);
    // Answering PING, not only accepting connections: something else may listen on a port
    // taken since free_port, and Redis opens its listeners (the cluster bus's too) before
    // it answers.
    until_ready(&mut server, "redis-server", port, None, 10, || {
        answers_ping(port)
    })?;
    Ok(server)
}

/// Waits until `ready` says the server `what` on `port` answers (polling every 50 ms), or
/// says why not: it exited (a port taken, for example) or did not answer within
/// `limit_secs`. Either way the error carries its log, if it has one (else its standard
/// error is the test's).
pub(crate) fn until_ready(
    process: &mut Tied,
    what: &str,
    port: u16,
    log: Option<&Path>,
    limit_secs: u64,
    mut ready: impl FnMut() -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(limit_secs);
    while !ready() {
        let why = if process.has_exited() {
            "exited before it answered"
        } else if Instant::now() >= deadline {
            "did not become ready"
        } else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        return Err(format!(
            "{what} on port {port} {why}: {}",
            log.and_then(|log| std::fs::read_to_string(log).ok())
                .unwrap_or_default()
        ));
    }
    Ok(())
}

/// Whether a Redis server on `port` answers `PING` with `+PONG`.
fn answers_ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let mut reply = [0u8; 7];
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .is_ok()
        && stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}

/// Starts a server on fresh free ports until one starts: `start` is given a free port and
/// picks any other port it needs itself. Between [`free_port`] and the server binding, a
/// port can be taken by another test; five tries make that a non-event.
pub(crate) fn on_free_ports<T>(mut start: impl FnMut(u16) -> Result<T, String>) -> T {
    let mut failures = Vec::new();
    for _ in 0..5 {
        match start(free_port()) {
            Ok(server) => return server,
            Err(why) => failures.push(why),
        }
    }
    panic!("no server started in five tries: {}", failures.join("; "))
}

/// A throwaway `redis-server` on a free loopback port, working in `dir`; it runs while the
/// returned handle lives.
pub fn redis_server(dir: &Path) -> (Tied, u16) {
    on_free_ports(|port| try_redis_server_on(port, dir, &[]).map(|server| (server, port)))
}

/// The `moto_server` binary (an S3-compatible server from PyPI): `$MOTO_SERVER`, the
/// workspace's `.venv-moto` (where `scripts/test` installs it), or `moto_server` on `PATH`.
/// Panics with the install command when missing.
pub fn moto_binary() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv-moto/bin/moto_server");
    let path = match std::env::var_os("MOTO_SERVER") {
        Some(path) => PathBuf::from(path),
        None if venv.exists() => venv,
        None => PathBuf::from("moto_server"),
    };
    require_binary(
        &path,
        "install moto: python3 -m venv .venv-moto && .venv-moto/bin/pip install 'moto[server]' \
         (in the workspace root; `bash scripts/test` does it), or set MOTO_SERVER",
    );
    path
}

/// moto's app served as `moto_server` serves it, but one request at a time. `moto_server`
/// runs requests on threads, and its `PutObject` checks `If-None-Match: *` and `If-Match`
/// before it writes, without a lock: two racing conditional writes can both succeed (the
/// conformance suite's create-only race caught it in CI, 2 of 8 racers in one round), where S3
/// applies each atomically. Serialised, moto's conditional writes are atomic too.
const MOTO_ONE_AT_A_TIME: &str = r#"
import os, sys, threading
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

host, port = sys.argv[1], sys.argv[2]
os.environ.setdefault("MOTO_PORT", port)
app = DomainDispatcherApplication(create_backend_app)
app.debug = True
lock = threading.Lock()

def one_at_a_time(environ, start_response):
    with lock:
        return list(app(environ, start_response))

run_simple(host, int(port), one_at_a_time, threaded=True)
"#;

/// The Python that runs moto: the one [`moto_binary`]'s first line names (a console script's
/// interpreter), else the `python3` beside it (a virtualenv's, as in the workspace's
/// `.venv-moto`, whose scripts start with `#!/bin/sh` under a long path), else `python3` on
/// `PATH` (where a `moto_server` on `PATH` is a wrapper, such as pyenv's shim).
fn moto_python() -> PathBuf {
    let script = located(&moto_binary());
    let first_line = script
        .as_deref()
        .and_then(|path| std::fs::read(path).ok())
        .and_then(|bytes| {
            let line = bytes.split(|b| *b == b'\n').next()?;
            String::from_utf8(line.to_vec()).ok()
        })
        .unwrap_or_default();
    if let Some(interpreter) = first_line.strip_prefix("#!").map(str::trim)
        && interpreter.contains("python")
        && !interpreter.contains(' ')
    {
        return PathBuf::from(interpreter);
    }
    script
        .and_then(|path| Some(path.parent()?.join("python3")))
        .filter(|beside| beside.is_file())
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// The environment variable naming the lock file through which processes take turns with
/// moto (see [`moto`]).
pub const MOTO_LOCK_ENV: &str = "SESSION_MOTO_LOCK";

/// Waits for, then holds, the exclusive lock on the file `$SESSION_MOTO_LOCK` names (created if
/// missing); `None` when the variable is unset. The lock ends when the file is dropped or the
/// process exits.
fn moto_turn() -> Option<std::fs::File> {
    let path = PathBuf::from(std::env::var_os(MOTO_LOCK_ENV)?);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("opening the moto lock file {}: {e}", path.display()));
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            eprintln!(
                "waiting for the moto lock {} (another process is using moto)",
                path.display()
            );
            file.lock()
                .unwrap_or_else(|e| panic!("locking {}: {e}", path.display()));
        }
        Err(std::fs::TryLockError::Error(e)) => panic!("locking {}: {e}", path.display()),
    }
    Some(file)
}

/// An S3 server (moto's, in memory, serving one request at a time because its conditional
/// writes are not atomic) on a free loopback port, shared by every test of the test binary;
/// it ends with the test process. Its request log goes to `$TMPDIR/moto-<port>.log`, removed
/// when the test process exits.
///
/// moto answers in Python on one core: several processes loading their own moto at once
/// starve each other (a listing that takes 3 s alone timed out at 10 s with three other test
/// binaries running). When `$SESSION_MOTO_LOCK` names a file (`scripts/parallel-tests` and
/// `scripts/conformance-reports` set it), the first call waits for an exclusive lock on it
/// and the process keeps it until it exits: processes that use moto take turns, whoever
/// schedules them.
pub fn moto() -> &'static Moto {
    static MOTO: std::sync::OnceLock<Moto> = std::sync::OnceLock::new();
    MOTO.get_or_init(|| {
        let turn = moto_turn();
        let (process, port) = on_free_ports(|port| {
            let log = std::env::temp_dir().join(format!("moto-{port}.log"));
            let mut process = Tied::spawn_logged(
                &moto_python(),
                &[
                    "-c".into(),
                    MOTO_ONE_AT_A_TIME.into(),
                    "127.0.0.1".into(),
                    port.to_string(),
                ],
                &[],
                Some(&log),
            );
            until_ready(&mut process, "moto", port, Some(&log), 30, || {
                accepts_connections(port)
            })?;
            Ok((process, port))
        });
        Moto {
            _process: process,
            _turn: turn,
            port,
        }
    })
}

/// A running moto S3 server; see [`moto`].
#[derive(Debug)]
pub struct Moto {
    _process: Tied,
    /// The lock of [`moto_turn`], held while this process uses moto.
    _turn: Option<std::fs::File>,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Moto {
    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a new, empty bucket and returns its name.
    pub fn bucket(&self) -> String {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!(
            "sessions-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let (status, body) = http_request(self.port, "PUT", &format!("/{name}"), b"");
        assert_eq!(status, 200, "creating bucket {name}: {body}");
        name
    }
}

/// Sends one HTTP/1.1 request to `127.0.0.1:port` and returns the status code and body.
pub fn http_request(port: u16, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let response = http_exchange(port, method, path, &[], body);
    (response.status, response.body)
}

/// An HTTP response read by [`http_exchange`].
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub body: String,
}

impl HttpResponse {
    /// Every value of a header.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Sends one HTTP/1.1 request with extra headers to `127.0.0.1:port` (one connection, closed
/// after the response).
pub fn http_exchange(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    try_http_exchange(port, method, path, headers, body)
        .unwrap_or_else(|e| panic!("{method} {path} on port {port}: {e}"))
}

/// [`http_exchange`], with a connection that failed (refused, reset, timed out) or an answer
/// that is not HTTP as an error: for tests where a server may be gone.
pub fn try_http_exchange(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    let headers: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
    try_raw_http_exchange(port, method, path, &headers, body)
}

/// [`try_http_exchange`] with header values as bytes, sent as given (not UTF-8, control
/// characters, megabytes): for tests of hostile requests. A server may answer such a request
/// before it has read all of it and close the connection: a failed write is an error only if
/// no answer can be read.
pub fn try_raw_http_exchange(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    )
    .into_bytes();
    for (name, value) in headers {
        request.extend_from_slice(name.as_bytes());
        request.extend_from_slice(b": ");
        request.extend_from_slice(value);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    request.extend_from_slice(body);
    let written = stream.write_all(&request);
    let mut response = Vec::new();
    let read = stream.read_to_end(&mut response);
    if response.is_empty() {
        written?;
        read?;
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not an HTTP response: {text:?}"),
            )
        })?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = text
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// Decodes a chunked body.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// The folder with the Miniflare launcher and its `node_modules`.
pub fn miniflare_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../driver-cloudflare-kv/miniflare")
}

/// Starts Miniflare (workerd) through `driver-cloudflare-kv/miniflare/launch.mjs` with `args`
/// (`rest`, or `worker DIR`) on a free loopback port; it runs while the returned handle lives.
/// Panics with the install command when node or Miniflare is missing.
pub fn miniflare(args: &[String], envs: &[(&str, &str)]) -> (Tied, u16) {
    let dir = miniflare_dir();
    require_binary(
        Path::new("node"),
        "install Node.js 20 or later (sudo apt-get install -y nodejs npm)",
    );
    require_binary(
        &dir.join("node_modules/miniflare/package.json"),
        &format!(
            "install Miniflare: (cd {} && npm ci) (`bash scripts/test` does it)",
            dir.display()
        ),
    );
    let mut launch_args = vec![dir.join("launch.mjs").display().to_string()];
    launch_args.extend_from_slice(args);
    on_free_ports(|port| {
        let port_text = port.to_string();
        let mut all_envs = vec![("PORT", port_text.as_str())];
        all_envs.extend_from_slice(envs);
        let mut process = Tied::spawn(Path::new("node"), &launch_args, &all_envs);
        until_ready(&mut process, "miniflare", port, None, 60, || {
            accepts_connections(port)
        })?;
        Ok((process, port))
    })
}

/// The account id the KV REST Worker of [`miniflare_kv_rest`] serves.
pub const KV_ACCOUNT: &str = "0123456789abcdef";
/// The namespace id it serves.
pub const KV_NAMESPACE: &str = "sessions-ns";
/// The API token it accepts.
pub const KV_TOKEN: &str = "test-token-1234";

/// Miniflare serving Cloudflare's KV REST API ([`KV_ACCOUNT`], [`KV_NAMESPACE`], [`KV_TOKEN`])
/// over a real KV binding, on a free loopback port (see [`miniflare`]).
pub fn miniflare_kv_rest() -> (Tied, u16) {
    miniflare(
        &["rest".into()],
        &[
            ("CF_ACCOUNT_ID", KV_ACCOUNT),
            ("CF_NAMESPACE_ID", KV_NAMESPACE),
            ("CF_API_TOKEN", KV_TOKEN),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `script` run by `sh`, its standard error logged to `server.log` in the returned
    /// directory.
    fn logged_sh(script: &str) -> (tempfile::TempDir, PathBuf, Tied) {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("server.log");
        let process = Tied::spawn_logged(
            Path::new("sh"),
            &["-c".into(), script.into()],
            &[],
            Some(&log),
        );
        (dir, log, process)
    }

    /// A logged server's log is there while it runs (for the error of a server that did not
    /// start) and gone once its handle ends it: test runs leave no logs behind.
    #[test]
    fn a_tied_process_ends_with_its_handle_and_takes_its_log_along() {
        let (_dir, log, mut process) = logged_sh("echo started >&2; exec sleep 60");
        wait_for("the program did not write its log", || {
            std::fs::read_to_string(&log).is_ok_and(|text| text == "started\n")
        });
        assert!(!process.has_exited());
        let started = Instant::now();
        drop(process);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the program outlived its handle"
        );
        wait_for("the log outlived the program", || !log.exists());
    }

    /// A crash kills the program itself, at once, with SIGKILL (a program that ignores
    /// SIGTERM dies all the same), and the handle sees it gone.
    #[test]
    fn a_crash_kills_the_program_outright() {
        let (_dir, log, mut process) = logged_sh("trap '' TERM; echo started >&2; exec sleep 60");
        wait_for("the program did not start", || {
            std::fs::read_to_string(&log).is_ok_and(|text| text == "started\n")
        });
        let started = Instant::now();
        process.crash();
        assert!(process.has_exited());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "it outlived the crash"
        );
    }

    /// A program that exits by itself is seen to have exited, and its log can still be read.
    #[test]
    fn a_tied_process_that_exits_is_seen_and_keeps_its_log_until_dropped() {
        let (_dir, log, mut process) = logged_sh("echo failed >&2; exit 3");
        wait_for("the exit was not seen", || process.has_exited());
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "failed\n");
        drop(process);
        wait_for("the log outlived the handle", || !log.exists());
    }
}
