//! One moto S3 server per test binary, on a free loopback port, ended with the test process.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{
    OnceLock,
    atomic::{AtomicU32, Ordering},
};

use session_driver_s3::S3Config;
use session_test_support::{Tied, http_request, moto_server};

pub(crate) struct Moto {
    _process: Tied,
    pub(crate) port: u16,
}

pub(crate) fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| {
        let (process, port) = moto_server();
        Moto {
            _process: process,
            port,
        }
    })
}

impl Moto {
    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a new, empty bucket and returns its name.
    pub(crate) fn bucket(&self) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "sessions-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let (status, body) = http_request(self.port, "PUT", &format!("/{name}"), b"");
        assert_eq!(status, 200, "creating bucket {name}: {body}");
        name
    }

    /// A driver config for a fresh bucket on this server.
    pub(crate) fn config(&self) -> S3Config {
        let mut config = S3Config::new(self.bucket());
        config.endpoint = Some(self.endpoint());
        config.region = Some("us-east-1".into());
        config.access_key_id = Some("test".into());
        config.secret_access_key = Some("test".into());
        config
    }
}
