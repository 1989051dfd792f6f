// Kafka time index search: 12-byte big-endian entries (i64 timestamp, u32
// relative offset), timestamps non-decreasing. Finds, for each target
// timestamp, the slot of the largest entry whose timestamp is <= target, or -1.
// Targets cross as f64 (milliseconds are exact below 2^53), so no BigInt.

const WARM_ENTRIES: i32 = 682; // 8184 bytes of 12-byte entries

@inline function ts(idx: usize, slot: i32): i64 {
  const p = idx + <usize>slot * 12;
  return <i64>bswap<u64>(load<u64>(p));
}

@inline function searchRange(idx: usize, lo: i32, n: i32, target: i64): i32 {
  let base = lo;
  let len = n;
  while (len > 1) {
    const half = len >>> 1;
    base = select<i32>(base + half, base, ts(idx, base + half) <= target);
    len -= half;
  }
  return select<i32>(base, -1, ts(idx, base) <= target);
}

export function timeIndexLookup(idx: usize, entries: i32, target: f64): i32 {
  // NaN and targets below the i64 range match nothing; fractions round down
  // (ts <= -1.5 means ts <= -2), and the conversion saturates above.
  if (entries <= 0 || !(target >= -9223372036854775808.0)) return -1;
  const t = <i64>Math.floor(target);
  const warm = max<i32>(0, entries - WARM_ENTRIES);
  if (ts(idx, warm) <= t) return searchRange(idx, warm, entries - warm, t);
  return searchRange(idx, 0, warm, t);
}

/** Batched lookups: targets are f64 (native order), results i32 slots. */
export function timeIndexLookupMany(idx: usize, entries: i32, targets: usize, n: i32, out: usize): void {
  for (let i: i32 = 0; i < n; i++) {
    store<i32>(out + ((<usize>i) << 2), timeIndexLookup(idx, entries, load<f64>(targets + ((<usize>i) << 3))));
  }
}
