//! Throwaway PostgreSQL and MariaDB/MySQL servers for tests: each in a temporary directory of
//! its own, listening on a free loopback port (and a socket in that directory), ended with the
//! test process. Never the system service.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
    time::{Duration, Instant},
};

use crate::{Tied, on_free_ports, require_binary, until_ready};

/// The user every test server creates (with [`PASSWORD`]).
pub const USER: &str = "sessions";
/// The password of [`USER`].
pub const PASSWORD: &str = "sessions-test-password";
/// The database every test server creates.
pub const DATABASE: &str = "sessions";

const PG_INSTALL: &str = "install PostgreSQL: sudo apt-get install -y postgresql \
     (or run `bash scripts/test`, which installs it), or set PG_BIN to the folder holding \
     initdb and postgres";
const MARIADB_INSTALL: &str = "install MariaDB: sudo apt-get install -y mariadb-server \
     (or run `bash scripts/test`, which installs it), or set MARIADB_BIN to the folder holding \
     mariadbd and mariadb-install-db";

/// The folder of the PostgreSQL server binaries: `$PG_BIN`, or the newest
/// `/usr/lib/postgresql/*/bin` (Debian's layout). Panics with the install command when missing.
pub fn pg_bin() -> PathBuf {
    if let Ok(dir) = std::env::var("PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!("PostgreSQL server binaries not found: {PG_INSTALL}"),
    }
}

