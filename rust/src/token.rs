//! The JWS compact serialization (RFC 7515 section 7.1) and its protected header.

use crate::algorithm::{Algorithm, AlgorithmName, AlgorithmSet};
use crate::base64url;
use crate::error::TokenError;
use crate::json::{self, JsonProblem, Shape};
use crate::trace::{Check, Recorder, Silent};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::cell::RefCell;

/// The three base64url segments of a compact JWS, borrowed from the token.
#[derive(Debug, Clone, Copy)]
pub struct CompactJws<'a> {
    pub header: &'a str,
    pub payload: &'a str,
    pub signature: &'a str,
    /// `header.payload`: the bytes the signature covers.
    pub signing_input: &'a str,
}

impl<'a> CompactJws<'a> {
    /// Splits a token. The size limit is checked before anything else, so a hostile token costs
    /// at most `max_bytes` of scanning and no allocation.
    pub fn split(token: &'a str, max_bytes: usize) -> Result<Self, TokenError> {
        Self::split_recorded(token, max_bytes, &mut Silent)
    }

    /// [`Self::split`], recording the size and segment checks in `rec`.
    pub fn split_recorded<R: Recorder>(
        token: &'a str,
        max_bytes: usize,
        rec: &mut R,
    ) -> Result<Self, TokenError> {
        within_size(token, max_bytes, rec)?;
        rec.outcome(Check::Segments, Self::segments(token), |_| {
            "three base64url segments (a signed token, not an encrypted one)".into()
        })
    }

    fn segments(token: &'a str) -> Result<Self, TokenError> {
        if token.is_empty() {
            return Err(TokenError::malformed("the token is empty"));
        }
        // Base64url decoding validates every byte of each segment later; here only the separators
        // are located (memchr-fast), and anything but three segments is refused.
        let Some(first) = token.find('.') else {
            return Err(TokenError::malformed(
                "a compact JWS has exactly three dot-separated segments",
            ));
        };
        let Some(second) = token[first + 1..].find('.').map(|i| first + 1 + i) else {
            return Err(TokenError::malformed(
                "a compact JWS has exactly three dot-separated segments",
            ));
        };
        let rest = &token[second + 1..];
        if rest.contains('.') {
            let why = if rest.bytes().filter(|b| *b == b'.').count() == 2 {
                "encrypted tokens (JWE) are not accepted"
            } else {
                "a compact JWS has exactly three dot-separated segments"
            };
            return Err(TokenError::malformed(why));
        }
        let jws = Self {
            header: &token[..first],
            payload: &token[first + 1..second],
            signature: &token[second + 1..],
            signing_input: &token[..second],
        };
        if jws.header.is_empty() || jws.payload.is_empty() || jws.signature.is_empty() {
            return Err(TokenError::malformed("a segment of the token is empty"));
        }
        Ok(jws)
    }
}

/// The size limit: a larger token is refused before it is read.
pub fn within_size<R: Recorder>(
    token: &str,
    max_bytes: usize,
    rec: &mut R,
) -> Result<(), TokenError> {
    let result = if token.len() > max_bytes {
        Err(TokenError::TooLarge {
            size: token.len(),
            limit: max_bytes,
        })
    } else {
        Ok(())
    };
    rec.outcome(Check::Size, result, |()| {
        format!("{} bytes, within the limit of {max_bytes}", token.len())
    })
}

/// Decodes a base64url segment.
pub fn decode_segment(segment: &str, what: &'static str) -> Result<Vec<u8>, TokenError> {
    base64url::decode(segment).ok_or_else(|| {
        TokenError::Malformed(format!("the {what} is not base64url without padding").into())
    })
}

/// Decodes a base64url segment holding a JSON object.
pub fn decode_object(segment: &str, what: &'static str) -> Result<Map<String, Value>, TokenError> {
    parse_object(&decode_segment(segment, what)?, what)
}

/// Parses a decoded segment as a JSON object (strictly: see `json`).
pub fn parse_object(bytes: &[u8], what: &'static str) -> Result<Map<String, Value>, TokenError> {
    json::parse_object(bytes).map_err(|problem: JsonProblem| {
        TokenError::Malformed(format!("the {what} {}", problem.describe()).into())
    })
}

/// The protected-header members this validator acts on, borrowed from the decoded header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header<'a> {
    pub alg: Algorithm,
    pub kid: Option<Cow<'a, str>>,
    pub typ: Option<Cow<'a, str>>,
}

/// The last header read on this thread, by its segment's text and the algorithms allowed:
/// an issuer signs every token with the same header (`alg`, `typ`, `kid`), so a repeat costs a
/// comparison instead of a decoding and a parse. Only headers that passed are kept.
struct LastHeader {
    segment: String,
    allowed: AlgorithmSet,
    header: Header<'static>,
}

