//! The writer thread: owns the one write connection of this process and commits every write
//! waiting in its queue in one transaction.

use std::{
    sync::mpsc,
    time::{Duration, SystemTime},
};

use rusqlite::{Connection, OptionalExtension, params};
use session_kit_core::Clock;
use session_kit_core::driver::{deadline_after, unix_millis};
use session_kit_core::{DriverError, Version, WriteMode, bytes::Bytes};
use tokio::sync::oneshot;

use crate::sql_error;

/// A write, with the channel its result goes back on.
pub(crate) struct Op {
    pub(crate) kind: OpKind,
    pub(crate) reply: oneshot::Sender<Result<Output, DriverError>>,
}

pub(crate) enum OpKind {
    Put {
        key: String,
        value: Bytes,
        mode: WriteMode,
        ttl: Option<Duration>,
    },
    Delete {
        key: String,
    },
    Touch {
        key: String,
        ttl: Duration,
    },
    Sweep,
}

pub(crate) enum Output {
    Version(Version),
    Done,
    Touched(bool),
    Swept(u64),
}

/// Runs until every sender is dropped.
pub(crate) fn run(
    conn: Connection,
    table: String,
    queue: mpsc::Receiver<Op>,
    max_batch: usize,
    clock: std::sync::Arc<dyn Clock>,
) {
    let sql = Sql::new(&table);
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match queue.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let results = commit(&conn, &sql, &batch, clock.as_ref());
        match results {
            Ok(results) => {
                for (op, result) in batch.into_iter().zip(results) {
                    let _ = op.reply.send(result);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, ops = batch.len(), "sqlite write batch failed");
                for op in batch {
                    let _ = op.reply.send(Err(sql_error(&e)));
                }
            }
        }
    }
}

