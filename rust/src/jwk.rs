//! One JSON Web Key (RFC 7517) parsed into a ready-to-use public verification key.
//!
//! Parsing is where every policy about keys is applied, once: a key that cannot be used for
//! signature verification is refused with a readable reason, and the reason never contains key
//! material (only member names, key types and sizes).

use crate::algorithm::{Algorithm, AlgorithmName, Curve, KeyKind};
use crate::base64url;
use aws_lc_rs::digest;
use aws_lc_rs::signature::ParsedPublicKey;
use serde_json::{Map, Value};
use std::sync::OnceLock;

const RSA_MIN_BITS: usize = 2048;
const RSA_MAX_BITS: usize = 8192;
const RSA_ALGORITHMS: usize = 6;

/// A usable public key.
pub struct PublicKey {
    pub kid: Option<String>,
    /// The JWK's own `alg`, when it names one: the key then verifies that algorithm only.
    pub alg: Option<Algorithm>,
    pub kind: KeyKind,
    material: Material,
    /// SHA-256 over the key id, the JWK's `alg` and the canonical public material: equal
    /// digests mean the same key under the same name.
    pub digest: [u8; 32],
}

enum Material {
    /// RSA keys serve six algorithms; aws-lc-rs binds a parsed key to one, so each algorithm
    /// gets its slot, filled on first use from the DER `RSAPublicKey`.
    Rsa {
        der: Box<[u8]>,
        parsed: Box<[OnceLock<Option<ParsedPublicKey>>; RSA_ALGORITHMS]>,
    },
    Single(ParsedPublicKey),
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl PublicKey {
    /// Whether this key may verify a token signed with `alg`.
    pub fn fits(&self, alg: Algorithm) -> bool {
        self.kind == alg.key_kind() && self.alg.is_none_or(|own| own == alg)
    }

    /// Verifies `signature` over `message`. The caller has checked `fits(alg)`.
    pub fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        if !self.fits(alg) {
            return false;
        }
        if let KeyKind::Ec(curve) = self.kind {
            // RFC 7518 section 3.4: exactly r||s, each the coordinate length; refuse DER or any
            // other length, and zero r or s, before the library sees them.
            let half = curve.coordinate_len();
            if signature.len() != 2 * half {
                return false;
            }
            let (r, s) = signature.split_at(half);
            if r.iter().all(|b| *b == 0) || s.iter().all(|b| *b == 0) {
                return false;
            }
        }
        match &self.material {
            Material::Single(key) => key.verify_sig(message, signature).is_ok(),
            Material::Rsa { der, parsed } => {
                let Some(slot) = alg.rsa_slot().and_then(|i| parsed.get(i)) else {
                    return false;
                };
                match slot.get_or_init(|| ParsedPublicKey::new(alg.verification(), der).ok()) {
                    Some(key) => key.verify_sig(message, signature).is_ok(),
                    None => false,
                }
            }
        }
    }
}

/// Parses one JWK. `Err` carries the reason the key cannot be used.
pub fn parse_jwk(jwk: &Map<String, Value>) -> Result<PublicKey, String> {
    let kty = match jwk.get("kty") {
        Some(Value::String(kty)) => kty.as_str(),
        Some(_) => return Err("member 'kty' is not a string".into()),
        None => return Err("member 'kty' is missing".into()),
    };
    let kid = match jwk.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err("member 'kid' is not a string".into()),
    };
    match jwk.get("use") {
        None => {}
        Some(Value::String(u)) if u == "sig" => {}
        Some(Value::String(_)) => return Err("'use' is not 'sig'".into()),
        Some(_) => return Err("member 'use' is not a string".into()),
    }
    if let Some(ops) = jwk.get("key_ops") {
        let Value::Array(ops) = ops else {
            return Err("member 'key_ops' is not an array".into());
        };
        if !ops.iter().any(|op| op.as_str() == Some("verify")) {
            return Err("'key_ops' does not include 'verify'".into());
        }
    }
    let alg = match jwk.get("alg") {
        None => None,
        Some(Value::String(name)) => match Algorithm::parse(name) {
            AlgorithmName::Supported(alg) => Some(alg),
            AlgorithmName::Forbidden => {
                return Err("'alg' names a symmetric or unsigned algorithm".into())
            }
            AlgorithmName::Unknown => return Err("'alg' names an unsupported algorithm".into()),
        },
        Some(_) => return Err("member 'alg' is not a string".into()),
    };

    // The key type is known before any key material is read, and the JWK's own `alg` must fit
    // it before it selects anything for the key (an RSA key's per-algorithm slot, say).
    let (kind, material, canonical) = match kty {
        "RSA" => {
            fits(alg, KeyKind::Rsa, "an RSA key")?;
            parse_rsa(jwk, alg)?
        }
        "EC" => {
            let curve = ec_curve(jwk)?;
            fits(
                alg,
                KeyKind::Ec(curve),
                &format!("a {} EC key", curve.name()),
            )?;
            parse_ec(jwk, curve)?
        }
        "OKP" => {
            okp_curve(jwk)?;
            fits(alg, KeyKind::Ed25519, "an Ed25519 key")?;
            parse_okp(jwk)?
        }
        "oct" => return Err("kty 'oct' is a symmetric key and cannot verify signatures".into()),
        _ => return Err("kty is not one of RSA, EC, OKP".into()),
    };
    let digest = key_digest(kid.as_deref(), alg, &canonical);
    Ok(PublicKey {
        kid,
        alg,
        kind,
        material,
        digest,
    })
}

