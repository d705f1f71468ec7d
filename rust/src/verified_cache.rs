//! A bounded cache of verified tokens, least recently used out first.
//!
//! MCP clients send the same bearer token on every request of a session, so most validations
//! repeat one that already succeeded. Only successes are stored, so a flood of invalid tokens
//! cannot evict good entries. Entries are keyed by the whole token: a fast hash (seeded at random
//! per process, so nobody can aim collisions at it) picks the bucket, and an exact comparison of
//! the token text decides, so no other token can ever match an entry. Every hit re-checks `exp`
//! and `nbf` against the caller's clock, and holds only while the key that verified the
//! signature is still in the key set the caller passes in.
//!
//! When full, the least recently used entry gives way (O(1), the `lru` crate), so the tokens of
//! live sessions stay while a stream of new ones passes through. Large caches are split into
//! shards, each with its own lock and its own LRU order, so that threads validating different
//! tokens do not queue on one lock; the shard sizes add up to the configured capacity exactly.

use crate::error::TokenError;
use crate::keyset::KeySet;
use crate::policy::Policy;
use foldhash::quality::RandomState;
use lru::LruCache;
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard};

/// A shard holds at least this many entries: below it, LRU order per shard would stray too far
/// from one global order, and a small cache gains nothing from more locks.
const MIN_SHARD_CAPACITY: usize = 64;
const MAX_SHARDS: usize = 16;
/// Shards are chosen by a hash of the token's last bytes (its signature, which differs between
/// any two tokens in practice); the exact lookup inside the shard compares the whole token.
const ROUTING_BYTES: usize = 32;

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
    shards: Box<[Mutex<Shard<V>>]>,
    router: RandomState,
}

struct Shard<V> {
    entries: LruCache<Box<str>, Entry<V>, RandomState>,
    capacity: usize,
    hits: u64,
    misses: u64,
    evictions: u64,
}

impl<V> Shard<V> {
    fn new(capacity: usize) -> Self {
        Self {
            // Unbounded in the crate's sense: this shard enforces `capacity` itself, so that
            // nothing is allocated up front for entries that may never come.
            entries: LruCache::unbounded_with_hasher(RandomState::default()),
            capacity,
            hits: 0,
            misses: 0,
            evictions: 0,
        }
    }
}

enum Lookup<R> {
    Miss,
    KeyGone,
    Stale(TokenError),
    Hit(R),
}

impl<V> VerifiedCache<V> {
    pub fn new(capacity: usize) -> Self {
        let count = (capacity / MIN_SHARD_CAPACITY).clamp(1, MAX_SHARDS);
        let (base, extra) = (capacity / count, capacity % count);
        let shards = (0..count)
            .map(|i| Mutex::new(Shard::new(base + usize::from(i < extra))))
            .collect();
        Self {
            capacity,
            shards,
            router: RandomState::default(),
        }
    }

