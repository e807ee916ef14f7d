//! The REST API Worker on Miniflare (workerd with a real KV binding), one per test binary.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;

use session_kit_cloudflare_kv::CloudflareKvConfig;
pub(crate) use session_test_support::{
    KV_ACCOUNT as ACCOUNT, KV_NAMESPACE as NAMESPACE, KV_TOKEN as TOKEN,
};
use session_test_support::{Tied, miniflare_kv_rest};

pub(crate) struct Miniflare {
    _process: Tied,
    pub(crate) port: u16,
}

pub(crate) fn miniflare_rest() -> &'static Miniflare {
    static MF: OnceLock<Miniflare> = OnceLock::new();
    MF.get_or_init(|| {
        let (process, port) = miniflare_kv_rest();
        Miniflare {
            _process: process,
            port,
        }
    })
}

impl Miniflare {
    pub(crate) fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/client/v4", self.port)
    }

    pub(crate) fn config(&self) -> CloudflareKvConfig {
        let mut config = CloudflareKvConfig::new(ACCOUNT, NAMESPACE);
        config.api_token = Some(TOKEN.into());
        config.base_url = Some(self.base_url());
        config
    }
}