/// Whether this process runs as root (the database servers refuse to, so they run as another
/// user).
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A command that runs `program` as `user` when this process is root (with `setpriv`, which
/// execs, so signals reach the server itself), else as ourselves.
fn as_user(user: Option<&str>, program: &Path) -> (PathBuf, Vec<String>) {
    match user {
        Some(user) => (
            PathBuf::from("setpriv"),
            vec![
                format!("--reuid={user}"),
                format!("--regid={user}"),
                "--init-groups".into(),
                "--".into(),
                program.display().to_string(),
            ],
        ),
        None => (program.to_path_buf(), Vec::new()),
    }
}

fn run(what: &str, program: &Path, args: &[String]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what} ({}): {e}", program.display()));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sends `signal` to the server whose id is the first line of `pid_file` (if there is one),
/// waits up to `limit` for it to remove that file (a server killed outright leaves it: it is
/// removed here), then ends the server's handle.
fn shut_down(pid_file: &Path, signal: &str, limit: Duration, process: Option<Tied>) {
    if let Ok(text) = std::fs::read_to_string(pid_file)
        && let Some(pid) = text.lines().next().map(str::trim).filter(|p| !p.is_empty())
    {
        let _ = Command::new("kill").args([signal, pid]).status();
    }
    let deadline = Instant::now() + limit;
    while pid_file.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_file(pid_file);
    if let Some(p) = process {
        p.stop();
    }
}

/// A PostgreSQL server of its own (`initdb` in a temporary directory), with user [`USER`]
/// (password [`PASSWORD`], required over TCP) owning database [`DATABASE`]; killable and
/// restartable on its port.
#[derive(Debug)]
pub struct PostgresServer {
    process: Option<Tied>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    data: PathBuf,
    socket_dir: PathBuf,
    user: Option<String>,
    extra: Vec<String>,
    _tmp: tempfile::TempDir,
}

impl PostgresServer {
    /// Initialises a cluster and starts it; answering queries when this returns.
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// Like [`start`](Self::start), with TLS on: a certificate for `127.0.0.1` and
    /// `localhost` signed by a throwaway authority, whose PEM file [`ca_file`](Self::ca_file)
    /// names (made with the `openssl` command).
    pub fn start_tls() -> Self {
        Self::start_with(true)
    }

    /// The PEM file of the authority that signed a TLS server's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.data.with_file_name("ca.pem")
    }

    fn start_with(tls: bool) -> Self {
        let bin = pg_bin();
        require_binary(&bin.join("postgres"), PG_INSTALL);
        let tmp = tempfile::tempdir().unwrap();
        let user = is_root().then(|| "postgres".to_owned());
        if let Some(user) = &user {
            run(
                "chown",
                Path::new("chown"),
                &[
                    "-R".into(),
                    format!("{user}:"),
                    tmp.path().display().to_string(),
                ],
            );
        }
        let data = tmp.path().join("data");
        let socket_dir = tmp.path().join("socket");
        let pwfile = tmp.path().join("pw");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        std::fs::create_dir_all(&socket_dir).unwrap();
        if let Some(user) = &user {
            for path in [&pwfile, &socket_dir] {
                run(
                    "chown",
                    Path::new("chown"),
                    &[format!("{user}:"), path.display().to_string()],
                );
            }
        }
        let (program, mut args) = as_user(user.as_deref(), &bin.join("initdb"));
        args.extend([
            "-D".into(),
            data.display().to_string(),
            "-U".into(),
            USER.into(),
            format!("--pwfile={}", pwfile.display()),
            "--auth-local=trust".into(),
            "--auth-host=scram-sha-256".into(),
            "--encoding=UTF8".into(),
            "--no-sync".into(),
        ]);
        run("initdb", &program, &args);
        let extra = if tls {
            make_certificates(tmp.path(), user.as_deref())
        } else {
            Vec::new()
        };
        let mut server = Self {
            process: None,
            port: 0,
            data,
            socket_dir,
            user,
            extra,
            _tmp: tmp,
        };
        on_free_ports(|port| {
            server.port = port;
            server.try_restart()
        });
        server.psql(&format!("CREATE DATABASE {DATABASE}"));
        server
    }

    /// Starts the server (again) on its port; answering queries when this returns.
    pub fn restart(&mut self) {
        self.try_restart().unwrap_or_else(|why| panic!("{why}"));
    }

    fn try_restart(&mut self) -> Result<(), String> {
        let bin = pg_bin();
        let (program, mut args) = as_user(self.user.as_deref(), &bin.join("postgres"));
        args.extend([
            "-D".into(),
            self.data.display().to_string(),
            "-p".into(),
            self.port.to_string(),
            "-k".into(),
            self.socket_dir.display().to_string(),
            "-c".into(),
            "listen_addresses=127.0.0.1".into(),
            // A throwaway server: no durability needed, and no background noise.
            "-c".into(),
            "fsync=off".into(),
            "-c".into(),
            "full_page_writes=off".into(),
            "-c".into(),
            "max_connections=300".into(),
        ]);
        args.extend(self.extra.iter().cloned());
        let log = self.data.with_file_name("server.log");
        let mut process = Tied::spawn_logged(&program, &args, &[], Some(&log));
        let port = self.port.to_string();
        until_ready(&mut process, "postgres", self.port, Some(&log), 30, || {
            Command::new(bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &port])
                .status()
                .is_ok_and(|s| s.success())
        })?;
        self.process = Some(process);
        Ok(())
    }

    /// Stops the server at once (fast shutdown: open connections are cut), keeping its data.
    pub fn kill(&mut self) {
        let pid_file = self.data.join("postmaster.pid");
        shut_down(
            &pid_file,
            "-INT",
            Duration::from_secs(20),
            self.process.take(),
        );
    }

    /// `postgres://sessions:PASSWORD@127.0.0.1:PORT/sessions`.
    pub fn url(&self) -> String {
        format!(
            "postgres://{USER}:{PASSWORD}@127.0.0.1:{}/{DATABASE}",
            self.port
        )
    }

    /// Runs one SQL command with `psql` (over the socket, as [`USER`]) and returns its output
    /// (unaligned, tuples only).
    pub fn psql(&self, sql: &str) -> String {
        let database = if sql.starts_with("CREATE DATABASE") {
            "postgres"
        } else {
            DATABASE
        };
        let (program, mut args) = as_user(self.user.as_deref(), &pg_bin().join("psql"));
        args.extend([
            "-X".into(),
            "-q".into(),
            "-A".into(),
            "-t".into(),
            "-v".into(),
            "ON_ERROR_STOP=1".into(),
            "-h".into(),
            self.socket_dir.display().to_string(),
            "-p".into(),
            self.port.to_string(),
            "-U".into(),
            USER.into(),
            "-d".into(),
            database.into(),
            "-c".into(),
            sql.into(),
        ]);
        let out = Command::new(&program).args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// A throwaway authority (`ca.pem`) and a server certificate for `127.0.0.1` and `localhost`
/// (`server.pem`, `server.key`, readable by `user`) in `dir`; PostgreSQL's server arguments
/// that use them (other servers name the files themselves).
pub(crate) fn make_certificates(dir: &Path, user: Option<&str>) -> Vec<String> {
    require_binary(
        Path::new("openssl"),
        "install OpenSSL's command: sudo apt-get install -y openssl",
    );
    let path = |name: &str| dir.join(name).display().to_string();
    let openssl = |args: &[&str]| {
        run(
            "openssl",
            Path::new("openssl"),
            &args.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        )
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=session test authority",
        "-keyout",
        &path("ca.key"),
        "-out",
        &path("ca.pem"),
    ]);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName = IP:127.0.0.1, DNS:localhost\n",
    )
    .unwrap();
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        &path("server.key"),
        "-out",
        &path("server.csr"),
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        &path("server.csr"),
        "-CA",
        &path("ca.pem"),
        "-CAkey",
        &path("ca.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &path("server.ext"),
        "-out",
        &path("server.pem"),
    ]);
    run(
        "chmod",
        Path::new("chmod"),
        &["600".into(), path("server.key")],
    );
    if let Some(user) = user {
        run(
            "chown",
            Path::new("chown"),
            &[format!("{user}:"), path("server.key"), path("server.pem")],
        );
    }
    vec![
        "-c".into(),
        "ssl=on".into(),
        "-c".into(),
        format!("ssl_cert_file={}", path("server.pem")),
        "-c".into(),
        format!("ssl_key_file={}", path("server.key")),
    ]
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        if self.process.is_some() {
            self.kill();
        }
    }
}

