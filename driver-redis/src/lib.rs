//! A Redis session driver: sessions shared by many app servers.
//!
//! * **One round trip per operation.** A stored value is `version (8 bytes) || expiry
//!   (8 bytes, Unix ms, 0 = none) || value`, so a read is one `GET`; plain, create-only and
//!   update-only writes are one `SET` (`PX`, `NX`, `XX`; with the local cache on, plain and
//!   update-only writes add a `GETRANGE` of the version in the same round trip, see below);
//!   compare-and-swap and touch are small Lua scripts that run atomically on the server
//!   (`EVALSHA`, never `WATCH`/`MULTI` across round trips). Touch rewrites only the 8 expiry
//!   bytes (`SETRANGE`) and the TTL (`PEXPIRE`).
//! * **Local cache, invalidated by Redis** (on by default, `local_cache` bytes, 0 = off): the
//!   cache is session-kit-core's read-cache layer ([`CacheLayer`], which the driver asks for in
//!   its layer defaults); this driver is its invalidation source. The connection speaks RESP3
//!   and asks Redis to report changes to the keys it reads (`CLIENT TRACKING ON NOLOOP`). Sessions this driver read or updated are answered
//!   locally until another client changes them, so a session read is usually no round trip
//!   and a commit is one round trip. A write ends Redis's tracking of the key for the writer,
//!   so the compare-and-swap script reads the key back, and a plain or update-only write is
//!   pipelined with a `GETRANGE` of the version: the written record is kept only if that
//!   version is the one just written (no other client wrote in between). Compare-and-swap
//!   costs about 3 µs of Redis time per commit against 0.3 µs for `SET` (Lua), so a session
//!   storage with `ConcurrentWrites::LastWriteWins` commits with `SET XX` + `GETRANGE`.
//!   Writes are still checked by Redis (create-only,
//!   compare-and-swap), so a stale local copy can only make a commit conflict, never lose an
//!   update; a reader on another app server may see the previous record until the
//!   invalidation reaches it (one network hop after the write). A lost connection empties the
//!   cache until tracking is back; a server that refuses tracking leaves the driver uncached.
//!   Redis keeps a tracking entry per key each connection read (bounded by its
//!   `tracking-table-max-keys`; past that it invalidates keys to stay under it). Not used
//!   with Redis Cluster.
//! * **Native TTL** in milliseconds; Redis deletes expired keys itself.
//! * **Connections**: a multiplexed, auto-reconnecting connection (`ConnectionManager`), or a
//!   cluster connection for Redis Cluster (`redis+cluster://host:port`, any node as seed).
//!   Every operation is bounded by `command_timeout` (session-kit-core's timeout layer, which the
//!   driver asks for; the connection's response timeout is the same and resets a stuck
//!   connection): while Redis is down, calls fail fast with a retryable error, and the same
//!   driver recovers when Redis comes back. On a cluster, a command that finds no reachable
//!   node also makes the driver connect again from the URL's node in the background (at most
//!   once a second), because the `redis` crate's cluster client can stay stuck after the whole
//!   cluster restarts.
//! * **Listing** pages with `SCAN` cursors (never `KEYS`), node by node on a cluster: a page
//!   holds about 1000 keys and the cursor says where to go on, so memory stays bounded at any
//!   keyspace size. As with `SCAN` itself, a key can come twice if Redis resizes its table
//!   during a listing.
//!
//! Apps usually name it in a config string through session-kit (feature `redis`):
//! `session_kit::storage("redis://127.0.0.1:6379?prefix=app:")`. Built in code:
//!
//! ```no_run
//! use std::{sync::Arc, time::Duration};
//!
//! use session_kit_core::{DynamicData, Keyring, SessionStorage};
//! use session_kit_redis::{RedisConfig, RedisDriver};
//!
//! # async fn app() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = RedisConfig::new("redis://127.0.0.1:6379");
//! config.prefix = "app:".into(); // several apps can share one Redis
//! config.command_timeout = Some(Duration::from_millis(500));
//! let driver = RedisDriver::connect(config).await?; // fails fast if Redis cannot be reached
//! let storage = SessionStorage::<DynamicData>::builder(Arc::new(driver))
//!     .keyring(Keyring::from_env("SESSION_SECRET")?)
//!     .build()?; // in the layers the driver asks for: its timeout and read cache
//! # Ok(()) }
//! ```
#![doc = include_str!("../docs.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "cluster")]
mod cluster;
mod codec;
mod config;
mod connection;
mod error;

