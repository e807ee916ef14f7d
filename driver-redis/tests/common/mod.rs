//! Real Redis servers for the tests (from `session-test-support`).
#![allow(dead_code, unused_imports)]

pub(crate) use session_test_support::redis::{RedisServer, shared, shared_cluster};