/// A table name no other test of this run uses: `{what}_{process}_{n}` (tests share one
/// server per binary, and binaries run one after another on fresh servers).
pub fn fresh_table(what: &str) -> String {
    static TABLES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = TABLES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{what}_{}_{n}", std::process::id())
}

/// One PostgreSQL server shared by every test of this binary (tests keep apart by table).
pub fn shared_postgres() -> &'static PostgresServer {
    static SERVER: OnceLock<PostgresServer> = OnceLock::new();
    SERVER.get_or_init(PostgresServer::start)
}

/// The folder of the MariaDB binaries: `$MARIADB_BIN`, or `/usr/sbin` for the server and
/// `/usr/bin` for the tools (Debian's layout).
fn mariadb_tool(name: &str) -> PathBuf {
    if let Ok(dir) = std::env::var("MARIADB_BIN") {
        return Path::new(&dir).join(name);
    }
    let dir = if name == "mariadbd" {
        "/usr/sbin"
    } else {
        "/usr/bin"
    };
    let path = Path::new(dir).join(name);
    require_binary(&path, MARIADB_INSTALL);
    path
}

/// A MariaDB server of its own (`mariadb-install-db` in a temporary directory), with user
/// [`USER`] (password [`PASSWORD`]) owning databases [`DATABASE`] and `sessions_other`;
/// killable and restartable on its port.
#[derive(Debug)]
pub struct MariaDbServer {
    process: Option<Tied>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    _tmp: tempfile::TempDir,
}

impl MariaDbServer {
    /// Initialises a data directory and starts the server; answering queries when this
    /// returns.
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// Like [`start`](Self::start), with TLS on (see [`PostgresServer::start_tls`]).
    pub fn start_tls() -> Self {
        Self::start_with(true)
    }

