//! The bare-metal backend: a fixed-capacity open-addressing hash table, allocated once.

use super::{Full, StateBackend};
use rustc_hash::FxBuildHasher;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::mem::{self, MaybeUninit};

/// Control byte of an empty slot. An occupied slot's control byte is its 7-bit tag
/// (`0..=0x7F`), so the high bit alone tells empty from occupied.
const EMPTY: u8 = 0x80;

/// Odd multiplier (2^64 / φ) applied to the Fx hash before it picks a slot.
///
/// `FxHasher` is one multiply-add per word (`h = (h + word) * K`) whose `finish` rotates `h`
/// left by 26 bits. A product's bit `i` depends only on the key's bits `0..=i`, so the high
/// bits of the Fx hash (the product's bits 12..38) ignore every key bit above 38, and for a
/// key that is a multiple of 2^p the product's low `p` bits are zero, which after the
/// rotation zeroes the low bits of the hash once `p > 38`. An index taken from either end of
/// the raw Fx hash sends such keys (multiples of large powers of two, keys packing a second
/// field into their high bits) to a few home slots: measured, 50k keys `i << 32` probed
/// ~800 slots deep. One more multiplication (Fibonacci hashing) makes every upper bit of the
/// result depend on every bit of the Fx hash, and the index comes from bits 32 and up. It
/// costs about 8% on the `i64` micro-benchmark.
const MIX: u64 = 0x9E37_79B9_7F4A_7C15;

/// The smallest table: one group of slots.
const MIN_SLOTS: usize = Group::WIDTH;

/// The 64-bit hash the table works with: Fx, then mixed (see [`MIX`]).
#[inline(always)]
fn hash_of<K: Hash + ?Sized>(key: &K) -> u64 {
    FxBuildHasher.hash_one(key).wrapping_mul(MIX)
}

/// The slots of a group whose control byte matched: bit `offset << STRIDE_LOG2` for the
/// slot at `offset` in the group (one bit per slot for SSE2, the top bit of each byte for
/// SWAR).
#[derive(Clone, Copy)]
struct BitMask<const STRIDE_LOG2: u32>(u64);

impl<const STRIDE_LOG2: u32> BitMask<STRIDE_LOG2> {
    #[inline(always)]
    fn any(self) -> bool {
        self.0 != 0
    }

    /// Offset in the group of the lowest match. Only if `any()`.
    #[inline(always)]
    fn lowest(self) -> usize {
        (self.0.trailing_zeros() >> STRIDE_LOG2) as usize
    }

    #[inline(always)]
    fn without_lowest(self) -> Self {
        BitMask(self.0 & self.0.wrapping_sub(1))
    }
}

use group::Group;

/// A group of control bytes, scanned at once: 16 with SSE2 (every `x86_64`), else 8 as a
/// `u64` (SWAR). Both find tag matches and empty slots with a few instructions and no
/// per-slot branch.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod group {
    use super::BitMask;
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
    };

    #[derive(Clone, Copy)]
    pub(super) struct Group(__m128i);

    impl Group {
        pub(super) const WIDTH: usize = 16;

        /// # Safety
        /// `ptr..ptr + WIDTH` must be readable.
        #[inline(always)]
        pub(super) unsafe fn load(ptr: *const u8) -> Self {
            // SAFETY: the caller guarantees 16 readable bytes; `loadu` needs no alignment.
            Group(unsafe { _mm_loadu_si128(ptr.cast()) })
        }

        /// Slots whose control byte is `tag` (exact).
        #[inline(always)]
        pub(super) fn match_tag(self, tag: u8) -> BitMask<0> {
            // SAFETY: SSE2 is enabled at compile time (the `cfg` of this module).
            let mask =
                unsafe { _mm_movemask_epi8(_mm_cmpeq_epi8(self.0, _mm_set1_epi8(tag as i8))) };
            BitMask(u64::from(mask as u16))
        }

        /// Slots that are empty: control byte with the high bit set (exact).
        #[inline(always)]
        pub(super) fn match_empty(self) -> BitMask<0> {
            // SAFETY: SSE2 is enabled at compile time (the `cfg` of this module).
            BitMask(u64::from(unsafe { _mm_movemask_epi8(self.0) } as u16))
        }
    }
}

/// The portable group: 8 control bytes as one little-endian `u64`.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
mod swar {
    use super::BitMask;

