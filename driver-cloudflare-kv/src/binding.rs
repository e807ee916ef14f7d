//! The Workers binding transport: `env.kv("NAME")` inside a Rust Worker.
//!
//! A Worker runs on one thread, and JavaScript handles are not `Send`; the [`Driver`] contract
//! asks for `Send` futures, so the store and each call are wrapped in `worker::send`'s
//! wrappers, which are sound on the single-threaded `wasm32-unknown-unknown` target.
//!
//! [`Driver`]: session_kit_core::Driver

use session_kit_core::{DriverError, async_trait, bytes::Bytes};
use worker::{
    KvError, KvStore,
    send::{SendFuture, SendWrapper},
};

use crate::{KvDriver, KvPage, PAGE, Transport, sealed};

/// The KV binding transport: wraps the `KvStore` of `env.kv("NAME")`.
pub struct WorkerBinding(SendWrapper<KvStore>);

impl sealed::Sealed for WorkerBinding {}

impl KvDriver<WorkerBinding> {
    /// A driver over a KV binding, with `prefix` before every key.
    ///
    /// ```ignore
    /// let driver = WorkerKvDriver::new(env.kv("SESSIONS")?, "")?;
    /// ```
    pub fn new(store: KvStore, prefix: impl Into<String>) -> Result<Self, DriverError> {
        KvDriver::with_transport(WorkerBinding(SendWrapper::new(store)), prefix)
    }
}

/// Maps a binding error: a JavaScript exception from the binding is a refused call (bad key,
/// value or option), not an outage.
fn kv_error(what: &str, e: &KvError) -> DriverError {
    match e {
        KvError::InvalidKvStore(_) => {
            DriverError::config(format!("cloudflare kv {what}: not a KV namespace binding"))
        }
        KvError::Serialization(_) => {
            DriverError::permanent(format!("cloudflare kv {what}: bad response"), None)
        }
        KvError::JavaScript(_) => DriverError::unavailable(
            format!("cloudflare kv {what}: the binding threw: {e}"),
            false,
            None,
        ),
    }
}

#[async_trait]
impl Transport for WorkerBinding {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, DriverError> {
        let value = SendFuture::new(self.0.0.get(key).bytes())
            .await
            .map_err(|e| kv_error("get", &e))?;
        Ok(value.map(Bytes::from))
    }

    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl_secs: Option<u64>,
    ) -> Result<(), DriverError> {
        let mut put = self
            .0
            .0
            .put_bytes(key, &value)
            .map_err(|e| kv_error("put", &e))?;
        if let Some(ttl) = ttl_secs {
            put = put.expiration_ttl(ttl);
        }
        SendFuture::new(put.execute())
            .await
            .map_err(|e| kv_error("put", &e))
    }

    async fn delete(&self, key: &str) -> Result<(), DriverError> {
        SendFuture::new(self.0.0.delete(key))
            .await
            .map_err(|e| kv_error("delete", &e))
    }

    async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<KvPage, DriverError> {
        let mut list = self
            .0
            .0
            .list()
            .limit(u64::from(PAGE))
            .prefix(prefix.to_owned());
        if let Some(cursor) = cursor {
            list = list.cursor(cursor.to_owned());
        }
        let page = SendFuture::new(list.execute())
            .await
            .map_err(|e| kv_error("list", &e))?;
        Ok(KvPage {
            keys: page
                .keys
                .into_iter()
                .map(|k| (k.name, k.expiration))
                .collect(),
            cursor: if page.list_complete {
                None
            } else {
                page.cursor.filter(|c| !c.is_empty())
            },
        })
    }
}
