//! What one request wants to change, as operations that can run again on newer data.
//!
//! A request changes its session through [`Session::update`](crate::Session::update) (a
//! closure), [`set`](crate::Session::set) and the dynamic `insert`/`remove` (top-level keys).
//! Each call is kept as an [`Op`]. When the request's commit meets a change committed by another
//! request since this one loaded the session, its operations run again, in order, on the
//! freshly loaded data: N concurrent `update(|d| d.visits += 1)` end at exactly +N.

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    sync::Arc,
};

use serde_json::{Map, Value};
use smallvec::SmallVec;

use crate::{SessionError, Version, model::Changes, model::SessionData};

/// A closure from `update`, kept so it can run again on concurrently changed data.
pub(crate) type UpdateFn<T> = Arc<dyn Fn(&mut T) + Send + Sync>;

/// A request's recorded changes, in order. Inline for one: the common request makes one
/// change, which then needs no allocation to record and none to hand to its commit (a
/// clone of one inline operation is one reference count).
pub(crate) type Ops<T> = SmallVec<[Op<T>; 1]>;

/// One recorded change to the session data.
pub(crate) enum Op<T> {
    /// A closure from `update`: run again on the fresh data.
    Update(UpdateFn<T>),
    /// Top-level keys set (`Some`) or removed (`None`) by `set`: on fresh data the same keys
    /// get the same values (per-key last writer wins).
    Assign(Arc<[(String, Option<Value>)]>),
}

impl<T> Clone for Op<T> {
    fn clone(&self) -> Self {
        match self {
            Self::Update(f) => Self::Update(Arc::clone(f)),
            Self::Assign(pairs) => Self::Assign(Arc::clone(pairs)),
        }
    }
}

/// One request's commit of an existing session: its changes relative to the version it
/// loaded, and the operations that produced them.
pub(crate) struct Intent<T> {
    /// The stored version `changes.data` was computed against.
    pub(crate) base_version: Version,
    /// The changes (the data diff is valid on `base_version` only; flash, lifetime and renew
    /// apply to any version).
    pub(crate) changes: Changes,
    /// The operations, in order, for any other version.
    pub(crate) ops: Ops<T>,
}

/// The base of change detection: the last committed data, or the defaults overlaid with the
/// stored record's data.
#[derive(Clone, Copy)]
pub(crate) enum Base<'a> {
    /// The data as last committed by this request.
    Snapshot(&'a Map<String, Value>),
    /// The defaults overlaid with the stored data (as loaded).
    Overlay {
        stored: Option<&'a Map<String, Value>>,
        defaults: &'a Map<String, Value>,
    },
}

impl<'a> Base<'a> {
    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        match *self {
            Base::Snapshot(map) => map.get(key),
            Base::Overlay { stored, defaults } => stored
                .and_then(|s| s.get(key))
                .or_else(|| defaults.get(key)),
        }
    }

    /// How many keys the base has (each counted once).
    pub(crate) fn len(&self) -> usize {
        let mut count = 0;
        self.for_each_key(|_| count += 1);
        count
    }

    /// Calls `f` with every key, each once.
    fn for_each_key(&self, mut f: impl FnMut(&'a String)) {
        match *self {
            Base::Snapshot(map) => map.keys().for_each(f),
            Base::Overlay { stored, defaults } => {
                if let Some(stored) = stored {
                    stored.keys().for_each(&mut f);
                }
                defaults
                    .keys()
                    .filter(|k| stored.is_none_or(|s| !s.contains_key(*k)))
                    .for_each(f);
            }
        }
    }
}

/// The top-level keys whose value in `current` differs from `base` (`None`: removed).
pub(crate) fn diff(current: &Map<String, Value>, base: &Base<'_>) -> Vec<(String, Option<Value>)> {
    let mut out = Vec::new();
    for (key, value) in current {
        if base.get(key) != Some(value) {
            out.push((key.clone(), Some(value.clone())));
        }
    }
    base.for_each_key(|key| {
        if !current.contains_key(key) {
            out.push((key.clone(), None));
        }
    });
    out
}

/// `data` serialised as a map.
pub(crate) fn to_map<T: SessionData>(data: &T) -> Result<Map<String, Value>, SessionError> {
    match serde_json::to_value(data).map_err(SessionError::Serialize)? {
        Value::Object(map) => Ok(map),
        _ => Err(SessionError::Config(
            "session data must serialise as a map".into(),
        )),
    }
}

/// Sets or removes top-level keys of `data`. A key `data` holds keeps its string: only the
/// value is replaced (no copy of the key).
pub(crate) fn assign(data: &mut Map<String, Value>, pairs: &[(String, Option<Value>)]) {
    for (key, value) in pairs {
        match (value, data.get_mut(key.as_str())) {
            (Some(v), Some(slot)) => v.clone_into(slot),
            (Some(v), None) => {
                data.insert(key.clone(), v.clone());
            }
            (None, _) => {
                data.remove(key.as_str());
            }
        }
    }
}