use std::{collections::BTreeSet, fmt, sync::Arc, time::Duration};

use redis::{Cmd, ErrorKind as RedisErrorKind, Script, ServerErrorKind, Value};
use session_kit_core::driver::deadline_after;
use session_kit_core::{
    Capabilities, Clock, Driver, DriverError, Entry, LayerOptions, ListPage, PutOptions,
    SystemClock, TtlSupport, Version, WriteMode, async_trait,
    bytes::Bytes,
    layers::{CacheLayer, ReadCache},
};

use crate::{
    codec::{HEADER_VERSION_END, decode, encode, version_token},
    connection::{Connection, Tracking, client, connect_cluster, connect_single},
    error::{KindName, redis_error},
};
pub use config::{DEFAULT_LOCAL_CACHE, RedisConfig, register};

/// The registry name of this driver.
pub const NAME: &str = "redis";
/// URL schemes this driver registers.
pub const SCHEMES: &[&str] = &["redis", "rediss", "redis+unix", "unix", "redis+cluster"];
/// Largest key accepted (after the prefix), in bytes.
pub const MAX_KEY_LEN: usize = 4096;
/// Largest value accepted, in bytes.
pub const MAX_VALUE_SIZE: usize = 16 * 1024 * 1024;
/// The Redis driver. See the crate documentation.
pub struct RedisDriver {
    connection: Connection,
    prefix: String,
    layers: LayerOptions,
    caps: Capabilities,
    /// The clock of the deadline kept beside each value (`Entry::expires_at`); Redis expires
    /// keys by its own.
    clock: Arc<dyn Clock>,
    /// The scripts, hashed once (`Script::new` computes the SHA-1 that `EVALSHA` sends).
    cas: Script,
    touch: Script,
    /// The read cache, when on (single server, RESP3): the driver reads back what it writes
    /// so that Redis keeps tracking the key, and invalidates a key whose read-back shows
    /// another writer. The cache itself is session-kit-core's read-cache layer.
    cache: Option<Arc<ReadCache>>,
}

impl fmt::Debug for RedisDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisDriver")
            .field("cluster", &self.is_cluster())
            .field("prefix", &self.prefix)
            .field("local_cache", &self.cache.is_some())
            .finish_non_exhaustive()
    }
}

/// Compare-and-swap: writes only when the stored version (the first 8 bytes) is ARGV[1].
/// The read after the write keeps the key tracked for this connection's local cache (Redis
/// forgets a tracked key when it changes); its reply is not used.
///
/// The offsets are Lua strings, not numbers: Redis turns every number a script passes to
/// `redis.call` into a string with `printf("%.17g")`, about 0.37 µs per argument on Redis 7.0
/// (`redis-benchmark`, a script of one `GETRANGE k 0 7`: 2.12 µs per call; with '0', '7':
/// 1.38 µs).
const CAS: &str = r"
if redis.call('GETRANGE', KEYS[1], '0', '7') ~= ARGV[1] then return 0 end
if ARGV[3] == '' then redis.call('SET', KEYS[1], ARGV[2])
else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
redis.call('GETRANGE', KEYS[1], '0', '0')
return 1";

/// Touch: rewrites the 8 expiry bytes and the TTL, not the value (the offset a string, as in
/// [`CAS`]).
const TOUCH: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SETRANGE', KEYS[1], '8', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1";

impl RedisDriver {
    /// `GET`.
    async fn read(&self, key: &str) -> Result<Option<Entry>, DriverError> {
        let raw: Option<Vec<u8>> = self.query(redis::cmd("GET").arg(self.key(key))).await?;
        raw.map(decode).transpose()
    }