/// Whether the JWK's own `alg` (if any) suits a key of this kind; `key` names the kind.
fn fits(alg: Option<Algorithm>, kind: KeyKind, key: &str) -> Result<(), String> {
    match alg {
        Some(alg) if alg.key_kind() != kind => {
            Err(format!("'alg' {} does not fit {key}", alg.name()))
        }
        _ => Ok(()),
    }
}

fn key_digest(kid: Option<&str>, alg: Option<Algorithm>, canonical: &[u8]) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    // Length-prefixed fields: no two different keys hash the same input.
    for field in [
        kid.unwrap_or("").as_bytes(),
        alg.map_or("", Algorithm::name).as_bytes(),
        canonical,
    ] {
        ctx.update(&(field.len() as u64).to_be_bytes());
        ctx.update(field);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

fn refuse_private_members(jwk: &Map<String, Value>, members: &[&str]) -> Result<(), String> {
    // A private key in a public key set is a publisher's mistake; using it would hide that.
    if members.iter().any(|m| jwk.contains_key(*m)) {
        return Err("contains private key members; only public keys are accepted".into());
    }
    Ok(())
}

fn member_bytes(jwk: &Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    match jwk.get(name) {
        Some(Value::String(text)) => base64url::decode(text)
            .ok_or_else(|| format!("member '{name}' is not base64url without padding")),
        Some(_) => Err(format!("member '{name}' is not a string")),
        None => Err(format!("member '{name}' is missing")),
    }
}

type Parsed = (KeyKind, Material, Vec<u8>);

/// `alg`, when given, is an RSA algorithm (the caller has checked).
fn parse_rsa(jwk: &Map<String, Value>, alg: Option<Algorithm>) -> Result<Parsed, String> {
    refuse_private_members(jwk, &["d", "p", "q", "dp", "dq", "qi", "oth"])?;
    let n = member_bytes(jwk, "n")?;
    let e = member_bytes(jwk, "e")?;
    let n = strip_leading_zeros(&n);
    let e = strip_leading_zeros(&e);
    if n.is_empty() || e.is_empty() {
        return Err("RSA modulus or exponent is zero".into());
    }
    let bits = n.len() * 8 - n[0].leading_zeros() as usize;
    if bits < RSA_MIN_BITS {
        return Err(format!(
            "RSA modulus of {bits} bits is below the {RSA_MIN_BITS}-bit minimum"
        ));
    }
    if bits > RSA_MAX_BITS {
        return Err(format!(
            "RSA modulus of {bits} bits is above the {RSA_MAX_BITS}-bit maximum"
        ));
    }
    if e.len() > 4 {
        return Err("RSA public exponent is implausibly large".into());
    }
    let der = rsa_public_key_der(n, e);
    // Parse eagerly with the key's own algorithm (or RS256) so that a broken key is refused now,
    // not at the first token.
    let first = alg.unwrap_or(Algorithm::RS256);
    let key = ParsedPublicKey::new(first.verification(), &der)
        .map_err(|err| format!("RSA key refused by the crypto library ({err})"))?;
    let parsed: Box<[OnceLock<Option<ParsedPublicKey>>; RSA_ALGORITHMS]> = Box::default();
    match first.rsa_slot().and_then(|i| parsed.get(i)) {
        Some(slot) => {
            let _ = slot.set(Some(key));
        }
        None => return Err(format!("'alg' {} does not fit an RSA key", first.name())),
    }
    let mut canonical = b"RSA".to_vec();
    canonical.extend_from_slice(&der);
    Ok((
        KeyKind::Rsa,
        Material::Rsa {
            der: der.into_boxed_slice(),
            parsed,
        },
        canonical,
    ))
}

fn ec_curve(jwk: &Map<String, Value>) -> Result<Curve, String> {
    match jwk.get("crv") {
        Some(Value::String(crv)) => {
            Curve::from_name(crv).ok_or_else(|| "EC curve is not one of P-256, P-384, P-521".into())
        }
        Some(_) => Err("member 'crv' is not a string".into()),
        None => Err("member 'crv' is missing".into()),
    }
}

fn parse_ec(jwk: &Map<String, Value>, curve: Curve) -> Result<Parsed, String> {
    refuse_private_members(jwk, &["d"])?;
    let x = member_bytes(jwk, "x")?;
    let y = member_bytes(jwk, "y")?;
    let len = curve.coordinate_len();
    // RFC 7518 section 6.2.1.2: coordinates are the full field length, no more, no less.
    if x.len() != len || y.len() != len {
        return Err(format!(
            "{} coordinates must be {len} bytes each",
            curve.name()
        ));
    }
    let mut point = Vec::with_capacity(1 + 2 * len);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    let alg = match curve {
        Curve::P256 => Algorithm::ES256,
        Curve::P384 => Algorithm::ES384,
        Curve::P521 => Algorithm::ES512,
    };
    let key = ParsedPublicKey::new(alg.verification(), &point)
        .map_err(|_| format!("{} point is not on the curve", curve.name()))?;
    let mut canonical = curve.name().as_bytes().to_vec();
    canonical.extend_from_slice(&point);
    Ok((KeyKind::Ec(curve), Material::Single(key), canonical))
}

fn okp_curve(jwk: &Map<String, Value>) -> Result<(), String> {
    match jwk.get("crv") {
        Some(Value::String(crv)) if crv == "Ed25519" => Ok(()),
        Some(Value::String(_)) => Err("OKP curve is not Ed25519".into()),
        Some(_) => Err("member 'crv' is not a string".into()),
        None => Err("member 'crv' is missing".into()),
    }
}

fn parse_okp(jwk: &Map<String, Value>) -> Result<Parsed, String> {
    refuse_private_members(jwk, &["d"])?;
    let x = member_bytes(jwk, "x")?;
    if x.len() != 32 {
        return Err("Ed25519 public key must be 32 bytes".into());
    }
    let key = ParsedPublicKey::new(Algorithm::EdDSA.verification(), &x)
        .map_err(|_| "Ed25519 public key refused by the crypto library".to_string())?;
    let mut canonical = b"Ed25519".to_vec();
    canonical.extend_from_slice(&x);
    Ok((KeyKind::Ed25519, Material::Single(key), canonical))
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// DER `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }` (RFC 8017 A.1.1)
/// from unsigned big-endian magnitudes without leading zeros.
fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(n.len() + e.len() + 16);
    der_unsigned_integer(&mut body, n);
    der_unsigned_integer(&mut body, e);
    let mut out = Vec::with_capacity(body.len() + 6);
    out.push(0x30);
    der_length(&mut out, body.len());
    out.extend_from_slice(&body);
    out
}

fn der_unsigned_integer(out: &mut Vec<u8>, magnitude: &[u8]) {
    // A set high bit would read as negative: prefix a zero byte.
    let pad = magnitude.first().is_some_and(|b| b & 0x80 != 0);
    out.push(0x02);
    der_length(out, magnitude.len() + usize::from(pad));
    if pad {
        out.push(0);
    }
    out.extend_from_slice(magnitude);
}

fn der_length(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(bytes.len() - 1);
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!("test JWKs are objects"),
        }
    }

    // RFC 7515 A.3 public key.
    fn p256() -> Value {
        json!({"kty": "EC", "crv": "P-256",
               "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
               "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"})
    }

    #[test]
    fn parses_an_ec_key() {
        let key = parse_jwk(&obj(p256())).expect("usable");
        assert_eq!(key.kind, KeyKind::Ec(Curve::P256));
        assert!(key.fits(Algorithm::ES256));
        assert!(!key.fits(Algorithm::ES384) && !key.fits(Algorithm::RS256));
    }

    #[test]
    fn refuses_unusable_keys_with_reasons() {
        let cases: Vec<(Value, &str)> = vec![
            (json!({"kty": "oct", "k": "c2VjcmV0"}), "symmetric"),
            (json!({"crv": "P-256"}), "'kty' is missing"),
            (
                json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}),
                "32 bytes",
            ),
            (
                json!({"kty": "EC", "crv": "secp256k1", "x": "AA", "y": "AA"}),
                "curve",
            ),
            (
                json!({"kty": "OKP", "crv": "X25519", "x": "AA"}),
                "not Ed25519",
            ),
            (json!({"kty": "XYZ"}), "kty is not"),
        ];
        for (jwk, reason) in cases {
            let err = parse_jwk(&obj(jwk.clone())).expect_err("refused");
            assert!(err.contains(reason), "{jwk}: {err}");
        }
        let mut with_private = p256();
        with_private["d"] = json!("AAAA");
        assert!(parse_jwk(&obj(with_private))
            .expect_err("private")
            .contains("private"));
        let mut enc = p256();
        enc["use"] = json!("enc");
        assert!(parse_jwk(&obj(enc)).expect_err("use").contains("'use'"));
        let mut ops = p256();
        ops["key_ops"] = json!(["sign"]);
        assert!(parse_jwk(&obj(ops)).expect_err("ops").contains("verify"));
        let mut wrong_alg = p256();
        wrong_alg["alg"] = json!("RS256");
        assert!(parse_jwk(&obj(wrong_alg))
            .expect_err("alg")
            .contains("does not fit"));
        let mut hs = p256();
        hs["alg"] = json!("HS256");
        assert!(parse_jwk(&obj(hs)).expect_err("hs").contains("symmetric"));
    }

    #[test]
    fn an_alg_that_does_not_fit_the_key_type_is_refused_before_use() {
        // 2048-bit modulus (0xc5 followed by ones) with e = 65537.
        let mut n = vec![0xc5u8];
        n.extend_from_slice(&[0xff; 255]);
        let rsa = json!({"kty": "RSA", "n": base64url::encode(&n), "e": "AQAB"});
        let okp = json!({"kty": "OKP", "crv": "Ed25519",
                         "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        let cases = [
            (rsa.clone(), "ES256", "'alg' ES256 does not fit an RSA key"),
            (rsa.clone(), "ES512", "'alg' ES512 does not fit an RSA key"),
            (rsa.clone(), "EdDSA", "'alg' EdDSA does not fit an RSA key"),
            (p256(), "RS256", "'alg' RS256 does not fit a P-256 EC key"),
            (p256(), "ES384", "'alg' ES384 does not fit a P-256 EC key"),
            (p256(), "EdDSA", "'alg' EdDSA does not fit a P-256 EC key"),
            (
                okp.clone(),
                "PS256",
                "'alg' PS256 does not fit an Ed25519 key",
            ),
            (
                okp.clone(),
                "ES256",
                "'alg' ES256 does not fit an Ed25519 key",
            ),
        ];
        for (mut jwk, alg, reason) in cases {
            jwk["alg"] = json!(alg);
            assert_eq!(parse_jwk(&obj(jwk)).expect_err(alg), reason);
        }
        for alg in Algorithm::ALL {
            let mut jwk = rsa.clone();
            jwk["alg"] = json!(alg.name());
            assert_eq!(parse_jwk(&obj(jwk)).is_ok(), alg.key_kind() == KeyKind::Rsa);
        }
        assert!(parse_jwk(&obj(okp)).is_ok());
    }

    #[test]
    fn rsa_slots_cover_exactly_the_rsa_algorithms() {
        let mut seen = [false; RSA_ALGORITHMS];
        for alg in Algorithm::ALL {
            match alg.rsa_slot() {
                Some(slot) => {
                    assert_eq!(alg.key_kind(), KeyKind::Rsa);
                    assert!(!std::mem::replace(&mut seen[slot], true), "{alg:?}");
                }
                None => assert_ne!(alg.key_kind(), KeyKind::Rsa),
            }
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn point_off_the_curve_is_refused() {
        let mut off = p256();
        off["y"] = json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE");
        assert!(parse_jwk(&obj(off))
            .expect_err("off curve")
            .contains("not on the curve"));
    }

    #[test]
    fn small_rsa_modulus_is_refused() {
        // A 1024-bit modulus (all ones) with e = 65537.
        let n = base64url::encode(&[0xff; 128]);
        let err = parse_jwk(&obj(json!({"kty": "RSA", "n": n, "e": "AQAB"}))).expect_err("small");
        assert!(err.contains("1024 bits"), "{err}");
    }

    #[test]
    fn der_lengths() {
        let mut out = Vec::new();
        der_length(&mut out, 0x7f);
        der_length(&mut out, 0x80);
        der_length(&mut out, 0x1234);
        assert_eq!(out, vec![0x7f, 0x81, 0x80, 0x82, 0x12, 0x34]);
        let mut int = Vec::new();
        der_unsigned_integer(&mut int, &[0x80]);
        assert_eq!(int, vec![0x02, 0x02, 0x00, 0x80]);
    }
}
