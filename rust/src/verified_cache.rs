//! A bounded cache of verified tokens.
//!
//! MCP clients send the same bearer token on every request of a session, so most validations
//! repeat one that already succeeded. Only successes are stored, so a flood of invalid tokens
//! cannot evict good entries. Entries are keyed by the whole token: a fast hash (seeded at random
//! per process, so nobody can aim collisions at it) picks the bucket, and an exact comparison of
//! the token text decides, so no other token can ever match an entry. Every hit re-checks `exp`
//! and `nbf` against the caller's clock, and holds only while the key that verified the
//! signature is still in the key set the caller passes in.

use crate::error::TokenError;
use crate::keyset::KeySet;
use crate::policy::Policy;
use foldhash::quality::RandomState;
use std::collections::HashMap;
use std::sync::Mutex;

pub struct Entry<V> {
    pub value: V,
    pub exp: Option<f64>,
    pub nbf: Option<f64>,
    pub key_digest: [u8; 32],
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub size: usize,
    pub capacity: usize,
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
}

pub struct VerifiedCache<V> {
    capacity: usize,
    state: Mutex<State<V>>,
}

struct State<V> {
    entries: HashMap<Box<str>, Entry<V>, RandomState>,
    hits: u64,
    misses: u64,
    evictions: u64,
}

impl<V> VerifiedCache<V> {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            state: Mutex::new(State {
                entries: HashMap::with_capacity_and_hasher(
                    capacity.min(4096),
                    RandomState::default(),
                ),
                hits: 0,
                misses: 0,
                evictions: 0,
            }),
        }
    }

    /// `Ok(Some(read(value)))` on a hit that still holds at `now` under `keys`; `Ok(None)` on a
    /// miss (or an entry whose key has left the set); `Err` when the cached token has expired
    /// or is not valid yet (the entry is dropped).
    pub fn get<R>(
        &self,
        token: &str,
        keys: &KeySet,
        policy: &Policy,
        now: f64,
        read: impl FnOnce(&V) -> R,
    ) -> Result<Option<R>, TokenError> {
        let mut state = self.lock();
        let Some(entry) = state.entries.get(token) else {
            state.misses += 1;
            return Ok(None);
        };
        if !keys.contains_key(&entry.key_digest) {
            state.entries.remove(token);
            state.misses += 1;
            return Ok(None);
        }
        if let Err(error) = policy.check_lifetime(entry.exp, entry.nbf, now) {
            state.entries.remove(token);
            return Err(error);
        }
        let value = read(&entry.value);
        state.hits += 1;
        Ok(Some(value))
    }

    pub fn insert(&self, token: &str, entry: Entry<V>) {
        if self.capacity == 0 {
            return;
        }
        let mut state = self.lock();
        if state.entries.len() >= self.capacity && !state.entries.contains_key(token) {
            // Evict one entry. Iteration order follows the random per-process hash seed, so
            // which entry goes cannot be steered from outside.
            if let Some(victim) = state.entries.keys().next().cloned() {
                state.entries.remove(&victim);
                state.evictions += 1;
            }
        }
        state.entries.insert(token.into(), entry);
    }

    pub fn clear(&self) {
        self.lock().entries.clear();
    }

    pub fn stats(&self) -> CacheStats {
        let state = self.lock();
        CacheStats {
            size: state.entries.len(),
            capacity: self.capacity,
            hits: state.hits,
            misses: state.misses,
            evictions: state.evictions,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<V>> {
        // A panic while holding the lock cannot leave the map half-updated in a way that
        // matters (each operation is one insert or remove), so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicyOptions;

    const P256: &str = r#"{"kty":"EC","crv":"P-256","kid":"a","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;

    fn keys() -> KeySet {
        KeySet::from_json(format!("{{\"keys\":[{P256}]}}").as_bytes()).expect("keys")
    }

    fn policy() -> Policy {
        Policy::new(PolicyOptions {
            issuers: vec!["https://as".into()],
            audiences: vec!["https://rs".into()],
            leeway: 0,
            ..Default::default()
        })
        .expect("policy")
    }

    fn entry(keys: &KeySet, value: u32, exp: f64) -> Entry<u32> {
        let digest = keys.fingerprint_of_first();
        Entry {
            value,
            exp: Some(exp),
            nbf: None,
            key_digest: digest,
        }
    }

    #[test]
    fn hit_miss_expiry_and_bounds() {
        let (ks, p) = (keys(), policy());
        let cache = VerifiedCache::new(2);
        assert_eq!(cache.get("t1", &ks, &p, 100.0, |v| *v), Ok(None));
        cache.insert("t1", entry(&ks, 1, 200.0));
        assert_eq!(cache.get("t1", &ks, &p, 100.0, |v| *v), Ok(Some(1)));
        assert_eq!(cache.get("t1x", &ks, &p, 100.0, |v| *v), Ok(None));
        assert_eq!(
            cache
                .get("t1", &ks, &p, 250.0, |v| *v)
                .expect_err("expired")
                .code(),
            "expired"
        );
        assert_eq!(cache.get("t1", &ks, &p, 100.0, |v| *v), Ok(None)); // dropped
        for (i, t) in ["a", "b", "c", "d"].iter().enumerate() {
            cache.insert(t, entry(&ks, i as u32, 200.0));
        }
        let stats = cache.stats();
        assert_eq!((stats.size, stats.capacity, stats.evictions), (2, 2, 2));
    }

    #[test]
    fn entries_die_with_their_key() {
        let (ks, p) = (keys(), policy());
        let cache = VerifiedCache::new(8);
        let mut e = entry(&ks, 1, 200.0);
        e.key_digest = [7; 32];
        cache.insert("t", e);
        assert_eq!(cache.get("t", &ks, &p, 100.0, |v| *v), Ok(None));
        assert_eq!(cache.stats().size, 0);
    }

    #[test]
    fn zero_capacity_disables() {
        let (ks, p) = (keys(), policy());
        let cache = VerifiedCache::new(0);
        cache.insert("t", entry(&ks, 1, 200.0));
        assert_eq!(cache.get("t", &ks, &p, 100.0, |v| *v), Ok(None));
    }
}