    /// Every byte set to 0x01 / 0x80.
    const LSB: u64 = 0x0101_0101_0101_0101;
    const MSB: u64 = 0x8080_8080_8080_8080;

    #[derive(Clone, Copy)]
    pub(super) struct Group(u64);

    impl Group {
        pub(super) const WIDTH: usize = 8;

        /// # Safety
        /// `ptr..ptr + WIDTH` must be readable.
        #[inline(always)]
        pub(super) unsafe fn load(ptr: *const u8) -> Self {
            // SAFETY: the caller guarantees 8 readable bytes; `[u8; 8]` has alignment 1.
            Group(u64::from_le_bytes(unsafe { ptr.cast::<[u8; 8]>().read() }))
        }

        /// Slots whose control byte is `tag` (`< 0x80`): the "has zero byte" test, exact
        /// for the lowest match; it may also flag a byte just above a true match (a borrow),
        /// never one below, and never an empty slot (the `!x` term needs the byte's high bit
        /// clear, as `tag`'s is). Candidates are confirmed by comparing keys, so a false one
        /// costs a comparison, never a wrong answer.
        #[inline(always)]
        pub(super) fn match_tag(self, tag: u8) -> BitMask<3> {
            let x = self.0 ^ (LSB * u64::from(tag));
            BitMask(x.wrapping_sub(LSB) & !x & MSB)
        }

        /// Slots that are empty: control byte with the high bit set (exact).
        #[inline(always)]
        pub(super) fn match_empty(self) -> BitMask<3> {
            BitMask(self.0 & MSB)
        }
    }
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
use swar as group;

/// Fixed-capacity state for the bare-metal tier: all memory is allocated by
/// [`with_capacity`](StateBackend::with_capacity) and never again; the table never grows,
/// and a new key at capacity fails with [`Full`] and changes nothing.
///
/// Design, tuned for lookup-or-insert of small keys (the bare-metal benchmark's hot path):
/// - **Two boxed slices, allocated once**: `(K, V)` entries and one control byte per slot,
///   a power of two of slots, at least `n * 8 / 7 + 1` (and at least 16) for a capacity of
///   `n` keys, so the load factor stays below 7/8 and an empty slot always ends a probe.
/// - **Fx hashing plus one multiplication, slot index from the upper half**: Fx alone leaves
///   runs of zero bits for integer keys that are multiples of large powers of two (see
///   `MIX` in the source); mixed, sequential keys and such multiples spread evenly. Seven
///   other hash bits are the slot's tag, kept in its control byte (`0x80` marks an empty
///   slot).
/// - **Linear probing, a group of control bytes at a time**: a probe loads the 16 control
///   bytes from the home slot on (SSE2; 8 in a `u64` elsewhere) and finds tag matches and
///   empty slots without a branch per slot; only keys whose tag matches (1 in 128 for the
///   others) are compared. A slot-at-a-time probe loop measured 2-4x slower than
///   `FxHashMap`, mostly mispredicted branches. The first group of control bytes is mirrored
///   past the end, so a probe never wraps mid-load.
/// - **Backward-shift deletion**: `remove` moves the following entries of the probe run back
///   (re-hashing their keys to find their home slots) instead of leaving tombstones, so
///   remove/insert cycles never degrade probe lengths.
///
/// Why not `heapless::IndexMap`: its capacity is a const generic capped at 65,536 entries,
/// and measured about 0.17x the speed of `FxHashMap` at 50k keys.
///
/// `unsafe` is confined to reading, moving and dropping entries, under the invariant that
/// `entries[i]` is initialised exactly when `ctrl[i] != EMPTY`. A panicking `Hash` or `Eq`
/// impl can leave the map's contents unspecified (as with `std`'s maps) but never unsound.
pub struct FixedTable<K, V> {
    /// One control byte per slot: [`EMPTY`] or the entry's tag; then the first
    /// `Group::WIDTH` bytes again, so the group starting at any slot is contiguous.
    ctrl: Box<[u8]>,
    entries: Box<[MaybeUninit<(K, V)>]>,
    /// `entries.len() - 1`.
    mask: usize,
    len: usize,
    capacity: usize,
}

impl<K, V> FixedTable<K, V> {
    /// Number of slots allocated (a power of two, at least one group: 16 on `x86_64`).
    pub fn slot_count(&self) -> usize {
        self.entries.len()
    }

