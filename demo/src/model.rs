//! What the demo knows: its user, its catalog, and what it keeps per visitor.

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
    pub(crate) visits: u64,
    pub(crate) user: Option<String>,
    pub(crate) remember: bool,
    pub(crate) cart: BTreeMap<String, u32>,
}
