//! The Redis Cluster connection, renewed when the cluster client has lost every node.
//!
//! The `redis` crate's cluster client repairs itself after most failures: lost nodes are
//! reconnected, the slot map is refreshed, and when no node is left it starts again from the
//! URL's node. One case it does not leave (redis 1.8, and 2.0.0-rc.2): a slot refresh that
//! starts when its table of nodes is empty, which happens when a whole cluster restarts under
//! load. That refresh finds no node to ask, and the client tries it again forever without going
//! back to the URL's node; every command fails with `ClusterConnectionNotFound` until the
//! process restarts (seen in `http-tests/tests/outage.rs`: one process in four never
//! recovered).
//!
//! [`Cluster`] keeps the client and the connection it gave. A command that fails with
//! `ClusterConnectionNotFound` (no node reachable: the cluster is down, or the client is stuck)
//! starts a renewal in the background, at most one at a time and one per [`RENEW_EVERY`]: a new
//! connection from the client, made as at start-up (from the URL's node, slots and all), which
//! replaces the old one once it is made. While the cluster is down, renewals fail and the old
//! connection stays; the first one after the cluster is back succeeds. Commands in flight finish
//! on the connection they started on; the old connection's task ends with its last user.
//!
//! `tests/cluster_renewal.rs` counts the attempts: 4 in 3.5 s of a cluster that stays down, while
//! eight tasks had 57,000 commands refused (without the one-per-second limit: about 14,000).

use std::{
    sync::{Arc, Mutex, PoisonError, RwLock},
    time::{Duration, Instant},
};

use redis::{
    Cmd, ErrorKind, RedisFuture, RedisResult, Value, aio::ConnectionLike, cluster::ClusterClient,
    cluster_async::ClusterConnection, cluster_routing::RoutingInfo,
};
use session_kit_core::DriverError;

use crate::error::redis_error;

/// The shortest time between two renewals: the cluster client's own repair gets its chance
/// first, and a cluster that stays down costs one connection attempt per period.
pub(crate) const RENEW_EVERY: Duration = Duration::from_secs(1);

/// A cluster client and its current connection.
pub(crate) struct Cluster {
    client: ClusterClient,
    connect_timeout: Duration,
    current: RwLock<ClusterConnection>,
    renewal: Mutex<Renewal>,
}

/// When the last renewal started, and whether one is under way.
struct Renewal {
    started: Option<Instant>,
    running: bool,
}

impl Cluster {
    /// Connects (failing within `connect_timeout`).
    pub(crate) async fn connect(
        client: ClusterClient,
        connect_timeout: Duration,
    ) -> Result<Arc<Self>, DriverError> {
        let connection = open(&client, connect_timeout).await?;
        Ok(Arc::new(Self {
            client,
            connect_timeout,
            current: RwLock::new(connection),
            renewal: Mutex::new(Renewal {
                started: None,
                running: false,
            }),
        }))
    }

    /// The connection to run one command or pipeline on.
    pub(crate) fn connection(self: &Arc<Self>) -> Watched {
        let connection = self
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        Watched {
            connection,
            cluster: Arc::clone(self),
        }
    }

    /// Looks at a command's result: a cluster client without any node starts a renewal.
    fn watch<T>(self: &Arc<Self>, result: &RedisResult<T>) {
        if matches!(result, Err(e) if e.kind() == ErrorKind::ClusterConnectionNotFound) {
            self.renew();
        }
    }

    /// Starts a renewal in the background, unless one is under way or the last one started less
    /// than [`RENEW_EVERY`] ago.
    fn renew(self: &Arc<Self>) {
        {
            let mut renewal = self.renewal.lock().unwrap_or_else(PoisonError::into_inner);
            let recent = renewal.started.is_some_and(|at| at.elapsed() < RENEW_EVERY);
            if renewal.running || recent {
                return;
            }
            renewal.running = true;
            renewal.started = Some(Instant::now());
        }
        let cluster = Arc::clone(self);
        tokio::spawn(async move {
            match open(&cluster.client, cluster.connect_timeout).await {
                Ok(connection) => {
                    *cluster
                        .current
                        .write()
                        .unwrap_or_else(PoisonError::into_inner) = connection;
                    tracing::warn!(
                        "the Redis Cluster client had no reachable node: connected again from the URL's node"
                    );
                }
                Err(e) => tracing::debug!(error = %e, "Redis Cluster still unreachable"),
            }
            cluster
                .renewal
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .running = false;
        });
    }
}

/// A new connection from `client`, as at start-up (failing within `connect_timeout`).
async fn open(
    client: &ClusterClient,
    connect_timeout: Duration,
) -> Result<ClusterConnection, DriverError> {
    tokio::time::timeout(connect_timeout, client.get_async_connection())
        .await
        .map_err(|_| DriverError::timeout("connecting to the Redis cluster", connect_timeout))?
        .map_err(|e| redis_error(&e))
}

/// One use of the current connection: its failures are reported to the [`Cluster`].
pub(crate) struct Watched {
    connection: ClusterConnection,
    cluster: Arc<Cluster>,
}

impl Watched {
    /// Sends a command to the nodes `routing` names.
    pub(crate) async fn route_command(
        &mut self,
        cmd: Cmd,
        routing: RoutingInfo,
    ) -> RedisResult<Value> {
        let result = self.connection.route_command(cmd, routing).await;
        self.cluster.watch(&result);
        result
    }
}

impl ConnectionLike for Watched {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let result = self.connection.req_packed_command(cmd).await;
            self.cluster.watch(&result);
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let result = self
                .connection
                .req_packed_commands(pipeline, offset, count)
                .await;
            self.cluster.watch(&result);
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.connection.get_db()
    }
}
