//! Strict JSON for headers, payloads and key sets: a member name may appear only once in any
//! object. Reading `{"aud":"a","aud":"b"}` first-wins in one place and last-wins in another is how
//! parser-differential attacks work, so duplicates are refused outright. Nesting depth is bounded
//! by serde_json's recursion limit (128), and numbers outside f64 range are errors, never panics.
//!
//! Two readers apply these rules: [`parse_object`] builds a `Value` tree with serde_json (key
//! sets, peeks, the claims Python asks for), and [`read_object`] is a single pass over the bytes
//! that hands each top-level member to a [`Members`] reader and checks everything else without
//! building anything (the token path, which needs a few members of each document). The second
//! implements serde_json's rules itself; tests and the `json` fuzz target hold it to the first:
//! the same documents accepted, the same refused, for the same reason.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::borrow::Cow;
use std::collections::HashSet;
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

/// Reads `bytes` as one JSON object under the strict rules, handing each top-level member to
/// `members` (a repeated name is refused before its value is read, as [`parse_object`] does).
/// Values `members` skips are checked without being kept.
pub(crate) fn read_object<'a, M: Members<'a>>(
    bytes: &'a [u8],
    members: &mut M,
) -> Result<(), JsonProblem> {
    // A document that is UTF-8 as a whole (every valid one is) has its strings checked once,
    // here; otherwise each string is checked as it comes, so that the first problem in the
    // document is the one reported, as serde_json does.
    match std::str::from_utf8(bytes) {
        Ok(text) => read_text(text, members),
        Err(_) => read(bytes, None, members),
    }
}

/// [`read_object`] of a document known to be UTF-8.
pub(crate) fn read_text<'a, M: Members<'a>>(
    text: &'a str,
    members: &mut M,
) -> Result<(), JsonProblem> {
    read(text.as_bytes(), Some(text), members)
}

fn read<'a, M: Members<'a>>(
    bytes: &'a [u8],
    text: Option<&'a str>,
    members: &mut M,
) -> Result<(), JsonProblem> {
    let mut reader = Reader {
        bytes,
        text,
        at: 0,
        depth: 0,
    };
    reader.whitespace();
    let is_object = reader.peek() == Some(b'{');
    if is_object {
        reader.object(members)?;
    } else {
        reader.skip()?;
    }
    reader.whitespace();
    if reader.at != bytes.len() {
        return Err(JsonProblem::Invalid);
    }
    if is_object {
        Ok(())
    } else {
        Err(JsonProblem::NotAnObject)
    }
}

/// Reads the values of the top-level members of an object (see [`read_object`]).
pub(crate) trait Members<'a> {
    /// The place of a member whose value this reader keeps (None for any other member, whose
    /// name the object checks against its own list); `DuplicateMember` if it was read already.
    /// Called right after the name, before anything else is read, as serde_json checks names.
    fn find(&mut self, _name: &str) -> Result<Option<usize>, JsonProblem> {
        Ok(None)
    }

    /// Reads the value of the member `find` placed at `index`.
    fn keep(&mut self, _index: usize, reader: &mut Reader<'a>) -> Result<(), JsonProblem> {
        reader.skip()
    }

    /// Reads the value of any other member (`reader.skip()` by default).
    fn other(&mut self, _name: &str, reader: &mut Reader<'a>) -> Result<(), JsonProblem> {
        reader.skip()
    }
}

/// A reader that keeps nothing (nested objects; and [`read_object`] as a check alone).
pub(crate) struct NoMembers;

impl Members<'_> for NoMembers {}