    /// The PEM file of the authority that signed a TLS server's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    fn start_with(tls: bool) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let mut args = vec![
            "--no-defaults".into(),
            format!("--datadir={}", dir.join("data").display()),
            "--auth-root-authentication-method=normal".into(),
            "--skip-test-db".into(),
            // Servers initialised at the same time must not share temporary files.
            format!("--tmpdir={}", tmp_dir(&dir)),
        ];
        if is_root() {
            args.push("--user=root".into());
        }
        run(
            "mariadb-install-db",
            &mariadb_tool("mariadb-install-db"),
            &args,
        );
        std::fs::write(
            dir.join("init.sql"),
            format!(
                "CREATE DATABASE IF NOT EXISTS {DATABASE};\n\
                 CREATE USER IF NOT EXISTS '{USER}'@'%' IDENTIFIED BY '{PASSWORD}';\n\
                 CREATE USER IF NOT EXISTS '{USER}'@'localhost' IDENTIFIED BY '{PASSWORD}';\n\
                 GRANT ALL ON {DATABASE}.* TO '{USER}'@'%';\n\
                 GRANT ALL ON {DATABASE}.* TO '{USER}'@'localhost';\n\
                 CREATE DATABASE IF NOT EXISTS {DATABASE}_other;\n\
                 GRANT ALL ON {DATABASE}_other.* TO '{USER}'@'%';\n\
                 GRANT ALL ON {DATABASE}_other.* TO '{USER}'@'localhost';\n"
            ),
        )
        .unwrap();
        let extra = if tls {
            make_certificates(&dir, None);
            let path = |name: &str| dir.join(name).display().to_string();
            vec![
                format!("--ssl-ca={}", path("ca.pem")),
                format!("--ssl-cert={}", path("server.pem")),
                format!("--ssl-key={}", path("server.key")),
            ]
        } else {
            Vec::new()
        };
        let mut server = Self {
            process: None,
            port: 0,
            dir,
            extra,
            _tmp: tmp,
        };
        on_free_ports(|port| {
            server.port = port;
            server.try_restart()
        });
        server
    }

    /// Starts the server (again) on its port; answering queries when this returns.
    pub fn restart(&mut self) {
        self.try_restart().unwrap_or_else(|why| panic!("{why}"));
    }

    fn try_restart(&mut self) -> Result<(), String> {
        let mut args = vec![
            "--no-defaults".into(),
            format!("--datadir={}", self.dir.join("data").display()),
            format!("--socket={}", self.dir.join("mysqld.sock").display()),
            format!("--pid-file={}", self.dir.join("mysqld.pid").display()),
            format!("--tmpdir={}", tmp_dir(&self.dir)),
            format!("--port={}", self.port),
            "--bind-address=127.0.0.1".into(),
            format!("--init-file={}", self.dir.join("init.sql").display()),
            "--skip-log-bin".into(),
            "--skip-name-resolve".into(),
            "--max-connections=300".into(),
            // A throwaway server: no durability needed, and a small footprint.
            "--innodb-flush-log-at-trx-commit=0".into(),
            "--innodb-buffer-pool-size=64M".into(),
            "--innodb-log-file-size=32M".into(),
        ];
        args.extend(self.extra.iter().cloned());
        if is_root() {
            args.push("--user=root".into());
        }
        let log = self.dir.join("server.log");
        let mut process = Tied::spawn_logged(&mariadb_tool("mariadbd"), &args, &[], Some(&log));
        let port = self.port.to_string();
        until_ready(&mut process, "mariadbd", self.port, Some(&log), 60, || {
            Command::new(mariadb_tool("mariadb-admin"))
                .args([
                    "--no-defaults",
                    "--protocol=tcp",
                    "-h",
                    "127.0.0.1",
                    "-P",
                    &port,
                    "-u",
                    USER,
                    &format!("-p{PASSWORD}"),
                    "ping",
                ])
                .output()
                .is_ok_and(|o| o.status.success())
        })?;
        self.process = Some(process);
        Ok(())
    }

    /// Shuts the server down cleanly (SIGTERM: open connections are cut, every committed
    /// transaction is kept; [`kill`](Self::kill) keeps only what the log had flushed, about a
    /// second behind), to start it again with [`restart`](Self::restart).
    pub fn stop(&mut self) {
        let pid_file = self.dir.join("mysqld.pid");
        shut_down(
            &pid_file,
            "-TERM",
            Duration::from_secs(20),
            self.process.take(),
        );
    }

    /// Stops the server at once (open connections are cut), keeping its data.
    pub fn kill(&mut self) {
        let pid_file = self.dir.join("mysqld.pid");
        shut_down(
            &pid_file,
            "-KILL",
            Duration::from_millis(500),
            self.process.take(),
        );
    }

    /// `mysql://sessions:PASSWORD@127.0.0.1:PORT/sessions`.
    pub fn url(&self) -> String {
        format!(
            "mysql://{USER}:{PASSWORD}@127.0.0.1:{}/{DATABASE}",
            self.port
        )
    }
}

impl Drop for MariaDbServer {
    fn drop(&mut self) {
        if self.process.is_some() {
            self.kill();
        }
    }
}

/// A temporary directory of the server's own, under its directory.
fn tmp_dir(dir: &Path) -> String {
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    tmp.display().to_string()
}

/// One MariaDB server shared by every test of this binary (tests keep apart by table).
pub fn shared_mariadb() -> &'static MariaDbServer {
    static SERVER: OnceLock<MariaDbServer> = OnceLock::new();
    SERVER.get_or_init(MariaDbServer::start)
}
