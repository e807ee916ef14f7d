//! Connecting to one server (with the read cache's invalidation channel) or to a cluster,
//! and Redis client tracking as the read cache's invalidation source.

use std::{path::Path, sync::Arc, time::Duration};

use redis::{
    Client, ErrorKind as RedisErrorKind, ProtocolVersion, PushInfo, PushKind, RedisError, Value,
    aio::{ConnectionManager, ConnectionManagerConfig},
};
use session_kit_core::{
    DriverError, async_trait,
    layers::{Invalidations, ReadCache},
};

use crate::error::{KindName, redis_error};

#[derive(Clone)]
pub(crate) enum Connection {
    Single(ConnectionManager),
    #[cfg(feature = "cluster")]
    Cluster(Arc<crate::cluster::Cluster>),
}

impl Connection {
    /// Runs a command (bounded by the connection's response timeout and the timeout layer).
    pub(crate) async fn query<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> Result<T, DriverError> {
        let mut connection = self.clone();
        let reply = match &mut connection {
            Connection::Single(c) => cmd.query_async(c).await,
            #[cfg(feature = "cluster")]
            Connection::Cluster(c) => cmd.query_async(&mut c.connection()).await,
        };
        reply.map_err(|e| redis_error(&e))
    }
}

/// Redis client tracking as the read cache's source of invalidations: `CLIENT TRACKING ON
/// NOLOOP` makes Redis push an `invalidate` for every key this connection read, when another
/// client writes or deletes it or it expires. (`BCAST` mode would track every key under the
/// prefix without reads, but Redis 7.0 then reports a connection's own script writes back to
/// it despite `NOLOOP`, which would drop every record it writes.) The driver reads back every
/// key it writes (in the same round trip), so its own writes stay tracked.
pub(crate) struct Tracking(pub(crate) Connection);

#[async_trait]
impl Invalidations for Tracking {
    async fn enable(&self) -> Result<bool, DriverError> {
        let mut cmd = redis::cmd("CLIENT");
        cmd.arg("TRACKING").arg("ON").arg("NOLOOP");
        self.0.query::<Value>(&cmd).await.map(|_| true)
    }

    fn watches_own_writes(&self) -> bool {
        true
    }
}

/// The client of one server at `url`; with `ca_file`, trusting that authority for a
/// `rediss://` server's certificate.
pub(crate) fn client(url: &str, ca_file: Option<&Path>) -> Result<Client, DriverError> {
    let client = match ca_file {
        None => Client::open(url),
        #[cfg(feature = "tls")]
        Some(ca_file) => Client::build_with_tls(url, tls_certificates(url, ca_file)?),
        #[cfg(not(feature = "tls"))]
        Some(_) => return Err(needs_tls()),
    };
    client.map_err(|e| DriverError::config(format!("option `url`: {}", e.kind_name())))
}

/// Before a `rediss://` connection: redis's rustls uses the process's default crypto provider,
/// which rustls cannot choose when both of its providers are compiled in (as soon as another
/// dependency brings aws-lc-rs: a panic on the first connection). Installs ring's, unless the
/// app installed one.
#[cfg(feature = "tls")]
pub(crate) fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// The authorities in `ca_file`, for a `rediss://` URL.
#[cfg(feature = "tls")]
fn tls_certificates(url: &str, ca_file: &Path) -> Result<redis::TlsCertificates, DriverError> {
    if !url.starts_with("rediss://") {
        return Err(DriverError::config(
            "option `tls_ca_file`: only for a rediss:// URL",
        ));
    }
    let pem = std::fs::read(ca_file).map_err(|e| {
        DriverError::config(format!(
            "option `tls_ca_file`: cannot read {}: {e}",
            ca_file.display()
        ))
    })?;
    Ok(redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(pem),
    })
}

/// Without the `tls` feature, a CA file is a configuration error.
#[cfg(not(feature = "tls"))]
fn needs_tls() -> DriverError {
    DriverError::config(
        "option `tls_ca_file`: needs the `tls` feature of session-kit-redis (`redis-tls` of session-kit)",
    )
}

#[cfg(feature = "cluster")]
pub(crate) async fn connect_cluster(
    url: &str,
    ca_file: Option<&Path>,
    connect_timeout: Duration,
    timeout: Duration,
) -> Result<Connection, DriverError> {
    let builder = redis::cluster::ClusterClient::builder(vec![url])
        .connection_timeout(connect_timeout)
        .response_timeout(timeout)
        .retries(1);
    let builder = match ca_file {
        None => builder,
        #[cfg(feature = "tls")]
        Some(ca_file) => builder.certs(tls_certificates(url, ca_file)?),
        #[cfg(not(feature = "tls"))]
        Some(_) => return Err(needs_tls()),
    };
    let client = builder
        .build()
        .map_err(|e| DriverError::config(format!("option `url`: {}", e.kind_name())))?;
    let cluster = crate::cluster::Cluster::connect(client, connect_timeout).await?;
    Ok(Connection::Cluster(cluster))
}

#[cfg(not(feature = "cluster"))]
pub(crate) async fn connect_cluster(
    _: &str,
    _: Option<&Path>,
    _: Duration,
    _: Duration,
) -> Result<Connection, DriverError> {
    Err(DriverError::config(
        "option `cluster`: needs the `cluster` feature of session-kit-redis (`redis-cluster` of session-kit)",
    ))
}

/// A single-server connection; with a cache, over RESP3 with the cache's push handler.
pub(crate) async fn connect_single(
    client: &Client,
    connect_timeout: Duration,
    timeout: Duration,
    cache: Option<(Arc<ReadCache>, String)>,
) -> Result<Connection, RedisError> {
    let mut manager_config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(connect_timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    let client = match cache {
        Some((cache, prefix)) => {
            manager_config = manager_config.set_push_sender(move |push: PushInfo| {
                on_push(&cache, &prefix, push);
                Ok::<(), std::convert::Infallible>(())
            });
            let info = client.get_connection_info().clone();
            let settings = info
                .redis_settings()
                .clone()
                .set_protocol(ProtocolVersion::RESP3);
            Client::open(info.set_redis_settings(settings))?
        }
        None => client.clone(),
    };
    let manager = tokio::time::timeout(
        connect_timeout,
        ConnectionManager::new_with_config(client, manager_config),
    )
    .await
    .map_err(|_| RedisError::from((RedisErrorKind::Io, "connecting to Redis timed out")))??;
    Ok(Connection::Single(manager))
}

/// Applies what Redis pushes: invalidated keys (under this driver's `prefix`, which the cache's
/// keys do not carry), or (a null list) everything; and the client library's notice that the
/// connection was lost.
pub(crate) fn on_push(cache: &ReadCache, prefix: &str, push: PushInfo) {
    let invalidate = |key: &[u8]| {
        if let Some(key) = key.strip_prefix(prefix.as_bytes()) {
            cache.invalidate(key);
        }
    };
    match push.kind {
        PushKind::Invalidate => match push.data.first() {
            Some(Value::Array(keys)) => {
                for key in keys {
                    match key {
                        Value::BulkString(key) => invalidate(key),
                        Value::SimpleString(key) => invalidate(key.as_bytes()),
                        _ => cache.flush(),
                    }
                }
            }
            _ => cache.flush(),
        },
        PushKind::Disconnection => cache.disconnected(),
        _ => {}
    }
}
