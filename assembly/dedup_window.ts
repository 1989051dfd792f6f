// A bounded window of u64 hashes with insert-if-absent, for deduplication.
//
// Layout (all in one block the caller allocates, windowBytes(capacity)):
//   header (64 B) | ring hashes: capacity x u64 | ring times: capacity x f64
//   | tags: capacity x u32 | table: groupsFor(capacity) cache lines (64 B)
// The ring holds entries in insertion order (hash, timestamp; tags apart, as
// they are read only for duplicates, and written only once some caller
// passed tags); it bounds the window by count (capacity) and by age. Every
// insert gets a sequence number (SEQ_BITS bits, wrapping); the ring holds
// the entries of sequence numbers [tail - size, tail), so an entry's ring
// index follows from its sequence number, and evicting (count: the head
// moves; age: the head moves while the oldest entry is too old) never
// touches the table.
//
// The table holds two generations. A group is one cache line: per
// generation, 6 control bytes (in a u64) and 6 u32 payloads. A control byte
// is 0x80 | 7 bits of mix(hash) (0 is empty); a payload is 7 more bits of
// mix and the entry's sequence number. mix = the high 32 bits of hash * FIB;
// its high bits pick the home group (multiply-shift by the group count).
// A key's control byte is matched against a group's 6 bytes at once (SWAR),
// then the payload tag, the sequence number (live: inside the ring) and the
// full 64-bit hash in the ring decide. Inserts go to the first empty slot
// of the current generation, from the home group on (linear probing over
// groups); after `capacity` inserts every entry of the older generation has
// left the ring (its sequence numbers are more than capacity behind), so its
// control bytes are cleared and it becomes the current one. Nothing is ever
// deleted from a chain (no backward shifts, no tombstones), and a check
// reads and an insert writes the same single cache line, for both
// generations. Each generation holds at most `capacity` entries in at least
// 2 * capacity slots, so a chain ends at a group with an empty slot;
// sequence numbers in the table are at most 2 * capacity <= 2^25 behind the
// tail, so SEQ_BITS = 25 never aliases a stale entry as live.
// The age bound reads the ring's oldest time only when a kept lower bound
// of all entries' times says something may have expired (the bound is made
// exact again by a pass over the ring at most once per `capacity` inserts).
// Loads are prefetched (wasm has no prefetch instruction: plain loads whose
// values are discarded) in groups of 16 keys, back to back, so their cache
// misses overlap.
// Nothing is allocated after init, so memory never grows here.
//
// Age semantics: an entry with timestamp t is inside the window of a key with
// timestamp now while now - t < ageMs. ageMs <= 0 disables the age bound.

import { xxh64Short } from './xxhash64';
import { varintOk, varintEnd, readVarint, readVarlong, sizeVarint } from './varint';

const H_CAPACITY: usize = 0;
const H_GROUPS: usize = 4;  // table groups (cache lines), at least 2
const H_HEAD: usize = 12;   // ring index of the oldest entry
const H_SIZE: usize = 16;   // entries in the ring
const H_TAIL: usize = 20;   // sequence number of the next insert (SEQ_BITS bits)
const H_GEN: usize = 24;    // current generation: 0 or 1
const H_GEN_LEFT: usize = 28; // inserts left in the current generation
const H_AGE: usize = 32;
const H_TOUCH: usize = 40;  // scratch: sink of the prefetch loads
const H_TAGGED: usize = 48; // 1 once a call passed tags: from then on every insert stores its tag
const H_MIN_TIME: usize = 56; // f64: a lower bound of every ring entry's time (+inf when empty)
const H_MIN_AT: usize = 52;   // sequence number at which H_MIN_TIME was last recomputed
const PREFETCH: i32 = 16;   // keys per prefetch group (a power of two)
const HEADER: usize = 64;
const ENTRY: usize = 16;    // ring bytes per entry: hash and time (two arrays)
const SLOTS: u32 = 6;       // slots per group and generation
const LINE: usize = 64;     // a group: ctrl u64 per generation (6 bytes used), then 6 u32 payloads per generation
const PAYLOAD: usize = 16;  // offset of generation 0's payloads in a group; generation 1's follow at +24
const LO: u64 = 0x0000010101010101;
const HI: u64 = 0x0000808080808080;
const FIB: u64 = 0x9E3779B97F4A7C15;
const SEQ_BITS: u32 = 25;
const SEQ_MASK: u32 = (1 << SEQ_BITS) - 1;

