//! `test-server postgres|mariadb|moto`: starts a throwaway server of that kind on a free
//! loopback port (as the tests do), prints its URL and runs until killed; the server ends with
//! it. For `scripts/conformance-reports` (certification through the conformance command line)
//! and the HTTP benchmark. moto's URL is its endpoint, with an empty bucket `sessions` already
//! made; moto serves one request at a time, as in the tests, and with `SESSION_MOTO_LOCK` set
//! it first waits for its turn ([`session_test_support::moto`]).

use std::io::Write;

use session_test_support::{http_request, moto, sql};

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
        "moto" => {
            let server = moto();
            let (status, body) = http_request(server.port, "PUT", "/sessions", b"");
            if status != 200 {
                eprintln!("moto refused to create the bucket `sessions`: {status} {body}");
                std::process::exit(1);
            }
            let _ = writeln!(out, "{}", server.endpoint());
            Box::new(())
        }
        other => {
            eprintln!("usage: test-server postgres|mariadb|moto (got {other:?})");
            std::process::exit(2);
        }
    };
    let _ = out.flush();
    loop {
        std::thread::park();
    }
}
