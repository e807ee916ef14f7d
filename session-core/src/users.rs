//! Sessions per user: an index of each user's sessions kept beside them, listing them and
//! revoking them ("log out everywhere").

use std::{sync::Arc, time::SystemTime};

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::{
    Driver, PutOptions, Session, SessionData, SessionError, SessionStorage,
    clock::from_unix_millis,
    commit::{Backend, Shared},
    id::StorageKey,
    record::Record,
    user_index::{index_key, index_prefix},
};

/// One live session of a user, as [`SessionStorage::user_sessions`] lists it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct UserSession {
    /// The hex SHA-256 of the session's id: a handle to show and to revoke by
    /// ([`Session::id_hash`] gives the current request's), never the id itself.
    pub id_hash: String,
    /// When the session was created (the login, for a session bound on login).
    pub created_at: SystemTime,
    /// About when it was last used: its last write or idle-deadline refresh (reads in
    /// between refresh it only every quarter of the idle timeout, by default).
    pub last_seen: Option<SystemTime>,
    /// When it ends unless used again.
    pub expires_at: Option<SystemTime>,
    /// The labels the app set ([`Session::set_user_label`]).
    pub labels: Map<String, Value>,
}

impl<T: SessionData> SessionStorage<T> {
    /// The store, for per-user operations that need to list it.
    fn listing_store(&self) -> Result<&Arc<dyn Driver>, SessionError> {
        match &self.shared.backend {
            Backend::Store(driver) if driver.capabilities().list => Ok(driver),
            Backend::Store(driver) => Err(SessionError::Config(format!(
                "the {} driver cannot list its keys: sessions per user need a driver that can",
                driver.name()
            ))),
            Backend::Cookie => Err(SessionError::Config(
                "cookie-only sessions are not stored: they cannot be listed or revoked one by \
                 one (use the builder's user_not_before to reject a user's older cookies)"
                    .into(),
            )),
        }
    }

    /// The live sessions bound to `user` ([`Session::bind_user`]), oldest first. One `list`
    /// of the user's index entries and one `get` per entry; entries of sessions that ended
    /// are deleted on the way.
    pub async fn user_sessions(&self, user: &str) -> Result<Vec<UserSession>, SessionError> {
        let driver = self.listing_store()?;
        let shared = &self.shared;
        let prefix = index_prefix(&shared.namespace, user);
        let mut sessions = Vec::new();
        for entry in list_all(driver.as_ref(), &prefix).await? {
            let id_hash = entry.strip_prefix(&prefix).unwrap_or(&entry).to_owned();
            let key = format!("{}{id_hash}", shared.namespace);
            let found = driver
                .get(&key)
                .await
                .map_err(|e| SessionError::store(driver.name(), "load", e))?;
            let live = found.and_then(|found| {
                let record = Record::decode(&found.value).ok()?;
                let reported = found.expires_at.map(crate::clock::unix_millis);
                listed(shared, user, id_hash, record, reported)
            });
            match live {
                Some(session) => sessions.push(session),
                None => delete(driver.as_ref(), &entry).await?,
            }
        }
        sessions.sort_by_key(|s| s.created_at);
        Ok(sessions)
    }

    /// Ends `user`'s session `id_hash` (from [`user_sessions`](Self::user_sessions)) now:
    /// its record is deleted, so every later request, also one already in flight, finds it
    /// gone (a commit cannot bring it back on a compare-and-swap driver). `false` when it
    /// was not the user's live session.
    pub async fn revoke_session(&self, user: &str, id_hash: &str) -> Result<bool, SessionError> {
        let listed = self.user_sessions(user).await?;
        if !listed.iter().any(|s| s.id_hash == id_hash) {
            return Ok(false);
        }
        self.revoke(user, id_hash).await?;
        Ok(true)
    }

    /// Ends every session of `user` ("log out everywhere"); returns how many. Sessions bound
    /// while this runs may survive it.
    pub async fn revoke_user(&self, user: &str) -> Result<usize, SessionError> {
        let sessions = self.user_sessions(user).await?;
        for session in &sessions {
            self.revoke(user, &session.id_hash).await?;
        }
        Ok(sessions.len())
    }