    /// The slot a key's probe starts at: hash bits 32 and up (then wrapping to bits 0 and
    /// up, for tables of more than 2^32 slots).
    #[inline(always)]
    fn home(&self, hash: u64) -> usize {
        hash.rotate_right(32) as usize & self.mask
    }

    /// The slot's tag: hash bits 25..32, apart from the home slot's bits in any table
    /// smaller than 2^57 slots.
    #[inline(always)]
    fn tag(&self, hash: u64) -> u8 {
        (hash >> 25) as u8 & 0x7F
    }

    /// The control bytes of slots `pos..pos + Group::WIDTH` (wrapping, thanks to the mirror).
    ///
    /// # Safety
    /// `pos` must be a slot index (`pos <= mask`).
    #[inline(always)]
    unsafe fn group(&self, pos: usize) -> Group {
        debug_assert!(pos <= self.mask && self.ctrl.len() == self.mask + 1 + Group::WIDTH);
        // SAFETY: `pos <= mask` (the caller's promise) and `ctrl` holds `mask + 1 + WIDTH`
        // bytes, so `pos..pos + WIDTH` is in bounds.
        unsafe { Group::load(self.ctrl.as_ptr().add(pos)) }
    }

    #[inline(always)]
    fn is_full(&self, i: usize) -> bool {
        self.ctrl[i] & EMPTY == 0
    }

    /// Sets slot `i`'s control byte and its mirror.
    #[inline(always)]
    fn set_ctrl(&mut self, i: usize, byte: u8) {
        self.ctrl[i] = byte;
        // `i` itself for `i >= WIDTH`, the mirror at `slots + i` for `i < WIDTH` (as
        // `slots >= WIDTH`).
        self.ctrl[(i.wrapping_sub(Group::WIDTH) & self.mask) + Group::WIDTH] = byte;
    }

    /// The entry in slot `i`.
    ///
    /// # Safety
    /// Slot `i` must exist (`i <= mask`) and be occupied (`ctrl[i] != EMPTY`).
    #[inline(always)]
    unsafe fn entry(&self, i: usize) -> &(K, V) {
        debug_assert!(i <= self.mask && self.is_full(i));
        // SAFETY: `i < entries.len()`, and an occupied slot's entry is initialised.
        unsafe { self.entries.get_unchecked(i).assume_init_ref() }
    }

    /// The entry in slot `i`.
    ///
    /// # Safety
    /// As for [`entry`](Self::entry).
    #[inline(always)]
    unsafe fn entry_mut(&mut self, i: usize) -> &mut (K, V) {
        debug_assert!(i <= self.mask && self.is_full(i));
        // SAFETY: as in `entry`.
        unsafe { self.entries.get_unchecked_mut(i).assume_init_mut() }
    }

    /// Every occupied slot, as references.
    #[inline]
    fn entries(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
        self.ctrl[..self.entries.len()]
            .iter()
            .zip(self.entries.iter())
            .filter(|(c, _)| **c & EMPTY == 0)
            .map(|(_, e)| {
                // SAFETY: the control byte is not EMPTY, so the entry is initialised.
                let (k, v) = unsafe { e.assume_init_ref() };
                (k, v)
            })
    }

    /// Drops every entry and marks every slot empty; keeps the memory.
    fn drop_all(&mut self) {
        if self.len == 0 {
            return;
        }
        if mem::needs_drop::<(K, V)>() {
            for i in 0..self.entries.len() {
                if self.is_full(i) {
                    // Mark the slot empty first: should a destructor panic, the table stays
                    // consistent (the rest of that entry leaks, safely).
                    self.set_ctrl(i, EMPTY);
                    self.len -= 1;
                    // SAFETY: the slot was occupied, so the entry is initialised; it is now
                    // EMPTY, so the entry will not be read or dropped again.
                    unsafe { self.entries[i].assume_init_drop() };
                }
            }
        } else {
            self.ctrl.fill(EMPTY);
        }
        self.len = 0;
    }
}

impl<K: Eq + Hash, V> FixedTable<K, V> {
    /// Where `key` is (`Ok`), or the empty slot that ends its probe (`Err`).
    #[inline(always)]
    fn find(&self, key: &K, hash: u64) -> Result<usize, usize> {
        let tag = self.tag(hash);
        let mut pos = self.home(hash);
        // Terminates: `len <= capacity < slots`, so some slot is empty.
        loop {
            // SAFETY: `pos` is masked, a slot index.
            let group = unsafe { self.group(pos) };
            // Tag matches past the first empty slot cannot be the key (linear probing keeps
            // every slot from a key's home to the key full); comparing them is harmless and
            // rarer than the instructions needed to mask them off.
            let mut candidates = group.match_tag(tag);
            while candidates.any() {
                let i = (pos + candidates.lowest()) & self.mask;
                // SAFETY: `i` is masked, and a candidate's control byte is below 0x80 (it is
                // `tag`, or with SWAR possibly another tag), so the slot is occupied.
                if unsafe { self.entry(i) }.0 == *key {
                    return Ok(i);
                }
                candidates = candidates.without_lowest();
            }
            let empty = group.match_empty();
            if empty.any() {
                return Err((pos + empty.lowest()) & self.mask);
            }
            pos = (pos + Group::WIDTH) & self.mask;
        }
    }

