// A bounded window of u64 hashes with insert-if-absent, for deduplication.
//
// Layout (all in one block the caller allocates, windowBytes(capacity)):
//   header (64 B) | ring: capacity x 24 B | table: slots x u64
// The ring holds entries in insertion order (hash u64, timestamp f64, tag u32);
// it bounds the window by count (capacity) and by age. The table is open
// addressing with linear probing, load <= 0.5, with backward-shift deletion
// (no tombstones). A slot holds ring index + 1 in its low 32 bits (0 is
// empty) and mix(hash) = the high 32 bits of hash * FIB in its high 32 bits:
// the home slot is the top bits of mix, so probing and backward shifts read
// only the table, and the ring is touched only when mix matches (one random
// memory access per miss instead of two). Nothing is allocated after init, so
// memory never grows here.
//
// Age semantics: an entry with timestamp t is inside the window of a key with
// timestamp now while now - t < ageMs. ageMs <= 0 disables the age bound.

const H_CAPACITY: usize = 0;
const H_SLOTS: usize = 4;
const H_SHIFT: usize = 8;
const H_HEAD: usize = 12;
const H_SIZE: usize = 16;
const H_LIVE: usize = 20;
const H_AGE: usize = 32;
const H_TOUCH: usize = 40; // scratch: sink of the prefetch loads
const PREFETCH: i32 = 8;
const HEADER: usize = 64;
const ENTRY: usize = 24;
const FIB: u64 = 0x9E3779B97F4A7C15;

export const WINDOW_MAX_CAPACITY: u32 = 1 << 24;

function slotsFor(capacity: u32): u32 {
  let s: u32 = 16;
  while (s < capacity * 2) s <<= 1;
  return s;
}

/** Bytes needed for a window of the given capacity (0 if over the limit). */
export function windowBytes(capacity: u32): usize {
  if (capacity == 0 || capacity > WINDOW_MAX_CAPACITY) return 0;
  return HEADER + <usize>capacity * ENTRY + (<usize>slotsFor(capacity) << 3);
}

/** Initialises (or clears) a window in a block of windowBytes(capacity). */
export function windowInit(w: usize, capacity: u32, ageMs: f64): void {
  const slots = slotsFor(capacity);
  store<u32>(w + H_CAPACITY, capacity);
  store<u32>(w + H_SLOTS, slots);
  store<u32>(w + H_SHIFT, 32 - <u32>ctz<u32>(slots)); // home = mix >> shift
  store<u32>(w + H_HEAD, 0);
  store<u32>(w + H_SIZE, 0);
  store<u32>(w + H_LIVE, 0);
  store<f64>(w + H_AGE, ageMs);
  memory.fill(w + HEADER + <usize>capacity * ENTRY, 0, <usize>slots << 3);
}

@inline function ring(w: usize): usize { return w + HEADER; }
@inline function table(w: usize): usize { return w + HEADER + <usize>load<u32>(w + H_CAPACITY) * ENTRY; }
/** High 32 bits of h * FIB: its top bits are the home slot (Fibonacci hashing); stored in the slot. */
@inline function mix(h: u64): u32 { return <u32>((h * FIB) >> 32); }
@inline function slotValue(m: u32, ringIdx: u32): u64 { return (<u64>m << 32) | <u64>(ringIdx + 1); }

function tableDelete(w: usize, ringIdx: u32, h: u64): void {
  const t = table(w);
  const mask = load<u32>(w + H_SLOTS) - 1;
  const shift = load<u32>(w + H_SHIFT);
  const m = mix(h);
  const want = slotValue(m, ringIdx);
  let i = m >> shift;
  while (true) {
    const v = load<u64>(t + ((<usize>i) << 3));
    if (v == 0) return; // superseded entry: nothing points at it any more
    if (v == want) break;
    i = (i + 1) & mask;
  }
  let j = i;
  while (true) {
    j = (j + 1) & mask;
    const v = load<u64>(t + ((<usize>j) << 3));
    if (v == 0) break;
    const k = <u32>(v >> 32) >> shift;
    const stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
    if (stays) continue;
    store<u64>(t + ((<usize>i) << 3), v);
    i = j;
  }
  store<u64>(t + ((<usize>i) << 3), 0);
  store<u32>(w + H_LIVE, load<u32>(w + H_LIVE) - 1);
}

function evictHead(w: usize): void {
  const capacity = load<u32>(w + H_CAPACITY);
  const head = load<u32>(w + H_HEAD);
  tableDelete(w, head, load<u64>(ring(w) + <usize>head * ENTRY));
  store<u32>(w + H_HEAD, head + 1 == capacity ? 0 : head + 1);
  store<u32>(w + H_SIZE, load<u32>(w + H_SIZE) - 1);
}

