//! Tokio helpers for drivers (feature `tokio`): blocking work off the async workers, and a
//! periodic background task tied to an object's lifetime (what the sweep layer runs on).

use std::{future::Future, sync::Weak, time::Duration};

use crate::DriverError;

/// Runs blocking backend work (file or database calls) on Tokio's blocking threads, never on
/// the async workers. A panic in `work` becomes a non-retryable [`DriverError`].
pub async fn blocking<R: Send + 'static>(
    work: impl FnOnce() -> Result<R, DriverError> + Send + 'static,
) -> Result<R, DriverError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| DriverError::permanent("a blocking driver task failed", Some(Box::new(e))))?
}

/// A task that runs every `interval` while its target lives; aborted when dropped.
#[derive(Debug)]
pub struct PeriodicTask(tokio::task::JoinHandle<()>);

impl PeriodicTask {
    /// Calls `run(target)` every `interval` (first after one interval) on the current Tokio
    /// runtime, until `target` is dropped or this handle is. `what` names the task in logs.
    ///
    /// Fails with a configuration error naming `option` when there is no Tokio runtime.
    pub fn spawn<T, F, Fut, R, E>(
        target: Weak<T>,
        interval: Duration,
        option: &str,
        what: &'static str,
        run: F,
    ) -> Result<Self, DriverError>
    where
        T: Send + Sync + ?Sized + 'static,
        F: Fn(std::sync::Arc<T>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<R, E>> + Send,
        R: std::fmt::Debug,
        E: std::fmt::Display,
    {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            DriverError::config(format!(
                "option `{option}` needs a Tokio runtime to run the {what}"
            ))
        })?;
        Ok(Self(handle.spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let Some(target) = target.upgrade() else {
                    return;
                };
                match run(target).await {
                    Ok(result) => tracing::debug!(?result, "{what} ran"),
                    Err(e) => tracing::warn!(error = %e, "{what} failed"),
                }
            }
        })))
    }
}

impl Drop for PeriodicTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}
