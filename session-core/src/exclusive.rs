//! [`ConcurrentWrites::Exclusive`](crate::ConcurrentWrites::Exclusive): requests of one
//! session run one at a time.
//!
//! A request that loads its session first takes the session's lock in this process (see
//! [`crate::combine`]), then, where the driver can hold one, a lease in the store: the key
//! `<storage key>.lock`, written create-only with a TTL. Other processes' requests wait for
//! the lease. The commit that ends the request releases both; a request dropped without a
//! commit releases the lock at once and the lease in the background (or it expires).
//!
//! A lease needs create-only writes, a TTL and strong consistency. Without them (Cloudflare
//! KV) requests are exclusive within each process only.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use tokio::sync::OwnedMutexGuard;

use crate::{
    Consistency, Driver, DriverError, PutOptions, SessionError, WriteMode, combine::SlotRef,
    commit::Shared, model::SessionData,
};

/// How long a lease lasts unless released (default); a request that outlives it loses its
/// exclusivity (a warning is logged).
pub(crate) const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// How long a request waits for the session before it fails with [`SessionError::Busy`].
pub(crate) const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// A request's exclusive hold on its session.
pub(crate) struct Hold<T> {
    _slot: SlotRef<T>,
    _local: OwnedMutexGuard<()>,
    lease: Option<Lease>,
}

/// A lease key this request wrote.
struct Lease {
    driver: Arc<dyn Driver>,
    key: String,
    /// When the lease expires (Unix ms, by the storage's clock).
    until: u64,
    released: bool,
}

/// Whether `driver` can hold a lease.
pub(crate) fn can_lease(driver: &dyn Driver) -> bool {
    let caps = driver.capabilities();
    caps.create_only && caps.ttl.is_some() && caps.consistency == Consistency::Strong
}

impl<T: SessionData> Shared<T> {
    /// Waits until the session under `key` is this request's alone.
    pub(crate) async fn hold(
        &self,
        driver: &Arc<dyn Driver>,
        key: &str,
    ) -> Result<Hold<T>, SessionError> {
        let start = self.now();
        let wait_ms = u64::try_from(self.exclusive_wait.as_millis()).unwrap_or(u64::MAX);
        let slot = self.slots.enter(key);
        let local =
            within(self.exclusive_wait, slot.exclusive())
                .await
                .ok_or(SessionError::Busy {
                    waited: self.exclusive_wait,
                })?;
        if !can_lease(driver.as_ref()) {
            return Ok(Hold {
                _slot: slot,
                _local: local,
                lease: None,
            });
        }
        let lease_key = format!("{key}.lock");
        let ttl = match driver.capabilities().ttl {
            Some(support) => self.exclusive_lease.max(support.min),
            None => self.exclusive_lease,
        };
        let token = Bytes::from(format!("{:016x}", rand::random::<u64>()));
        let mut attempt = 0;
        loop {
            let options = PutOptions::new().ttl(ttl).mode(WriteMode::CreateOnly);
            match driver.put(&lease_key, token.clone(), options).await {
                Ok(_) => {
                    let until = self
                        .now()
                        .saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
                    return Ok(Hold {
                        _slot: slot,
                        _local: local,
                        lease: Some(Lease {
                            driver: Arc::clone(driver),
                            key: lease_key,
                            until,
                            released: false,
                        }),
                    });
                }
                Err(DriverError::AlreadyExists) => {
                    if self.now().saturating_sub(start) >= wait_ms {
                        return Err(SessionError::Busy {
                            waited: self.exclusive_wait,
                        });
                    }
                    pause(attempt).await;
                    attempt += 1;
                }
                Err(e) => return Err(SessionError::store(driver.name(), "lease", e)),
            }
        }
    }

    /// Ends `hold`: deletes the lease unless it has expired (then another request may hold
    /// a new one under the same key).
    pub(crate) async fn release(&self, mut hold: Hold<T>) {
        let Some(lease) = hold.lease.as_mut() else {
            return;
        };
        lease.released = true;
        // A margin for TTL rounding: a lease this close to its end is left to expire.
        if self.now().saturating_add(50) >= lease.until {
            tracing::warn!(
                "a request held its session longer than the exclusive lease; other requests may have used it meanwhile"
            );
            return;
        }
        if let Err(error) = lease.driver.delete(&lease.key).await {
            tracing::warn!(%error, "releasing a session lease failed; it ends with its TTL");
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // The request ended without a commit: release in the background where a runtime runs
        // (elsewhere the lease ends with its TTL).
        let pending = !self.released;
        #[cfg(feature = "tokio")]
        if pending && let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (driver, key) = (Arc::clone(&self.driver), std::mem::take(&mut self.key));
            runtime.spawn(async move {
                let _ = driver.delete(&key).await;
            });
        }
        #[cfg(not(feature = "tokio"))]
        let _ = pending;
    }
}

/// `future`'s output, or `None` after `limit` (no limit without the `tokio` feature's timer).
async fn within<F: Future>(limit: Duration, future: F) -> Option<F::Output> {
    #[cfg(feature = "tokio")]
    {
        tokio::time::timeout(limit, future).await.ok()
    }
    #[cfg(not(feature = "tokio"))]
    {
        let _ = limit;
        Some(future.await)
    }
}

/// Waits before asking for a lease again: a random time below a window that doubles from
/// 1 ms to 20 ms.
async fn pause(attempt: u32) {
    #[cfg(feature = "tokio")]
    {
        let window = (1_000u64 << attempt.min(5)).min(20_000);
        let micros = rand::random_range(window / 4..=window);
        tokio::time::sleep(Duration::from_micros(micros)).await;
    }
    #[cfg(not(feature = "tokio"))]
    let _ = attempt;
}