export const WINDOW_MAX_CAPACITY: u32 = 1 << 24;

/** Table groups for a capacity: each generation gets at least 2 * capacity slots. */
function groupsFor(capacity: u32): u32 {
  return max<u32>(2, (capacity * 2 + SLOTS - 1) / SLOTS);
}

@inline function tagsBytes(capacity: u32): usize { return ((<usize>capacity << 2) + 63) & ~(<usize>63); }

/** Bytes needed for a window of the given capacity (0 if over the limit). */
export function windowBytes(capacity: u32): usize {
  if (capacity == 0 || capacity > WINDOW_MAX_CAPACITY) return 0;
  // + LINE: the table starts at the first cache-line boundary inside the block.
  return HEADER + <usize>capacity * ENTRY + tagsBytes(capacity) + LINE + <usize>groupsFor(capacity) * LINE;
}

@inline function ring(w: usize): usize { return w + HEADER; }
@inline function tags(w: usize): usize { return w + HEADER + <usize>load<u32>(w + H_CAPACITY) * ENTRY; }
@inline function table(w: usize): usize {
  const c = load<u32>(w + H_CAPACITY);
  return (w + HEADER + <usize>c * ENTRY + tagsBytes(c) + LINE - 1) & ~(LINE - 1);
}

/** Initialises (or clears) a window in a block of windowBytes(capacity). */
export function windowInit(w: usize, capacity: u32, ageMs: f64): void {
  const groups = groupsFor(capacity);
  store<u32>(w + H_CAPACITY, capacity);
  store<u32>(w + H_GROUPS, groups);
  store<u32>(w + H_HEAD, 0);
  store<u32>(w + H_SIZE, 0);
  store<u32>(w + H_TAIL, 0);
  store<u32>(w + H_GEN, 0);
  store<u32>(w + H_GEN_LEFT, capacity);
  store<f64>(w + H_AGE, ageMs);
  store<u32>(w + H_TAGGED, 0);
  store<f64>(w + H_MIN_TIME, Infinity);
  store<u32>(w + H_MIN_AT, 0);
  memory.fill(tags(w), 0, <usize>capacity << 2);
  memory.fill(table(w), 0, <usize>groups * LINE);
}

/** High 32 bits of h * FIB: its high bits pick the home group, its low bits the control byte and payload tag. */
@inline function mix(h: u64): u32 { return <u32>((h * FIB) >> 32); }
@inline function homeOf(m: u32, groups: u32): u32 { return <u32>((<u64>m * <u64>groups) >> 32); }

/** Empties generation g's control bytes (every entry of it has left the ring). */
function clearGeneration(w: usize, g: u32): void {
  const groups = load<u32>(w + H_GROUPS);
  let p = table(w) + (<usize>g << 3);
  const end = p + <usize>groups * LINE;
  for (; p < end; p += LINE) store<u64>(p, 0);
}

/** Removes every entry older than the age bound relative to now. */
export function windowExpire(w: usize, now: f64): void {
  const age = load<f64>(w + H_AGE);
  if (age <= 0) return;
  const capacity = load<u32>(w + H_CAPACITY);
  const r = ring(w);
  let head = load<u32>(w + H_HEAD);
  let size = load<u32>(w + H_SIZE);
  const rt = r + (<usize>capacity << 3);
  while (size > 0 && now - load<f64>(rt + (<usize>head << 3)) >= age) {
    head = head + 1 == capacity ? 0 : head + 1;
    size--;
  }
  store<u32>(w + H_HEAD, head);
  store<u32>(w + H_SIZE, size);
}

/**
 * Checks n keys (hashes: u64[], times: f64[], tags: u32[] or 0) in order.
 * The flag of key i goes to flags[idx[i]] when idx != 0 (u32[]), else to
 * flags[i]. Returns the number of duplicates. See windowCheckInsert.
 */