/// A JSON value as the token path reads it: only strings (and arrays of them) and numbers are
/// kept; everything else is checked and reported by its kind.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) enum Shape<'a> {
    #[default]
    Absent,
    Null,
    Bool,
    Number(f64),
    Text(Cow<'a, str>),
    /// An array whose items are all strings (possibly none).
    Texts(Vec<Cow<'a, str>>),
    /// Any other array, or an object.
    Other,
}

/// Containers may nest this deep, as in serde_json (whose 128th nested level is an error).
const MAX_DEPTH: u32 = 127;

/// A single-pass reader of RFC 8259 JSON with exactly serde_json's rules (see the module
/// documentation): the same grammar, string escapes (surrogates paired), UTF-8, nesting limit
/// and number range. `json` fuzzing and the tests hold it to `parse_object`'s verdicts.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    /// The document as text, when it is valid UTF-8 throughout.
    text: Option<&'a str>,
    at: usize,
    depth: u32,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), JsonProblem> {
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(JsonProblem::Invalid)
        }
    }

    /// Any value, checked and not kept.
    pub(crate) fn skip(&mut self) -> Result<(), JsonProblem> {
        self.value(false).map(|_| ())
    }

    /// Any value, read as a [`Shape`].
    pub(crate) fn shape(&mut self) -> Result<Shape<'a>, JsonProblem> {
        self.value(true)
    }

    /// Whether the next value is an object (nothing is read but whitespace).
    pub(crate) fn at_object(&mut self) -> bool {
        self.whitespace();
        self.peek() == Some(b'{')
    }

    /// The object the reader is at (see [`Self::at_object`]), its members handed to `members`
    /// under the same rules as the top level's.
    pub(crate) fn members<M: Members<'a>>(&mut self, members: &mut M) -> Result<(), JsonProblem> {
        self.object(members)
    }

    /// One value; `keep` says whether strings and numbers are wanted.
    fn value(&mut self, keep: bool) -> Result<Shape<'a>, JsonProblem> {
        self.whitespace();
        match self.peek() {
            Some(b'"') => {
                let text = self.string()?;
                Ok(if keep {
                    Shape::Text(text)
                } else {
                    Shape::Other
                })
            }
            Some(b'{') => {
                self.object(&mut NoMembers)?;
                Ok(Shape::Other)
            }
            Some(b'[') => self.array(keep),
            Some(b't') => self.literal(b"true", Shape::Bool),
            Some(b'f') => self.literal(b"false", Shape::Bool),
            Some(b'n') => self.literal(b"null", Shape::Null),
            Some(b'-' | b'0'..=b'9') => self.number(keep),
            _ => Err(JsonProblem::Invalid),
        }
    }

    fn literal(&mut self, word: &[u8], shape: Shape<'a>) -> Result<Shape<'a>, JsonProblem> {
        if self.bytes[self.at..].starts_with(word) {
            self.at += word.len();
            Ok(shape)
        } else {
            Err(JsonProblem::Invalid)
        }
    }

    fn enter(&mut self) -> Result<(), JsonProblem> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(JsonProblem::Invalid);
        }
        self.at += 1;
        Ok(())
    }

    /// An object; `members` reads each value. Names are compared as decoded text.
    fn object<M: Members<'a>>(&mut self, members: &mut M) -> Result<(), JsonProblem> {
        self.enter()?;
        // The names `members` does not track itself. Objects are small: a list, until one is not.
        let mut names: Vec<Cow<'a, str>> = Vec::new();
        let mut set: Option<HashSet<Cow<'a, str>>> = None;
        self.whitespace();
        if self.peek() == Some(b'}') {
            self.at += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            self.whitespace();
            if self.peek() != Some(b'"') {
                return Err(JsonProblem::Invalid);
            }
            let name = self.string()?;
            let kept = members.find(&name)?;
            if kept.is_none() {
                let repeated = match &mut set {
                    None if names.len() < 16 => {
                        let seen = names.contains(&name);
                        names.push(name.clone());
                        seen
                    }
                    _ => {
                        let set = set.get_or_insert_with(|| names.drain(..).collect());
                        !set.insert(name.clone())
                    }
                };
                if repeated {
                    return Err(JsonProblem::DuplicateMember);
                }
            }
            self.whitespace();
            self.expect(b':')?;
            match kept {
                Some(index) => members.keep(index, self)?,
                None => members.other(&name, self)?,
            }
            self.whitespace();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    self.depth -= 1;
                    return Ok(());
                }
                _ => return Err(JsonProblem::Invalid),
            }
        }
    }

    fn array(&mut self, keep: bool) -> Result<Shape<'a>, JsonProblem> {
        self.enter()?;
        let mut items: Option<Vec<Cow<'a, str>>> = keep.then(Vec::new);
        self.whitespace();
        if self.peek() == Some(b']') {
            self.at += 1;
            self.depth -= 1;
            return Ok(items.map_or(Shape::Other, Shape::Texts));
        }
        loop {
            match (self.value(items.is_some())?, &mut items) {
                (Shape::Text(text), Some(list)) => list.push(text),
                (_, found) => *found = None,
            }
            self.whitespace();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    self.depth -= 1;
                    return Ok(items.map_or(Shape::Other, Shape::Texts));
                }
                _ => return Err(JsonProblem::Invalid),
            }
        }
    }

    /// A number: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, whose value must be finite
    /// as a double (integers beyond 64 bits are read as doubles, as serde_json does).
    fn number(&mut self, keep: bool) -> Result<Shape<'a>, JsonProblem> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek() {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(JsonProblem::Invalid),
        }
        let integer_end = self.at;
        if self.peek() == Some(b'.') {
            self.at += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(JsonProblem::Invalid);
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(JsonProblem::Invalid);
            }
            self.digits();
        }
        let literal = &self.bytes[start..self.at];
        if self.at == integer_end && integer_end - start <= 16 {
            // Up to 15 digits (and a sign), an integer is exact as a double.
            if !keep {
                return Ok(Shape::Other);
            }
            let (negative, digits) = match literal.split_first() {
                Some((b'-', digits)) => (true, digits),
                _ => (false, literal),
            };
            if digits.len() <= 15 {
                let value = digits
                    .iter()
                    .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'));
                let value = value as f64;
                return Ok(Shape::Number(if negative { -value } else { value }));
            }
        }
        // Up to 19 digits, an integer fits 64 bits: finite whatever it is.
        if self.at == integer_end && integer_end - start <= 19 && !keep {
            return Ok(Shape::Other);
        }
        let value: f64 = std::str::from_utf8(literal)
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or(JsonProblem::Invalid)?;
        if !value.is_finite() {
            return Err(JsonProblem::Invalid);
        }
        Ok(if keep {
            Shape::Number(value)
        } else {
            Shape::Other
        })
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
    }

    /// Moves over string bytes that need no attention (not a quote, backslash or control
    /// character), eight at a time.
    fn plain_run(&mut self) {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
        while let Some(chunk) = self.bytes.get(self.at..self.at + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let x = u64::from_le_bytes(word);
            // A byte below 0x20 borrows in `x - 0x20..`: its high bit is set while its own is not.
            let special = has_zero(x ^ (ONES * u64::from(b'"')))
                | has_zero(x ^ (ONES * u64::from(b'\\')))
                | (x.wrapping_sub(ONES * 0x20) & !x & HIGH);
            if special != 0 {
                return;
            }
            self.at += 8;
        }
    }

    /// A string (the reader is at its opening quote): borrowed when it holds no escape.
    fn string(&mut self) -> Result<Cow<'a, str>, JsonProblem> {
        self.at += 1;
        let start = self.at;
        let mut escaped = false;
        loop {
            self.plain_run();
            match self.peek() {
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    // The escape's own bytes are checked when it is decoded below; here only
                    // its length matters (an escaped quote does not end the string).
                    self.at += 2;
                }
                Some(0x00..=0x1f) | None => return Err(JsonProblem::Invalid),
                Some(_) => self.at += 1,
            }
        }
        // Escapes are ASCII: the raw text is UTF-8 exactly when the decoded one is.
        let raw = match self.text {
            Some(text) => text.get(start..self.at),
            None => self
                .bytes
                .get(start..self.at)
                .and_then(|raw| std::str::from_utf8(raw).ok()),
        }
        .ok_or(JsonProblem::Invalid)?;
        self.at += 1;
        if !escaped {
            return Ok(Cow::Borrowed(raw));
        }
        unescape(raw).map(Cow::Owned)
    }
}