    /// Connects (failing within `connect_timeout` if Redis cannot be reached).
    pub async fn connect(config: RedisConfig) -> Result<Self, DriverError> {
        let url = config
            .url
            .as_deref()
            .ok_or_else(|| DriverError::config("option `url`: the Redis URL is required"))?;
        // `redis+cluster://` implies `cluster`, however the config was made.
        let cluster = config.cluster || url.starts_with("redis+cluster://");
        let url = if cluster {
            url.replacen("redis+cluster://", "redis://", 1)
        } else {
            url.to_owned()
        };
        let url = url.replacen("redis+unix://", "unix://", 1);
        if url.starts_with("rediss://") && !cfg!(feature = "tls") {
            return Err(DriverError::config(
                "option `url`: rediss:// needs the `tls` feature of session-kit-redis (`redis-tls` of session-kit)",
            ));
        }
        #[cfg(feature = "tls")]
        if url.starts_with("rediss://") {
            connection::ensure_crypto_provider();
        }
        let connect_timeout = config.connect_timeout.unwrap_or(Duration::from_secs(2));
        let timeout = config.command_timeout.unwrap_or(Duration::from_secs(1));
        let budget = usize::try_from(config.local_cache.unwrap_or(0)).unwrap_or(usize::MAX);
        let mut cache = (!cluster && budget > 0).then(|| Arc::new(ReadCache::new(budget)));
        let connection = if cluster {
            connect_cluster(
                &url,
                config.tls_ca_file.as_deref(),
                connect_timeout,
                timeout,
            )
            .await?
        } else {
            let client = client(&url, config.tls_ca_file.as_deref())?;
            let sink = cache.clone().map(|c| (c, config.prefix.clone()));
            match connect_single(&client, connect_timeout, timeout, sink).await {
                Ok(manager) => manager,
                // A server without RESP3 (Redis before 6) refuses `HELLO 3`: connect without
                // the local cache.
                Err(e) if cache.is_some() && e.kind() == RedisErrorKind::RESP3NotSupported => {
                    tracing::warn!(
                        error = e.kind_name(),
                        "Redis refused RESP3; the local session cache is off"
                    );
                    cache = None;
                    connect_single(&client, connect_timeout, timeout, None)
                        .await
                        .map_err(|e| redis_error(&e))?
                }
                Err(e) => return Err(redis_error(&e)),
            }
        };
        // Every operation bounded by the timeout layer, which the driver asks for; the
        // connection's response timeout (the same) also resets a stuck connection. The read
        // cache is a layer too, kept correct by Redis client tracking.
        let mut layers = LayerOptions::new().with_timeout(timeout);
        if let Some(cache) = &cache {
            let source = Arc::new(Tracking(connection.clone()));
            layers = layers.with_read_cache(CacheLayer::new(Arc::clone(cache), source));
        }
        Ok(Self {
            connection,
            prefix: config.prefix,
            layers,
            clock: Arc::new(SystemClock),
            cas: Script::new(CAS),
            touch: Script::new(TOUCH),
            cache,
            caps: Capabilities::new(MAX_KEY_LEN, MAX_VALUE_SIZE)
                .with_ttl(TtlSupport::exact(Duration::from_millis(1)))
                .with_create_only()
                .with_update_only()
                .with_compare_and_swap()
                .with_touch()
                .with_list(),
        })
    }