function checkInsertRun(w: usize, hashes: usize, times: usize, tags_: usize, n: i32, flags: usize, matched: usize, idx: usize): i32 {
  const capacity = load<u32>(w + H_CAPACITY);
  const groups = load<u32>(w + H_GROUPS);
  const age = load<f64>(w + H_AGE);
  const r = ring(w);
  const rt = r + (<usize>capacity << 3);
  const tg = tags(w);
  const t = table(w);
  let head = load<u32>(w + H_HEAD);
  let size = load<u32>(w + H_SIZE);
  let tail = load<u32>(w + H_TAIL);
  let gen = load<u32>(w + H_GEN);
  let left = load<u32>(w + H_GEN_LEFT);
  // Tags are stored only once some call has passed them (until then every
  // tag reads as 0 from init), so untagged use skips that store.
  if (tags_ != 0) store<u32>(w + H_TAGGED, 1);
  // No entry is older than minTime, so while now - minTime < age nothing can
  // have expired and the ring's head need not be read.
  let minTime = load<f64>(w + H_MIN_TIME);
  let minAt = load<u32>(w + H_MIN_AT);
  const tagged = load<u32>(w + H_TAGGED) != 0;
  let dups: i32 = 0;
  // Software prefetch (wasm has no prefetch instruction): at the start of
  // each group of PREFETCH keys, touch the cache lines the next group will
  // use, back to back: independent loads, whose misses overlap each other
  // and the work on this group.
  let touch: u64 = 0;
  for (let i: i32 = 0; i < n; i++) {
    if ((i & (PREFETCH - 1)) == 0) {
      const from = i == 0 ? 0 : i + PREFETCH;
      const to = min(i + 2 * PREFETCH, n);
      for (let j = from; j < to; j++) {
        const ah = load<u64>(hashes + ((<usize>j) << 3));
        touch ^= load<u64>(t + <usize>homeOf(mix(ah), groups) * LINE);
      }
      // The ring lines the next group writes.
      let ti = head + size + <u32>PREFETCH;
      if (ti >= capacity) ti -= capacity;
      for (let q: u32 = 0; q < <u32>PREFETCH; q += 8) {
        let a = ti + q; if (a >= capacity) a -= capacity;
        touch ^= load<u64>(r + (<usize>a << 3)) ^ load<u64>(rt + (<usize>a << 3));
      }
    }
    const h = load<u64>(hashes + ((<usize>i) << 3));
    const now = load<f64>(times + ((<usize>i) << 3));
    const flag = flags + (idx != 0 ? <usize>load<u32>(idx + ((<usize>i) << 2)) : <usize>i);
    if (age > 0 && now - minTime >= age) {
      // Some entry may be too old for this key. minTime is only a lower
      // bound (evictions leave it behind): make it exact again, at most once
      // per `capacity` inserts (a sequential pass over the ring's times).
      if (((tail - minAt) & SEQ_MASK) >= capacity) {
        minTime = Infinity;
        let q = head;
        for (let c: u32 = 0; c < size; c++) {
          minTime = min(minTime, load<f64>(rt + (<usize>q << 3)));
          q = q + 1 == capacity ? 0 : q + 1;
        }
        minAt = tail;
      }
      // Evict from the oldest end while too old for this key.
      if (now - minTime >= age) {
        while (size > 0 && now - load<f64>(rt + (<usize>head << 3)) >= age) {
          head = head + 1 == capacity ? 0 : head + 1;
          size--;
        }
      }
    }
    let tailIdx = head + size;
    if (tailIdx >= capacity) tailIdx -= capacity;
    const hm = mix(h);
    const home = homeOf(hm, groups);
    const cb = <u64>(0x80 | (hm & 0x7f));        // control byte: 0 is empty
    const ptag = (hm >> 7) & 0x7f;               // payload tag: 7 more bits
    const want = LO * cb;
    // Search the current generation, then the older one: each from the home
    // group until a match or a group with an empty slot (its chain's end).
    // A match in the current generation is the newer entry and wins.
    let foundIdx: u32 = 0xffffffff;
    let foundSlot: usize = 0;                    // payload of the match
    let freeCtrl: usize = 0;                     // control byte and payload of the insert
    let freeSlot: usize = 0;
    for (let k: u32 = 0; k < 2; k++) {
      const g = <usize>(gen ^ k);
      let gi = home;
      while (true) {
        const line = t + <usize>gi * LINE;
        const c = load<u64>(line + (g << 3));
        // SWAR byte compare: high bit set in each byte of c equal to cb (and
        // possibly in the byte above one, a harmless false candidate).
        const x = c ^ want;
        let m = (x - LO) & ~x & HI;
        const pp = line + PAYLOAD + g * 24;
        while (m != 0) {
          const j = <usize>(ctz(m) >> 3);
          m &= m - 1;
          const pw = load<u32>(pp + (j << 2));
          if ((pw >> SEQ_BITS) != ptag) continue;
          const d = (tail - pw) & SEQ_MASK;
          if (d - 1 >= size) continue;
          const e = tailIdx >= d ? tailIdx - d : tailIdx + capacity - d;
          if (load<u64>(r + (<usize>e << 3)) != h) continue;
          foundIdx = e;
          foundSlot = pp + (j << 2);
          break;
        }
        if (foundIdx != 0xffffffff) break;
        // Control bytes are 0 or >= 0x80, so this zero-byte test is exact.
        const empty = (c - LO) & ~c & HI;
        if (empty != 0) {
          if (k == 0) {
            const j = <usize>(ctz(empty) >> 3);
            freeCtrl = line + (g << 3) + j;
            freeSlot = pp + (j << 2);
          }
          break;
        }
        gi = gi + 1 == groups ? 0 : gi + 1;
      }
      if (foundIdx != 0xffffffff) break;
    }
    if (foundIdx != 0xffffffff && (age <= 0 || now - load<f64>(rt + (<usize>foundIdx << 3)) < age)) {
      store<u8>(flag, 1);
      if (matched != 0) store<u32>(matched + ((<usize>i) << 2), load<u32>(tg + ((<usize>foundIdx) << 2)));
      dups++;
      continue;
    }
    // Insert. An expired entry found in the current generation is superseded
    // in its slot; one in the older generation is shadowed by the new one
    // (the current generation is searched first).
    if (left == 0) {
      // The current generation took `capacity` inserts: every entry of the
      // older one has left the ring. Clear it and make it current.
      gen ^= 1;
      clearGeneration(w, gen);
      left = capacity;
      const line = t + <usize>home * LINE;      // the home group is empty now
      freeCtrl = line + (<usize>gen << 3);
      freeSlot = line + PAYLOAD + <usize>gen * 24;
    } else if (foundIdx != 0xffffffff && freeSlot == 0) {
      freeCtrl = 0;                              // found in the current generation: same control byte, new payload
      freeSlot = foundSlot;
    }
    if (size == capacity) {
      head = head + 1 == capacity ? 0 : head + 1;
      size--;
    }
    store<u64>(r + (<usize>tailIdx << 3), h);
    store<f64>(rt + (<usize>tailIdx << 3), now);
    if (now < minTime) minTime = now;
    if (tagged) store<u32>(tg + ((<usize>tailIdx) << 2), tags_ != 0 ? load<u32>(tags_ + ((<usize>i) << 2)) : 0);
    if (freeCtrl != 0) store<u8>(freeCtrl, <u8>cb);
    store<u32>(freeSlot, (ptag << SEQ_BITS) | tail);
    tail = (tail + 1) & SEQ_MASK;
    size++;
    left--;
    store<u8>(flag, 0);
  }
  store<u32>(w + H_HEAD, head);
  store<u32>(w + H_SIZE, size);
  store<u32>(w + H_TAIL, tail);
  store<u32>(w + H_GEN, gen);
  store<u32>(w + H_GEN_LEFT, left);
  store<f64>(w + H_MIN_TIME, minTime);
  store<u32>(w + H_MIN_AT, minAt);
  store<u64>(w + H_TOUCH, touch); // keeps the prefetch loads alive
  return dups;
}