/// Decodes the escapes of a string's raw text (RFC 8259 section 7; surrogates must pair).
#[cold]
fn unescape(raw: &str) -> Result<String, JsonProblem> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(backslash) = rest.find('\\') {
        out.push_str(&rest[..backslash]);
        let bytes = rest.as_bytes();
        let kind = bytes.get(backslash + 1).copied();
        let mut used = 2;
        match kind {
            Some(b'"') => out.push('"'),
            Some(b'\\') => out.push('\\'),
            Some(b'/') => out.push('/'),
            Some(b'b') => out.push('\u{8}'),
            Some(b'f') => out.push('\u{c}'),
            Some(b'n') => out.push('\n'),
            Some(b'r') => out.push('\r'),
            Some(b't') => out.push('\t'),
            Some(b'u') => {
                let first = hex4(bytes, backslash + 2)?;
                used = 6;
                let code = match first {
                    0xDC00..=0xDFFF => return Err(JsonProblem::Invalid),
                    0xD800..=0xDBFF => {
                        if bytes.get(backslash + 6) != Some(&b'\\')
                            || bytes.get(backslash + 7) != Some(&b'u')
                        {
                            return Err(JsonProblem::Invalid);
                        }
                        let second = hex4(bytes, backslash + 8)?;
                        if !(0xDC00..=0xDFFF).contains(&second) {
                            return Err(JsonProblem::Invalid);
                        }
                        used = 12;
                        0x1_0000
                            + ((u32::from(first) - 0xD800) << 10)
                            + (u32::from(second) - 0xDC00)
                    }
                    single => u32::from(single),
                };
                out.push(char::from_u32(code).ok_or(JsonProblem::Invalid)?);
            }
            _ => return Err(JsonProblem::Invalid),
        }
        rest = rest.get(backslash + used..).ok_or(JsonProblem::Invalid)?;
    }
    out.push_str(rest);
    Ok(out)
}

