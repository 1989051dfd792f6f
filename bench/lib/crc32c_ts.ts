// Pure-TypeScript CRC-32C (Castagnoli, reflected polynomial 0x82F63B78): the
// baselines the wasm kernel is measured against. Written to be as fast as
// plain TypeScript gets on V8, not to be short:
//
// - crc32cSlice16: slicing-by-16 (16 tables of 256 entries, one table load
//   per byte, 16 bytes per dependent step).
// - crc32cMulti: three independent slicing-by-8 streams over consecutive
//   blocks, combined with precomputed "advance over BLOCK zero bytes"
//   operators. Independent streams hide table-load latency, which is what
//   limits a single slicing chain. The tail uses slicing-by-16.
//
// Both read whole 32-bit words through an Int32Array view when the buffer
// is big enough for that to pay for creating the view (a typed-array view
// costs tens of nanoseconds); short buffers read bytes.
// Little-endian word reads are only used on little-endian hosts.

const POLY = 0x82f63b78;
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Tables: T[k * 256 + b] = CRC register after byte b followed by k zero bytes. */
const T = new Int32Array(16 * 256);
for (let i = 0; i < 256; i++) {
  let c = i;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
  T[i] = c;
}
for (let k = 1; k < 16; k++) {
  for (let i = 0; i < 256; i++) {
    const prev = T[(k - 1) * 256 + i]!;
    T[k * 256 + i] = (prev >>> 8) ^ T[prev & 0xff]!;
  }
}

/** Raw register advanced over n zero bytes, bit by table (setup only). */
function zeroAdvance(reg: number, n: number): number {
  let c = reg;
  for (let i = 0; i < n; i++) c = T[c & 0xff]! ^ (c >>> 8);
  return c;
}

/** The linear map "advance over n zero bytes" as 4 byte-indexed tables. */
function shiftOperator(n: number): Int32Array {
  const basis = new Int32Array(32);
  for (let b = 0; b < 32; b++) basis[b] = zeroAdvance((1 << b) >>> 0, n);
  const op = new Int32Array(4 * 256);
  for (let byte = 0; byte < 4; byte++) {
    for (let v = 0; v < 256; v++) {
      let acc = 0;
      for (let bit = 0; bit < 8; bit++) if (v & (1 << bit)) acc ^= basis[byte * 8 + bit]!;
      op[byte * 256 + v] = acc;
    }
  }
  return op;
}

/** Block size of one stream in crc32cMulti (bytes; a multiple of 16). */
export const MULTI_BLOCK = 2048;
const SHIFT1 = shiftOperator(MULTI_BLOCK);
const SHIFT2 = shiftOperator(2 * MULTI_BLOCK);
const WORD_VIEW_MIN = 256;

function applyShift(op: Int32Array, c: number): number {
  return op[c & 0xff]! ^ op[256 + ((c >>> 8) & 0xff)]! ^ op[512 + ((c >>> 16) & 0xff)]! ^ op[768 + (c >>> 24)]!;
}

