// Pure-TypeScript xxHash64 (XXH64) on 32-bit halves: the baseline the wasm
// kernel is measured against. JavaScript has no 64-bit integer arithmetic
// except BigInt, which allocates and is an order of magnitude slower, so
// every 64-bit value is a (hi, lo) pair of 32-bit words and the
// 64 x 64 -> 64 multiply is built from Math.imul plus a high-word product
// from 16-bit partial products (also Math.imul: no float conversions). Words are kept as signed
// int32 (`| 0`), never as uint32 (`>>> 0`): values above 2^31 are not small
// integers in V8. Every helper is a pure function of int32 arguments
// returning one int32 (V8 inlines them); there is no shared mutable state and
// no allocation per hash: results go to a caller's Uint32Array.

// Primes as (hi, lo) int32 words.
const P1H = 0x9e3779b1 | 0, P1L = 0x85ebca87 | 0;
const P2H = 0xc2b2ae3d | 0, P2L = 0x27d4eb4f | 0;
const P3H = 0x165667b1 | 0, P3L = 0x9e3779f9 | 0;
const P4H = 0x85ebca77 | 0, P4L = 0xc2b2ae63 | 0;
const P5H = 0x27d4eb2f | 0, P5L = 0x165667c5 | 0;
// 2^64 - P1 (P1L is not 0, so the high word is the complement).
const NEG_P1H = ~P1H, NEG_P1L = -P1L | 0;

/** High 32 bits of the unsigned 32 x 32 product (16-bit partial products, integer ops only). */
function mulHi32(a: number, b: number): number {
  const a0 = a & 0xffff, a1 = a >>> 16, b0 = b & 0xffff, b1 = b >>> 16;
  const p01 = Math.imul(a0, b1), p10 = Math.imul(a1, b0);
  const mid = (Math.imul(a0, b0) >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  return (Math.imul(a1, b1) + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16)) | 0;
}

/** High word of (ah, al) * (bh, bl) mod 2^64 (the low word is Math.imul(al, bl)). */
function mulH(ah: number, al: number, bh: number, bl: number): number {
  return (mulHi32(al, bl) + Math.imul(ah, bl) + Math.imul(al, bh)) | 0;
}

/** Carry out of al + bl (unsigned). */
function carry(al: number, bl: number): number {
  return ((al + bl) >>> 0) < (al >>> 0) ? 1 : 0;
}

function readU32(b: Uint8Array, i: number): number {
  return b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24);
}

// round(acc, input) = rotl(acc + input * P2, 31) * P1, as two functions
// (high and low word) sharing the same sub-expressions; V8 eliminates the
// common subexpressions after inlining.
function roundH(ah: number, al: number, ih: number, il: number): number {
  const tl = Math.imul(il, P2L), th = mulH(ih, il, P2H, P2L);
  const sl = (al + tl) | 0, sh = (ah + th + carry(al, tl)) | 0;
  const rh = (sh << 31) | (sl >>> 1), rl = (sl << 31) | (sh >>> 1);
  return mulH(rh, rl, P1H, P1L);
}
function roundL(ah: number, al: number, _ih: number, il: number): number {
  const tl = Math.imul(il, P2L);
  const sl = (al + tl) | 0;
  const sh = (ah + mulH(_ih, il, P2H, P2L) + carry(al, tl)) | 0;
  return Math.imul((sl << 31) | (sh >>> 1), P1L);
}

/**
 * XXH64 of b[off, off + len) with seed (seedHi, seedLo); writes the hash as
 * (lo, hi) to out[at], out[at + 1] (the little-endian u64 word order).
 */
