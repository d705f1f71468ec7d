//! A bounded cache of verified tokens, least recently used out first.
//!
//! MCP clients send the same bearer token on every request of a session, so most validations
//! repeat one that already succeeded. Only successes are stored, so a flood of invalid tokens
//! cannot evict good entries. Every hit re-checks `exp` and `nbf` against the caller's clock,
//! and holds only while the key that verified the signature is still in the key set the caller
//! passes in.
//!
//! Entries are keyed by a keyed hash of the token ([`TokenKey`]: SipHash-1-3 with a 128-bit
//! output, a pseudorandom function, under a random key drawn once per process), never by its
//! text: an entry costs its verified value and 16 bytes, not another copy of the token. Two
//! tokens sharing an entry would give one the other's user, so the hash must not be one anybody
//! can aim at: without the key, which never leaves the process, a token that lands on a given
//! entry is a guess of 128 bits.
//!
//! When full, the least recently used entry gives way (O(1), the `lru` crate), so the tokens of
//! live sessions stay while a stream of new ones passes through. Large caches are split into
//! shards, each with its own lock and its own LRU order, so that threads validating different
//! tokens do not queue on one lock; the shard sizes add up to the configured capacity exactly.

use crate::error::TokenError;
use crate::keyset::KeySet;
use crate::policy::{Policy, Verified};
use foldhash::quality::RandomState;
use lru::LruCache;
use siphasher::sip128::{Hasher128, SipHasher13};
use std::hash::Hasher;
use std::sync::{Mutex, MutexGuard, OnceLock};

/// A shard holds at least this many entries: below it, LRU order per shard would stray too far
/// from one global order, and a small cache gains nothing from more locks.
const MIN_SHARD_CAPACITY: usize = 64;
const MAX_SHARDS: usize = 16;

/// What a hit re-checks of a cached value: its lifetime, and the key that verified it.
pub trait Cached {
    fn exp(&self) -> Option<f64>;
    fn nbf(&self) -> Option<f64>;
    /// The digest of the key that verified the signature (`PublicKey::digest`).
    fn key_digest(&self) -> &[u8; 32];
}

impl Cached for Verified {
    fn exp(&self) -> Option<f64> {
        Verified::exp(self)
    }

    fn nbf(&self) -> Option<f64> {
        Verified::nbf(self)
    }

    fn key_digest(&self) -> &[u8; 32] {
        &self.key_digest
    }
}

/// A token as the cache knows it: SipHash-1-3-128 of its text under this process's key (two
/// words rather than a `u128`, whose 16-byte alignment would grow every entry by 16 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenKey([u64; 2]);

impl TokenKey {
    pub fn of(token: &str) -> Self {
        Self::under(process_key(), token)
    }

    fn under(key: &[u8; 16], token: &str) -> Self {
        let mut hasher = SipHasher13::new_with_key(key);
        hasher.write(token.as_bytes());
        let digest = hasher.finish128();
        Self([digest.h1, digest.h2])
    }

    /// Which of `shards` holds this key, by its top 32 bits.
    fn shard(self, shards: usize) -> usize {
        let high = self.0[1] >> 32;
        ((high * shards as u64) >> 32) as usize
    }
}

/// The key of every [`TokenKey`], drawn from the operating system's generator the first time a
/// token is looked up, and kept for the life of the process (never written anywhere).
fn process_key() -> &'static [u8; 16] {
    static KEY: OnceLock<[u8; 16]> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut key = [0u8; 16];
        // Without random bytes there is no safe key: refuse to run rather than use a known one.
        #[allow(clippy::expect_used)]
        aws_lc_rs::rand::fill(&mut key).expect("the system's random generator failed");
        key
    })
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
}

struct Shard<V> {
    entries: LruCache<TokenKey, V, RandomState>,
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

impl<V: Cached> VerifiedCache<V> {
    pub fn new(capacity: usize) -> Self {
        let count = (capacity / MIN_SHARD_CAPACITY).clamp(1, MAX_SHARDS);
        let (base, extra) = (capacity / count, capacity % count);
        let shards = (0..count)
            .map(|i| Mutex::new(Shard::new(base + usize::from(i < extra))))
            .collect();
        Self { capacity, shards }
    }

