//! Which shard of `--shard I/N` a row falls in: a stable hash of its name.

/// The shard of a row: a stable hash of its name, or its row number when it has none,
/// modulo the shard count. Stable across runs, machines and versions.
///
/// The hash is 64-bit FNV-1a followed by MurmurHash3's 64-bit finaliser. FNV-1a alone
/// leaves its low bits depending only on the low bits of each byte, so names over a small
/// alphabet could all fall into one shard of a power-of-two count; the finaliser mixes
/// every bit of the hash into every bit of the result.
pub fn shard_of(name: Option<&str>, row: u64, count: u64) -> u64 {
    let hash = match name {
        Some(name) => {
            let fnv = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
                (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
            });
            fmix64(fnv)
        }
        None => row,
    };
    hash % count
}

/// MurmurHash3's 64-bit finaliser: every input bit affects every output bit.
fn fmix64(mut hash: u64) -> u64 {
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_stable_and_cover_every_row_once() {
        // The hash of "Acme": fixed, so shards do not move between versions.
        let acme = fmix64(0x84d1_d48b_0b85_7def);
        assert_eq!(shard_of(Some("Acme"), 1, u64::MAX), acme % u64::MAX);
        assert_eq!(shard_of(Some("Acme"), 1, 4), acme % 4);
        assert_eq!(
            shard_of(None, 7, 4),
            3,
            "a row without a name goes by its number"
        );
        let names: Vec<String> = (0..1000).map(|i| format!("tenant-{i}")).collect();
        let mut seen = vec![0; names.len()];
        for index in 0..7 {
            for (i, name) in names.iter().enumerate() {
                if shard_of(Some(name), i as u64, 7) == index {
                    seen[i] += 1;
                }
            }
        }
        assert!(seen.iter().all(|n| *n == 1));
    }

    #[test]
    fn shards_balance_names_over_a_small_alphabet() {
        // a, e, i, m, q, u share their two low bits: FNV-1a alone put all in one shard of 4.
        let alphabet = ['a', 'e', 'i', 'm', 'q', 'u'];
        let mut per_shard = [0; 4];
        for i in 0..2000usize {
            let name: String = (0..5).map(|d| alphabet[i / 6usize.pow(d) % 6]).collect();
            per_shard[shard_of(Some(&name), 0, 4) as usize] += 1;
        }
        assert!(per_shard.iter().all(|n| *n > 400), "{per_shard:?}");
    }
}