/** Byte-wise CRC-32C (the textbook table loop), for reference and tails. */
export function crc32cBytewise(buf: Uint8Array, crc = 0): number {
  let c = ~crc;
  for (let i = 0; i < buf.length; i++) c = T[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** Slicing-by-16 over bytes [i, end) of buf from raw register c; returns the raw register. */
function slice16Bytes(buf: Uint8Array, i: number, end: number, c: number): number {
  const t = T;
  while (i + 16 <= end) {
    c = t[3840 + ((c ^ buf[i]!) & 0xff)]! ^ t[3584 + (((c >>> 8) ^ buf[i + 1]!) & 0xff)]!
      ^ t[3328 + (((c >>> 16) ^ buf[i + 2]!) & 0xff)]! ^ t[3072 + ((c >>> 24) ^ buf[i + 3]!)]!
      ^ t[2816 + buf[i + 4]!]! ^ t[2560 + buf[i + 5]!]! ^ t[2304 + buf[i + 6]!]! ^ t[2048 + buf[i + 7]!]!
      ^ t[1792 + buf[i + 8]!]! ^ t[1536 + buf[i + 9]!]! ^ t[1280 + buf[i + 10]!]! ^ t[1024 + buf[i + 11]!]!
      ^ t[768 + buf[i + 12]!]! ^ t[512 + buf[i + 13]!]! ^ t[256 + buf[i + 14]!]! ^ t[buf[i + 15]!]!;
    i += 16;
  }
  while (i < end) c = t[(c ^ buf[i++]!) & 0xff]! ^ (c >>> 8);
  return c;
}

/** Slicing-by-16 over words [w, wEnd) of a little-endian Int32Array view; returns the raw register. */
function slice16Words(words: Int32Array, w: number, wEnd: number, c: number): number {
  const t = T;
  while (w + 4 <= wEnd) {
    const a = words[w]! ^ c;
    const b = words[w + 1]!;
    const d = words[w + 2]!;
    const e = words[w + 3]!;
    c = t[3840 + (a & 0xff)]! ^ t[3584 + ((a >>> 8) & 0xff)]! ^ t[3328 + ((a >>> 16) & 0xff)]! ^ t[3072 + (a >>> 24)]!
      ^ t[2816 + (b & 0xff)]! ^ t[2560 + ((b >>> 8) & 0xff)]! ^ t[2304 + ((b >>> 16) & 0xff)]! ^ t[2048 + (b >>> 24)]!
      ^ t[1792 + (d & 0xff)]! ^ t[1536 + ((d >>> 8) & 0xff)]! ^ t[1280 + ((d >>> 16) & 0xff)]! ^ t[1024 + (d >>> 24)]!
      ^ t[768 + (e & 0xff)]! ^ t[512 + ((e >>> 8) & 0xff)]! ^ t[256 + ((e >>> 16) & 0xff)]! ^ t[e >>> 24]!;
    w += 4;
  }
  return c;
}

/** Number of leading bytes to process one at a time so that word reads are 4-aligned. */
function alignLead(buf: Uint8Array): number {
  return (4 - (buf.byteOffset & 3)) & 3;
}

/** CRC-32C by slicing-by-16, continuing from crc (0 to start). */
export function crc32cSlice16(buf: Uint8Array, crc = 0): number {
  const len = buf.length;
  let c = ~crc;
  if (len < WORD_VIEW_MIN || !LITTLE_ENDIAN) return ~slice16Bytes(buf, 0, len, c) >>> 0;
  const lead = alignLead(buf);
  c = slice16Bytes(buf, 0, lead, c);
  const nWords = ((len - lead) >>> 4) << 2;
  const words = new Int32Array(buf.buffer, buf.byteOffset + lead, nWords);
  c = slice16Words(words, 0, nWords, c);
  return ~slice16Bytes(buf, lead + nWords * 4, len, c) >>> 0;
}

/**
 * CRC-32C with three interleaved slicing-by-8 streams over MULTI_BLOCK-byte
 * blocks (word reads), slicing-by-16 for the rest. Continues from crc.
 */
export function crc32cMulti(buf: Uint8Array, crc = 0): number {
  const len = buf.length;
  let c = ~crc;
  if (len < 3 * MULTI_BLOCK || !LITTLE_ENDIAN) return ~slice16Bytes(buf, 0, len, c) >>> 0;
  const lead = alignLead(buf);
  c = slice16Bytes(buf, 0, lead, c);
  const nWords = (len - lead) >>> 2;
  const words = new Int32Array(buf.buffer, buf.byteOffset + lead, nWords);
  const t = T;
  const blockWords = MULTI_BLOCK >>> 2;
  let w = 0;
  while (w + 3 * blockWords <= nWords) {
    let c1 = 0;
    let c2 = 0;
    const end = w + blockWords;
    for (let q = w; q < end; q += 2) {
      const a0 = words[q]! ^ c;
      const b0 = words[q + 1]!;
      const a1 = words[q + blockWords]! ^ c1;
      const b1 = words[q + blockWords + 1]!;
      const a2 = words[q + 2 * blockWords]! ^ c2;
      const b2 = words[q + 2 * blockWords + 1]!;
      c = t[1792 + (a0 & 0xff)]! ^ t[1536 + ((a0 >>> 8) & 0xff)]! ^ t[1280 + ((a0 >>> 16) & 0xff)]! ^ t[1024 + (a0 >>> 24)]!
        ^ t[768 + (b0 & 0xff)]! ^ t[512 + ((b0 >>> 8) & 0xff)]! ^ t[256 + ((b0 >>> 16) & 0xff)]! ^ t[b0 >>> 24]!;
      c1 = t[1792 + (a1 & 0xff)]! ^ t[1536 + ((a1 >>> 8) & 0xff)]! ^ t[1280 + ((a1 >>> 16) & 0xff)]! ^ t[1024 + (a1 >>> 24)]!
        ^ t[768 + (b1 & 0xff)]! ^ t[512 + ((b1 >>> 8) & 0xff)]! ^ t[256 + ((b1 >>> 16) & 0xff)]! ^ t[b1 >>> 24]!;
      c2 = t[1792 + (a2 & 0xff)]! ^ t[1536 + ((a2 >>> 8) & 0xff)]! ^ t[1280 + ((a2 >>> 16) & 0xff)]! ^ t[1024 + (a2 >>> 24)]!
        ^ t[768 + (b2 & 0xff)]! ^ t[512 + ((b2 >>> 8) & 0xff)]! ^ t[256 + ((b2 >>> 16) & 0xff)]! ^ t[b2 >>> 24]!;
    }
    c = applyShift(SHIFT2, c) ^ applyShift(SHIFT1, c1) ^ c2;
    w += 3 * blockWords;
  }
  const rest = (nWords - w) & ~3;
  c = slice16Words(words, w, w + rest, c);
  return ~slice16Bytes(buf, lead + (w + rest) * 4, len, c) >>> 0;
}

// Folding by a sparse multiple of the polynomial, the same method as the
// wasm kernel (assembly/crc32c.ts explains it): y^209 = y^144 + y^54 + y^39 +
// y^14 + 1 (mod P) with y = x^128, so every 16-byte word but the last 209 is
// xored onto the words 65, 155, 170, 195 and 209 after it, and only a
// 3344-byte tail goes through the tables. Plain TypeScript has no 128-bit
// type, so each word is four Int32 lanes.
const FOLD_WORDS = 209;
const FOLD_CHUNK = 1024;
const FOLD_MIN = 8192;
const foldScratch = new Int32Array((FOLD_WORDS + FOLD_CHUNK) * 4);
const foldTail = new Int32Array(FOLD_WORDS * 4);

/** CRC-32C by folding (from 8 KiB, 4-aligned data; crc32cMulti otherwise), continuing from crc. */
export function crc32cFold(buf: Uint8Array, crc = 0): number {
  const len = buf.length;
  const head = len & 15;
  if (len < FOLD_MIN || !LITTLE_ENDIAN || ((buf.byteOffset + head) & 3) !== 0) return crc32cMulti(buf, crc);
  const c = slice16Bytes(buf, 0, head, ~crc);
  const nWords = (len - head) >>> 2;
  const m = new Int32Array(buf.buffer, buf.byteOffset + head, nWords);
  const s = foldScratch;
  s.fill(0, 0, FOLD_WORDS * 4);
  let src = 0;
  let folded = (nWords >>> 2) - FOLD_WORDS;
  let first = true;
  while (folded > 0) {
    const count = folded < FOLD_CHUNK ? folded : FOLD_CHUNK;
    const end = count * 4;
    let h = 0;
    if (first) {
      // The register enters xored into the first 4 message bytes.
      for (let l = 0; l < 4; l++) s[836 + l] = (l === 0 ? m[l]! ^ c : m[l]!) ^ s[576 + l]! ^ s[216 + l]! ^ s[156 + l]! ^ s[56 + l]! ^ s[l]!;
      h = 4;
      src = 4;
      first = false;
    }
    for (; h < end; h += 4, src += 4) {
      s[h + 836] = m[src]! ^ s[h + 576]! ^ s[h + 216]! ^ s[h + 156]! ^ s[h + 56]! ^ s[h]!;
      s[h + 837] = m[src + 1]! ^ s[h + 577]! ^ s[h + 217]! ^ s[h + 157]! ^ s[h + 57]! ^ s[h + 1]!;
      s[h + 838] = m[src + 2]! ^ s[h + 578]! ^ s[h + 218]! ^ s[h + 158]! ^ s[h + 58]! ^ s[h + 2]!;
      s[h + 839] = m[src + 3]! ^ s[h + 579]! ^ s[h + 219]! ^ s[h + 159]! ^ s[h + 59]! ^ s[h + 3]!;
    }
    s.copyWithin(0, end, end + FOLD_WORDS * 4);
    folded -= count;
  }
  const t = foldTail;
  t.set(m.subarray(src, src + FOLD_WORDS * 4));
  for (const dist of [65, 155, 170, 195, 209]) {
    const from = (FOLD_WORDS - dist) * 4;
    for (let k = 0; k < dist * 4; k++) t[k] ^= s[from + k]!;
  }
  return ~slice16Words(t, 0, FOLD_WORDS * 4, 0) >>> 0;
}