    /// Fills the empty slot `i` and returns its value.
    #[inline(always)]
    fn fill(&mut self, i: usize, hash: u64, key: K, value: V) -> &mut V {
        debug_assert!(!self.is_full(i));
        self.len += 1;
        self.set_ctrl(i, self.tag(hash));
        &mut self.entries[i].write((key, value)).1
    }

    #[inline(always)]
    fn full(&self) -> Full {
        Full {
            capacity: self.capacity,
        }
    }

    /// After slot `hole` was emptied, moves back every entry of the probe run that follows
    /// it whose probe passes through the hole, so that no probe for a present key meets an
    /// empty slot before reaching the key.
    #[inline]
    fn backward_shift(&mut self, mut hole: usize) {
        let mask = self.mask;
        let mut j = (hole + 1) & mask;
        while self.is_full(j) {
            // SAFETY: `j` is masked and occupied (the loop condition).
            let home = self.home(hash_of(&unsafe { self.entry(j) }.0));
            // The entry at `j` may move to `hole` when `hole` lies on its probe path,
            // i.e. cyclically within `home..=j`.
            if j.wrapping_sub(home) & mask >= j.wrapping_sub(hole) & mask {
                // Move the entry bits: `hole` takes over the entry and control byte of `j`,
                // which becomes the empty hole. No user code runs in between.
                self.entries.swap(hole, j);
                self.set_ctrl(hole, self.ctrl[j]);
                self.set_ctrl(j, EMPTY);
                hole = j;
            }
            j = (j + 1) & mask;
        }
    }
}

impl<K: Eq + Hash + Clone, V> StateBackend<K, V> for FixedTable<K, V> {
    const GROWS: bool = false;

    /// Allocates every slot for `capacity` keys.
    ///
    /// # Panics
    /// If the table for `capacity` keys would not fit in the address space, or the
    /// allocation fails.
    fn with_capacity(capacity: usize) -> Self {
        let slots = (capacity / 7)
            .checked_add(capacity)
            .and_then(|n| n.checked_add(1))
            .and_then(usize::checked_next_power_of_two)
            .filter(|&slots| slots <= isize::MAX as usize / mem::size_of::<(K, V)>().max(1))
            .unwrap_or_else(|| panic!("FixedTable capacity {capacity} is too large"))
            .max(MIN_SLOTS);
        FixedTable {
            ctrl: vec![EMPTY; slots + Group::WIDTH].into_boxed_slice(),
            entries: Box::new_uninit_slice(slots),
            mask: slots - 1,
            len: 0,
            capacity,
        }
    }

    #[inline]
    fn capacity(&self) -> Option<usize> {
        Some(self.capacity)
    }

    #[inline]
    fn len(&self) -> usize {
        self.len
    }

    #[inline]
    fn get(&self, key: &K) -> Option<&V> {
        let i = self.find(key, hash_of(key)).ok()?;
        // SAFETY: `find` returns occupied slot indices.
        Some(&unsafe { self.entry(i) }.1)
    }

    #[inline]
    fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let i = self.find(key, hash_of(key)).ok()?;
        // SAFETY: `find` returns occupied slot indices.
        Some(&mut unsafe { self.entry_mut(i) }.1)
    }