    /// Reports deadlines (`Entry::expires_at`) by `clock` (the system clock by default);
    /// Redis expires keys by its own.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    fn is_cluster(&self) -> bool {
        match self.connection {
            Connection::Single(_) => false,
            #[cfg(feature = "cluster")]
            Connection::Cluster(_) => true,
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Runs a command (bounded by the connection's response timeout and the timeout layer).
    async fn query<T: redis::FromRedisValue>(&self, cmd: &Cmd) -> Result<T, DriverError> {
        self.connection.query(cmd).await
    }

    /// Runs a pipeline (one round trip).
    async fn pipeline<T: redis::FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, DriverError> {
        let mut connection = self.connection.clone();
        let run = async {
            match &mut connection {
                Connection::Single(c) => pipe.query_async(c).await,
                #[cfg(feature = "cluster")]
                Connection::Cluster(c) => pipe.query_async(&mut c.connection()).await,
            }
        };
        run.await.map_err(|e| redis_error(&e))
    }

    /// Runs a script: `EVALSHA` with the arguments written once into the command; when Redis
    /// does not know the script (after a restart or a `SCRIPT FLUSH`), the client library
    /// loads it and runs it again.
    async fn script<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        key: &str,
        args: &[&[u8]],
    ) -> Result<T, DriverError> {
        let mut evalsha = redis::cmd("EVALSHA");
        evalsha.arg(script.get_hash()).arg(1).arg(key);
        for arg in args {
            evalsha.arg(*arg);
        }
        let mut connection = self.connection.clone();
        let reply = match &mut connection {
            Connection::Single(c) => evalsha.query_async(c).await,
            #[cfg(feature = "cluster")]
            Connection::Cluster(c) => evalsha.query_async(&mut c.connection()).await,
        };
        let reply = match reply {
            Err(e) if e.kind() == RedisErrorKind::Server(ServerErrorKind::NoScript) => {
                let mut invocation = script.key(key);
                for arg in args {
                    invocation.arg(*arg);
                }
                // Boxed: the rare path keeps its state out of every commit's future.
                match &mut connection {
                    Connection::Single(c) => Box::pin(invocation.invoke_async(c)).await,
                    #[cfg(feature = "cluster")]
                    Connection::Cluster(c) => {
                        Box::pin(invocation.invoke_async(&mut c.connection())).await
                    }
                }
            }
            reply => reply,
        };
        reply.map_err(|e| redis_error(&e))
    }

    /// `SCAN` steps on one node from `cursor` until at least [`LIST_PAGE`] keys matching
    /// `pattern` are in `out` or the node is done; returns the cursor to go on from (`0`: the
    /// node is done).
    async fn scan_node(
        &self,
        pattern: &str,
        node: Option<(&str, u16)>,
        mut cursor: u64,
        out: &mut BTreeSet<Vec<u8>>,
    ) -> Result<u64, DriverError> {
        loop {
            let mut cmd = redis::cmd("SCAN");
            cmd.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(LIST_PAGE);
            let (next, keys): (u64, Vec<Vec<u8>>) = match (node, &self.connection) {
                #[cfg(feature = "cluster")]
                (Some((host, port)), Connection::Cluster(c)) => {
                    use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
                    let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                        host: host.to_owned(),
                        port,
                    });
                    let value = c
                        .connection()
                        .route_command(cmd, routing)
                        .await
                        .map_err(|e| redis_error(&e))?;
                    redis::from_redis_value(value).map_err(|e| redis_error(&e.into()))?
                }
                _ => self.query(&cmd).await?,
            };
            out.extend(keys);
            if next == 0 || out.len() >= LIST_PAGE {
                return Ok(next);
            }
            cursor = next;
        }
    }

    /// The primaries of a cluster, as (host, port).
    #[cfg(feature = "cluster")]
    async fn primaries(&self) -> Result<Vec<(String, u16)>, DriverError> {
        let nodes: String = self.query(redis::cmd("CLUSTER").arg("NODES")).await?;
        Ok(nodes
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let flags = fields.get(2)?;
                if !flags.contains("master") || flags.contains("fail") {
                    return None;
                }
                let address = fields.get(1)?.split('@').next()?;
                let (host, port) = address.rsplit_once(':')?;
                Some((host.to_owned(), port.parse().ok()?))
            })
            .collect())
    }
}

/// Keys per listing page (and the `COUNT` hint of each `SCAN` step).
const LIST_PAGE: usize = 1000;

/// A glob pattern matching keys that start with `prefix` (its glob characters escaped).
fn match_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('*');
    pattern
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[async_trait]
impl Driver for RedisDriver {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn layer_defaults(&self) -> LayerOptions {
        self.layers.clone()
    }

    async fn get(&self, key: &str) -> Result<Option<Entry>, DriverError> {
        self.read(key).await
    }

