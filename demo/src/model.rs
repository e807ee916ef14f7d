//! What the demo knows: its user, its catalog, what it keeps per visitor, and what the "how
//! it works" panel shows.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The demo user, shown on the login page.
pub(crate) const DEMO_EMAIL: &str = "ada@example.com";
/// The demo user's password.
pub(crate) const DEMO_PASSWORD: &str = "lovelace";
/// What the cart can hold: (id, label).
pub(crate) const CATALOG: &[(&str, &str)] = &[("apple", "Apple"), ("pear", "Pear"), ("fig", "Fig")];

/// Everything the demo keeps per visitor.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct DemoSession {
    /// The counter on the home page and the two-tabs page.
    pub(crate) count: u64,
    pub(crate) user: Option<String>,
    pub(crate) remember: bool,
    pub(crate) cart: BTreeMap<String, u32>,
}

/// What the panel says about the storage: fixed at startup.
#[derive(Debug, Clone)]
pub(crate) struct StorageInfo {
    /// The driver config, passwords and query values removed.
    pub(crate) config: String,
    /// The store behind the cookie; `None` for cookie-only sessions.
    pub(crate) store: Option<StoreInfo>,
    pub(crate) cookie_name: String,
    /// The public id of the key that signs (or seals) new cookies.
    pub(crate) key_id: String,
    /// Keys in the keyring (older ones still verify).
    pub(crate) keys: usize,
}

/// The store's name, layers and capabilities.
#[derive(Debug, Clone)]
pub(crate) struct StoreInfo {
    pub(crate) driver: String,
    pub(crate) layers: Vec<&'static str>,
    /// What it can do, in words ("compare-and-swap", ...), and what it cannot.
    pub(crate) can: Vec<String>,
    pub(crate) cannot: Vec<String>,
    /// Whether sessions can be listed per user (and revoked).
    pub(crate) can_list: bool,
    /// The most sessions it keeps (the memory driver's bound).
    pub(crate) capacity: Option<u64>,
}

impl StorageInfo {
    /// One line for the startup log.
    pub(crate) fn described(&self) -> String {
        match &self.store {
            None => "cookie (cookie-only sessions, sealed in the cookie)".to_owned(),
            Some(store) => match store.capacity {
                Some(n) => format!("{} (at most {n} sessions)", self.config),
                None => self.config.clone(),
            },
        }
    }
}

/// What the panel says about the request being answered.
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestFacts {
    /// Bytes of the session cookie the browser sent.
    pub(crate) cookie_bytes: Option<usize>,
    /// Whether a session is stored for this visitor (after this request's changes).
    pub(crate) stored: bool,
    /// The session's public handle (a hash of its id).
    pub(crate) id_hash: Option<String>,
    pub(crate) user: Option<String>,
    /// This request's store operations, in order.
    pub(crate) operations: Vec<&'static str>,
    /// Whether this request's commit merged a concurrent request's change.
    pub(crate) merged: bool,
}
