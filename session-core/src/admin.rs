//! Stored sessions seen from outside a request, for operators' tools (`session-admin`): list
//! them page by page, inspect one with its data redacted, revoke by handle or by user, sweep
//! expired ones, count them, and copy them to another driver. Needs no keys: sessions are
//! addressed by their `id_hash` (the hex SHA-256 of the id), never by their id.

use std::{sync::Arc, time::SystemTime};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};
use serde_json::{Map, Value};

use crate::{
    Driver, DriverError, PutOptions, SessionError, WriteMode,
    clock::{from_unix_millis, unix_millis},
    model::ends_at,
    record::Record,
    user_index::{index_key, index_prefix},
};

/// The sessions of one storage namespace in a driver.
#[derive(Clone)]
pub struct Admin {
    driver: Arc<dyn Driver>,
    namespace: String,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("driver", &self.driver.name())
            .field("namespace", &self.namespace)
            .finish()
    }
}

/// One stored session, decoded.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StoredSession {
    /// Its handle: the hex SHA-256 of its id.
    pub id_hash: String,
    /// Bytes stored.
    pub size: usize,
    /// When it was created.
    pub created_at: SystemTime,
    /// When it ends unless used again (`None`: never).
    pub expires_at: Option<SystemTime>,
    /// The user it is bound to.
    pub user: Option<String>,
    /// The app's labels of the binding.
    pub labels: Map<String, Value>,
    /// The session data.
    pub data: Map<String, Value>,
    /// Keys of flash values not yet read.
    pub flash: Vec<String>,
}

/// What [`Admin::page`] found on one page of keys.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Page {
    /// Live sessions.
    pub sessions: Vec<StoredSession>,
    /// Keys whose value is not a session record this version can read.
    pub unreadable: usize,
    /// Where the next page starts; `None` after the last.
    pub cursor: Option<String>,
}

/// What a copy of one page did ([`Admin::copy_page`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Copied {
    /// Sessions written to the target.
    pub copied: u64,
    /// Sessions the target had already (an earlier, interrupted run): left as they are.
    pub existing: u64,
    /// Sessions that ended before they could be copied.
    pub expired: u64,
}

impl Admin {
    /// The sessions stored by `driver` under `namespace` (`session:` unless the app chose
    /// another with `SessionStorageBuilder::namespace`).
    pub fn new(driver: Arc<dyn Driver>, namespace: impl Into<String>) -> Self {
        Self {
            driver: crate::layers::with_defaults(driver),
            namespace: namespace.into(),
        }
    }

    /// The driver.
    pub fn driver(&self) -> &Arc<dyn Driver> {
        &self.driver
    }

