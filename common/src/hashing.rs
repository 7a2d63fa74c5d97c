//! Hashers for the per-request maps. The standard SipHash resists keys chosen to collide; the
//! keys here are not chosen by callers (SHA-256 digests of issued tokens, tenant ids and tool
//! names the studio created), so cheaper hashes serve, and each request does several lookups.

use std::hash::{BuildHasher, Hasher};

/// For SHA-256 digests: already uniform, so their first eight bytes are the hash.
#[derive(Clone, Copy, Debug, Default)]
pub struct DigestHasher;

impl BuildHasher for DigestHasher {
    type Hasher = DigestHash;
    fn build_hasher(&self) -> DigestHash {
        DigestHash(0)
    }
}

#[derive(Debug, Default)]
pub struct DigestHash(u64);

impl Hasher for DigestHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // A digest array hashes as a length prefix (`write_usize`, ignored below), then its bytes.
        if let Some(first) = bytes.first_chunk::<8>() {
            self.0 = u64::from_le_bytes(*first);
        }
    }

    fn write_usize(&mut self, _: usize) {}
}

/// For short ids the studio assigns (tenant ids, tool names): FxHash's multiply-rotate over
/// 8-byte words, finished with MurmurHash3's mixer so that every output bit depends on every
/// input bit (the table picks buckets by the low bits, which plain FxHash leaves to the low
/// bits of the last word: ids that differ early would share buckets).
#[derive(Clone, Copy, Debug, Default)]
pub struct IdHasher;

impl BuildHasher for IdHasher {
    type Hasher = IdHash;
    fn build_hasher(&self) -> IdHash {
        IdHash(0)
    }
}

#[derive(Debug, Default)]
pub struct IdHash(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl IdHash {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for IdHash {
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            // The length in the top byte, so `a` and `a\0` differ.
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            word[7] = rest.len() as u8;
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn maps_keyed_by_either_hasher_find_what_they_hold() {
        let mut digests: HashMap<[u8; 32], u32, DigestHasher> = HashMap::default();
        let mut ids: HashMap<String, u32, IdHasher> = HashMap::default();
        for i in 0..2000u32 {
            let mut key = [0u8; 32];
            key[..4].copy_from_slice(&i.to_le_bytes());
            key[31] = 7;
            digests.insert(key, i);
            ids.insert(format!("tenant-{i}"), i);
        }
        for i in 0..2000u32 {
            let mut key = [0u8; 32];
            key[..4].copy_from_slice(&i.to_le_bytes());
            key[31] = 7;
            assert_eq!(digests.get(&key), Some(&i));
            assert_eq!(ids.get(format!("tenant-{i}").as_str()), Some(&i));
        }
        assert_eq!(ids.get("tenant-2000"), None);
        // Ids that differ only past the first word, or only in length, hash apart.
        let hash = |s: &str| IdHasher.hash_one(s);
        assert_ne!(hash("acme-corporation-a"), hash("acme-corporation-b"));
        assert_ne!(hash("acme"), hash("acme\0"));
        // Ids that differ only in their first word still spread over the low bits (buckets).
        let low: std::collections::HashSet<u64> = (0..1000)
            .map(|i| hash(&format!("t{i:03}-constant-suffix")) & 0xFFF)
            .collect();
        assert!(low.len() > 700, "{} distinct low-bit patterns", low.len());
    }
}