/**
 * For each of n keys (hashes: u64[], times: f64[], tags: u32[] or 0):
 * if an entry with the same hash is inside the window, flags[i] = 1 and, when
 * matched != 0, matched[i] = that entry's tag; otherwise the key is inserted
 * (evicting the oldest entry when the window is full) and flags[i] = 0.
 * Returns the number of duplicates.
 */
export function windowCheckInsert(w: usize, hashes: usize, times: usize, tags_: usize, n: i32, flags: usize, matched: usize): i32 {
  return checkInsertRun(w, hashes, times, tags_, n, flags, matched, 0);
}

/** Entries currently in the window (ring size). */
export function windowSize(w: usize): u32 { return load<u32>(w + H_SIZE); }

// --- dedup in place in an encoded batch ----------------------------------------

export const DEDUP_BY_KEY: i32 = 0;
export const DEDUP_BY_VALUE: i32 = 1;
export const DEDUP_BY_HEADER: i32 = 2;
export const DEDUP_BY_CONTENT: i32 = 3;
export const FLAG_KEEP: u8 = 0;
export const FLAG_DUPLICATE: u8 = 1;
export const FLAG_NO_IDENTITY: u8 = 2;
export const DEDUP_MALFORMED: i32 = -1;

let skipped: i32 = 0;

