//! `test-server postgres|mariadb`: starts a throwaway server of that kind on a free loopback
//! port (as the tests do), prints its URL and runs until killed; the server ends with it. For
//! `scripts/test` (certification through the conformance command line) and the HTTP benchmark.

use std::io::Write;

use session_test_support::sql;

fn main() {
    let kind = std::env::args().nth(1).unwrap_or_default();
    let mut out = std::io::stdout();
    // Each server stays alive while this process runs.
    let _keep: Box<dyn std::any::Any> = match kind.as_str() {
        "postgres" => {
            let server = sql::PostgresServer::start();
            let _ = writeln!(out, "{}", server.url());
            Box::new(server)
        }
        "mariadb" => {
            let server = sql::MariaDbServer::start();
            let _ = writeln!(out, "{}", server.url());
            Box::new(server)
        }
        other => {
            eprintln!("usage: test-server postgres|mariadb (got {other:?})");
            std::process::exit(2);
        }
    };
    let _ = out.flush();
    loop {
        std::thread::park();
    }
}