thread_local! {
    static LAST_HEADER: RefCell<Option<LastHeader>> = const { RefCell::new(None) };
}

/// Headers up to this many decoded bytes are decoded on the stack.
const STACK_HEADER_BYTES: usize = 256;

impl Header<'_> {
    /// Calls `then` with the header of a token's first segment, read (decoded and checked by
    /// `Header::parse`) or the same segment's header read before on this thread.
    pub fn with<R>(
        segment: &str,
        allowed: AlgorithmSet,
        then: impl FnOnce(Result<&Header<'_>, TokenError>) -> R,
    ) -> R {
        Self::with_recorded(segment, allowed, &mut Silent, |_, header| then(header))
    }

    /// [`Self::with`], recording the header's checks in `rec` (which `then` gets back). A
    /// recorder that keeps its steps reads the header anew: the checks are made, not
    /// remembered.
    pub fn with_recorded<Rec: Recorder, T>(
        segment: &str,
        allowed: AlgorithmSet,
        rec: &mut Rec,
        then: impl FnOnce(&mut Rec, Result<&Header<'_>, TokenError>) -> T,
    ) -> T {
        LAST_HEADER.with(|last| {
            if !Rec::KEEPS {
                if let Ok(seen) = last.try_borrow() {
                    if let Some(seen) = seen.as_ref() {
                        if seen.allowed == allowed && seen.segment == segment {
                            return then(rec, Ok(&seen.header));
                        }
                    }
                }
            }
            let mut stack = [0u8; STACK_HEADER_BYTES];
            let mut heap = Vec::new();
            let bound = base64url::decoded_len_bound(segment);
            let buffer: &mut [u8] = if bound <= stack.len() {
                &mut stack
            } else {
                heap.resize(bound, 0);
                &mut heap
            };
            let decoded = base64url::decode_to(segment, buffer).ok_or_else(|| {
                TokenError::malformed("the header is not base64url without padding")
            });
            let decoded = match decoded {
                Ok(bytes) => bytes,
                Err(error) => {
                    rec.fail(Check::Header, &error);
                    return then(rec, Err(error));
                }
            };
            match Header::parse_recorded(decoded, allowed, rec) {
                Ok(header) => {
                    if let Ok(mut slot) = last.try_borrow_mut() {
                        *slot = Some(LastHeader {
                            segment: segment.to_owned(),
                            allowed,
                            header: header.to_owned(),
                        });
                    }
                    then(rec, Ok(&header))
                }
                Err(error) => then(rec, Err(error)),
            }
        })
    }

    fn to_owned(&self) -> Header<'static> {
        let owned = |text: &Option<Cow<'_, str>>| text.as_ref().map(|t| Cow::Owned(t.to_string()));
        Header {
            alg: self.alg,
            kid: owned(&self.kid),
            typ: owned(&self.typ),
        }
    }
}

impl<'a> Header<'a> {
    /// Reads and checks a decoded header. `jku`, `x5u`, `jwk` and `x5c` are ignored: keys come
    /// only from the configured key set, never from the token.
    pub fn parse(decoded: &'a [u8], allowed: AlgorithmSet) -> Result<Self, TokenError> {
        Self::parse_recorded(decoded, allowed, &mut Silent)
    }

    /// [`Self::parse`], recording the header, `alg` and extension checks in `rec`.
    pub fn parse_recorded<R: Recorder>(
        decoded: &'a [u8],
        allowed: AlgorithmSet,
        rec: &mut R,
    ) -> Result<Self, TokenError> {
        let mut found = HeaderMembers::default();
        let read = json::read_object(decoded, &mut found).map_err(|problem: JsonProblem| {
            TokenError::Malformed(format!("the header {}", problem.describe()).into())
        });
        rec.outcome(Check::Header, read, |()| {
            "base64url, one JSON object, each member once".into()
        })?;
        let alg = rec.outcome(Check::Alg, algorithm(&found.alg, allowed), |alg| {
            let names: Vec<&str> = Algorithm::ALL
                .iter()
                .filter(|a| allowed.contains(**a))
                .map(|a| a.name())
                .collect();
            format!("{} is allowed ({})", alg.name(), names.join(", "))
        })?;
        rec.outcome(Check::Extensions, found.members(), |_| {
            "no crit, b64, zip or enc; kid and typ are strings where present".into()
        })
        .map(|(kid, typ)| Self { alg, kid, typ })
    }
}

