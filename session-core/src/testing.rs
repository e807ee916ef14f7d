//! A driver that records its calls, and a subscriber that records spans and events, for the
//! crate's own tests.
#![allow(clippy::unwrap_used)]

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tracing::{
    Event, Metadata, Subscriber,
    field::{Field, Visit},
    span::{Attributes, Id, Record},
};

use async_trait::async_trait;
use bytes::Bytes;

use crate::{Capabilities, Driver, DriverError, Entry, ListPage, PutOptions, Version};

/// Records every call; stores puts in a map (no expiry; write conditions honoured, versions
/// counting writes) so reads and listings answer; fails the next calls with queued errors; can take a while to answer.
pub(crate) struct Recorder {
    caps: Capabilities,
    calls: Mutex<Vec<String>>,
    map: Mutex<BTreeMap<String, (Bytes, u64)>>,
    writes: std::sync::atomic::AtomicU64,
    failures: Mutex<VecDeque<DriverError>>,
    delay: Mutex<Duration>,
    /// `(clock, round trip, time left)`: a read advances `clock` by the round trip and reports
    /// the expiry as `time left` from the reply's arrival, as drivers that read a TTL do.
    reply: Mutex<Option<(std::sync::Arc<crate::ManualClock>, Duration, Duration)>>,
}

impl Recorder {
    pub(crate) fn new(caps: Capabilities) -> Self {
        Self {
            caps,
            calls: Mutex::default(),
            map: Mutex::default(),
            writes: std::sync::atomic::AtomicU64::new(0),
            failures: Mutex::default(),
            delay: Mutex::new(Duration::ZERO),
            reply: Mutex::default(),
        }
    }

    /// Reads take `round_trip` on `clock` and report `left` to live from the reply's arrival.
    pub(crate) fn reply_with_ttl(
        &self,
        clock: std::sync::Arc<crate::ManualClock>,
        round_trip: Duration,
        left: Duration,
    ) {
        *self.reply.lock().unwrap() = Some((clock, round_trip, left));
    }

    pub(crate) fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    /// The next calls fail with these errors, one each.
    pub(crate) fn fail_next(&self, errors: impl IntoIterator<Item = DriverError>) {
        self.failures.lock().unwrap().extend(errors);
    }

    /// Every call takes this long.
    pub(crate) fn set_delay(&self, delay: Duration) {
        *self.delay.lock().unwrap() = delay;
    }

    async fn call(&self, call: String) -> Result<(), DriverError> {
        self.calls.lock().unwrap().push(call);
        let delay = *self.delay.lock().unwrap();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        match self.failures.lock().unwrap().pop_front() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl Driver for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }
    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }
    async fn get(&self, key: &str) -> Result<Option<Entry>, DriverError> {
        self.call(format!("get {key}")).await?;
        let expires_at = self
            .reply
            .lock()
            .unwrap()
            .as_ref()
            .map(|(clock, trip, left)| {
                clock.advance(*trip);
                crate::Clock::now(&**clock) + *left
            });
        Ok(self
            .map
            .lock()
            .unwrap()
            .get(key)
            .map(|(value, version)| Entry {
                value: value.clone(),
                version: Version::from_u64(*version),
                expires_at,
            }))
    }
    async fn put(
        &self,
        key: &str,
        value: Bytes,
        options: PutOptions,
    ) -> Result<Version, DriverError> {
        self.call(format!(
            "put {key} ttl={:?} mode={:?}",
            options.ttl, options.mode
        ))
        .await?;
        let mut map = self.map.lock().unwrap();
        let current = map.get(key).map(|(_, v)| Version::from_u64(*v));
        crate::contract::check_condition(&options.mode, current.as_ref())?;
        let version = 1 + self
            .writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        map.insert(key.to_owned(), (value, version));
        Ok(Version::from_u64(version))
    }
    async fn delete(&self, key: &str) -> Result<(), DriverError> {
        self.call(format!("delete {key}")).await?;
        self.map.lock().unwrap().remove(key);
        Ok(())
    }
    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, DriverError> {
        self.call(format!("touch {key} {ttl:?}")).await?;
        Ok(self.map.lock().unwrap().contains_key(key))
    }
    async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<ListPage, DriverError> {
        self.call(format!("list {prefix} {cursor:?}")).await?;
        let keys = self
            .map
            .lock()
            .unwrap()
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        Ok(ListPage { keys, cursor: None })
    }
}

/// Collects spans' and events' fields as `name=value` lines.
#[derive(Default)]
pub(crate) struct Collect {
    pub(crate) lines: Mutex<Vec<String>>,
    next: AtomicU64,
}

struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={value:?}", field.name()));
    }
}

impl Collect {
    /// A new collector, this thread's default subscriber until the guard drops.
    ///
    /// While a process has a single live dispatcher, `tracing` decides whether a callsite
    /// is enabled, once for all threads, by the default subscriber of the thread that first
    /// reaches it: a test thread without one then disables a span for the collecting test
    /// too (a flaky miss of `session.load`). A second dispatcher kept alive for the whole
    /// process makes `tracing` ask every live dispatcher instead.
    pub(crate) fn install() -> (&'static Collect, tracing::subscriber::DefaultGuard) {
        static ANOTHER: std::sync::OnceLock<tracing::Dispatch> = std::sync::OnceLock::new();
        ANOTHER
            .get_or_init(|| tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default()));
        let collect: &'static Collect = Box::leak(Box::default());
        (collect, tracing::subscriber::set_default(collect))
    }
}

impl Subscriber for &'static Collect {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut line = Line(format!("span {}", span.metadata().name()));
        span.record(&mut line);
        self.lines.lock().unwrap().push(line.0);
        Id::from_u64(self.next.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut line = Line("event".into());
        event.record(&mut line);
        self.lines.lock().unwrap().push(line.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Another thread, with no subscriber, reaches a span's callsite first: the collecting
    /// test still sees the span (without the second dispatcher of [`Collect::install`],
    /// `tracing` would disable it for every thread; checked).
    #[test]
    fn a_collected_span_stays_enabled_when_another_thread_reaches_it_first() {
        fn probe() -> bool {
            !tracing::debug_span!("probe").is_disabled()
        }
        let (_collect, _guard) = Collect::install();
        assert!(!std::thread::spawn(probe).join().unwrap());
        assert!(probe());
    }
}