    // Always inlined: the per-row insert of every aggregation (a call per row costs ~20% at
    // small key counts, `benches/ingest.rs`).
    #[inline(always)]
    fn get_or_insert_with(
        &mut self,
        key: K,
        make: impl FnOnce() -> V,
    ) -> Result<(&mut V, bool), Full> {
        let hash = hash_of(&key);
        match self.find(&key, hash) {
            // SAFETY: `find` returns occupied slot indices.
            Ok(i) => Ok((&mut unsafe { self.entry_mut(i) }.1, false)),
            Err(_) if self.len == self.capacity => Err(self.full()),
            // `make` runs before anything changes, so a panic in it changes nothing.
            Err(i) => Ok((self.fill(i, hash, key, make()), true)),
        }
    }

    #[inline]
    fn insert(&mut self, key: K, value: V) -> Result<Option<V>, Full> {
        let hash = hash_of(&key);
        match self.find(&key, hash) {
            // SAFETY: `find` returns occupied slot indices.
            Ok(i) => Ok(Some(mem::replace(
                &mut unsafe { self.entry_mut(i) }.1,
                value,
            ))),
            Err(_) if self.len == self.capacity => Err(self.full()),
            Err(i) => {
                self.fill(i, hash, key, value);
                Ok(None)
            }
        }
    }

    #[inline]
    fn remove(&mut self, key: &K) -> Option<V> {
        let i = self.find(key, hash_of(key)).ok()?;
        self.set_ctrl(i, EMPTY);
        self.len -= 1;
        // SAFETY: `find` returned an occupied slot; it is now EMPTY, so the entry is moved
        // out exactly once.
        let (old_key, value) = unsafe { self.entries[i].assume_init_read() };
        self.backward_shift(i);
        // Dropped only once the table is consistent again.
        drop(old_key);
        Some(value)
    }

    fn clear(&mut self) {
        self.drop_all();
    }

    #[inline]
    fn iter<'a>(&'a self) -> impl Iterator<Item = (&'a K, &'a V)> + 'a
    where
        K: 'a,
        V: 'a,
    {
        self.entries()
    }
}

impl<K, V> Drop for FixedTable<K, V> {
    fn drop(&mut self) {
        if mem::needs_drop::<(K, V)>() {
            self.drop_all();
        }
    }
}