/// The header's `alg`: present, a string, supported and allowed.
fn algorithm(alg: &Shape<'_>, allowed: AlgorithmSet) -> Result<Algorithm, TokenError> {
    match alg {
        Shape::Text(name) => match Algorithm::parse(name) {
            AlgorithmName::Supported(alg) if allowed.contains(alg) => Ok(alg),
            AlgorithmName::Supported(alg) => Err(TokenError::AlgorithmNotAllowed(Some(alg.name()))),
            AlgorithmName::Forbidden => Err(TokenError::AlgorithmNotAllowed(None)),
            AlgorithmName::Unknown => Err(TokenError::UnsupportedAlgorithm),
        },
        Shape::Absent => Err(TokenError::malformed("the header has no 'alg'")),
        _ => Err(TokenError::malformed(
            "the header member 'alg' is not a string",
        )),
    }
}

type KidAndTyp<'a> = (Option<Cow<'a, str>>, Option<Cow<'a, str>>);

impl<'a> HeaderMembers<'a> {
    /// The rules on the members other than `alg`: no extension this validator does not
    /// implement, and `kid` and `typ` are strings when present.
    fn members(self) -> Result<KidAndTyp<'a>, TokenError> {
        if self.crit {
            // RFC 7515 section 4.1.11: a recipient must reject extensions it does not understand,
            // and this validator understands none.
            return Err(TokenError::malformed(
                "the header marks extensions critical ('crit'); none are supported",
            ));
        }
        if self.b64 {
            return Err(TokenError::malformed(
                "unencoded payloads (header 'b64', RFC 7797) are not accepted",
            ));
        }
        if self.zip {
            return Err(TokenError::malformed(
                "compressed payloads (header 'zip') are not accepted",
            ));
        }
        if self.enc {
            return Err(TokenError::malformed(
                "encrypted tokens (JWE) are not accepted",
            ));
        }
        Ok((
            optional_text(self.kid, "kid")?,
            optional_text(self.typ, "typ")?,
        ))
    }
}

fn optional_text<'a>(
    member: Shape<'a>,
    name: &'static str,
) -> Result<Option<Cow<'a, str>>, TokenError> {
    match member {
        Shape::Absent => Ok(None),
        Shape::Text(text) => Ok(Some(text)),
        _ => Err(TokenError::Malformed(
            format!("the header member '{name}' is not a string").into(),
        )),
    }
}

/// What the header says, collected in one pass; `Header::parse` applies the rules after it.
#[derive(Default)]
struct HeaderMembers<'a> {
    alg: Shape<'a>,
    kid: Shape<'a>,
    typ: Shape<'a>,
    crit: bool,
    b64: bool,
    zip: bool,
    enc: bool,
}

impl<'a> HeaderMembers<'a> {
    fn seen(&self, index: usize) -> bool {
        match index {
            0 => !matches!(self.alg, Shape::Absent),
            1 => !matches!(self.kid, Shape::Absent),
            2 => !matches!(self.typ, Shape::Absent),
            3 => self.crit,
            4 => self.b64,
            5 => self.zip,
            _ => self.enc,
        }
    }
}

impl<'a> json::Members<'a> for HeaderMembers<'a> {
    fn find(&mut self, name: &str) -> Result<Option<usize>, JsonProblem> {
        let index = match name.as_bytes() {
            b"alg" => Some(0),
            b"kid" => Some(1),
            b"typ" => Some(2),
            b"crit" => Some(3),
            b"b64" => Some(4),
            b"zip" => Some(5),
            b"enc" => Some(6),
            _ => None,
        };
        match index {
            Some(index) if self.seen(index) => Err(JsonProblem::DuplicateMember),
            found => Ok(found),
        }
    }

    fn keep(&mut self, index: usize, reader: &mut json::Reader<'a>) -> Result<(), JsonProblem> {
        let slot = match index {
            0 => &mut self.alg,
            1 => &mut self.kid,
            2 => &mut self.typ,
            _ => {
                match index {
                    3 => self.crit = true,
                    4 => self.b64 = true,
                    5 => self.zip = true,
                    _ => self.enc = true,
                }
                return reader.skip();
            }
        };
        *slot = reader.shape()?;
        Ok(())
    }
}

