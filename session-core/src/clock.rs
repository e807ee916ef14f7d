//! An injectable clock, so expiry can be tested without sleeping.

use std::{
    fmt,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// A source of wall-clock time.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        now()
    }
}

/// The wall clock. `std`'s clock panics on `wasm32-unknown-unknown` (Cloudflare Workers,
/// browsers): there, JavaScript's `Date.now()` through `web-time`.
fn now() -> SystemTime {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    {
        let since_epoch = web_time::SystemTime::now()
            .duration_since(web_time::UNIX_EPOCH)
            .unwrap_or_default();
        UNIX_EPOCH + since_epoch
    }
    #[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
    {
        SystemTime::now()
    }
}

/// A clock that moves only when told to, for tests.
///
/// ```
/// use std::time::Duration;
/// use session_kit_core::{Clock, ManualClock};
///
/// let clock = ManualClock::starting_now();
/// let t0 = clock.now();
/// clock.advance(Duration::from_secs(3600));
/// assert_eq!(clock.now().duration_since(t0).unwrap(), Duration::from_secs(3600));
/// ```
#[derive(Debug)]
pub struct ManualClock {
    millis: AtomicU64,
}

impl ManualClock {
    /// A clock stopped at the current system time.
    pub fn starting_now() -> Self {
        Self {
            millis: AtomicU64::new(unix_millis(now())),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.millis.fetch_add(
            u64::try_from(by.as_millis()).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        from_unix_millis(self.millis.load(Ordering::SeqCst))
    }
}

/// Milliseconds since the Unix epoch (0 for times before it).
pub fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The wall clock in Unix milliseconds, what drivers store and compare expiries against
/// (JavaScript's clock on `wasm32-unknown-unknown`, where `std`'s panics).
pub fn now_millis() -> u64 {
    unix_millis(now())
}

/// The deadline `ttl` after `now` (both Unix milliseconds), a part of a millisecond rounded up,
/// saturating instead of overflowing.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(session_kit_core::driver::deadline_millis(1_000, Duration::from_secs(2)), 3_000);
/// assert_eq!(session_kit_core::driver::deadline_millis(u64::MAX - 1, Duration::MAX), u64::MAX);
/// ```
pub fn deadline_millis(now: u64, ttl: Duration) -> u64 {
    // Rounded up: a key never expires before its TTL.
    let millis = ttl.as_nanos().div_ceil(1_000_000);
    now.saturating_add(u64::try_from(millis).unwrap_or(u64::MAX))
}

/// The deadline `ttl` after the instant `now`, in Unix milliseconds, with both rounded up:
/// checked against the clock floored to milliseconds ([`unix_millis`]), an entry written at
/// `now` is never gone before `ttl` has passed. (With [`deadline_millis`] on a floored clock
/// read, it could be gone up to a millisecond early.)
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use session_kit_core::driver::deadline_after;
/// let at = UNIX_EPOCH + Duration::from_micros(1_000_900); // 1000.9 ms
/// assert_eq!(deadline_after(at, Duration::from_millis(450)), 1_451);
/// assert_eq!(deadline_after(UNIX_EPOCH + Duration::from_millis(1_000), Duration::from_millis(450)), 1_450);
/// ```
pub fn deadline_after(now: SystemTime, ttl: Duration) -> u64 {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let millis = u64::try_from(since.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX);
    deadline_millis(millis, ttl)
}

/// The time `ms` milliseconds after the Unix epoch.
pub fn from_unix_millis(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}