/** Records of the last dedupBatch call that had no identity (flag 2). */
export function dedupSkipped(): i32 { return skipped; }

@inline function loadBE32(p: usize): u32 { return bswap<u32>(load<u32>(p)); }

/**
 * The zig-zag varint at p (within [p, end)) as (value << 8) | its byte
 * length; byte length 0 when it is malformed. Lengths under 64 and 8192 take
 * one and two bytes: those are decoded inline, the rest by readVarint.
 */
@inline function rv(p: usize, end: usize): i64 {
  if (p + 2 <= end) {
    const b0 = <u32>load<u8>(p);
    if (b0 < 0x80) return (<i64>(<i32>(b0 >>> 1) ^ -<i32>(b0 & 1)) << 8) | 1;
    const b1 = <u32>load<u8>(p, 1);
    if (b1 < 0x80) {
      const u = (b0 & 0x7f) | (b1 << 7);
      return (<i64>(<i32>(u >>> 1) ^ -<i32>(u & 1)) << 8) | 2;
    }
  }
  varintOk = true;
  const v = readVarint(p, end);
  if (!varintOk) return 0;
  return (<i64>v << 8) | <i64>(varintEnd - p);
}

function bytesEqual(a: usize, b: usize, n: usize): bool {
  let i: usize = 0;
  for (; i + 8 <= n; i += 8) if (load<u64>(a + i) != load<u64>(b + i)) return false;
  for (; i < n; i++) if (load<u8>(a + i) != load<u8>(b + i)) return false;
  return true;
}

/**
 * Deduplicates the records of one encoded, uncompressed RecordBatch v2 at
 * [batch, batch + size) (as RecordBatchEncoder frames it; its record count
 * and first timestamp are read from the header), in place: each record's
 * identity bytes are hashed where they lie, then all hashes are checked
 * against the window in order (as windowCheckInsert).
 *
 * mode: DEDUP_BY_KEY (the key), DEDUP_BY_VALUE, DEDUP_BY_HEADER (the value of
 * the first header named [name, name + nameLen)), DEDUP_BY_CONTENT (the
 * record's bytes from its key length varint to its end: key, value and
 * headers with their zig-zag varint lengths). A null key / value / header
 * value or a missing header is no identity. Hashes are xxh64 (seed 0) ANDed
 * with the mask (maskHi:maskLo). Timestamps are the records' own.
 *
 * scratch: 20 bytes per record (hashes, times, record indexes). flags: one
 * byte per record out: FLAG_KEEP, FLAG_DUPLICATE or FLAG_NO_IDENTITY.
 * Returns the number of duplicates (dedupSkipped() gives the number without
 * identity), or DEDUP_MALFORMED when the records do not parse within size
 * (the window is then unchanged).
 */