/// Media types compare case-insensitively, and a `typ` without '/' stands for `application/…`
/// (RFC 7515 section 4.1.9), so `at+jwt` and `application/at+jwt` are the same type.
pub fn normalize_media_type(typ: &str) -> String {
    let lower = typ.trim().to_ascii_lowercase();
    match lower.strip_prefix("application/") {
        Some(rest) if !rest.contains('/') => rest.to_string(),
        _ => lower,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> AlgorithmSet {
        let mut set = AlgorithmSet::default();
        for alg in Algorithm::ALL {
            set.insert(alg);
        }
        set
    }

    fn header(json: &str) -> Result<Header<'_>, TokenError> {
        Header::parse(json.as_bytes(), all())
    }

    #[test]
    fn splits_three_segments() {
        let jws = CompactJws::split("aGk.cGF5.c2ln", 100).expect("valid");
        assert_eq!(
            (jws.header, jws.payload, jws.signature),
            ("aGk", "cGF5", "c2ln")
        );
        assert_eq!(jws.signing_input, "aGk.cGF5");
    }

    #[test]
    fn refuses_bad_shapes() {
        for (token, code) in [
            ("", "malformed"),
            ("a.b", "malformed"),
            ("a.b.c.d", "malformed"),
            ("a.b.c.d.e", "malformed"),
            ("a..c", "malformed"),
            (".b.c", "malformed"),
            ("a.b.", "malformed"),
        ] {
            let err = CompactJws::split(token, 100).expect_err(token);
            assert_eq!(err.code(), code, "{token:?}");
        }
        // Characters are checked by decoding each segment.
        for segment in ["c=", "b ", "b+", "c\n", "é"] {
            assert_eq!(
                decode_segment(segment, "payload")
                    .expect_err(segment)
                    .code(),
                "malformed"
            );
        }
        let err = CompactJws::split("a.b.c.d.e", 100).expect_err("jwe");
        assert!(err.description().contains("JWE"));
    }

    #[test]
    fn size_is_checked_first() {
        let dots = ".".repeat(1_000_000);
        assert_eq!(
            CompactJws::split(&dots, 8192).expect_err("large"),
            TokenError::TooLarge {
                size: 1_000_000,
                limit: 8192
            }
        );
    }

    #[test]
    fn header_rules() {
        assert_eq!(
            header(r#"{"alg":"ES256","kid":"k"}"#)
                .expect("ok")
                .kid
                .as_deref(),
            Some("k")
        );
        assert_eq!(
            header(r#"{"alg":"none"}"#).expect_err("none").code(),
            "algorithm_not_allowed"
        );
        assert_eq!(
            header(r#"{"alg":"HS256"}"#).expect_err("hs").code(),
            "algorithm_not_allowed"
        );
        assert_eq!(
            header(r#"{"alg":"XX1"}"#).expect_err("xx").code(),
            "unsupported_algorithm"
        );
        for bad in [
            r#"{"kid":"k"}"#,
            r#"{"alg":1}"#,
            r#"{"alg":"ES256","crit":["exp"]}"#,
            r#"{"alg":"ES256","b64":false}"#,
            r#"{"alg":"ES256","zip":"DEF"}"#,
            r#"{"alg":"ES256","kid":5}"#,
            r#"{"alg":"ES256","alg":"ES256"}"#,
            r#"["ES256"]"#,
        ] {
            assert_eq!(header(bad).expect_err(bad).code(), "malformed", "{bad}");
        }
        let mut only_rs = AlgorithmSet::default();
        only_rs.insert(Algorithm::RS256);
        let err = Header::parse(br#"{"alg":"ES256"}"#, only_rs).expect_err("x");
        assert_eq!(err, TokenError::AlgorithmNotAllowed(Some("ES256")));
    }

    /// The header read before on this thread answers only for the same segment text and the
    /// same allowed algorithms; failures are never kept.
    #[test]
    fn a_repeated_header_reads_the_same() {
        let es = base64url::encode(br#"{"alg":"ES256","kid":"k","typ":"at+jwt"}"#);
        let other = base64url::encode(br#"{"alg":"ES256","kid":"j"}"#);
        let mut only_rs = AlgorithmSet::default();
        only_rs.insert(Algorithm::RS256);
        let read = |segment: &str, allowed| {
            Header::with(segment, allowed, |h| {
                h.map(|h| (h.alg, h.kid.as_deref().map(str::to_owned)))
            })
        };
        for _ in 0..2 {
            assert_eq!(read(&es, all()), Ok((Algorithm::ES256, Some("k".into()))));
            assert_eq!(
                read(&es, only_rs),
                Err(TokenError::AlgorithmNotAllowed(Some("ES256")))
            );
            assert_eq!(
                read(&other, all()),
                Ok((Algorithm::ES256, Some("j".into())))
            );
            assert_eq!(read("e30", all()).expect_err("no alg").code(), "malformed");
            assert_eq!(
                read("!!", all()).expect_err("not base64").code(),
                "malformed"
            );
        }
    }

    #[test]
    fn media_types() {
        assert_eq!(normalize_media_type("at+JWT"), "at+jwt");
        assert_eq!(normalize_media_type("Application/AT+jwt"), "at+jwt");
        assert_eq!(normalize_media_type("application/x/y"), "application/x/y");
    }
}