/// Applies the batch in one transaction. A refused condition is that op's result; an SQL
/// error rolls the whole batch back.
fn commit(
    conn: &Connection,
    sql: &Sql,
    batch: &[Op],
    clock: &dyn Clock,
) -> rusqlite::Result<Vec<Result<Output, DriverError>>> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let at = clock.now();
    let now = unix_millis(at);
    let applied: rusqlite::Result<Vec<_>> = batch
        .iter()
        .map(|op| apply(conn, sql, &op.kind, now, at))
        .collect();
    match applied {
        Ok(results) => {
            if let Err(e) = conn.execute_batch("COMMIT") {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e);
            }
            Ok(results)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// The deadline `ttl` after the transaction's clock read `at` (rounded up: never early).
fn deadline(at: SystemTime, ttl: Option<Duration>) -> Option<i64> {
    ttl.map(|t| i64::try_from(deadline_after(at, t)).unwrap_or(i64::MAX))
}

fn apply(
    conn: &Connection,
    sql: &Sql,
    op: &OpKind,
    now: u64,
    at: SystemTime,
) -> rusqlite::Result<Result<Output, DriverError>> {
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    Ok(match op {
        OpKind::Put {
            key,
            value,
            mode,
            ttl,
        } => {
            let version: i64 = rand::random();
            let expires = deadline(at, *ttl);
            let changed = match mode {
                WriteMode::Overwrite => conn.prepare_cached(&sql.upsert)?.execute(params![
                    key,
                    &value[..],
                    version,
                    expires
                ])?,
                WriteMode::CreateOnly => conn.prepare_cached(&sql.create)?.execute(params![
                    key,
                    &value[..],
                    version,
                    expires,
                    now
                ])?,
                WriteMode::UpdateOnly => conn.prepare_cached(&sql.update)?.execute(params![
                    key,
                    &value[..],
                    version,
                    expires,
                    now
                ])?,
                WriteMode::IfVersion(expected) => match expected.as_str().parse::<i64>() {
                    Ok(expected) => conn
                        .prepare_cached(&sql.compare_and_swap)?
                        .execute(params![key, &value[..], version, expires, now, expected])?,
                    Err(_) => 0,
                },
            };
            match (changed, mode) {
                (0, WriteMode::CreateOnly) => Err(DriverError::AlreadyExists),
                (0, _) => Err(DriverError::Conflict),
                _ => Ok(Output::Version(Version::new(version.to_string()))),
            }
        }
        OpKind::Delete { key } => {
            conn.prepare_cached(&sql.delete)?.execute(params![key])?;
            Ok(Output::Done)
        }
        OpKind::Touch { key, ttl } => {
            let changed = conn.prepare_cached(&sql.touch)?.execute(params![
                key,
                deadline(at, Some(*ttl)),
                now
            ])?;
            Ok(Output::Touched(changed > 0))
        }
        OpKind::Sweep => {
            let removed = conn.prepare_cached(&sql.sweep)?.execute(params![now])?;
            Ok(Output::Swept(removed as u64))
        }
    })
}

/// The statements, for one table.
pub(crate) struct Sql {
    upsert: String,
    create: String,
    update: String,
    compare_and_swap: String,
    delete: String,
    touch: String,
    sweep: String,
    pub(crate) get: String,
    pub(crate) list: String,
}

impl Sql {
    pub(crate) fn new(t: &str) -> Self {
        const LIVE: &str = "(expires_at IS NULL OR expires_at > ?5)";
        Self {
            upsert: format!(
                "INSERT INTO {t} (key, value, version, expires_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value, version = excluded.version,
                 expires_at = excluded.expires_at"
            ),
            // An expired row counts as absent.
            create: format!(
                "INSERT INTO {t} (key, value, version, expires_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value, version = excluded.version,
                 expires_at = excluded.expires_at WHERE {t}.expires_at IS NOT NULL AND {t}.expires_at <= ?5"
            ),
            update: format!(
                "UPDATE {t} SET value = ?2, version = ?3, expires_at = ?4 WHERE key = ?1 AND {LIVE}"
            ),
            compare_and_swap: format!(
                "UPDATE {t} SET value = ?2, version = ?3, expires_at = ?4 WHERE key = ?1 AND version = ?6 AND {LIVE}"
            ),
            delete: format!("DELETE FROM {t} WHERE key = ?1"),
            touch: format!(
                "UPDATE {t} SET expires_at = ?2 WHERE key = ?1 AND (expires_at IS NULL OR expires_at > ?3)"
            ),
            sweep: format!("DELETE FROM {t} WHERE expires_at IS NOT NULL AND expires_at <= ?1"),
            get: format!(
                "SELECT value, version, expires_at FROM {t} WHERE key = ?1 AND (expires_at IS NULL OR expires_at > ?2)"
            ),
            list: format!(
                "SELECT key FROM {t} WHERE key >= ?1 AND key > ?2 AND (expires_at IS NULL OR expires_at > ?3)
                 ORDER BY key LIMIT ?4"
            ),
        }
    }
}

/// Creates the table and its expiry index if missing.
pub(crate) fn create_schema(conn: &Connection, table: &str) -> rusqlite::Result<()> {
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {table} (
             key TEXT PRIMARY KEY NOT NULL,
             value BLOB NOT NULL,
             version INTEGER NOT NULL,
             expires_at INTEGER
         ) WITHOUT ROWID;
         CREATE INDEX IF NOT EXISTS {table}_expires_at ON {table} (expires_at) WHERE expires_at IS NOT NULL;"
    ))
}

/// A stored row: value, version, expiry (Unix ms).
pub(crate) type Row = (Vec<u8>, i64, Option<i64>);

/// Reads one key (used by the reader pool).
pub(crate) fn read(
    conn: &Connection,
    sql: &Sql,
    key: &str,
    now: u64,
) -> rusqlite::Result<Option<Row>> {
    conn.prepare_cached(&sql.get)?
        .query_row(
            params![key, i64::try_from(now).unwrap_or(i64::MAX)],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()
}