impl<K: Clone, V: Clone> Clone for FixedTable<K, V> {
    /// Same capacity, same slots, same layout, one allocation each for control bytes and
    /// entries.
    fn clone(&self) -> Self {
        let slots = self.entries.len();
        let mut out = FixedTable {
            ctrl: vec![EMPTY; slots + Group::WIDTH].into_boxed_slice(),
            entries: Box::new_uninit_slice(slots),
            mask: self.mask,
            len: 0,
            capacity: self.capacity,
        };
        for i in 0..slots {
            if self.is_full(i) {
                // Clone before touching `out`: if a clone panics, `out` is consistent and
                // its Drop frees what was copied so far.
                // SAFETY: `i < slots` and occupied.
                let (key, value) = unsafe { self.entry(i) };
                out.entries[i].write((key.clone(), value.clone()));
                out.set_ctrl(i, self.ctrl[i]);
                out.len += 1;
            }
        }
        out
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for FixedTable<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.entries()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    impl<K: Hash, V> FixedTable<K, V> {
        /// The longest distance of an entry from its home slot.
        fn max_displacement(&self) -> usize {
            (0..self.slot_count())
                .filter(|&i| self.is_full(i))
                // SAFETY: `i < slots` and occupied.
                .map(|i| {
                    i.wrapping_sub(self.home(hash_of(&unsafe { self.entry(i) }.0))) & self.mask
                })
                .max()
                .unwrap_or(0)
        }

        /// Checks the layout invariants: `len` matches, the mirror matches, every tag
        /// matches its key's hash, and no empty slot lies between an entry and its home.
        fn check_invariants(&self) {
            let slots = self.slot_count();
            assert_eq!(self.ctrl.len(), slots + Group::WIDTH);
            assert_eq!(self.ctrl[..Group::WIDTH], self.ctrl[slots..]);
            let mut count = 0;
            for i in 0..slots {
                if !self.is_full(i) {
                    assert_eq!(self.ctrl[i], EMPTY);
                    continue;
                }
                count += 1;
                // SAFETY: `i < slots` and occupied.
                let hash = hash_of(&unsafe { self.entry(i) }.0);
                assert_eq!(self.ctrl[i], self.tag(hash));
                let home = self.home(hash);
                let mut j = home;
                while j != i {
                    assert!(self.is_full(j), "gap between home {home} and {i}");
                    j = (j + 1) & self.mask;
                }
            }
            assert_eq!(count, self.len);
        }
    }

    fn table<K: Eq + Hash + Clone, V>(n: usize) -> FixedTable<K, V> {
        FixedTable::with_capacity(n)
    }

    #[test]
    fn slot_counts() {
        assert_eq!(table::<i64, u32>(0).slot_count(), MIN_SLOTS);
        assert_eq!(table::<i64, u32>(7).slot_count(), 16);
        assert_eq!(table::<i64, u32>(100).slot_count(), 128);
        assert_eq!(table::<i64, u32>(112).slot_count(), 256);
        assert_eq!(table::<i64, u32>(50_000).slot_count(), 65_536);
        assert_eq!(table::<i64, u32>(100_000).slot_count(), 131_072);
        for n in 0..2000 {
            let t = table::<i64, u32>(n);
            assert!(t.slot_count().is_power_of_two());
            assert!(n * 8 < t.slot_count() * 7, "load factor above 7/8 at {n}");
        }
    }

    #[test]
    #[should_panic(expected = "too large")]
    fn too_large_panics() {
        let _ = table::<i64, u32>(usize::MAX / 2);
    }

    /// Fills a table to capacity with `keys` and returns the longest displacement.
    fn fill_displacement(keys: impl Iterator<Item = i64>, n: usize) -> usize {
        let mut t = table::<i64, u32>(n);
        for (i, k) in keys.take(n).enumerate() {
            assert_eq!(t.insert(k, i as u32), Ok(None));
        }
        assert_eq!(t.len(), n);
        t.check_invariants();
        t.max_displacement()
    }

    #[test]
    fn integer_keys_do_not_cluster() {
        let n = 50_000;
        // Random keys at load ~0.76 give a longest displacement of a few dozen slots;
        // clustering (all keys in one home run) would give ~n.
        let limit = 200;
        let seq = fill_displacement(0.., n);
        assert!(seq < limit, "sequential keys: {seq}");
        let neg = fill_displacement((0..).map(|k: i64| -k), n);
        assert!(neg < limit, "negative sequential keys: {neg}");
        for p in [8, 16, 20, 32, 38, 40, 44] {
            let d = fill_displacement((0..).map(|k: i64| k << p), n);
            assert!(d < limit, "multiples of 2^{p}: {d}");
        }
        let stride = fill_displacement((0..).map(|k: i64| k * 1_000_003), n);
        assert!(stride < limit, "stride keys: {stride}");
    }

    #[test]
    fn churn_keeps_invariants() {
        let mut t = table::<i64, u64>(1000);
        t.check_invariants();
        let mut x: u64 = 1;
        for round in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = (x % 1500) as i64;
            if x & 1 == 0 {
                let _ = t.insert(k, round);
            } else {
                t.remove(&k);
            }
            if round % 997 == 0 {
                t.check_invariants();
            }
        }
        t.check_invariants();
        assert!(t.max_displacement() < 100);
    }

    /// Counts live instances, to check that every key and value is dropped exactly once.
    struct Counted(Rc<Cell<isize>>, i64);

    impl Clone for Counted {
        fn clone(&self) -> Self {
            Counted::new(&self.0, self.1)
        }
    }

