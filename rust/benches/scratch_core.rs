#![allow(clippy::unwrap_used, dead_code)]
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, KeyPair, ParsedPublicKey, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use mcp_oauth2::base64url;
use mcp_oauth2::{Algorithm, KeySet, Policy, PolicyOptions};
use std::hint::black_box;
use std::time::Instant;
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

fn main() {
    let policy = Policy::new(PolicyOptions {
        issuers: vec!["https://auth.example.com".into()],
        audiences: vec!["https://mcp.example.com/mcp".into()],
        ..Default::default()
    })
    .unwrap();
    for case in [rs256(), es256()] {
        let (alg, floor_alg, a): (_, &'static dyn signature::VerificationAlgorithm, Algorithm) =
            match case.alg {
                "RS256" => (
                    "RS256",
                    &signature::RSA_PKCS1_2048_8192_SHA256,
                    Algorithm::RS256,
                ),
                _ => (
                    "ES256",
                    &signature::ECDSA_P256_SHA256_FIXED,
                    Algorithm::ES256,
                ),
            };
        let parsed = ParsedPublicKey::new(floor_alg, &case.public_key).unwrap();
        let keys = KeySet::from_json(case.jwks.as_bytes()).unwrap();
        let kid = if alg == "RS256" { "rsa-1" } else { "ec-1" };
        let payload = base64url::decode(mcp_oauth2::token::CompactJws::split(&case.token, 8192).unwrap().payload).unwrap();
        let cases: Vec<(&str, Box<dyn Fn() -> bool>)> = vec![
            (
                "floor",
                Box::new(|| {
                    parsed
                        .verify_sig(
                            black_box(case.signing_input.as_bytes()),
                            black_box(&case.signature),
                        )
                        .is_ok()
                }),
            ),
            (
                "keyset verify",
                Box::new(|| {
                    keys.verify(
                        Some(kid),
                        a,
                        black_box(case.signing_input.as_bytes()),
                        black_box(&case.signature),
                    )
                    .is_ok()
                }),
            ),
            (
                "core",
                Box::new(|| policy.validate(black_box(&case.token), &keys, NOW).is_ok()),
            ),
            ("floor+claims", Box::new(|| { let a = parsed.verify_sig(black_box(case.signing_input.as_bytes()), black_box(&case.signature)).is_ok(); a && policy.check_claims(black_box(payload.clone()), NOW).is_ok() })),
            ("floor+split+sig", Box::new(|| { let a = parsed.verify_sig(black_box(case.signing_input.as_bytes()), black_box(&case.signature)).is_ok(); let j = mcp_oauth2::token::CompactJws::split(black_box(&case.token), 8192).unwrap(); a && base64url::decode(j.signature).is_some() && base64url::decode(j.payload).is_some() })),
        ];
        if std::env::var("ONLY").is_ok() {
            if alg != "RS256" {
                return;
            }
            for _ in 0..300_000 {
                black_box(cases[2].1());
            }
            return;
        }
        let n = if alg == "RS256" { 200 } else { 60 };
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
        for _ in 0..100 {
            for (i, (_, f)) in cases.iter().enumerate() {
                let t = Instant::now();
                for _ in 0..n {
                    black_box(f());
                }
                samples[i].push(t.elapsed().as_nanos() as f64 / n as f64);
            }
        }
        for (i, (name, _)) in cases.iter().enumerate() {
            let mut v = samples[i].clone();
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let mut r: Vec<f64> = samples[i]
                .iter()
                .zip(&samples[0])
                .map(|(x, f)| x / f)
                .collect();
            r.sort_by(|a, b| a.partial_cmp(b).unwrap());
            println!(
                "{alg} {name:15} {:9.1} ns  ratio {:.4}",
                v[v.len() / 2],
                r[r.len() / 2]
            );
        }
    }
}
