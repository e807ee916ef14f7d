//! The read cache's invalidation source: `LISTEN` on the table's channel, which a trigger
//! notifies on every update and delete (see `sql.rs`), with the writer's id so that this
//! process's own writes (which the cache layer handles itself) are not invalidated twice.

use std::{
    future::poll_fn,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use session_kit_core::{
    DriverError, async_trait,
    layers::{Invalidations, ReadCache},
};
use tokio_postgres::{AsyncMessage, Client, Config};

use crate::error::pg_error;

/// The connector of the pool, for the listening connection too.
#[cfg(feature = "tls")]
pub(crate) type Connector = tokio_postgres_rustls::MakeRustlsConnect;
#[cfg(not(feature = "tls"))]
pub(crate) type Connector = tokio_postgres::NoTls;

/// One `LISTEN`ing connection, made again when the cache asks after it was lost.
pub(crate) struct Listener {
    pub(crate) config: Config,
    pub(crate) connector: Connector,
    /// `LISTEN "channel"`.
    pub(crate) listen: String,
    /// This process's writer id, as the trigger reports it.
    pub(crate) writer: String,
    pub(crate) cache: Arc<ReadCache>,
    /// The listening client (dropping it ends the connection).
    client: Mutex<Option<Client>>,
    /// Which connection is current: only its end turns the cache off.
    generation: Arc<AtomicU64>,
}

impl Listener {
    pub(crate) fn new(
        config: Config,
        connector: Connector,
        channel: &str,
        writer: String,
        cache: Arc<ReadCache>,
    ) -> Self {
        Self {
            config,
            connector,
            listen: format!("LISTEN \"{channel}\""),
            writer,
            cache,
            client: Mutex::new(None),
            generation: Arc::new(AtomicU64::new(0)),
        }
    }
}

/// Applies one notification: `writer:hex(key)`.
fn apply(cache: &ReadCache, own: &str, payload: &str) {
    let Some((writer, hex)) = payload.split_once(':') else {
        cache.flush();
        return;
    };
    if writer == own {
        return;
    }
    match decode_hex(hex) {
        Some(key) => cache.invalidate(&key),
        None => cache.flush(),
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[async_trait]
impl Invalidations for Listener {
    async fn enable(&self) -> Result<bool, DriverError> {
        // A previous connection, if any, is over.
        drop(self.client.lock().unwrap_or_else(|p| p.into_inner()).take());
        // `NoTls` is `Copy`, the TLS connector is not: one clone for both builds.
        #[allow(clippy::clone_on_copy)]
        let connector = self.connector.clone();
        let (client, mut connection) = self.config.connect(connector).await.map_err(pg_error)?;
        let (cache, own) = (Arc::clone(&self.cache), self.writer.clone());
        let generation = Arc::clone(&self.generation);
        let mine = generation.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::spawn(async move {
            while let Some(message) = poll_fn(|cx| connection.poll_message(cx)).await {
                match message {
                    Ok(AsyncMessage::Notification(n)) => apply(&cache, &own, n.payload()),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(error = %e, "postgres invalidation connection lost");
                        break;
                    }
                }
            }
            // Notifications may have been missed from here on: empty the cache and keep it
            // off until the cache layer makes a new connection.
            if generation.load(Ordering::SeqCst) == mine {
                cache.disconnected();
            }
        });
        client.batch_execute(&self.listen).await.map_err(pg_error)?;
        *self.client.lock().unwrap_or_else(|p| p.into_inner()) = Some(client);
        Ok(true)
    }

    fn watches_own_writes(&self) -> bool {
        // Every later change by another writer is notified, whoever read the key.
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_parsed_strictly() {
        assert_eq!(decode_hex("6b3a"), Some(b"k:".to_vec()));
        assert_eq!(decode_hex("6"), None);
        assert_eq!(decode_hex("zz"), None);
        assert_eq!(decode_hex(""), Some(Vec::new()));
    }
}
