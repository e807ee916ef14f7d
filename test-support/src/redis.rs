//! Real Redis servers and clusters for tests, on free loopback ports, ended with the test
//! process.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
    time::{Duration, Instant},
};

use crate::{Tied, free_port, on_free_ports, redis_binary, try_redis_server_on};

fn cli_binary() -> PathBuf {
    redis_binary("redis-cli")
}

/// Arguments for a server whose data outlives a restart: every write appended to its log and
/// flushed, the log read again on start.
const PERSISTENT: [&str; 4] = ["--appendonly", "yes", "--appendfsync", "always"];

/// One `redis-server` process, killable and restartable on its port; without persistence
/// unless started with [`RedisServer::start_persistent`].
#[derive(Debug)]
pub struct RedisServer {
    process: Option<Tied>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    _tmp: Option<tempfile::TempDir>,
}

impl RedisServer {
    /// A server on a free port, in a temporary directory of its own.
    pub fn start() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let mut server = Self::start_fresh(tmp.path(), Vec::new);
        server._tmp = Some(tmp);
        server
    }

    /// A server on a free port whose data outlives [`kill`](Self::kill) and
    /// [`restart`](Self::restart), as a production Redis's would: every write is appended to
    /// its log and flushed (`appendfsync always`), and the log is read again on restart.
    pub fn start_persistent() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let mut server = Self::start_fresh(tmp.path(), || PERSISTENT.map(String::from).to_vec());
        server._tmp = Some(tmp);
        server
    }

    /// A server on `port`, working in `dir`, with extra arguments; answering when this returns.
    /// Panics when it cannot start (the port taken, for example).
    pub fn start_in(port: u16, dir: &Path, extra: Vec<String>) -> Self {
        Self::try_start_in(port, dir, extra).unwrap_or_else(|why| panic!("{why}"))
    }

    /// A server on a free port, working in `dir`, with the extra arguments `extra` gives
    /// (asked again for each try, so ports it names are fresh too).
    fn start_fresh(dir: &Path, mut extra: impl FnMut() -> Vec<String>) -> Self {
        on_free_ports(|port| Self::try_start_in(port, dir, extra()))
    }

    fn try_start_in(port: u16, dir: &Path, extra: Vec<String>) -> Result<Self, String> {
        let process = try_redis_server_on(port, dir, &extra)?;
        let server = Self {
            process: Some(process),
            port,
            dir: dir.to_path_buf(),
            extra,
            _tmp: None,
        };
        Ok(server)
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A server that also speaks TLS on a second port ([`tls_url`](Self::tls_url)), with a
    /// certificate for `127.0.0.1` and `localhost` from a throwaway authority
    /// ([`ca_file`](Self::ca_file), made with the `openssl` command); the plain port stays
    /// for `redis-cli`.
    pub fn start_tls() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        crate::sql::make_certificates(&dir, None);
        let path = |name: &str| dir.join(name).display().to_string();
        let extra = || {
            vec![
                "--tls-port".into(),
                free_port().to_string(),
                "--tls-cert-file".into(),
                path("server.pem"),
                "--tls-key-file".into(),
                path("server.key"),
                "--tls-ca-cert-file".into(),
                path("ca.pem"),
                "--tls-auth-clients".into(),
                "no".into(),
            ]
        };
        let mut server = Self::start_fresh(&dir, extra);
        server._tmp = Some(tmp);
        server
    }

    /// `rediss://127.0.0.1:TLS_PORT` of a server from [`start_tls`](Self::start_tls).
    pub fn tls_url(&self) -> String {
        let port = self
            .extra
            .iter()
            .position(|a| a == "--tls-port")
            .and_then(|i| self.extra.get(i + 1))
            .expect("a server started with start_tls");
        format!("rediss://127.0.0.1:{port}")
    }

    /// The authority that signed a [`start_tls`](Self::start_tls) server's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// Runs `redis-cli` against this server and returns what it printed.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(cli_binary())
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Kills the server (the port stays reserved for `restart`).
    pub fn kill(&mut self) {
        if let Some(p) = self.process.take() {
            p.stop();
        }
    }

    /// Starts the server again on the same port.
    pub fn restart(&mut self) {
        let again = Self::start_in(self.port, &self.dir.clone(), self.extra.clone());
        self.process = again.process_take();
    }

    fn process_take(mut self) -> Option<Tied> {
        self.process.take()
    }
}