    fn shard(&self, token: &str) -> MutexGuard<'_, Shard<V>> {
        let index = if self.shards.len() == 1 {
            0
        } else {
            let bytes = token.as_bytes();
            let tail = &bytes[bytes.len().saturating_sub(ROUTING_BYTES)..];
            // The high bits, scaled to the shard count (the hash map inside uses the low ones).
            let high = self.router.hash_one(tail) >> 32;
            ((high * self.shards.len() as u64) >> 32) as usize
        };
        // A panic while holding the lock cannot leave a shard half-updated in a way that
        // matters (each operation is one insert, promotion or removal), so a poisoned lock is
        // still usable.
        self.shards[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `Ok(Some(read(value)))` on a hit that still holds at `now` under the keys `keys_for`
    /// gives for the cached value (its issuer's); `Ok(None)` on a miss, when there are no such
    /// keys, or for an entry whose key has left them; `Err` when the cached token has expired or
    /// is not valid yet (the entry is dropped). A hit makes the entry the most recently used.
    pub fn get<'k, R>(
        &self,
        token: &str,
        keys_for: impl FnOnce(&V) -> Option<&'k KeySet>,
        policy: &Policy,
        now: f64,
        read: impl FnOnce(&V) -> R,
    ) -> Result<Option<R>, TokenError> {
        let mut shard = self.shard(token);
        let lookup = match shard.entries.get(token) {
            None => Lookup::Miss,
            Some(entry) => match keys_for(&entry.value) {
                None => Lookup::Miss,
                Some(keys) if !keys.contains_key(&entry.key_digest) => Lookup::KeyGone,
                Some(_) => match policy.check_lifetime(entry.exp, entry.nbf, now) {
                    Err(error) => Lookup::Stale(error),
                    Ok(()) => Lookup::Hit(read(&entry.value)),
                },
            },
        };
        let dropped;
        let result = match lookup {
            Lookup::Hit(value) => {
                shard.hits += 1;
                return Ok(Some(value));
            }
            Lookup::Miss => {
                shard.misses += 1;
                return Ok(None);
            }
            Lookup::KeyGone => {
                dropped = shard.entries.pop(token);
                shard.misses += 1;
                Ok(None)
            }
            Lookup::Stale(error) => {
                dropped = shard.entries.pop(token);
                Err(error)
            }
        };
        // The value goes after the lock is released: dropping it may run other code.
        drop(shard);
        drop(dropped);
        result
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn insert(&self, token: &str, entry: Entry<V>) {
        if self.capacity == 0 {
            return;
        }
        let mut shard = self.shard(token);
        let replaced = shard.entries.put(token.into(), entry);
        let evicted = if replaced.is_none() && shard.entries.len() > shard.capacity {
            shard.evictions += 1;
            shard.entries.pop_lru()
        } else {
            None
        };
        drop(shard);
        drop((replaced, evicted));
    }

    pub fn clear(&self) {
        for shard in self.shards.iter() {
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            let old = std::mem::replace(
                &mut shard.entries,
                LruCache::unbounded_with_hasher(RandomState::default()),
            );
            drop(shard);
            drop(old);
        }
    }

    pub fn stats(&self) -> CacheStats {
        let mut stats = CacheStats {
            capacity: self.capacity,
            ..CacheStats::default()
        };
        for shard in self.shards.iter() {
            let shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            stats.size += shard.entries.len();
            stats.hits += shard.hits;
            stats.misses += shard.misses;
            stats.evictions += shard.evictions;
        }
        stats
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
        assert_eq!(cache.get("t1", |_| Some(&ks), &p, 100.0, |v| *v), Ok(None));
        cache.insert("t1", entry(&ks, 1, 200.0));
        assert_eq!(
            cache.get("t1", |_| Some(&ks), &p, 100.0, |v| *v),
            Ok(Some(1))
        );
        assert_eq!(cache.get("t1x", |_| Some(&ks), &p, 100.0, |v| *v), Ok(None));
        assert_eq!(
            cache
                .get("t1", |_| Some(&ks), &p, 250.0, |v| *v)
                .expect_err("expired")
                .code(),
            "expired"
        );
        assert_eq!(cache.get("t1", |_| Some(&ks), &p, 100.0, |v| *v), Ok(None)); // dropped
        for (i, t) in ["a", "b", "c", "d"].iter().enumerate() {
            cache.insert(t, entry(&ks, i as u32, 200.0));
        }
        let stats = cache.stats();
        assert_eq!((stats.size, stats.capacity, stats.evictions), (2, 2, 2));
    }

    #[test]
    fn least_recently_used_goes_first() {
        let (ks, p) = (keys(), policy());
        let cache = VerifiedCache::new(3);
        for (i, t) in ["a", "b", "c"].iter().enumerate() {
            cache.insert(t, entry(&ks, i as u32, 200.0));
        }
        // "a" is used again, so "b" is now the least recently used.
        assert_eq!(
            cache.get("a", |_| Some(&ks), &p, 100.0, |v| *v),
            Ok(Some(0))
        );
        cache.insert("d", entry(&ks, 3, 200.0));
        assert_eq!(cache.get("b", |_| Some(&ks), &p, 100.0, |v| *v), Ok(None));
        for (t, v) in [("a", 0), ("c", 2), ("d", 3)] {
            assert_eq!(
                cache.get(t, |_| Some(&ks), &p, 100.0, |v| *v),
                Ok(Some(v)),
                "{t}"
            );
        }
        // Replacing an entry is not an eviction and does not grow the cache.
        cache.insert("d", entry(&ks, 4, 200.0));
        assert_eq!(
            cache.get("d", |_| Some(&ks), &p, 100.0, |v| *v),
            Ok(Some(4))
        );
        let stats = cache.stats();
        assert_eq!((stats.size, stats.evictions), (3, 1));
    }

    #[test]
    fn hot_entries_survive_many_more_tokens_than_the_capacity() {
        let (ks, p) = (keys(), policy());
        let capacity = 1024;
        let cache = VerifiedCache::new(capacity);
        assert_eq!(cache.shards.len(), 16);
        let hot: Vec<String> = (0..256).map(|i| format!("hot-token-{i}")).collect();
        for (i, t) in hot.iter().enumerate() {
            cache.insert(t, entry(&ks, i as u32, 200.0));
        }
        for i in 0..20 * capacity {
            cache.insert(&format!("cold-token-{i}"), entry(&ks, 0, 200.0));
            if i % 16 == 15 {
                for (n, t) in hot.iter().enumerate() {
                    assert_eq!(
                        cache.get(t, |_| Some(&ks), &p, 100.0, |v| *v),
                        Ok(Some(n as u32))
                    );
                }
            }
        }
        let stats = cache.stats();
        assert_eq!(stats.size, capacity);
        assert_eq!(stats.evictions as usize, 256 + 20 * capacity - capacity);
        assert_eq!(stats.hits as usize, 256 * 20 * capacity / 16);
    }

    #[test]
    fn shards_add_up_to_the_capacity() {
        for capacity in [0, 1, 63, 64, 127, 128, 1000, 1024, 1025, 1 << 20] {
            let cache: VerifiedCache<u32> = VerifiedCache::new(capacity);
            let total: usize = cache
                .shards
                .iter()
                .map(|s| s.lock().expect("lock").capacity)
                .sum();
            assert_eq!(total, capacity, "{capacity}");
            assert!(cache.shards.len() <= MAX_SHARDS);
            if cache.shards.len() > 1 {
                assert!(cache
                    .shards
                    .iter()
                    .all(|s| s.lock().expect("lock").capacity >= MIN_SHARD_CAPACITY));
            }
        }
        // Full means full: every shard fills to its own share, and no further.
        let (ks, p) = (keys(), policy());
        let cache = VerifiedCache::new(1000);
        for i in 0..50_000 {
            cache.insert(&format!("t{i}"), entry(&ks, 0, 200.0));
        }
        assert_eq!(cache.stats().size, 1000);
        assert_eq!(cache.stats().evictions, 49_000);
        assert_eq!(
            cache.get("t49999", |_| Some(&ks), &p, 100.0, |v| *v),
            Ok(Some(0))
        );
    }

    #[test]
    fn counters_are_exact_across_threads() {
        let (ks, p) = (keys(), policy());
        let cache = VerifiedCache::new(256);
        let tokens: Vec<String> = (0..400).map(|i| format!("token-{i}")).collect();
        std::thread::scope(|scope| {
            for worker in 0..4 {
                let (cache, tokens, ks, p) = (&cache, &tokens, &ks, &p);
                scope.spawn(move || {
                    for i in 0..5000 {
                        let t = &tokens[(worker * 97 + i * 13) % tokens.len()];
                        if cache.get(t, |_| Some(ks), p, 100.0, |v| *v) == Ok(None) {
                            cache.insert(t, entry(ks, 1, 200.0));
                        }
                    }
                });
            }
        });
        let stats = cache.stats();
        assert_eq!(stats.hits + stats.misses, 4 * 5000);
        assert_eq!(stats.size, 256);
        assert!(stats.evictions <= stats.misses - 256);
    }

    #[test]
    fn entries_die_with_their_key() {
        let (ks, p) = (keys(), policy());
        let cache = VerifiedCache::new(8);
        let mut e = entry(&ks, 1, 200.0);
        e.key_digest = [7; 32];
        cache.insert("t", e);
        assert_eq!(cache.get("t", |_| Some(&ks), &p, 100.0, |v| *v), Ok(None));
        assert_eq!(cache.stats().size, 0);
    }

    /// Keys are chosen by the cached value (its issuer): without keys for it, the lookup is a
    /// miss and the entry stays for a later call that has them.
    #[test]
    fn entries_are_checked_against_the_keys_of_their_value() {
        let (ks, p) = (keys(), policy());
        let cache = VerifiedCache::new(8);
        cache.insert("t", entry(&ks, 1, 200.0));
        let for_one = |v: &u32| (*v == 1).then_some(&ks);
        assert_eq!(cache.get("t", |_| None, &p, 100.0, |v| *v), Ok(None));
        assert_eq!(cache.stats().size, 1);
        assert_eq!(cache.get("t", for_one, &p, 100.0, |v| *v), Ok(Some(1)));
    }

    #[test]
    fn zero_capacity_disables() {
        let (ks, p) = (keys(), policy());
        let cache = VerifiedCache::new(0);
        cache.insert("t", entry(&ks, 1, 200.0));
        assert_eq!(cache.get("t", |_| Some(&ks), &p, 100.0, |v| *v), Ok(None));
    }

    #[test]
    fn clear_forgets_everything() {
        let (ks, p) = (keys(), policy());
        let cache = VerifiedCache::new(512);
        for i in 0..100 {
            cache.insert(&format!("t{i}"), entry(&ks, 0, 200.0));
        }
        cache.clear();
        assert_eq!(cache.stats().size, 0);
        assert_eq!(cache.get("t1", |_| Some(&ks), &p, 100.0, |v| *v), Ok(None));
    }
}