    impl Counted {
        fn new(live: &Rc<Cell<isize>>, n: i64) -> Self {
            live.set(live.get() + 1);
            Counted(live.clone(), n)
        }
    }

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.set(self.0.get() - 1);
        }
    }

    impl PartialEq for Counted {
        fn eq(&self, other: &Self) -> bool {
            self.1 == other.1
        }
    }

    impl Eq for Counted {}

    impl Hash for Counted {
        fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
            self.1.hash(state);
        }
    }

    #[test]
    fn drops_every_key_and_value_once() {
        let live = Rc::new(Cell::new(0));
        {
            let mut t = table::<Counted, Counted>(64);
            for i in 0..64 {
                let k = Counted::new(&live, i);
                let v = Counted::new(&live, i);
                assert!(t.insert(k, v).unwrap().is_none());
            }
            assert_eq!(live.get(), 128);
            // Full: the rejected key and value are dropped, the table is unchanged.
            let k = Counted::new(&live, 1000);
            let v = Counted::new(&live, 1000);
            assert!(t.insert(k, v).is_err());
            assert_eq!(live.get(), 128);
            // Replace: the old value and the new (duplicate) key are dropped.
            let k = Counted::new(&live, 3);
            let v = Counted::new(&live, 33);
            let old = t.insert(k, v).unwrap().unwrap();
            assert_eq!(old.1, 3);
            drop(old);
            assert_eq!(live.get(), 128);
            // Remove: the key is dropped, the value returned.
            let probe = Counted::new(&live, 5);
            let v = t.remove(&probe).unwrap();
            drop((probe, v));
            assert_eq!(live.get(), 126);
            // get_or_insert_with on a present key drops the passed key, doesn't call make.
            let k = Counted::new(&live, 7);
            let (_, inserted) = t.get_or_insert_with(k, || unreachable!()).unwrap();
            assert!(!inserted);
            assert_eq!(live.get(), 126);
            let c = t.clone();
            assert_eq!(live.get(), 252);
            drop(c);
            assert_eq!(live.get(), 126);
            t.clear();
            assert_eq!(live.get(), 0);
            for i in 0..10 {
                let k = Counted::new(&live, i);
                let v = Counted::new(&live, i);
                t.insert(k, v).unwrap();
            }
            assert_eq!(live.get(), 20);
        }
        assert_eq!(live.get(), 0);
    }

    fn offsets<const S: u32>(mut m: BitMask<S>) -> Vec<usize> {
        let mut out = Vec::new();
        while m.any() {
            out.push(m.lowest());
            m = m.without_lowest();
        }
        out
    }

    /// Random groups of control bytes, each EMPTY or a tag, biased to repeat small tags.
    fn random_groups(count: usize, width: usize) -> Vec<Vec<u8>> {
        let mut x: u64 = 0x1234_5678;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        (0..count)
            .map(|_| {
                (0..width)
                    .map(|_| match next() % 4 {
                        0 => EMPTY,
                        1 => (next() % 3) as u8,
                        _ => (next() % 0x80) as u8,
                    })
                    .collect()
            })
            .collect()
    }

    /// The portable group, tested on every target: exact empties; tag matches that include
    /// every true one, start with the lowest true one, and add none below it.
    #[test]
    fn swar_group_matches() {
        for bytes in random_groups(5_000, swar::Group::WIDTH) {
            // SAFETY: 8 readable bytes.
            let group = unsafe { swar::Group::load(bytes.as_ptr()) };
            let empty: Vec<usize> = (0..8).filter(|&i| bytes[i] == EMPTY).collect();
            assert_eq!(offsets(group.match_empty()), empty);
            for tag in 0..0x80u8 {
                let truth: Vec<usize> = (0..8).filter(|&i| bytes[i] == tag).collect();
                let got = offsets(group.match_tag(tag));
                assert!(truth.iter().all(|i| got.contains(i)), "{bytes:?} {tag}");
                assert_eq!(got.first(), truth.first(), "{bytes:?} {tag}");
                assert!(got.iter().all(|&i| bytes[i] != EMPTY), "{bytes:?} {tag}");
            }
        }
    }

    /// The SSE2 group: exact matches.
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    #[test]
    fn sse2_group_matches() {
        for bytes in random_groups(5_000, Group::WIDTH) {
            // SAFETY: 16 readable bytes.
            let group = unsafe { Group::load(bytes.as_ptr()) };
            let empty: Vec<usize> = (0..16).filter(|&i| bytes[i] == EMPTY).collect();
            assert_eq!(offsets(group.match_empty()), empty);
            for tag in 0..0x80u8 {
                let truth: Vec<usize> = (0..16).filter(|&i| bytes[i] == tag).collect();
                assert_eq!(offsets(group.match_tag(tag)), truth);
            }
        }
    }

    #[test]
    fn clone_and_debug() {
        let mut t = table::<i64, &str>(4);
        t.insert(1, "one").unwrap();
        t.insert(2, "two").unwrap();
        let c = t.clone();
        t.remove(&1);
        assert_eq!(c.get(&1), Some(&"one"));
        assert_eq!(c.len(), 2);
        assert_eq!(c.capacity(), Some(4));
        assert_eq!(format!("{t:?}"), r#"{2: "two"}"#);
    }

    #[test]
    fn panicking_make_changes_nothing() {
        let mut t = table::<i64, u32>(4);
        t.insert(1, 1).unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = t.get_or_insert_with(2, || panic!("make"));
        }));
        assert!(r.is_err());
        assert_eq!(t.len(), 1);
        assert_eq!(t.get(&2), None);
        t.check_invariants();
    }
}