/// One server shared by every test of this binary.
pub fn shared() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(RedisServer::start)
}

/// A cluster of three primaries, shared by every test of this binary.
pub fn shared_cluster() -> &'static RedisCluster {
    static CLUSTER: OnceLock<RedisCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| RedisCluster::start(3))
}

/// A Redis Cluster of primaries without replicas, each its own [`RedisServer`].
#[derive(Debug)]
pub struct RedisCluster {
    /// The primaries.
    pub nodes: Vec<RedisServer>,
    _tmp: tempfile::TempDir,
}

impl RedisCluster {
    /// A cluster of `primaries` nodes, every node reporting `cluster_state:ok`.
    pub fn start(primaries: usize) -> Self {
        Self::start_with(primaries, &[])
    }

    /// [`start`](Self::start) with nodes whose data outlives [`kill`](Self::kill) and
    /// [`restart`](Self::restart) (as [`RedisServer::start_persistent`]'s).
    pub fn start_persistent(primaries: usize) -> Self {
        Self::start_with(primaries, &PERSISTENT)
    }

    /// Kills every node (their ports stay reserved for `restart`).
    pub fn kill(&mut self) {
        self.nodes.iter_mut().for_each(RedisServer::kill);
    }

    /// Starts every node again on its ports, with its cluster configuration (answering
    /// `PING` when this returns; the cluster takes a moment more to report `cluster_state:ok`).
    pub fn restart(&mut self) {
        self.nodes.iter_mut().for_each(RedisServer::restart);
    }

    fn start_with(primaries: usize, extra: &[&str]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let nodes: Vec<RedisServer> = (0..primaries)
            .map(|i| {
                let dir = tmp.path().join(format!("node{i}"));
                std::fs::create_dir_all(&dir).unwrap();
                // The cluster bus defaults to port + 10000, which overflows for high
                // ephemeral ports: give it a free port of its own.
                RedisServer::start_fresh(&dir, || {
                    let mut args = vec![
                        "--cluster-enabled".into(),
                        "yes".into(),
                        "--cluster-config-file".into(),
                        "nodes.conf".into(),
                        "--cluster-port".into(),
                        free_port().to_string(),
                    ];
                    args.extend(extra.iter().map(|a| a.to_string()));
                    args
                })
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new(cli_binary())
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        for node in &nodes {
            while !node.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok") {
                assert!(
                    Instant::now() < deadline,
                    "the cluster did not reach cluster_state:ok"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Self { nodes, _tmp: tmp }
    }

    /// `redis+cluster://` with the first node's address.
    pub fn url(&self) -> String {
        format!("redis+cluster://127.0.0.1:{}", self.nodes[0].port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn cluster_args(bus_port: u16) -> Vec<String> {
        [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-port",
            &bus_port.to_string(),
        ]
        .map(String::from)
        .to_vec()
    }

    #[test]
    fn a_server_whose_bus_port_is_taken_fails_fast_and_the_next_try_starts() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let taken_port = taken.local_addr().unwrap().port();
        let tmp = tempfile::tempdir().unwrap();

        let started = Instant::now();
        let refused = RedisServer::try_start_in(free_port(), tmp.path(), cluster_args(taken_port));
        assert!(refused.is_err(), "a node whose bus port is taken started");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the failure took {:?}: it should be seen when the process exits",
            started.elapsed()
        );

        let mut tries = 0;
        let server = RedisServer::start_fresh(tmp.path(), || {
            tries += 1;
            cluster_args(if tries == 1 { taken_port } else { free_port() })
        });
        assert_eq!(tries, 2);
        assert_eq!(server.cli(&["PING"]).trim(), "PONG");
    }

    #[test]
    fn free_ports_lie_below_the_ephemeral_range_and_vary() {
        let low = crate::ephemeral_low();
        let ports: std::collections::BTreeSet<u16> = (0..20).map(|_| free_port()).collect();
        assert!(
            ports.iter().all(|port| *port < low),
            "{ports:?}: not all below the ephemeral range from {low}"
        );
        assert!(
            ports.len() >= 15,
            "{ports:?}: the same ports again and again"
        );
    }
}
