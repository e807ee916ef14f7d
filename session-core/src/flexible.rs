//! Deserialisers that accept either native JSON values or strings (from URLs and env vars).

use std::time::Duration;

use serde::{Deserialize, Deserializer, de::Error};
use serde_json::Value;

/// A boolean, or `"true"`/`"false"`/`"1"`/`"0"`.
pub fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match Value::deserialize(d)? {
        Value::Bool(b) => Ok(b),
        Value::String(s) => match s.as_str() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            other => Err(D::Error::custom(format!(
                "expected a boolean, got {other:?}"
            ))),
        },
        other => Err(D::Error::custom(format!("expected a boolean, got {other}"))),
    }
}

/// An optional boolean, or `"true"`/`"false"`/`"1"`/`"0"`.
pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(v) => bool(v).map(Some).map_err(D::Error::custom),
    }
}

/// An optional unsigned integer, or its decimal string.
pub fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("expected an unsigned integer, got {n}"))),
        Some(Value::String(s)) => s
            .parse()
            .map(Some)
            .map_err(|_| D::Error::custom(format!("expected an unsigned integer, got {s:?}"))),
        Some(other) => Err(D::Error::custom(format!(
            "expected an unsigned integer, got {other}"
        ))),
    }
}

/// An optional duration: milliseconds as a number, or a string such as `"30s"` or `"5m"`.
pub fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(|ms| Some(Duration::from_millis(ms)))
            .ok_or_else(|| D::Error::custom(format!("expected milliseconds, got {n}"))),
        Some(Value::String(s)) => humantime::parse_duration(&s).map(Some).map_err(|e| {
            D::Error::custom(format!("expected a duration like \"30s\", got {s:?}: {e}"))
        }),
        Some(other) => Err(D::Error::custom(format!(
            "expected a duration, got {other}"
        ))),
    }
}
