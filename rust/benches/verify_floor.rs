//! The floor: bare signature verification with the chosen crypto crate (aws-lc-rs), next to the
//! whole token validation of this crate, on the same key and token. With `--features
//! compare-ring` the same verification through ring runs beside it.
//!
//! The floor and the validation are measured in step: each benchmark's timing loop runs one
//! call of the other between two of its own timed calls, so both see the same machine (a slow
//! drift of a shared VM otherwise lands on one of them and skews their ratio by more than the
//! difference being measured). Each timed call includes one reading of the clock.
//!
//! Run with `make bench` (or `make bench-crypto` for the ring comparison).

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, KeyPair, ParsedPublicKey, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use criterion::{criterion_group, criterion_main, Criterion};
use mcp_oauth2::base64url;
use mcp_oauth2::{KeySet, Policy, PolicyOptions};
use std::hint::black_box;
use std::time::{Duration, Instant};

const NOW: f64 = 1_800_000_000.0;

struct Case {
    alg: &'static str,
    signing_input: String,
    signature: Vec<u8>,
    token: String,
    jwks: String,
    public_key: Vec<u8>,
}

fn token_parts(alg: &str, kid: &str) -> String {
    let header = format!(r#"{{"alg":"{alg}","typ":"at+jwt","kid":"{kid}"}}"#);
    let payload = format!(
        r#"{{"iss":"https://auth.example.com","aud":"https://mcp.example.com/mcp","sub":"user-1","exp":{},"iat":{},"scope":"mcp:tools mcp:read","client_id":"client-1","jti":"b3a1"}}"#,
        NOW as i64 + 600,
        NOW as i64 - 10
    );
    format!(
        "{}.{}",
        base64url::encode(header.as_bytes()),
        base64url::encode(payload.as_bytes())
    )
}

fn rs256() -> Case {
    let rng = SystemRandom::new();
    let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("keygen");
    let signing_input = token_parts("RS256", "rsa-1");
    let mut signature = vec![0; pair.public_modulus_len()];
    pair.sign(
        &signature::RSA_PKCS1_SHA256,
        &rng,
        signing_input.as_bytes(),
        &mut signature,
    )
    .expect("sign");
    let components = pair.public_key();
    let der = components.as_ref().to_vec();
    let (n, e) = rsa_components(&der);
    let jwks = format!(
        r#"{{"keys":[{{"kty":"RSA","kid":"rsa-1","n":"{}","e":"{}"}}]}}"#,
        base64url::encode(&n),
        base64url::encode(&e)
    );
    let token = format!("{signing_input}.{}", base64url::encode(&signature));
    Case {
        alg: "RS256",
        signing_input,
        signature,
        token,
        jwks,
        public_key: der,
    }
}

fn es256() -> Case {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("gen");
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).expect("pair");
    let signing_input = token_parts("ES256", "ec-1");
    let signature = pair
        .sign(&rng, signing_input.as_bytes())
        .expect("sign")
        .as_ref()
        .to_vec();
    let point = pair.public_key().as_ref().to_vec();
    let jwks = format!(
        r#"{{"keys":[{{"kty":"EC","crv":"P-256","kid":"ec-1","x":"{}","y":"{}"}}]}}"#,
        base64url::encode(&point[1..33]),
        base64url::encode(&point[33..])
    );
    let token = format!("{signing_input}.{}", base64url::encode(&signature));
    Case {
        alg: "ES256",
        signing_input,
        signature,
        token,
        jwks,
        public_key: point,
    }
}

/// Reads n and e back out of a DER RSAPublicKey (two INTEGERs in a SEQUENCE).
fn rsa_components(der: &[u8]) -> (Vec<u8>, Vec<u8>) {
    fn read(der: &[u8], at: usize) -> (usize, usize) {
        let first = der[at + 1] as usize;
        if first < 0x80 {
            (at + 2, first)
        } else {
            let n = first & 0x7f;
            let len = der[at + 2..at + 2 + n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | *b as usize);
            (at + 2 + n, len)
        }
    }
    let (body, _) = read(der, 0);
    let (n_at, n_len) = read(der, body);
    let (e_at, e_len) = read(der, n_at + n_len);
    (
        der[n_at..n_at + n_len].to_vec(),
        der[e_at..e_at + e_len].to_vec(),
    )
}

/// The time of `iters` calls of `timed`, each followed by an untimed call of `beside`.
fn in_step(iters: u64, timed: impl Fn() -> bool, beside: impl Fn() -> bool) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        black_box(timed());
        total += start.elapsed();
        black_box(beside());
    }
    total
}

fn bench(c: &mut Criterion) {
    let policy = Policy::new(PolicyOptions {
        issuers: vec!["https://auth.example.com".into()],
        audiences: vec!["https://mcp.example.com/mcp".into()],
        ..Default::default()
    })
    .expect("policy");
    for case in [rs256(), es256()] {
        let (alg, floor_alg): (_, &'static dyn signature::VerificationAlgorithm) = match case.alg {
            "RS256" => ("RS256", &signature::RSA_PKCS1_2048_8192_SHA256),
            _ => ("ES256", &signature::ECDSA_P256_SHA256_FIXED),
        };
        let parsed = ParsedPublicKey::new(floor_alg, &case.public_key).expect("key");
        parsed
            .verify_sig(case.signing_input.as_bytes(), &case.signature)
            .expect("valid signature");
        let keys = KeySet::from_json(case.jwks.as_bytes()).expect("jwks");
        policy
            .validate(&case.token, &keys, NOW)
            .expect("valid token");
        let floor = || {
            parsed
                .verify_sig(
                    black_box(case.signing_input.as_bytes()),
                    black_box(&case.signature),
                )
                .is_ok()
        };
        let core = || policy.validate(black_box(&case.token), &keys, NOW).is_ok();
        c.bench_function(&format!("{alg}/aws-lc-rs bare verify (floor)"), |b| {
            b.iter_custom(|iters| in_step(iters, floor, core))
        });
        c.bench_function(&format!("{alg}/mcp-oauth2 validate (core)"), |b| {
            b.iter_custom(|iters| in_step(iters, core, floor))
        });
        #[cfg(feature = "compare-ring")]
        {
            let ring_alg: &'static dyn ring::signature::VerificationAlgorithm = match alg {
                "RS256" => &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                _ => &ring::signature::ECDSA_P256_SHA256_FIXED,
            };
            let key = ring::signature::UnparsedPublicKey::new(ring_alg, &case.public_key);
            key.verify(case.signing_input.as_bytes(), &case.signature)
                .expect("ring verifies");
            c.bench_function(&format!("{alg}/ring bare verify"), |b| {
                b.iter(|| {
                    key.verify(
                        black_box(case.signing_input.as_bytes()),
                        black_box(&case.signature),
                    )
                    .is_ok()
                })
            });
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);