export function dedupBatch(
  w: usize, batch: usize, size: i32, mode: i32, name: usize, nameLen: i32,
  maskLo: u32, maskHi: u32, scratch: usize, flags: usize,
): i32 {
  skipped = 0;
  if (size < 61) return DEDUP_MALFORMED;
  const n = <i32>loadBE32(batch + 57);
  if (n < 0 || n > (size - 61)) return DEDUP_MALFORMED;
  const firstTs: i64 = (<i64>loadBE32(batch + 27) << 32) | <i64>loadBE32(batch + 31);
  const mask: u64 = (<u64>maskHi << 32) | <u64>maskLo;
  const end = batch + <usize>size;
  const hashes = scratch;
  const times = scratch + ((<usize>n) << 3);
  const idx = scratch + ((<usize>n) << 4);
  let p = batch + 61;
  let m: i32 = 0;
  let none: i32 = 0;
  for (let i: i32 = 0; i < n; i++) {
    let r = rv(p, end);
    const recLen = <i32>(r >> 8);
    p += <usize>(r & 0xff);
    if ((r & 0xff) == 0 || recLen < 1 || <usize>recLen > end - p) return DEDUP_MALFORMED;
    const recEnd = p + <usize>recLen;
    p++; // attributes
    // Timestamp delta (a varlong): one byte when the records share a timestamp.
    let tsDelta: i64;
    const t0: u32 = p < recEnd ? <u32>load<u8>(p) : 0x80;
    if (t0 < 0x80) {
      tsDelta = <i64>(<i32>(t0 >>> 1) ^ -<i32>(t0 & 1));
      p++;
    } else {
      varintOk = true;
      tsDelta = readVarlong(p, recEnd);
      if (!varintOk) return DEDUP_MALFORMED;
      p = varintEnd;
    }
    r = rv(p, recEnd); // offset delta
    if ((r & 0xff) == 0) return DEDUP_MALFORMED;
    p += <usize>(r & 0xff);
    const idStart = p;
    r = rv(p, recEnd);
    const keyLen = <i32>(r >> 8);
    p += <usize>(r & 0xff);
    if ((r & 0xff) == 0 || keyLen < -1 || <usize>max(keyLen, 0) > recEnd - p) return DEDUP_MALFORMED;
    let idPos: usize = p;
    let idLen: i32 = keyLen;
    if (mode != DEDUP_BY_KEY) {
      p += <usize>max(keyLen, 0);
      r = rv(p, recEnd);
      const valueLen = <i32>(r >> 8);
      p += <usize>(r & 0xff);
      if ((r & 0xff) == 0 || valueLen < -1 || <usize>max(valueLen, 0) > recEnd - p) return DEDUP_MALFORMED;
      if (mode == DEDUP_BY_VALUE) {
        idPos = p; idLen = valueLen;
      } else if (mode == DEDUP_BY_CONTENT) {
        idPos = idStart; idLen = <i32>(recEnd - idStart);
      } else {
        p += <usize>max(valueLen, 0);
        r = rv(p, recEnd);
        const hc = <i32>(r >> 8);
        p += <usize>(r & 0xff);
        if ((r & 0xff) == 0 || hc < 0) return DEDUP_MALFORMED;
        idLen = -1;
        for (let j: i32 = 0; j < hc; j++) {
          r = rv(p, recEnd);
          const nl = <i32>(r >> 8);
          p += <usize>(r & 0xff);
          if ((r & 0xff) == 0 || nl < 0 || <usize>nl > recEnd - p) return DEDUP_MALFORMED;
          const np = p;
          p += <usize>nl;
          r = rv(p, recEnd);
          const vl = <i32>(r >> 8);
          p += <usize>(r & 0xff);
          if ((r & 0xff) == 0 || vl < -1 || <usize>max(vl, 0) > recEnd - p) return DEDUP_MALFORMED;
          if (nl == nameLen && bytesEqual(np, name, <usize>nl)) { idPos = p; idLen = vl; break; }
          p += <usize>max(vl, 0);
        }
      }
    }
    if (idLen < 0) {
      store<u8>(flags + <usize>i, FLAG_NO_IDENTITY);
      none++;
    } else {
      store<u64>(hashes + ((<usize>m) << 3), xxh64Short(idPos, <usize>idLen, 0) & mask);
      store<f64>(times + ((<usize>m) << 3), <f64>(firstTs + tsDelta));
      store<u32>(idx + ((<usize>m) << 2), <u32>i);
      m++;
    }
    p = recEnd;
  }
  if (p != end) return DEDUP_MALFORMED;
  skipped = none;
  // With every record checked, key i is record i: no index table to read.
  return checkInsertRun(w, hashes, times, 0, m, flags, 0, none == 0 ? 0 : idx);
}

