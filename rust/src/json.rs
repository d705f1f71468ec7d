//! Strict JSON for headers, payloads and key sets: a member name may appear only once in any
//! object. Reading `{"aud":"a","aud":"b"}` first-wins in one place and last-wins in another is how
//! parser-differential attacks work, so duplicates are refused outright. Nesting depth is bounded
//! by serde_json's recursion limit (128), and numbers outside f64 range are errors, never panics.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

const DUPLICATE: &str = "duplicate member name";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonProblem {
    Invalid,
    NotAnObject,
    DuplicateMember,
}

impl JsonProblem {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Invalid => "is not valid JSON",
            Self::NotAnObject => "is not a JSON object",
            Self::DuplicateMember => "has a duplicate member name",
        }
    }
}

/// Parses `bytes` as one JSON object, refusing duplicate member names at any depth.
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, JsonProblem> {
    match serde_json::from_slice::<Strict>(bytes) {
        Ok(Strict(Value::Object(map))) => Ok(map),
        Ok(_) => Err(JsonProblem::NotAnObject),
        Err(err) => Err(problem(&err)),
    }
}

/// What a serde_json error from a parse that used [`Strict`] means.
pub(crate) fn problem(err: &serde_json::Error) -> JsonProblem {
    if err.is_data() && err.to_string().starts_with(DUPLICATE) {
        JsonProblem::DuplicateMember
    } else {
        JsonProblem::Invalid
    }
}

/// The error a visitor reports for a repeated member name (see [`problem`]).
pub(crate) fn duplicate<E: de::Error>() -> E {
    E::custom(DUPLICATE)
}

/// One JSON value read strictly: duplicate member names at any depth are an error.
pub(crate) struct Strict(pub Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Strict, E> {
        Ok(Strict(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Strict, E> {
        Ok(Strict(Value::Number(v.into())))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Strict, E> {
        Ok(Strict(Value::Number(v.into())))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Strict, E> {
        Number::from_f64(v)
            .map(|n| Strict(Value::Number(n)))
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Strict, E> {
        Ok(Strict(Value::String(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Strict, E> {
        Ok(Strict(Value::String(v)))
    }

    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }

    fn visit_none<E>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Strict(Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Strict, A::Error> {
        let mut map = Map::new();
        while let Some(name) = access.next_key::<String>()? {
            if map.contains_key(&name) {
                return Err(duplicate());
            }
            let Strict(value) = access.next_value()?;
            map.insert(name, value);
        }
        Ok(Strict(Value::Object(map)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_objects() {
        let map = parse_object(br#"{"a": 1, "b": [1, {"c": null}], "d": "x"}"#).expect("valid");
        assert_eq!(map.len(), 3);
        assert_eq!(map["a"], Value::from(1));
    }

    #[test]
    fn refuses_duplicates_at_any_depth() {
        for doc in [
            &br#"{"aud": "a", "aud": "b"}"#[..],
            br#"{"x": {"k": 1, "k": 1}}"#,
            br#"{"x": [{"k": 1, "k": 2}]}"#,
        ] {
            assert_eq!(parse_object(doc), Err(JsonProblem::DuplicateMember));
        }
    }

    #[test]
    fn refuses_non_objects_and_garbage() {
        assert_eq!(parse_object(b"[]"), Err(JsonProblem::NotAnObject));
        assert_eq!(parse_object(b"\"s\""), Err(JsonProblem::NotAnObject));
        assert_eq!(parse_object(b"null"), Err(JsonProblem::NotAnObject));
        for doc in [
            &b""[..],
            b"{",
            b"{}}",
            b"{\"a\":1,}",
            b"\xef\xbb\xbf{}",
            b"{'a':1}",
        ] {
            assert_eq!(parse_object(doc), Err(JsonProblem::Invalid), "{doc:?}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(parse_object(deep.as_bytes()), Err(JsonProblem::Invalid));
    }

    #[test]
    fn huge_numbers_are_errors_or_floats() {
        assert_eq!(parse_object(b"{\"exp\": 1e400}"), Err(JsonProblem::Invalid));
        let big = parse_object(b"{\"exp\": 123456789012345678901234567890}").expect("float");
        assert!(big["exp"].is_f64());
    }

    #[test]
    fn lone_surrogates_are_invalid() {
        assert_eq!(
            parse_object(br#"{"a": "\ud800"}"#),
            Err(JsonProblem::Invalid)
        );
    }
}