    fn store_error(&self, operation: &'static str) -> impl Fn(DriverError) -> SessionError + '_ {
        move |e| SessionError::store(self.driver.name(), operation, e)
    }

    fn key(&self, id_hash: &str) -> Result<String, SessionError> {
        let valid = id_hash.len() == 64 && id_hash.bytes().all(|b| b.is_ascii_hexdigit());
        if !valid {
            return Err(SessionError::Config(format!(
                "{id_hash:?} is not a session handle (64 hex digits)"
            )));
        }
        Ok(format!(
            "{}{}",
            self.namespace,
            id_hash.to_ascii_lowercase()
        ))
    }

    /// One page of the namespace's keys, decoded (one `list` and a `get` per key).
    pub async fn page(&self, cursor: Option<&str>) -> Result<Page, SessionError> {
        let listed = self
            .driver
            .list(&self.namespace, cursor)
            .await
            .map_err(self.store_error("list"))?;
        let mut page = Page {
            cursor: listed.cursor,
            ..Page::default()
        };
        let reads: Vec<Read> = stream::iter(listed.keys)
            .map(|key| async move { self.read(&key).await })
            .buffered(CONCURRENCY)
            .try_collect()
            .await?;
        for read in reads {
            match read {
                Read::Live(session, _) => page.sessions.push(session),
                Read::Unreadable => page.unreadable += 1,
                Read::Gone => {}
            }
        }
        Ok(page)
    }

    /// The session `id_hash`, if it is live.
    pub async fn show(&self, id_hash: &str) -> Result<Option<StoredSession>, SessionError> {
        match self.read(&self.key(id_hash)?).await? {
            Read::Live(session, _) => Ok(Some(session)),
            _ => Ok(None),
        }
    }

    /// Deletes the session `id_hash` (and its user-index entry); whether it was live.
    pub async fn revoke(&self, id_hash: &str) -> Result<bool, SessionError> {
        let key = self.key(id_hash)?;
        let live = match self.read(&key).await? {
            Read::Live(session, _) => Some(session),
            _ => None,
        };
        self.driver
            .delete(&key)
            .await
            .map_err(self.store_error("delete"))?;
        if let Some(user) = live.as_ref().and_then(|s| s.user.as_deref()) {
            self.driver
                .delete(&index_key(&self.namespace, user, &key))
                .await
                .map_err(self.store_error("delete"))?;
        }
        Ok(live.is_some())
    }

    /// The live sessions bound to `user`, through the user index.
    pub async fn user_sessions(&self, user: &str) -> Result<Vec<StoredSession>, SessionError> {
        let prefix = index_prefix(&self.namespace, user);
        let mut sessions = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .driver
                .list(&prefix, cursor.as_deref())
                .await
                .map_err(self.store_error("list"))?;
            for entry in page.keys {
                let id_hash = entry.strip_prefix(&prefix).unwrap_or(&entry);
                if let Read::Live(session, _) = self.read(&self.key(id_hash)?).await?
                    && session.user.as_deref() == Some(user)
                {
                    sessions.push(session);
                }
            }
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        sessions.sort_by_key(|s| s.created_at);
        Ok(sessions)
    }

    /// Deletes every session bound to `user`; how many.
    pub async fn revoke_user(&self, user: &str) -> Result<usize, SessionError> {
        let sessions = self.user_sessions(user).await?;
        for session in &sessions {
            self.revoke(&session.id_hash).await?;
        }
        Ok(sessions.len())
    }

    /// The driver's own sweep ([`Driver::sweep`]): deletes the entries whose TTL has passed
    /// (sessions and user-index entries) on stores that do not expire keys by themselves;
    /// how many.
    pub async fn sweep_store(&self) -> Result<u64, SessionError> {
        self.driver.sweep().await.map_err(self.store_error("sweep"))
    }

    /// Deletes the sessions of one page of keys whose own deadlines have passed while the
    /// store still lists them (after [`sweep_store`](Self::sweep_store), what a store without
    /// exact expiry keeps); how many, and where the next page starts.
    pub async fn sweep_page(
        &self,
        cursor: Option<&str>,
    ) -> Result<(u64, Option<String>), SessionError> {
        // A listing skips what the driver already knows to be expired; the record's own
        // deadlines decide the rest.
        let listed = self
            .driver
            .list(&self.namespace, cursor)
            .await
            .map_err(self.store_error("list"))?;
        let mut swept = 0;
        for key in listed.keys {
            if let Read::Gone = self.read(&key).await? {
                self.driver
                    .delete(&key)
                    .await
                    .map_err(self.store_error("delete"))?;
                swept += 1;
            }
        }
        Ok((swept, listed.cursor))
    }

    /// Copies the live sessions of one page to `target`, under the same keys and with the
    /// time they have left; create-only, so an interrupted copy can run again. The user-index
    /// entries go along.
    pub async fn copy_page(
        &self,
        target: &Arc<dyn Driver>,
        cursor: Option<&str>,
    ) -> Result<(Copied, Option<String>), SessionError> {
        let listed = self
            .driver
            .list(&self.namespace, cursor)
            .await
            .map_err(self.store_error("list"))?;
        let outcomes: Vec<Outcome> = stream::iter(listed.keys)
            .map(|key| async move { self.copy(target, key).await })
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        let mut done = Copied::default();
        for outcome in outcomes {
            match outcome {
                Outcome::Copied => done.copied += 1,
                Outcome::Existing => done.existing += 1,
                Outcome::Expired => done.expired += 1,
            }
        }
        Ok((done, listed.cursor))
    }

    /// Copies the session under `key` to `target`.
    async fn copy(&self, target: &Arc<dyn Driver>, key: String) -> Result<Outcome, SessionError> {
        let target_error = |e| SessionError::store(target.name(), "copy", e);
        let Read::Live(session, raw) = self.read(&key).await? else {
            return Ok(Outcome::Expired);
        };
        let now = crate::clock::now_millis();
        let left = |at: Option<SystemTime>| {
            at.map(|at| {
                std::time::Duration::from_millis(unix_millis(at).saturating_sub(now).max(1))
            })
        };
        let ttl = left(session.expires_at);
        let mode = if target.capabilities().create_only {
            WriteMode::CreateOnly
        } else {
            WriteMode::Overwrite
        };
        let options = PutOptions::new().ttl_opt(ttl).mode(mode);
        let outcome = match target.put(&key, raw, options).await {
            Ok(_) => Outcome::Copied,
            Err(DriverError::AlreadyExists) => Outcome::Existing,
            Err(e) => return Err(target_error(e)),
        };
        if let Some(user) = &session.user {
            let entry = index_key(&self.namespace, user, &key);
            target
                .put(&entry, Bytes::new(), PutOptions::new().ttl_opt(ttl))
                .await
                .map_err(target_error)?;
        }
        Ok(outcome)
    }

    async fn read(&self, key: &str) -> Result<Read, SessionError> {
        let Some(entry) = self
            .driver
            .get(key)
            .await
            .map_err(self.store_error("load"))?
        else {
            return Ok(Read::Gone);
        };
        let Ok(record) = Record::decode(&entry.value) else {
            return Ok(Read::Unreadable);
        };
        let reported = entry.expires_at.map(unix_millis);
        let expires = ends_at(&record, reported);
        if expires.is_some_and(|at| crate::clock::now_millis() >= at) {
            return Ok(Read::Gone);
        }
        let id_hash = key.strip_prefix(&self.namespace).unwrap_or(key).to_owned();
        let (user, labels) = match record.user {
            Some(binding) => (Some(binding.id), binding.labels),
            None => (None, Map::new()),
        };
        Ok(Read::Live(
            StoredSession {
                id_hash,
                size: entry.value.len(),
                created_at: from_unix_millis(record.created_at),
                expires_at: expires.map(from_unix_millis),
                user,
                labels,
                data: record.data,
                flash: record.flash.keys().cloned().collect(),
            },
            entry.value,
        ))
    }
}

/// How many sessions a page reads or copies at once.
const CONCURRENCY: usize = 32;

/// What the copy of one session did.
enum Outcome {
    Copied,
    Existing,
    Expired,
}

enum Read {
    Live(StoredSession, Bytes),
    Unreadable,
    Gone,
}

/// `value` with every value under a key that looks secret (`password`, `token`, `secret`,
/// `key`, `auth`, `csrf`, `card`, `ssn`, `otp`) replaced by `"[redacted]"`, at any depth: for
/// showing session data to an operator.
///
/// ```
/// use serde_json::json;
/// let shown = session_kit_core::admin::redact(&json!({"user": "ada", "api_token": "t0k", "cart": [{"card_number": "4111"}]}));
/// assert_eq!(shown, json!({"user": "ada", "api_token": "[redacted]", "cart": [{"card_number": "[redacted]"}]}));
/// ```
pub fn redact(value: &Value) -> Value {
    const SECRET: [&str; 9] = [
        "password", "token", "secret", "key", "auth", "csrf", "card", "ssn", "otp",
    ];
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let lower = k.to_ascii_lowercase();
                    let shown = if SECRET.iter().any(|s| lower.contains(s)) {
                        Value::from("[redacted]")
                    } else {
                        redact(v)
                    };
                    (k.clone(), shown)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}