/**
 * dedupBatch for a batch whose layout tables from the encoder are at hand
 * (RecordBatchEncoder's batchLayout input and output for this batch: desc,
 * per record tsDeltaLo, tsDeltaHi, keyLen, valueLen, headerCount, then
 * nameLen, valueLen per header; pos, per record the key and value positions,
 * then each header's name and value positions, relative to batch). The
 * identities are found from the tables instead of by decoding varints; the
 * result and the window's updates are exactly dedupBatch's. Returns
 * DEDUP_MALFORMED when an identity would lie outside [batch, batch + size).
 */
export function dedupLayout(
  w: usize, batch: usize, size: i32, desc: usize, pos: usize, mode: i32, name: usize, nameLen: i32,
  maskLo: u32, maskHi: u32, scratch: usize, flags: usize,
): i32 {
  skipped = 0;
  if (size < 61) return DEDUP_MALFORMED;
  const n = <i32>loadBE32(batch + 57);
  if (n < 0 || n > (size - 61)) return DEDUP_MALFORMED;
  const firstTs: i64 = (<i64>loadBE32(batch + 27) << 32) | <i64>loadBE32(batch + 31);
  const mask: u64 = (<u64>maskHi << 32) | <u64>maskLo;
  const limit = <usize>size;
  const hashes = scratch;
  const times = scratch + ((<usize>n) << 3);
  const idx = scratch + ((<usize>n) << 4);
  let d = desc;
  let q = pos;
  let m: i32 = 0;
  let none: i32 = 0;
  for (let i: i32 = 0; i < n; i++) {
    const tsDelta = (<i64>load<i32>(d, 4) << 32) | <i64>load<u32>(d);
    const keyLen = load<i32>(d, 8);
    const hc = load<i32>(d, 16);
    if (hc < 0) return DEDUP_MALFORMED;
    let idPos = <usize>load<u32>(q);
    let idLen = keyLen;
    if (mode == DEDUP_BY_VALUE) {
      idPos = <usize>load<u32>(q, 4);
      idLen = load<i32>(d, 12);
    } else if (mode == DEDUP_BY_HEADER) {
      idLen = -1;
      for (let j: i32 = 0; j < hc; j++) {
        const hd = d + 20 + (<usize>j << 3);
        const hq = q + 8 + (<usize>j << 3);
        const nl = load<i32>(hd);
        const np = <usize>load<u32>(hq);
        if (nl != nameLen || nl < 0 || np + <usize>nl > limit) continue;
        if (bytesEqual(batch + np, name, <usize>nl)) { idPos = <usize>load<u32>(hq, 4); idLen = load<i32>(hd, 4); break; }
      }
    } else if (mode == DEDUP_BY_CONTENT) {
      // From the key length varint to the record's end: after the last
      // header value, or after the value and the header count (0: one byte).
      idPos -= sizeVarint(keyLen);
      let end: usize;
      if (hc == 0) end = <usize>load<u32>(q, 4) + <usize>max(load<i32>(d, 12), 0) + 1;
      else {
        const last = <usize>(hc - 1) << 3;
        end = <usize>load<u32>(q + 12 + last) + <usize>max(load<i32>(d + 24 + last), 0);
      }
      idLen = <i32>(end - idPos);
    }
    if (idLen < 0) {
      store<u8>(flags + <usize>i, FLAG_NO_IDENTITY);
      none++;
    } else {
      if (idPos + <usize>idLen > limit) return DEDUP_MALFORMED;
      store<u64>(hashes + ((<usize>m) << 3), xxh64Short(batch + idPos, <usize>idLen, 0) & mask);
      store<f64>(times + ((<usize>m) << 3), <f64>(firstTs + tsDelta));
      store<u32>(idx + ((<usize>m) << 2), <u32>i);
      m++;
    }
    d += 20 + (<usize>hc << 3);
    q += 8 + (<usize>hc << 3);
  }
  skipped = none;
  // With every record checked, key i is record i: no index table to read.
  return checkInsertRun(w, hashes, times, 0, m, flags, 0, none == 0 ? 0 : idx);
}
