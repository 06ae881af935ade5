//! Which live node owns which shard. Every node computes the same assignment from the same
//! set of live members (gossip decides who is live; a disagreement only costs a moment of
//! "not mine, ask again", never a write: writes are ordered by the log, not by owners).
//!
//! The assignment is rendezvous hashing with bounded loads: shards are taken in order, and
//! each goes to the member that ranks highest for it among those that may take one more:
//! below `floor(shards / members)`, or at it while fewer than `shards % members` members
//! have one more than that. Every member gets `floor` or `ceil` of `shards / members`, and a
//! membership change moves few shards.

/// `owner[s]` is the index in `members` (sorted, distinct) of shard `s`'s owner.
pub fn assign(members: &[String], shards: u32) -> Vec<usize> {
    if members.is_empty() {
        return Vec::new();
    }
    let n = members.len();
    let floor = shards as usize / n;
    let extra = shards as usize % n;
    let mut load = vec![0usize; n];
    let mut above_floor = 0;
    (0..shards)
        .map(|shard| {
            let owner = (0..n)
                .filter(|&m| load[m] < floor || (load[m] == floor && above_floor < extra))
                .max_by_key(|&m| (rank(&members[m], shard), std::cmp::Reverse(m)))
                .expect("the loads add up to the shards, so some member may take one more");
            if load[owner] == floor {
                above_floor += 1;
            }
            load[owner] += 1;
            owner
        })
        .collect()
}

/// How much `node` wants `shard`: a fixed hash of both (FNV-1a, then splitmix64).
fn rank(node: &str, shard: u32) -> u64 {
    let mut h = 0xCBF2_9CE4_8422_2325u64;
    for &b in node.as_bytes().iter().chain(&shard.to_le_bytes()) {
        h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    #[test]
    fn loads_are_balanced_and_changes_move_few_shards() {
        for n in 1..=5 {
            let owners = assign(&names(n), 16);
            for m in 0..n {
                let load = owners.iter().filter(|&&o| o == m).count();
                assert!(
                    load == 16 / n || load == 16usize.div_ceil(n),
                    "{n} members: {owners:?}"
                );
            }
        }
        // One of three leaves: the two others keep what they had.
        let three = assign(&names(3), 16);
        let two = assign(&names(2), 16);
        let kept = (0..16)
            .filter(|&s| three[s] < 2 && two[s] == three[s])
            .count();
        let had = three.iter().filter(|&&o| o < 2).count();
        assert!(kept + 2 >= had, "kept {kept} of {had}: {three:?} → {two:?}");
        // Deterministic.
        assert_eq!(assign(&names(3), 16), three);
    }

    /// Both hashes are part of the format: a key's shard names the checkpoint that holds it,
    /// and every node must compute the same owners. They must never change.
    #[test]
    fn the_hashes_are_pinned() {
        use crate::types::Key;
        let keys = [
            Key::Int(0),
            Key::Int(1),
            Key::Int(-7),
            Key::Text("user-42".into()),
            Key::Null,
        ];
        let shards: Vec<u32> = keys.iter().map(|k| k.shard(16)).collect();
        assert_eq!(shards, [11, 9, 14, 5, 0]);
        assert_eq!(
            assign(&names(3), 16),
            [1, 0, 1, 1, 0, 2, 1, 0, 0, 2, 1, 2, 0, 0, 2, 2]
        );
    }
}