fn hex4(bytes: &[u8], at: usize) -> Result<u16, JsonProblem> {
    let digits = bytes.get(at..at + 4).ok_or(JsonProblem::Invalid)?;
    let mut value = 0u16;
    for digit in digits {
        let nibble = (*digit as char).to_digit(16).ok_or(JsonProblem::Invalid)?;
        value = (value << 4) | nibble as u16;
    }
    Ok(value)
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

    /// Both readers: the `Value` parser and the one-pass reader of the token path.
    fn verdicts(doc: &[u8]) -> (Result<(), JsonProblem>, Result<(), JsonProblem>) {
        (
            parse_object(doc).map(|_| ()),
            read_object(doc, &mut NoMembers),
        )
    }

    #[test]
    fn refuses_duplicates_at_any_depth() {
        let many: Vec<String> = (0..40).map(|i| format!("\"k{i}\": {i}")).collect();
        let wide = format!("{{{}, \"k39\": 0}}", many.join(", "));
        let wide_nested = format!("{{\"x\": {wide}}}");
        for doc in [
            &br#"{"aud": "a", "aud": "b"}"#[..],
            br#"{"x": {"k": 1, "k": 1}}"#,
            br#"{"x": [{"k": 1, "k": 2}]}"#,
            br#"{"\u0061ud": "a", "aud": "b"}"#,
            br#"[{"k": 1, "k": 2}]"#,
            wide.as_bytes(),
            wide_nested.as_bytes(),
        ] {
            let dup = Err(JsonProblem::DuplicateMember);
            assert_eq!(verdicts(doc), (dup, dup), "{doc:?}");
        }
        let distinct = format!("{{{}}}", many.join(", "));
        assert_eq!(verdicts(distinct.as_bytes()), (Ok(()), Ok(())));
    }

    #[test]
    fn both_readers_agree() {
        for doc in [
            &br#"{"a": 1, "b": [1, {"c": null}], "d": "x\u00e9\n"}"#[..],
            b"[]",
            b"\"s\"",
            b"null",
            b"1e400",
            b"[1e400]",
            b"",
            b"{",
            b"{}}",
            b"{} x",
            b"[1] x",
            b"{\"a\":1,}",
            b"\xef\xbb\xbf{}",
            b"{\"a\": \"\\ud800\"}",
            b"{\"\\ud800\": 1}",
            b"{\"a\": 123456789012345678901234567890}",
            b"{\"a\": -0, \"b\": 1.5e308, \"c\": -1e400}",
            b"{\"a\": \"\xff\"}",
            b"{\"a\":1,\"a\" 2}",
            b"{\"a\" 1}",
            b"{\"a\":1 \"b\":2}",
            b"{\"a\":[1,]}",
            b"{\"a\":01}",
            b"{\"a\":1.}",
            b"{\"a\":-}",
            b"{\"a\":\"\\x\"}",
            b"{\"a\":\"\\ud83d\\ude00\"}",
            b"{\"a\":\"\\ud83d\\u0041\"}",
            b"{\"a\":\"\\udc00\"}",
            b"{\"a\":\"tab\there\"}",
            b"{\"a\":tru}",
            b"{\"a\":nul}",
            b" {\"a\" :\t1 } \n",
        ] {
            let (tree, one_pass) = verdicts(doc);
            assert_eq!(tree, one_pass, "{doc:?}");
        }
        let deep = |n: usize| format!("{{\"a\":{}1{}}}", "[".repeat(n), "]".repeat(n));
        for n in [125, 126, 127, 128, 100_000] {
            let (tree, one_pass) = verdicts(deep(n).as_bytes());
            assert_eq!(tree, one_pass, "depth {n}");
        }
        assert!(parse_object(deep(126).as_bytes()).is_ok());
        assert!(parse_object(deep(128).as_bytes()).is_err());
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