/** Removes every entry older than the age bound relative to now. */
export function windowExpire(w: usize, now: f64): void {
  const age = load<f64>(w + H_AGE);
  if (age <= 0) return;
  const r = ring(w);
  while (load<u32>(w + H_SIZE) > 0) {
    const head = load<u32>(w + H_HEAD);
    if (now - load<f64>(r + <usize>head * ENTRY + 8) < age) break;
    evictHead(w);
  }
}

/**
 * For each of n keys (hashes: u64[], times: f64[], tags: u32[] or 0):
 * if an entry with the same hash is inside the window, flags[i] = 1 and, when
 * matched != 0, matched[i] = that entry's tag; otherwise the key is inserted
 * (evicting the oldest entry when the window is full) and flags[i] = 0.
 * Returns the number of duplicates.
 */
export function windowCheckInsert(w: usize, hashes: usize, times: usize, tags: usize, n: i32, flags: usize, matched: usize): i32 {
  const capacity = load<u32>(w + H_CAPACITY);
  const mask = load<u32>(w + H_SLOTS) - 1;
  const shift = load<u32>(w + H_SHIFT);
  const age = load<f64>(w + H_AGE);
  const r = ring(w);
  const t = table(w);
  let dups: i32 = 0;
  // Software prefetch (wasm has no prefetch instruction): PREFETCH keys ahead,
  // touch the table slot that key will probe and the slot of the ring entry
  // it will evict, so those cache misses overlap with the work on this key.
  let touch: u64 = 0;
  for (let i: i32 = 0; i < n; i++) {
    if (i + PREFETCH < n) {
      const ah = load<u64>(hashes + ((<usize>(i + PREFETCH)) << 3));
      touch ^= load<u64>(t + ((<usize>(mix(ah) >> shift)) << 3));
      let e = load<u32>(w + H_HEAD) + <u32>PREFETCH;
      if (e >= capacity) e -= capacity;
      if (e < capacity) touch ^= load<u64>(t + ((<usize>(mix(load<u64>(r + <usize>e * ENTRY)) >> shift)) << 3));
    }
    const h = load<u64>(hashes + ((<usize>i) << 3));
    const now = load<f64>(times + ((<usize>i) << 3));
    const tag: u32 = tags != 0 ? load<u32>(tags + ((<usize>i) << 2)) : 0;
    if (age > 0) windowExpire(w, now);
    const hm = mix(h);
    let s = hm >> shift;
    let found: u32 = 0;
    while (true) {
      const v = load<u64>(t + ((<usize>s) << 3));
      if (v == 0) break;
      if (<u32>(v >> 32) == hm && load<u64>(r + <usize>(<u32>v - 1) * ENTRY) == h) { found = <u32>v; break; }
      s = (s + 1) & mask;
    }
    if (found != 0) {
      const e = r + <usize>(found - 1) * ENTRY;
      if (age <= 0 || now - load<f64>(e, 8) < age) {
        store<u8>(flags + <usize>i, 1);
        if (matched != 0) store<u32>(matched + ((<usize>i) << 2), load<u32>(e, 16));
        dups++;
        continue;
      }
    }
    // Insert at the ring's tail, evicting the oldest entry when full.
    if (load<u32>(w + H_SIZE) == capacity) {
      evictHead(w);
      // Backward-shift deletion may have moved entries on this key's probe
      // chain (or removed the entry we found): probe again.
      s = hm >> shift;
      found = 0;
      while (true) {
        const v = load<u64>(t + ((<usize>s) << 3));
        if (v == 0) break;
        if (<u32>(v >> 32) == hm && load<u64>(r + <usize>(<u32>v - 1) * ENTRY) == h) { found = <u32>v; break; }
        s = (s + 1) & mask;
      }
    }
    const head = load<u32>(w + H_HEAD);
    const size = load<u32>(w + H_SIZE);
    let tail = head + size;
    if (tail >= capacity) tail -= capacity;
    const e = r + <usize>tail * ENTRY;
    store<u64>(e, h);
    store<f64>(e, now, 8);
    store<u32>(e, tag, 16);
    // An expired entry with the same hash is superseded in place; otherwise
    // s is the empty slot that ended the probe.
    if (found == 0) store<u32>(w + H_LIVE, load<u32>(w + H_LIVE) + 1);
    store<u64>(t + ((<usize>s) << 3), slotValue(hm, tail));
    store<u32>(w + H_SIZE, size + 1);
    store<u8>(flags + <usize>i, 0);
  }
  store<u64>(w + H_TOUCH, touch); // keeps the prefetch loads alive
  return dups;
}

/** Entries currently in the window (ring size). */
export function windowSize(w: usize): u32 { return load<u32>(w + H_SIZE); }
