//! Change detection field by field, without building the whole data as a JSON map.
//!
//! A commit of changed data needs the top-level keys whose value differs from the base of
//! change detection ([`Base`]). [`intent::diff`](crate::intent::diff) finds them on the data
//! serialised as a map, which allocates the map, a key per field and a value per field, then
//! clones every changed key and value again. For the common session type, a struct, this
//! module walks its fields as serde hands them over: each field is serialised to a value and
//! compared with the base on its own; only a changed field's key is allocated, and its value
//! is moved, not cloned.
//!
//! The walk gives up (the caller then diffs whole maps, as before) on anything it cannot
//! answer exactly: data that does not serialise as a plain struct (a map, a newtype,
//! `#[serde(flatten)]`), a field that fails to serialise (the map path reports the error),
//! a field name given twice, more than [`MAX_FIELDS`] fields, or a key of the base the data
//! no longer has (a removal, as `skip_serializing_if` makes).

use std::fmt;

use serde::{
    Serialize,
    ser::{self, Impossible, SerializeStruct},
};
use serde_json::Value;

use crate::intent::Base;

/// Changed top-level keys with their new values, as [`diff`](crate::intent::diff) gives them.
type Pairs = Vec<(String, Option<Value>)>;

/// The most fields walked; a larger struct is diffed as a map.
const MAX_FIELDS: usize = 32;

/// The changed top-level fields of `data` relative to `base` (key, new value), or `None` when
/// the walk gives up (see the module docs): then diff the data as a map.
pub(crate) fn changed_fields<T: Serialize + ?Sized>(data: &T, base: &Base<'_>) -> Option<Pairs> {
    data.serialize(Fields { base }).ok()
}

/// Why the walk gave up; never shown to anyone (the map path runs instead).
#[derive(Debug)]
struct GiveUp;

impl fmt::Display for GiveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a plain struct")
    }
}

impl std::error::Error for GiveUp {}

impl ser::Error for GiveUp {
    fn custom<M: fmt::Display>(_: M) -> Self {
        GiveUp
    }
}

/// The top level of the data: only a struct is walked.
struct Fields<'a, 'b> {
    base: &'a Base<'b>,
}

/// The fields of the struct, compared one by one.
struct Walk<'a, 'b> {
    base: &'a Base<'b>,
    /// The names seen so far (a repeated one gives up).
    seen: [&'static str; MAX_FIELDS],
    count: usize,
    /// How many of the seen names the base has: fewer than the base's keys means a removal.
    in_base: usize,
    changed: Pairs,
}

impl SerializeStruct for Walk<'_, '_> {
    type Ok = Pairs;
    type Error = GiveUp;

    fn serialize_field<V: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &V,
    ) -> Result<(), GiveUp> {
        let seen = &self.seen[..self.count];
        if self.count == MAX_FIELDS || seen.contains(&key) {
            return Err(GiveUp);
        }
        self.seen[self.count] = key;
        self.count += 1;
        let value = serde_json::to_value(value).map_err(|_| GiveUp)?;
        match self.base.get(key) {
            Some(old) => {
                self.in_base += 1;
                if *old != value {
                    self.changed.push((key.to_owned(), Some(value)));
                }
            }
            None => self.changed.push((key.to_owned(), Some(value))),
        }
        Ok(())
    }

    fn end(self) -> Result<Self::Ok, GiveUp> {
        match self.in_base == self.base.len() {
            true => Ok(self.changed),
            false => Err(GiveUp),
        }
    }
}

/// Everything but a struct gives up.
macro_rules! give_up {
    ($($name:ident($($arg:ty),*)),* $(,)?) => {
        $(fn $name(self, $(_: $arg),*) -> Result<Self::Ok, GiveUp> {
            Err(GiveUp)
        })*
    };
}

impl<'a, 'b> ser::Serializer for Fields<'a, 'b> {
    type Ok = Pairs;
    type Error = GiveUp;
    type SerializeSeq = Impossible<Self::Ok, GiveUp>;
    type SerializeTuple = Impossible<Self::Ok, GiveUp>;
    type SerializeTupleStruct = Impossible<Self::Ok, GiveUp>;
    type SerializeTupleVariant = Impossible<Self::Ok, GiveUp>;
    type SerializeMap = Impossible<Self::Ok, GiveUp>;
    type SerializeStruct = Walk<'a, 'b>;
    type SerializeStructVariant = Impossible<Self::Ok, GiveUp>;

    give_up! {
        serialize_bool(bool), serialize_i8(i8), serialize_i16(i16), serialize_i32(i32),
        serialize_i64(i64), serialize_u8(u8), serialize_u16(u16), serialize_u32(u32),
        serialize_u64(u64), serialize_f32(f32), serialize_f64(f64), serialize_char(char),
        serialize_str(&str), serialize_bytes(&[u8]), serialize_none(), serialize_unit(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    }

    fn serialize_some<V: Serialize + ?Sized>(self, _: &V) -> Result<Self::Ok, GiveUp> {
        Err(GiveUp)
    }

    fn serialize_newtype_struct<V: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &V,
    ) -> Result<Self::Ok, GiveUp> {
        Err(GiveUp)
    }