/// Sets or removes top-level keys of `data`, moving the values in.
pub(crate) fn assign_owned(data: &mut Map<String, Value>, pairs: Vec<(String, Option<Value>)>) {
    for (key, value) in pairs {
        match value {
            Some(v) => data.insert(key, v),
            None => data.remove(&key),
        };
    }
}

/// Sets or removes top-level keys of `data` like [`assign`], moving the values in: each pair
/// is left holding what its key held before (`None`: absent). Exchanging the pairs again, in
/// reverse order, puts `data` back as it was.
pub(crate) fn exchange(data: &mut Map<String, Value>, pairs: &mut [(String, Option<Value>)]) {
    for (key, value) in pairs {
        *value = match value.take() {
            Some(new) => match data.get_mut(key.as_str()) {
                Some(slot) => Some(std::mem::replace(slot, new)),
                None => {
                    data.insert(key.clone(), new);
                    None
                }
            },
            None => data.remove(key.as_str()),
        };
    }
}

/// Runs `ops` on `typed` (the data built from `stored` over the defaults) and returns the
/// top-level keys they changed relative to `stored`.
///
/// A closure that panics here (it ran fine on this request's own view, but not on the newer
/// data) fails this request's commit with [`SessionError::UpdatePanicked`] instead of taking
/// down the task that runs it, which may be another request's.
pub(crate) fn replay<T: SessionData>(
    mut typed: T,
    stored: &Map<String, Value>,
    defaults: &Map<String, Value>,
    ops: &[Op<T>],
) -> Result<Vec<(String, Option<Value>)>, SessionError> {
    for op in ops {
        match op {
            Op::Update(f) => catch_unwind(AssertUnwindSafe(|| f(&mut typed)))
                .map_err(|_| SessionError::UpdatePanicked)?,
            Op::Assign(pairs) => {
                let mut map = to_map(&typed)?;
                assign(&mut map, pairs);
                typed = T::deserialize(Value::Object(map)).map_err(SessionError::Serialize)?;
            }
        }
    }
    let current = to_map(&typed)?;
    Ok(diff(
        &current,
        &Base::Overlay {
            stored: Some(stored),
            defaults,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, serde::Serialize, serde::Deserialize, PartialEq)]
    struct Cart {
        visits: u64,
        items: Vec<String>,
        user: Option<String>,
    }

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn exchanging_again_in_reverse_order_restores_the_data() {
        let before = map(serde_json::json!({"a": 1, "b": 2, "c": 3}));
        let mut data = before.clone();
        let mut pairs = vec![
            ("a".to_owned(), Some(Value::from(10))),
            ("b".to_owned(), None),
            ("d".to_owned(), Some(Value::from(4))),
            ("x".to_owned(), None),
            ("a".to_owned(), Some(Value::from(11))),
        ];
        let mut assigned = before.clone();
        assign(&mut assigned, &pairs);
        exchange(&mut data, &mut pairs);
        assert_eq!(data, assigned);
        assert_eq!(data, map(serde_json::json!({"a": 11, "c": 3, "d": 4})));
        pairs.reverse();
        exchange(&mut data, &mut pairs);
        assert_eq!(data, before);
    }

    #[test]
    fn replay_runs_closures_on_the_newer_data() {
        let defaults = map(serde_json::json!({"visits": 0, "items": [], "user": null}));
        let stored = map(serde_json::json!({"visits": 7, "items": ["a"]}));
        let typed: Cart = serde_json::from_value(Value::Object(stored.clone())).unwrap();
        let ops: Vec<Op<Cart>> = vec![
            Op::Update(Arc::new(|c: &mut Cart| c.visits += 1)),
            Op::Update(Arc::new(|c: &mut Cart| c.items.push("b".into()))),
            Op::Assign(Arc::from(vec![(
                "user".to_owned(),
                Some(Value::from("ada")),
            )])),
        ];
        let mut changed = replay(typed, &stored, &defaults, &ops).unwrap();
        changed.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            changed,
            vec![
                ("items".to_owned(), Some(serde_json::json!(["a", "b"]))),
                ("user".to_owned(), Some(Value::from("ada"))),
                ("visits".to_owned(), Some(Value::from(8))),
            ]
        );
    }

    #[test]
    fn a_panicking_closure_is_an_error_not_a_panic() {
        let stored = Map::new();
        let ops: Vec<Op<Cart>> = vec![Op::Update(Arc::new(|c: &mut Cart| {
            let _ = c.items[3].len();
        }))];
        let err = replay(Cart::default(), &stored, &Map::new(), &ops).unwrap_err();
        assert!(matches!(err, SessionError::UpdatePanicked), "{err:?}");
    }
}
