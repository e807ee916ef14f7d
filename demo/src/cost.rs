//! What a request cost in store operations, for the "how it works" panel: a driver wrapper
//! that notes every call in the current request's tally (a task-local set by [`track`]).

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{extract::Request, middleware::Next, response::Response};
use session_kit::driver::{
    Capabilities, Driver, DriverError, Entry, LayerOptions, ListPage, PutOptions, Version,
    WriteMode, async_trait, bytes::Bytes,
};

tokio::task_local! {
    static TALLY: Arc<Tally>;
}

/// The store operations of one request, in order.
#[derive(Debug, Default)]
pub(crate) struct Tally(Mutex<Vec<&'static str>>);

impl Tally {
    fn note(&self, operation: &'static str) {
        if let Ok(mut ops) = self.0.lock() {
            ops.push(operation);
        }
    }
}

/// Runs the rest of the request with its own tally (middleware, outside the session layer
/// so that the final commit is counted too).
pub(crate) async fn track(request: Request, next: Next) -> Response {
    TALLY.scope(Arc::default(), next.run(request)).await
}

/// The operations this request made so far: `get`, `put (compare-and-swap)`, ...
pub(crate) fn so_far() -> Vec<&'static str> {
    TALLY
        .try_with(|tally| tally.0.lock().map(|ops| ops.clone()).unwrap_or_default())
        .unwrap_or_default()
}

fn note(operation: &'static str) {
    // Outside a request (the background sweep) there is nothing to note it in.
    let _ = TALLY.try_with(|tally| tally.note(operation));
}

/// A driver that notes each call in the current request's tally, then forwards it.
pub(crate) struct TallyDriver {
    inner: Arc<dyn Driver>,
}

impl std::fmt::Debug for TallyDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TallyDriver")
            .field("inner", &self.inner.name())
            .finish()
    }
}

impl TallyDriver {
    pub(crate) fn new(inner: Arc<dyn Driver>) -> Self {
        Self { inner }
    }
}

#[async_trait]
impl Driver for TallyDriver {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn capabilities(&self) -> &Capabilities {
        self.inner.capabilities()
    }
    fn native_capabilities(&self) -> &Capabilities {
        self.inner.native_capabilities()
    }
    fn layers(&self) -> Vec<&'static str> {
        let mut layers = vec!["demo-tally"];
        layers.extend(self.inner.layers());
        layers
    }
    fn layer_defaults(&self) -> LayerOptions {
        self.inner.layer_defaults()
    }
    async fn get(&self, key: &str) -> Result<Option<Entry>, DriverError> {
        note("get");
        self.inner.get(key).await
    }
    async fn get_latest(&self, key: &str) -> Result<Option<Entry>, DriverError> {
        note("get (latest)");
        self.inner.get_latest(key).await
    }
    async fn put(
        &self,
        key: &str,
        value: Bytes,
        options: PutOptions,
    ) -> Result<Version, DriverError> {
        note(match options.mode {
            WriteMode::Overwrite => "put",
            WriteMode::CreateOnly => "put (create only)",
            WriteMode::UpdateOnly => "put (update only)",
            WriteMode::IfVersion(_) => "put (compare-and-swap)",
        });
        self.inner.put(key, value, options).await
    }
    async fn delete(&self, key: &str) -> Result<(), DriverError> {
        note("delete");
        self.inner.delete(key).await
    }
    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, DriverError> {
        note("touch");
        self.inner.touch(key, ttl).await
    }
    async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<ListPage, DriverError> {
        note("list");
        self.inner.list(prefix, cursor).await
    }
    async fn clear(&self, prefix: &str) -> Result<u64, DriverError> {
        note("clear");
        self.inner.clear(prefix).await
    }
    async fn sweep(&self) -> Result<u64, DriverError> {
        self.inner.sweep().await
    }
}