    fn serialize_newtype_variant<V: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &V,
    ) -> Result<Self::Ok, GiveUp> {
        Err(GiveUp)
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, GiveUp> {
        Err(GiveUp)
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, GiveUp> {
        Err(GiveUp)
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, GiveUp> {
        Err(GiveUp)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, GiveUp> {
        Err(GiveUp)
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, GiveUp> {
        Err(GiveUp)
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, GiveUp> {
        Ok(Walk {
            base: self.base,
            seen: [""; MAX_FIELDS],
            count: 0,
            in_base: 0,
            changed: Vec::new(),
        })
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, GiveUp> {
        Err(GiveUp)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use serde_json::{Map, json};

    use super::*;
    use crate::intent::{diff, to_map};

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[derive(Default, serde::Serialize, serde::Deserialize)]
    struct Cart {
        visits: u64,
        items: Vec<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        coupon: Option<String>,
    }

    #[derive(Default, serde::Serialize, serde::Deserialize)]
    struct Flattened {
        visits: u64,
        #[serde(flatten)]
        rest: BTreeMap<String, Value>,
    }

    /// Both paths, sorted by key: the walk's answer (if it answers) must be the map diff's.
    fn both<T: serde::Serialize + crate::model::SessionData>(
        data: &T,
        base: &Base<'_>,
    ) -> (Option<Pairs>, Pairs) {
        let sorted = |mut v: Pairs| {
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        let walked = changed_fields(data, base).map(sorted);
        let mapped = sorted(diff(&to_map(data).unwrap(), base));
        (walked, mapped)
    }

    #[test]
    fn a_struct_is_walked_and_agrees_with_the_map_diff() {
        let defaults = map(json!({"visits": 0, "items": []}));
        let stored = map(json!({"visits": 7}));
        let base = Base::Overlay {
            stored: Some(&stored),
            defaults: &defaults,
        };
        let cases = [
            // Unchanged: nothing.
            Cart {
                visits: 7,
                ..Cart::default()
            },
            // One field changed, one added (the coupon is in neither map).
            Cart {
                visits: 8,
                items: vec![],
                coupon: Some("x".into()),
            },
            // A default-only key changed.
            Cart {
                visits: 7,
                items: vec!["a".into()],
                coupon: None,
            },
        ];
        for cart in &cases {
            let (walked, mapped) = both(cart, &base);
            assert_eq!(walked.as_ref(), Some(&mapped));
        }
        let (walked, _) = both(&cases[1], &base);
        assert_eq!(
            walked.unwrap(),
            vec![
                ("coupon".to_owned(), Some(json!("x"))),
                ("visits".to_owned(), Some(json!(8))),
            ]
        );
    }

    #[test]
    fn a_removed_key_gives_up_to_the_map_diff() {
        // The stored coupon is no longer serialised (skipped as None): a removal.
        let defaults = map(json!({"visits": 0, "items": []}));
        let stored = map(json!({"visits": 7, "coupon": "x"}));
        let base = Base::Overlay {
            stored: Some(&stored),
            defaults: &defaults,
        };
        let cart = Cart {
            visits: 7,
            ..Cart::default()
        };
        let (walked, mapped) = both(&cart, &base);
        assert_eq!(walked, None);
        assert_eq!(mapped, vec![("coupon".to_owned(), None)]);
        // Against a snapshot too.
        let snapshot = map(json!({"visits": 7, "items": [], "coupon": "x"}));
        assert_eq!(changed_fields(&cart, &Base::Snapshot(&snapshot)), None);
    }

    #[test]
    fn maps_and_flattened_structs_give_up() {
        let defaults = Map::new();
        let base = Base::Overlay {
            stored: None,
            defaults: &defaults,
        };
        let dynamic = map(json!({"a": 1}));
        assert_eq!(changed_fields(&dynamic, &base), None);
        let flat = Flattened {
            visits: 1,
            rest: BTreeMap::from([("b".to_owned(), json!(2))]),
        };
        assert_eq!(changed_fields(&flat, &base), None);
    }

    /// A hand-written `Serialize` that names a field twice: the walk cannot tell a repeat
    /// from a removal by counting, so it gives up.
    struct Twice;

    impl serde::Serialize for Twice {
        fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut st = s.serialize_struct("Twice", 2)?;
            st.serialize_field("a", &1)?;
            st.serialize_field("a", &2)?;
            st.end()
        }
    }

    #[test]
    fn a_repeated_field_gives_up() {
        // The base has `a` and `b`; `Twice` names `a` twice and drops `b`.
        let defaults = map(json!({"a": 0, "b": 0}));
        let base = Base::Overlay {
            stored: None,
            defaults: &defaults,
        };
        assert_eq!(changed_fields(&Twice, &base), None);
    }

    /// More fields than the walk keeps names for: diffed as a map.
    #[test]
    fn a_struct_with_too_many_fields_gives_up() {
        struct Wide;
        impl serde::Serialize for Wide {
            fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                const NAMES: [&str; MAX_FIELDS + 1] = [
                    "f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8", "f9", "f10", "f11",
                    "f12", "f13", "f14", "f15", "f16", "f17", "f18", "f19", "f20", "f21", "f22",
                    "f23", "f24", "f25", "f26", "f27", "f28", "f29", "f30", "f31", "f32",
                ];
                let mut st = s.serialize_struct("Wide", NAMES.len())?;
                for name in NAMES {
                    st.serialize_field(name, &1)?;
                }
                st.end()
            }
        }
        let defaults = Map::new();
        let base = Base::Overlay {
            stored: None,
            defaults: &defaults,
        };
        assert_eq!(changed_fields(&Wide, &base), None);
    }
}