    /// Ends every session of `user` but `current` ("log out my other devices"); returns how
    /// many.
    pub async fn revoke_user_except(
        &self,
        user: &str,
        current: &Session<T>,
    ) -> Result<usize, SessionError> {
        let keep = current.id_hash().await?;
        let mut revoked = 0;
        for session in self.user_sessions(user).await? {
            if Some(&session.id_hash) != keep.as_ref() {
                self.revoke(user, &session.id_hash).await?;
                revoked += 1;
            }
        }
        Ok(revoked)
    }

    async fn revoke(&self, user: &str, id_hash: &str) -> Result<(), SessionError> {
        let driver = self.listing_store()?;
        let key = format!("{}{id_hash}", self.shared.namespace);
        self.shared.delete_record(driver.as_ref(), &key).await?;
        delete(
            driver.as_ref(),
            &index_key(&self.shared.namespace, user, &key),
        )
        .await
    }
}

/// Every key under `prefix`, through all pages.
async fn list_all(driver: &dyn Driver, prefix: &str) -> Result<Vec<String>, SessionError> {
    let mut keys = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = driver
            .list(prefix, cursor.as_deref())
            .await
            .map_err(|e| SessionError::store(driver.name(), "list", e))?;
        keys.extend(page.keys);
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(keys),
        }
    }
}

async fn delete(driver: &dyn Driver, key: &str) -> Result<(), SessionError> {
    driver
        .delete(key)
        .await
        .map_err(|e| SessionError::store(driver.name(), "delete", e))
}

/// `record` as a listed session of `user`, if it is one and has not ended.
fn listed<T: SessionData>(
    shared: &Shared<T>,
    user: &str,
    id_hash: String,
    record: Record,
    reported_idle: Option<u64>,
) -> Option<UserSession> {
    let binding = record.user.as_ref().filter(|b| b.id == user)?;
    let idle = crate::model::idle_in_force(record.idle_deadline, reported_idle);
    let expires = crate::model::ends_at(&record, reported_idle);
    if expires.is_some_and(|at| shared.now() >= at) {
        return None;
    }
    let idle_timeout = shared.lifetime_of(record.lifetime).idle_timeout;
    let last_seen = idle.zip(idle_timeout).map(|(deadline, timeout)| {
        deadline.saturating_sub(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX))
    });
    Some(UserSession {
        id_hash,
        created_at: from_unix_millis(record.created_at),
        last_seen: last_seen.map(from_unix_millis),
        expires_at: expires.map(from_unix_millis),
        labels: binding.labels.clone(),
    })
}

/// After a commit landed `stored` (replacing the session that was under `before_key`, bound to
/// `before_user`): the index entry follows the session's key and binding. One `put` when a
/// session is bound, created or moved (login), one `delete` of the old entry when it moved or
/// was unbound; nothing otherwise. Only with a driver that can list.
pub(crate) async fn follow<T: SessionData>(
    shared: &Shared<T>,
    driver: &dyn Driver,
    before: Option<(StorageKey, Option<String>)>,
    bound_now: bool,
    stored: &crate::model::Stored,
    now: u64,
) -> Result<(), SessionError> {
    if !driver.capabilities().list {
        return Ok(());
    }
    let user = stored.record.user.as_ref().map(|b| b.id.as_str());
    let moved = before.as_ref().is_none_or(|(key, _)| *key != stored.key);
    if let Some((old_key, Some(old_user))) = &before
        && (moved || user != Some(old_user.as_str()))
    {
        delete(driver, &index_key(&shared.namespace, old_user, old_key)).await?;
    }
    if let Some(user) = user
        && (moved || bound_now)
    {
        let ttl = Shared::<T>::ttl(driver, stored.record.absolute_deadline, now);
        let key = index_key(&shared.namespace, user, &stored.key);
        driver
            .put(&key, Bytes::new(), PutOptions::new().ttl_opt(ttl))
            .await
            .map_err(|e| SessionError::store(driver.name(), "index", e))?;
    }
    Ok(())
}