export function xxh64Ts(b: Uint8Array, off: number, len: number, seedHi: number, seedLo: number, out: Uint32Array, at: number): void {
  let p = off;
  const end = off + len;
  seedHi |= 0; seedLo |= 0;
  let hh: number, hl: number;
  if (len >= 32) {
    // v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed, v4 = seed - P1
    const p12l = (P1L + P2L) | 0, p12h = (P1H + P2H + carry(P1L, P2L)) | 0;
    let v1l = (seedLo + p12l) | 0, v1h = (seedHi + p12h + carry(seedLo, p12l)) | 0;
    let v2l = (seedLo + P2L) | 0, v2h = (seedHi + P2H + carry(seedLo, P2L)) | 0;
    let v3l = seedLo, v3h = seedHi;
    let v4l = (seedLo + NEG_P1L) | 0, v4h = (seedHi + NEG_P1H + carry(seedLo, NEG_P1L)) | 0;
    const limit = end - 32;
    do {
      let ih = readU32(b, p + 4), il = readU32(b, p);
      let th = roundH(v1h, v1l, ih, il); v1l = roundL(v1h, v1l, ih, il); v1h = th;
      ih = readU32(b, p + 12); il = readU32(b, p + 8);
      th = roundH(v2h, v2l, ih, il); v2l = roundL(v2h, v2l, ih, il); v2h = th;
      ih = readU32(b, p + 20); il = readU32(b, p + 16);
      th = roundH(v3h, v3l, ih, il); v3l = roundL(v3h, v3l, ih, il); v3h = th;
      ih = readU32(b, p + 28); il = readU32(b, p + 24);
      th = roundH(v4h, v4l, ih, il); v4l = roundL(v4h, v4l, ih, il); v4h = th;
      p += 32;
    } while (p <= limit);
    // h = rotl(v1,1) + rotl(v2,7) + rotl(v3,12) + rotl(v4,18)
    hl = (v1l << 1) | (v1h >>> 31); hh = (v1h << 1) | (v1l >>> 31);
    let xl = (v2l << 7) | (v2h >>> 25), xh = (v2h << 7) | (v2l >>> 25);
    hh = (hh + xh + carry(hl, xl)) | 0; hl = (hl + xl) | 0;
    xl = (v3l << 12) | (v3h >>> 20); xh = (v3h << 12) | (v3l >>> 20);
    hh = (hh + xh + carry(hl, xl)) | 0; hl = (hl + xl) | 0;
    xl = (v4l << 18) | (v4h >>> 14); xh = (v4h << 18) | (v4l >>> 14);
    hh = (hh + xh + carry(hl, xl)) | 0; hl = (hl + xl) | 0;
    // mergeRound: h ^= round(0, v); h = h * P1 + P4
    for (let i = 0; i < 4; i++) {
      const vh = i === 0 ? v1h : i === 1 ? v2h : i === 2 ? v3h : v4h;
      const vl = i === 0 ? v1l : i === 1 ? v2l : i === 2 ? v3l : v4l;
      hh ^= roundH(0, 0, vh, vl); hl ^= roundL(0, 0, vh, vl);
      const ml = Math.imul(hl, P1L), mh = mulH(hh, hl, P1H, P1L);
      hh = (mh + P4H + carry(ml, P4L)) | 0; hl = (ml + P4L) | 0;
    }
  } else {
    hh = (seedHi + P5H + carry(seedLo, P5L)) | 0; hl = (seedLo + P5L) | 0;
  }
  // h += len (len < 2^32)
  hh = (hh + carry(hl, len)) | 0; hl = (hl + len) | 0;
  while (p + 8 <= end) {
    // h ^= round(0, lane); h = rotl(h, 27) * P1 + P4
    const ih = readU32(b, p + 4), il = readU32(b, p);
    hh ^= roundH(0, 0, ih, il); hl ^= roundL(0, 0, ih, il);
    const rh = (hh << 27) | (hl >>> 5), rl = (hl << 27) | (hh >>> 5);
    const ml = Math.imul(rl, P1L), mh = mulH(rh, rl, P1H, P1L);
    hh = (mh + P4H + carry(ml, P4L)) | 0; hl = (ml + P4L) | 0;
    p += 8;
  }
  if (p + 4 <= end) {
    // h ^= u32 * P1; h = rotl(h, 23) * P2 + P3
    const w = readU32(b, p);
    hh ^= mulH(0, w, P1H, P1L); hl ^= Math.imul(w, P1L);
    const rh = (hh << 23) | (hl >>> 9), rl = (hl << 23) | (hh >>> 9);
    const ml = Math.imul(rl, P2L), mh = mulH(rh, rl, P2H, P2L);
    hh = (mh + P3H + carry(ml, P3L)) | 0; hl = (ml + P3L) | 0;
    p += 4;
  }
  while (p < end) {
    // h ^= byte * P5; h = rotl(h, 11) * P1
    const v = b[p]!;
    hh ^= mulH(0, v, P5H, P5L); hl ^= Math.imul(v, P5L);
    const rh = (hh << 11) | (hl >>> 21), rl = (hl << 11) | (hh >>> 21);
    hh = mulH(rh, rl, P1H, P1L); hl = Math.imul(rl, P1L);
    p++;
  }
  // Avalanche: h ^= h >> 33; h *= P2; h ^= h >> 29; h *= P3; h ^= h >> 32.
  hl ^= hh >>> 1;
  let t = mulH(hh, hl, P2H, P2L); hl = Math.imul(hl, P2L); hh = t;
  hl ^= (hh << 3) | (hl >>> 29);
  hh ^= hh >>> 29;
  t = mulH(hh, hl, P3H, P3L); hl = Math.imul(hl, P3L); hh = t;
  hl ^= hh;
  out[at] = hl;
  out[at + 1] = hh;
}