    async fn put(
        &self,
        key: &str,
        value: Bytes,
        options: PutOptions,
    ) -> Result<Version, DriverError> {
        let ttl = options.ttl;
        let version: u64 = rand::random();
        let expires_at = ttl.map(|t| deadline_after(self.clock.now(), t));
        let blob = encode(version, expires_at, &value);
        let full_key = self.key(key);
        // With the read cache, a write other than create-only (whose record the cache does not
        // keep) is read back in the same round trip, so that Redis tracks the key again.
        let read_back = self.cache.is_some() && options.mode != WriteMode::CreateOnly;
        let written = match &options.mode {
            WriteMode::IfVersion(expected) => match u64::from_str_radix(expected.as_str(), 16) {
                Err(_) => false,
                Ok(expected) => {
                    // The script reads the key back itself.
                    let ttl_arg = ttl.map(|t| millis(t).to_string()).unwrap_or_default();
                    self.script::<i64>(
                        &self.cas,
                        &full_key,
                        &[&expected.to_be_bytes(), &blob, ttl_arg.as_bytes()],
                    )
                    .await?
                        == 1
                }
            },
            mode => {
                let mut cmd = redis::cmd("SET");
                cmd.arg(&full_key).arg(blob);
                if let Some(t) = ttl {
                    cmd.arg("PX").arg(millis(t));
                }
                match mode {
                    WriteMode::CreateOnly => {
                        cmd.arg("NX");
                    }
                    WriteMode::UpdateOnly => {
                        cmd.arg("XX");
                    }
                    _ => {}
                }
                if read_back {
                    let mut pipe = redis::pipe();
                    pipe.add_command(cmd)
                        .cmd("GETRANGE")
                        .arg(&full_key)
                        .arg(0)
                        .arg(HEADER_VERSION_END);
                    let (reply, now_stored) = self.pipeline::<(Value, Vec<u8>)>(&pipe).await?;
                    if now_stored != version.to_be_bytes()
                        && let Some(cache) = &self.cache
                    {
                        // Another client wrote between the two commands: what the cache would
                        // keep is not what Redis holds (its change sends no invalidation to
                        // this connection, which was not tracking the key yet).
                        cache.invalidate(key.as_bytes());
                    }
                    reply != Value::Nil
                } else {
                    self.query::<Value>(&cmd).await? != Value::Nil
                }
            }
        };
        match (written, &options.mode) {
            (true, _) => Ok(version_token(version.to_be_bytes())),
            (false, WriteMode::CreateOnly) => Err(DriverError::AlreadyExists),
            (false, _) => Err(DriverError::Conflict),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), DriverError> {
        self.query::<i64>(redis::cmd("DEL").arg(self.key(key)))
            .await
            .map(|_| ())
    }

    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, DriverError> {
        let expires_at = deadline_after(self.clock.now(), ttl);
        let ttl_arg = millis(ttl).to_string();
        let key = self.key(key);
        let done = self
            .script::<i64>(
                &self.touch,
                &key,
                &[&expires_at.to_be_bytes(), ttl_arg.as_bytes()],
            )
            .await?;
        Ok(done == 1)
    }

    async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<ListPage, DriverError> {
        let pattern = match_prefix(&self.key(prefix));
        // A page is one stretch of `SCAN` on one node: memory stays bounded by the page size
        // whatever the keyspace. The cursor names the node (its index among the primaries,
        // sorted by address; 0 on a single server) and the `SCAN` cursor on it.
        let (node, scan) = match cursor {
            None => (0usize, 0u64),
            Some(c) => c
                .split_once(':')
                .and_then(|(n, s)| Some((n.parse().ok()?, s.parse().ok()?)))
                .ok_or_else(|| DriverError::invalid_key("not a listing cursor of this driver"))?,
        };
        let mut found = BTreeSet::new();
        let next = match &self.connection {
            Connection::Single(_) => {
                let next = self.scan_node(&pattern, None, scan, &mut found).await?;
                (next != 0).then(|| format!("0:{next}"))
            }
            #[cfg(feature = "cluster")]
            Connection::Cluster(_) => {
                let mut primaries = self.primaries().await?;
                primaries.sort();
                match primaries.get(node) {
                    None => None,
                    Some((host, port)) => {
                        let next = self
                            .scan_node(&pattern, Some((host, *port)), scan, &mut found)
                            .await?;
                        match (next, node + 1 < primaries.len()) {
                            (0, true) => Some(format!("{}:0", node + 1)),
                            (0, false) => None,
                            (next, _) => Some(format!("{node}:{next}")),
                        }
                    }
                }
            }
        };
        #[cfg(not(feature = "cluster"))]
        let _ = node;
        let keys = found
            .into_iter()
            .filter_map(|k| String::from_utf8(k).ok())
            .filter_map(|k| k.strip_prefix(&self.prefix).map(str::to_owned))
            .filter(|k| k.starts_with(prefix))
            .collect();
        Ok(ListPage { keys, cursor: next })
    }

    /// Redis drops expired keys itself: nothing to do.
    async fn sweep(&self) -> Result<u64, DriverError> {
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every argument the scripts pass to `redis.call` is a key, an `ARGV` or a string
    /// literal: a Lua number would cost Redis a `printf` per call (see [`CAS`]).
    #[test]
    fn scripts_pass_no_lua_numbers_to_redis() {
        for script in [CAS, TOUCH] {
            for call in script.split("redis.call(").skip(1) {
                let args = call.split(')').next().unwrap_or_default();
                for arg in args.split(',').map(str::trim) {
                    assert!(
                        arg.starts_with('\'')
                            || arg.starts_with("KEYS[")
                            || arg.starts_with("ARGV["),
                        "redis.call argument {arg:?} in {script}"
                    );
                }
            }
        }
    }

    #[test]
    fn glob_characters_in_prefixes_are_escaped() {
        assert_eq!(match_prefix("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\*");
        assert_eq!(match_prefix(""), "*");
    }
}
