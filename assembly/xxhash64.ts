// xxHash64 (Yann Collet's XXH64), equal to the reference implementation.
// Results are written to memory as u64 (little-endian), never returned as
// i64, so no BigInt crosses the boundary.

const P1: u64 = 0x9E3779B185EBCA87;
const P2: u64 = 0xC2B2AE3D27D4EB4F;
const P3: u64 = 0x165667B19E3779F9;
const P4: u64 = 0x85EBCA77C2B2AE63;
const P5: u64 = 0x27D4EB2F165667C5;

@inline function round(acc: u64, input: u64): u64 {
  acc += input * P2;
  acc = rotl<u64>(acc, 31);
  return acc * P1;
}

@inline function mergeRound(acc: u64, val: u64): u64 {
  acc ^= round(0, val);
  return acc * P1 + P4;
}

/** The last < 32 bytes of [p, end) mixed into h, then the final avalanche. */
@inline function finish(h: u64, p: usize, end: usize): u64 {
  while (p + 8 <= end) {
    h ^= round(0, load<u64>(p));
    h = rotl<u64>(h, 27) * P1 + P4;
    p += 8;
  }
  if (p + 4 <= end) {
    h ^= <u64>load<u32>(p) * P1;
    h = rotl<u64>(h, 23) * P2 + P3;
    p += 4;
  }
  while (p < end) {
    h ^= <u64>load<u8>(p) * P5;
    h = rotl<u64>(h, 11) * P1;
    p++;
  }
  h ^= h >> 33;
  h *= P2;
  h ^= h >> 29;
  h *= P3;
  h ^= h >> 32;
  return h;
}

export function xxh64(p: usize, len: usize, seed: u64): u64 {
  const end = p + len;
  let h: u64;
  if (len >= 32) {
    const limit = end - 32;
    let v1 = seed + P1 + P2;
    let v2 = seed + P2;
    let v3 = seed;
    let v4 = seed - P1;
    do {
      v1 = round(v1, load<u64>(p));
      v2 = round(v2, load<u64>(p, 8));
      v3 = round(v3, load<u64>(p, 16));
      v4 = round(v4, load<u64>(p, 24));
      p += 32;
    } while (p <= limit);
    h = rotl<u64>(v1, 1) + rotl<u64>(v2, 7) + rotl<u64>(v3, 12) + rotl<u64>(v4, 18);
    h = mergeRound(h, v1);
    h = mergeRound(h, v2);
    h = mergeRound(h, v3);
    h = mergeRound(h, v4);
  } else {
    h = seed + P5;
  }
  h += <u64>len;
  return finish(h, p, end);
}

/**
 * xxh64 for the short inputs dedup identities usually are (under 32 bytes:
 * no stripe loop), inlined into the caller's loop; longer inputs go to xxh64.
 * Same result as xxh64.
 */
@inline export function xxh64Short(p: usize, len: usize, seed: u64): u64 {
  if (len >= 32) return xxh64(p, len, seed);
  const end = p + len;
  let h = seed + P5 + <u64>len;
  return finish(h, p, end);
}

/** Hash of [p, p+len) with seed (lo, hi), stored as u64 at out. */
export function xxh64Into(p: usize, len: usize, seedLo: u32, seedHi: u32, out: usize): void {
  store<u64>(out, xxh64(p, len, (<u64>seedHi << 32) | <u64>seedLo));
}

/**
 * Hashes n keys laid out back to back from data; offsets holds n + 1 u32
 * positions relative to data (key i = [offsets[i], offsets[i+1])). Writes n
 * u64 hashes to out.
 */
export function xxh64Many(data: usize, offsets: usize, n: i32, seedLo: u32, seedHi: u32, out: usize): void {
  const seed = (<u64>seedHi << 32) | <u64>seedLo;
  let start = load<u32>(offsets);
  for (let i: i32 = 0; i < n; i++) {
    const next = load<u32>(offsets + ((<usize>(i + 1)) << 2));
    store<u64>(out + ((<usize>i) << 3), xxh64Short(data + <usize>start, <usize>(next - start), seed));
    start = next;
  }
}

/**
 * Hashes n keys of `width` bytes each, laid out back to back from data
 * (fixed-width ids: UUIDs, message ids). Writes n u64 hashes to out.
 */
export function xxh64Fixed(data: usize, width: u32, n: i32, seedLo: u32, seedHi: u32, out: usize): void {
  const seed = (<u64>seedHi << 32) | <u64>seedLo;
  let p = data;
  for (let i: i32 = 0; i < n; i++) {
    store<u64>(out + ((<usize>i) << 3), xxh64Short(p, <usize>width, seed));
    p += <usize>width;
  }
}
