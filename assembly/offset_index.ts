// Kafka offset index search: 8-byte big-endian entries (u32 relative offset,
// u32 file position). Finds, for each target, the slot of the largest entry
// whose relative offset is <= target, or -1. Branchless binary search
// (select compiles to cmov). Like Kafka, the warm tail (the last 8 KiB of
// entries) is searched first when the target falls inside it, so lookups
// near the end of a log stay on hot pages.

const WARM_ENTRIES: i32 = 1024; // 8192 bytes of 8-byte entries

@inline function key(idx: usize, slot: i32): u32 {
  return bswap<u32>(load<u32>(idx + ((<usize>slot) << 3)));
}

@inline function searchRange(idx: usize, lo: i32, n: i32, target: u32): i32 {
  let base = lo;
  let len = n;
  while (len > 1) {
    const half = len >>> 1;
    base = select<i32>(base + half, base, key(idx, base + half) <= target);
    len -= half;
  }
  return select<i32>(base, -1, key(idx, base) <= target);
}

/** One lookup; entries must be sorted by relative offset. */
export function offsetIndexLookup(idx: usize, entries: i32, target: u32): i32 {
  if (entries <= 0) return -1;
  const warm = max<i32>(0, entries - WARM_ENTRIES);
  if (key(idx, warm) <= target) return searchRange(idx, warm, entries - warm, target);
  return searchRange(idx, 0, warm, target);
}

/** Batched lookups: targets are u32 (native order), results i32 slots. */
export function offsetIndexLookupMany(idx: usize, entries: i32, targets: usize, n: i32, out: usize): void {
  for (let i: i32 = 0; i < n; i++) {
    const off = (<usize>i) << 2;
    store<i32>(out + off, offsetIndexLookup(idx, entries, load<u32>(targets + off)));
  }
}
