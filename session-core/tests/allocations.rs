//! Allocations on the driver path, counted by the test binary's allocator (this file holds a
//! single test, so nothing else allocates while it counts).

#![allow(clippy::unwrap_used)]

use std::{
    alloc::System,
    future::{Future, ready},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, Waker},
};

use async_trait::async_trait;
use bytes::Bytes;
use session_kit_core::{
    Capabilities, Driver, DriverError, Entry, PutOptions, Version,
    layers::{Layer, TraceLayer, ValidateLayer},
};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

type Call<'a, T> = Pin<Box<dyn Future<Output = Result<T, DriverError>> + Send + 'a>>;

/// Answers at once; each call allocates exactly its own future.
struct Ready(Capabilities);

#[async_trait]
impl Driver for Ready {
    fn name(&self) -> &str {
        "ready"
    }
    fn capabilities(&self) -> &Capabilities {
        &self.0
    }
    fn get<'a, 'b, 'c>(&'a self, _key: &'b str) -> Call<'c, Option<Entry>>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        Box::pin(ready(Ok(None)))
    }
    fn put<'a, 'b, 'c>(&'a self, _key: &'b str, _value: Bytes, _o: PutOptions) -> Call<'c, Version>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        Box::pin(ready(Ok(Version::from_u64(1))))
    }
    async fn delete(&self, _key: &str) -> Result<(), DriverError> {
        Ok(())
    }
}

/// The allocations of one call of `f`: the fewest of three counts. The counter is the
/// process's, and another thread (the test harness's) allocating during a count can only add
/// to it.
fn fewest_allocations(mut f: impl FnMut()) -> usize {
    (0..3)
        .map(|_| {
            let region = Region::new(GLOBAL);
            f();
            region.change().allocations
        })
        .min()
        .unwrap_or(usize::MAX)
}

/// Polls a future that completes at once; allocates nothing itself.
fn now<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the test driver answers at once"),
    }
}

/// The layers on every driver's hot path (validation, and tracing with nobody listening and no
/// metrics) and the `Arc<dyn Driver>` between them hand the driver's future on: a call through
/// the whole stack allocates what the driver allocates and nothing more. (Before, each `Arc`
/// hop boxed a future of its own: four allocations per call here.)
#[test]
fn a_call_through_the_hot_path_layers_allocates_only_the_driver_s_future() {
    let driver: Arc<dyn Driver> = Arc::new(Ready(Capabilities::new(100, 1000)));
    let validated = ValidateLayer.layer(driver);
    // With the `metrics` feature (on in a workspace build) the trace layer times every call,
    // in a future of its own, as its docs say; without it, it hands the call on too.
    let driver = match cfg!(feature = "metrics") {
        true => validated,
        false => TraceLayer.layer(validated),
    };
    let value = Bytes::from_static(b"{}");
    // Warm up whatever is set up once (the tracing callsite registry).
    now(driver.get("key")).unwrap();
    now(driver.put("key", value.clone(), PutOptions::new())).unwrap();

    let get = fewest_allocations(|| {
        now(driver.get("key")).unwrap();
    });
    assert_eq!(get, 1, "get");
    let put = fewest_allocations(|| {
        now(driver.put("key", value.clone(), PutOptions::new())).unwrap();
    });
    assert_eq!(put, 1, "put");
}