    fn shard(&self, key: TokenKey) -> MutexGuard<'_, Shard<V>> {
        // A panic while holding the lock cannot leave a shard half-updated in a way that
        // matters (each operation is one insert, promotion or removal), so a poisoned lock is
        // still usable.
        self.shards[key.shard(self.shards.len())]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `Ok(Some(read(value)))` on a hit that still holds at `now` under the keys `keys_for`
    /// gives for the cached value (its issuer's); `Ok(None)` on a miss, when there are no such
    /// keys, or for an entry whose key has left them; `Err` when the cached token has expired or
    /// is not valid yet (the entry is dropped). A hit makes the entry the most recently used.
    pub fn get<'k, R>(
        &self,
        key: TokenKey,
        keys_for: impl FnOnce(&V) -> Option<&'k KeySet>,
        policy: &Policy,
        now: f64,
        read: impl FnOnce(&V) -> R,
    ) -> Result<Option<R>, TokenError> {
        let mut shard = self.shard(key);
        let lookup = match shard.entries.get(&key) {
            None => Lookup::Miss,
            Some(value) => match keys_for(value) {
                None => Lookup::Miss,
                Some(keys) if !keys.contains_key(value.key_digest()) => Lookup::KeyGone,
                Some(_) => match policy.check_lifetime(value.exp(), value.nbf(), now) {
                    Err(error) => Lookup::Stale(error),
                    Ok(()) => Lookup::Hit(read(value)),
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
                dropped = shard.entries.pop(&key);
                shard.misses += 1;
                Ok(None)
            }
            Lookup::Stale(error) => {
                dropped = shard.entries.pop(&key);
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

    pub fn insert(&self, key: TokenKey, value: V) {
        if self.capacity == 0 {
            return;
        }
        let mut shard = self.shard(key);
        let replaced = shard.entries.put(key, value);
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

    /// A cached value: a number, with the lifetime and key a hit re-checks.
    #[derive(Debug, Clone, Copy, PartialEq)]
    struct Entry {
        value: u32,
        exp: Option<f64>,
        nbf: Option<f64>,
        key_digest: [u8; 32],
    }

    impl Cached for Entry {
        fn exp(&self) -> Option<f64> {
            self.exp
        }

        fn nbf(&self) -> Option<f64> {
            self.nbf
        }

        fn key_digest(&self) -> &[u8; 32] {
            &self.key_digest
        }
    }

    fn entry(keys: &KeySet, value: u32, exp: f64) -> Entry {
        Entry {
            value,
            exp: Some(exp),
            nbf: None,
            key_digest: keys.fingerprint_of_first(),
        }
    }

    fn key(token: &str) -> TokenKey {
        TokenKey::of(token)
    }

    #[test]
    fn hit_miss_expiry_and_bounds() {
        let (ks, p) = (keys(), policy());
        let cache = VerifiedCache::<Entry>::new(2);
        assert_eq!(
            cache.get(key("t1"), |_| Some(&ks), &p, 100.0, |v| v.value),
            Ok(None)
        );
        cache.insert(key("t1"), entry(&ks, 1, 200.0));
        assert_eq!(
            cache.get(key("t1"), |_| Some(&ks), &p, 100.0, |v| v.value),
            Ok(Some(1))
        );
        assert_eq!(
            cache.get(key("t1x"), |_| Some(&ks), &p, 100.0, |v| v.value),
            Ok(None)
        );
        assert_eq!(
            cache
                .get(key("t1"), |_| Some(&ks), &p, 250.0, |v| v.value)
                .expect_err("expired")
                .code(),
            "expired"
        );
        assert_eq!(
            cache.get(key("t1"), |_| Some(&ks), &p, 100.0, |v| v.value),
            Ok(None)
        ); // dropped
        for (i, t) in ["a", "b", "c", "d"].iter().enumerate() {
            cache.insert(key(t), entry(&ks, i as u32, 200.0));
        }
        let stats = cache.stats();
        assert_eq!((stats.size, stats.capacity, stats.evictions), (2, 2, 2));
    }

    #[test]
    fn least_recently_used_goes_first() {
        let (ks, p) = (keys(), policy());
        let cache = VerifiedCache::<Entry>::new(3);
        for (i, t) in ["a", "b", "c"].iter().enumerate() {
            cache.insert(key(t), entry(&ks, i as u32, 200.0));
        }
        // "a" is used again, so "b" is now the least recently used.
        assert_eq!(
            cache.get(key("a"), |_| Some(&ks), &p, 100.0, |v| v.value),
            Ok(Some(0))
        );
        cache.insert(key("d"), entry(&ks, 3, 200.0));
        assert_eq!(
            cache.get(key("b"), |_| Some(&ks), &p, 100.0, |v| v.value),
            Ok(None)
        );
        for (t, v) in [("a", 0), ("c", 2), ("d", 3)] {
            assert_eq!(
                cache.get(key(t), |_| Some(&ks), &p, 100.0, |v| v.value),
                Ok(Some(v)),
                "{t}"
            );
        }
        // Replacing an entry is not an eviction and does not grow the cache.
        cache.insert(key("d"), entry(&ks, 4, 200.0));
        assert_eq!(
            cache.get(key("d"), |_| Some(&ks), &p, 100.0, |v| v.value),
            Ok(Some(4))
        );
        let stats = cache.stats();
        assert_eq!((stats.size, stats.evictions), (3, 1));
    }

    #[test]
    fn hot_entries_survive_many_more_tokens_than_the_capacity() {
        let (ks, p) = (keys(), policy());
        let capacity = 1024;
        let cache = VerifiedCache::<Entry>::new(capacity);
        assert_eq!(cache.shards.len(), 16);
        let hot: Vec<String> = (0..256).map(|i| format!("hot-token-{i}")).collect();
        for (i, t) in hot.iter().enumerate() {
            cache.insert(key(t), entry(&ks, i as u32, 200.0));
        }
        for i in 0..20 * capacity {
            cache.insert(key(&format!("cold-token-{i}")), entry(&ks, 0, 200.0));
            if i % 16 == 15 {
                for (n, t) in hot.iter().enumerate() {
                    assert_eq!(
                        cache.get(key(t), |_| Some(&ks), &p, 100.0, |v| v.value),
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
            let cache: VerifiedCache<Entry> = VerifiedCache::<Entry>::new(capacity);
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
        let cache = VerifiedCache::<Entry>::new(1000);
        for i in 0..50_000 {
            cache.insert(key(&format!("t{i}")), entry(&ks, 0, 200.0));
        }
        assert_eq!(cache.stats().size, 1000);
        assert_eq!(cache.stats().evictions, 49_000);
        assert_eq!(
            cache.get(key("t49999"), |_| Some(&ks), &p, 100.0, |v| v.value),
            Ok(Some(0))
        );
    }

    #[test]
    fn counters_are_exact_across_threads() {
        let (ks, p) = (keys(), policy());
        let cache = VerifiedCache::<Entry>::new(256);
        let tokens: Vec<String> = (0..400).map(|i| format!("token-{i}")).collect();
        std::thread::scope(|scope| {
            for worker in 0..4 {
                let (cache, tokens, ks, p) = (&cache, &tokens, &ks, &p);
                scope.spawn(move || {
                    for i in 0..5000 {
                        let t = &tokens[(worker * 97 + i * 13) % tokens.len()];
                        if cache.get(key(t), |_| Some(ks), p, 100.0, |v| v.value) == Ok(None) {
                            cache.insert(key(t), entry(ks, 1, 200.0));
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
        let cache = VerifiedCache::<Entry>::new(8);
        let mut e = entry(&ks, 1, 200.0);
        e.key_digest = [7; 32];
        cache.insert(key("t"), e);
        assert_eq!(
            cache.get(key("t"), |_| Some(&ks), &p, 100.0, |v| v.value),
            Ok(None)
        );
        assert_eq!(cache.stats().size, 0);
    }

    /// Keys are chosen by the cached value (its issuer): without keys for it, the lookup is a
    /// miss and the entry stays for a later call that has them.
    #[test]
    fn entries_are_checked_against_the_keys_of_their_value() {
        let (ks, p) = (keys(), policy());
        let cache = VerifiedCache::<Entry>::new(8);
        cache.insert(key("t"), entry(&ks, 1, 200.0));
        let for_one = |v: &Entry| (v.value == 1).then_some(&ks);
        assert_eq!(
            cache.get(key("t"), |_| None, &p, 100.0, |v| v.value),
            Ok(None)
        );
        assert_eq!(cache.stats().size, 1);
        assert_eq!(
            cache.get(key("t"), for_one, &p, 100.0, |v| v.value),
            Ok(Some(1))
        );
    }

    #[test]
    fn zero_capacity_disables() {
        let (ks, p) = (keys(), policy());
        let cache = VerifiedCache::<Entry>::new(0);
        cache.insert(key("t"), entry(&ks, 1, 200.0));
        assert_eq!(
            cache.get(key("t"), |_| Some(&ks), &p, 100.0, |v| v.value),
            Ok(None)
        );
    }

    #[test]
    fn clear_forgets_everything() {
        let (ks, p) = (keys(), policy());
        let cache = VerifiedCache::<Entry>::new(512);
        for i in 0..100 {
            cache.insert(key(&format!("t{i}")), entry(&ks, 0, 200.0));
        }
        cache.clear();
        assert_eq!(cache.stats().size, 0);
        assert_eq!(
            cache.get(key("t1"), |_| Some(&ks), &p, 100.0, |v| v.value),
            Ok(None)
        );
    }
    /// Tokens that a hash without a key could be made to confuse never share an entry: every
    /// one-byte change (in the signature, which an unkeyed router reads, too), every swap of two
    /// neighbours (the same bytes, so the same sum or XOR), a shorter and a longer token.
    #[test]
    fn no_other_token_is_served_an_entry() {
        let (ks, p) = (keys(), policy());
        let cache = VerifiedCache::<Entry>::new(64);
        let token = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg";
        cache.insert(key(token), entry(&ks, 1, 200.0));
        let bytes = token.as_bytes();
        let mut forged: Vec<Vec<u8>> = Vec::new();
        for i in 0..bytes.len() {
            let mut changed = bytes.to_vec();
            changed[i] = if changed[i] == b'A' { b'B' } else { b'A' };
            forged.push(changed);
            if i > 0 && bytes[i - 1] != bytes[i] {
                let mut swapped = bytes.to_vec();
                swapped.swap(i - 1, i);
                forged.push(swapped);
            }
        }
        forged.push(bytes[..bytes.len() - 1].to_vec());
        forged.push([bytes, b"A"].concat());
        for other in &forged {
            let other = std::str::from_utf8(other).expect("ASCII");
            assert_ne!(other, token);
            assert_eq!(
                cache.get(key(other), |_| Some(&ks), &p, 100.0, |v| v.value),
                Ok(None),
                "{other}"
            );
        }
        assert_eq!(
            cache.get(key(token), |_| Some(&ks), &p, 100.0, |v| v.value),
            Ok(Some(1))
        );
    }

    /// Distinct tokens, also with long common prefixes or suffixes, have distinct keys.
    #[test]
    fn distinct_tokens_have_distinct_keys() {
        let common = "x".repeat(700);
        let mut seen = std::collections::HashSet::new();
        for i in 0..50_000 {
            assert!(seen.insert(key(&format!("{common}{i}"))));
            assert!(seen.insert(key(&format!("{i}{common}"))));
        }
        // A different key gives different digests of the same text.
        let token = "a.b.c";
        assert_ne!(
            TokenKey::under(&[1; 16], token),
            TokenKey::under(&[2; 16], token)
        );
        assert_eq!(
            TokenKey::under(&[1; 16], token),
            TokenKey::under(&[1; 16], token)
        );
    }

    /// The key is drawn once per process, from the system's generator: the same in one process,
    /// different in the next (this test runs itself twice more to see it).
    #[test]
    fn each_process_draws_its_own_key() {
        const TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.e30.c2ln";
        const SHOW: &str = "MCP_OAUTH2_TEST_SHOW_TOKEN_KEY";
        let mine = format!("{:?}", TokenKey::of(TOKEN).0);
        if std::env::var_os(SHOW).is_some() {
            println!("token key: {mine}");
            return;
        }
        assert_eq!(TokenKey::of(TOKEN), TokenKey::of(TOKEN));
        assert_ne!(*process_key(), [0; 16]);
        let exe = std::env::current_exe().expect("the test binary");
        let run = || {
            let output = std::process::Command::new(&exe)
                .args([
                    "--exact",
                    "verified_cache::tests::each_process_draws_its_own_key",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(SHOW, "1")
                .output()
                .expect("the test binary runs");
            let text = String::from_utf8_lossy(&output.stdout).into_owned();
            // libtest may print the test's name on the same line, before it.
            text.lines()
                .find_map(|line| {
                    line.split_once("token key: ")
                        .map(|(_, key)| key.to_owned())
                })
                .unwrap_or_else(|| panic!("no key shown: {text}"))
        };
        let (first, second) = (run(), run());
        assert_ne!(first, second);
        assert_ne!(first, mine);
        assert_ne!(second, mine);
    }
}
