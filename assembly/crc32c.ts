// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78).
//
// Two kernels. From SHORT_FOLD_MIN_BYTES (512 B): folding by a sparse
// multiple of the polynomial in wasm SIMD (below), which leaves 418-433 bytes
// for the table kernel. Below that, the table kernel alone:
// three interleaved slicing-by-8 streams over 1 KiB blocks, combined
// with precomputed "advance over zeros" operators, then three streams over
// 128-byte blocks, then slicing-by-8 for the remaining < 384 bytes. Interleaving hides table-load latency (see
// docs/wasm-boundary.md for measured figures). All state lives in static
// tables built once by the module's start function.
//
// The register convention is the usual one: callers pass and receive the
// finalised CRC (0 for a fresh computation); internally the register holds
// the complement.

const POLY: u32 = 0x82f63b78;
const BLOCK: usize = 1024;
const SMALL_BLOCK: usize = 128;

// 8 slicing tables of 256 u32 each.
const SLICE: usize = memory.data(8 * 256 * 4, 64);
// Shift operators: advance a raw register over BLOCK and 2*BLOCK zero bytes,
// each as 4 tables of 256 u32 (one per register byte).
const SHIFT1: usize = memory.data(4 * 256 * 4, 64);
const SHIFT2: usize = memory.data(4 * 256 * 4, 64);
// The same for SMALL_BLOCK and 2 * SMALL_BLOCK.
const SHIFT1S: usize = memory.data(4 * 256 * 4, 64);
const SHIFT2S: usize = memory.data(4 * 256 * 4, 64);

@inline function tab(t: usize, i: u32): u32 {
  return load<u32>(SLICE + (t << 10) + ((<usize>i) << 2));
}

function buildTables(): void {
  for (let i: u32 = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = (c & 1) ? (c >>> 1) ^ POLY : c >>> 1;
    store<u32>(SLICE + ((<usize>i) << 2), c);
  }
  for (let t: usize = 1; t < 8; t++) {
    for (let i: u32 = 0; i < 256; i++) {
      const prev = tab(t - 1, i);
      store<u32>(SLICE + (t << 10) + ((<usize>i) << 2), (prev >>> 8) ^ tab(0, prev & 0xff));
    }
  }
  buildShift(SHIFT1, BLOCK);
  buildShift(SHIFT2, 2 * BLOCK);
  buildShift(SHIFT1S, SMALL_BLOCK);
  buildShift(SHIFT2S, 2 * SMALL_BLOCK);
}

// Raw register advanced over n zero bytes (linear over GF(2)).
function zeroAdvance(reg: u32, n: usize): u32 {
  let c = reg;
  for (let i: usize = 0; i < n; i++) c = tab(0, c & 0xff) ^ (c >>> 8);
  return c;
}

function buildShift(dst: usize, n: usize): void {
  // The operator is linear: image of each basis bit, then tables by byte.
  const basis = memory.data(32 * 4, 16);
  for (let b: u32 = 0; b < 32; b++) store<u32>(basis + ((<usize>b) << 2), zeroAdvance(<u32>1 << b, n));
  for (let byte: usize = 0; byte < 4; byte++) {
    for (let v: u32 = 0; v < 256; v++) {
      let acc: u32 = 0;
      for (let bit: u32 = 0; bit < 8; bit++) {
        if (v & (<u32>1 << bit)) acc ^= load<u32>(basis + ((byte * 8 + <usize>bit) << 2));
      }
      store<u32>(dst + (byte << 10) + ((<usize>v) << 2), acc);
    }
  }
}

@inline function shift(op: usize, c: u32): u32 {
  return load<u32>(op + ((<usize>(c & 0xff)) << 2))
    ^ load<u32>(op + 1024 + ((<usize>((c >>> 8) & 0xff)) << 2))
    ^ load<u32>(op + 2048 + ((<usize>((c >>> 16) & 0xff)) << 2))
    ^ load<u32>(op + 3072 + ((<usize>(c >>> 24)) << 2));
}

@inline function step8(c: u32, p: usize): u32 {
  const a = load<u32>(p) ^ c;
  const b = load<u32>(p, 4);
  return load<u32>(SLICE + 7168 + ((<usize>(a & 0xff)) << 2))
    ^ load<u32>(SLICE + 6144 + ((<usize>((a >>> 8) & 0xff)) << 2))
    ^ load<u32>(SLICE + 5120 + ((<usize>((a >>> 16) & 0xff)) << 2))
    ^ load<u32>(SLICE + 4096 + ((<usize>(a >>> 24)) << 2))
    ^ load<u32>(SLICE + 3072 + ((<usize>(b & 0xff)) << 2))
    ^ load<u32>(SLICE + 2048 + ((<usize>((b >>> 8) & 0xff)) << 2))
    ^ load<u32>(SLICE + 1024 + ((<usize>((b >>> 16) & 0xff)) << 2))
    ^ load<u32>(SLICE + ((<usize>(b >>> 24)) << 2));
}

/**
 * Three streams over consecutive blocks of `block` bytes: stream 0 continues
 * the register, streams 1 and 2 start from 0, and the results are combined by
 * advancing each over the zeros that follow it. `block` is a constant at
 * every call site (inlined), so the loop bounds fold.
 */
@inline function threeStreams(c: u32, p: usize, block: usize, op1: usize, op2: usize): u32 {
  let c1: u32 = 0;
  let c2: u32 = 0;
  const end = p + block;
  let q = p;
  while (q < end) {
    c = step8(c, q);
    c1 = step8(c1, q + block);
    c2 = step8(c2, q + 2 * block);
    q += 8;
  }
  return shift(op2, c) ^ shift(op1, c1) ^ c2;
}

/** Raw-register CRC update (no pre/post complement). */
export function crc32cRaw(reg: u32, ptr: usize, len: usize): u32 {
  let c = reg;
  let p = ptr;
  let n = len;
  while (n >= 3 * BLOCK) {
    c = threeStreams(c, p, BLOCK, SHIFT1, SHIFT2);
    p += 3 * BLOCK;
    n -= 3 * BLOCK;
  }
  while (n >= 3 * SMALL_BLOCK) {
    c = threeStreams(c, p, SMALL_BLOCK, SHIFT1S, SHIFT2S);
    p += 3 * SMALL_BLOCK;
    n -= 3 * SMALL_BLOCK;
  }
  while (n >= 8) {
    c = step8(c, p);
    p += 8;
    n -= 8;
  }
  while (n > 0) {
    c = tab(0, (c ^ <u32>load<u8>(p)) & 0xff) ^ (c >>> 8);
    p++;
    n--;
  }
  return c;
}

// ---------------------------------------------------------------------------
// Folding by a sparse multiple of the polynomial.
//
// P(x) = x^32 + 0x1EDC6F41 divides the weight-6 polynomial
//   F(x) = x^209 + x^144 + x^54 + x^39 + x^14 + 1
// (found by search; it exists because CRC-32C has Hamming distance 8 only up
// to 177 data bits). Over GF(2) squaring is linear, so P also divides
// F(x)^(2^k) = F(x^(2^k)) for every k.
//
// In the reflected bit order a message byte further on carries a lower
// power of x: moving bits d bytes on divides them by x^(8d). With y = x^(8s),
// y^209 = y^144 + y^54 + y^39 + y^14 + 1 (mod P) says that any run of bytes
// may be moved, unchanged, onto the bytes 65s, 155s, 170s, 195s and 209s
// further on (xored there) without changing the CRC, as long as those lie
// inside the message. Two strides are used:
//
// - s = 16 (whole 128-bit words), over the caller's bytes (never written),
//   for inputs from FOLD_MIN_BYTES (8 KiB):
//   W_j = M_j ^ W_{j-65} ^ W_{j-155} ^ W_{j-170} ^ W_{j-195} ^ W_{j-209},
//   computed into a scratch history; every word but the last 209 is folded
//   away. The same recurrence, with those last 209 words read as zero where
//   they would be sources, gives the 3344-byte tail (the last 209 words plus
//   what the folded words moved onto them) in scratch memory. Per 16 bytes:
//   6 aligned loads, 5 xors and a store, no table lookups.
// - s = 2 over that tail, or over a copy of an input of 512 B to 8 KiB, in
//   scratch memory: the same recurrence by 16-byte blocks with sources 130,
//   310, 340, 390 and 418 bytes back (out of place: W values in a second
//   scratch area preceded by 418 zero bytes), every block folded whose
//   targets all lie inside; then the 418-433 bytes left get what was folded
//   onto them. The sources of a block were stored at least 8 blocks
//   earlier, so the unaligned loads do not wait on stores still in flight
//   (measured slower at 1-16 KiB: strides 1 and 4, up to 1.7x the time;
//   xoring each block onto its targets in place, up to 3x).
// - The table kernel above on what is left.

const FOLD_WORDS: usize = 209;            // degree of F: words kept as the tail
const FOLD_CHUNK: usize = 1024;           // words folded per pass over the scratch
// Scratch: FOLD_WORDS words of history (W values) followed by FOLD_CHUNK new ones.
const FOLD_SCRATCH: usize = memory.data(<i32>((FOLD_WORDS + FOLD_CHUNK) * 16), 16);
/** Inputs at least this long are folded by 128-bit words first. */
export const FOLD_MIN_BYTES: usize = 8192;
/** Inputs at least this long (and below FOLD_MIN_BYTES) are copied into scratch memory and folded by 2 bytes; shorter ones use the table kernel only. */
export const SHORT_FOLD_MIN_BYTES: usize = 512;
// The 128-bit tail, or a copy of a shorter input (plus 16 bytes the last block may run past it), folded by 2 bytes.
const FOLD_TAIL: usize = memory.data(<i32>((FOLD_MIN_BYTES > FOLD_WORDS * 16 ? FOLD_MIN_BYTES : FOLD_WORDS * 16) + 16), 16);


/** T[k] ^ W[k-130] ^ W[k-310] ^ W[k-340] ^ W[k-390] ^ W[k-418] for the 16 bytes at t (w: W at the same offset). */
@inline function pull2At(t: usize, w: usize): v128 {
  return v128.xor(
    v128.xor(v128.load(t), v128.load(w - 130)),
    v128.xor(
      v128.xor(v128.load(w - 310), v128.load(w - 340)),
      v128.xor(v128.load(w - 390), v128.load(w - 418))));
}

/** Stride 2, folded bytes: W[k] = pull2At(k) for the 16-byte blocks k of [t, end). */
function pull2(t: usize, w: usize, end: usize): void {
  while (t < end) {
    v128.store(w, pull2At(t, w));
    t += 16;
    w += 16;
  }
}

/** Stride 2, the rest: T[j] = pull2At(j) in place for the 16-byte blocks j of [t, end) (W zero from the folded length on). */
function pull2Rest(t: usize, w: usize, end: usize): void {
  while (t < end) {
    v128.store(t, pull2At(t, w));
    t += 16;
    w += 16;
  }
}

// W values of the in-place folds, after FOLD_W_PRE zero bytes that are never written (W before the start is zero).
const FOLD_W_PRE: usize = 209 * 2;
const FOLD_W: usize = memory.data(<i32>(FOLD_W_PRE + FOLD_MIN_BYTES + 16), 16);

/**
 * Raw CRC (zero register) of the len bytes at t (FOLD_TAIL: it is
 * overwritten, and up to 15 bytes past len too): the fold with a stride of 2
 * bytes, then the table kernel on the 418 to 433 bytes left.
 */
function foldInPlaceRaw(t: usize, len: usize): u32 {
  const span: usize = 209 * 2;
  if (len < span + 16) return crc32cRaw(0, t, len);
  const folded = ((len - span) >> 4) << 4;
  const w = FOLD_W + FOLD_W_PRE;
  // W past the folded bytes reads as zero for the rest.
  memory.fill(w + folded, 0, len - folded);
  pull2(t, w, t + folded);
  pull2Rest(t + folded, w + folded, t + len);
  return crc32cRaw(0, t + folded, len - folded);
}

/** Raw-register CRC of SHORT_FOLD_MIN_BYTES <= len < FOLD_MIN_BYTES bytes: a copy folded in place. */
function crc32cShortFoldRaw(reg: u32, ptr: usize, len: usize): u32 {
  memory.copy(FOLD_TAIL, ptr, len);
  // A register value equals the same bytes xored into the first 4 message bytes with a zero register.
  store<u32>(FOLD_TAIL, load<u32>(FOLD_TAIL) ^ reg);
  return foldInPlaceRaw(FOLD_TAIL, len);
}

/**
 * M_j ^ W_{j-209} ^ W_{j-195} ^ W_{j-170} ^ W_{j-155} ^ W_{j-65} for the word
 * at src, whose sources sit in the history at h + e*16 for the exponents
 * e = 0, 14, 39, 54, 144 of F (wasm offsets are unsigned).
 */
@inline function fold16At(src: usize, h: usize): v128 {
  return v128.xor(
    v128.xor(v128.load(src), v128.load(h, 144 * 16)),
    v128.xor(
      v128.xor(v128.load(h, 54 * 16), v128.load(h, 39 * 16)),
      v128.xor(v128.load(h, 14 * 16), v128.load(h))));
}

/** Raw-register CRC of len >= FOLD_MIN_BYTES bytes by folding (see above). */
function crc32cFoldRaw(reg: u32, ptr: usize, len: usize): u32 {
  // The head (len mod 16 bytes) goes first through the table kernel, so the
  // remaining words end exactly at the end of the message.
  const head = len & 15;
  const c = crc32cRaw(reg, ptr, head);
  let src = ptr + head;
  const words = len >> 4;
  // A register value equals the same bytes xored into the first 4 message
  // bytes with a zero register.
  let folded = words - FOLD_WORDS;
  memory.fill(FOLD_SCRATCH, 0, FOLD_WORDS << 4);
  let first = true;
  while (folded > 0) {
    const count = folded < FOLD_CHUNK ? folded : FOLD_CHUNK;
    // h walks the history: W_j is stored at h + 209*16 and its sources
    // W_{j-209}, W_{j-195}, W_{j-170}, W_{j-155}, W_{j-65} sit at h + e*16 for
    // the exponents e = 0, 14, 39, 54, 144 of F (wasm offsets are unsigned).
    let h = FOLD_SCRATCH;
    const end = h + (count << 4);
    if (first) {
      // The register enters as the first 4 message bytes xored with it.
      const m = v128.xor(v128.load(src), i32x4.replace_lane(i32x4.splat(0), 0, <i32>c));
      const s = v128.xor(
        v128.xor(v128.load(h, 144 * 16), v128.load(h, 54 * 16)),
        v128.xor(v128.load(h, 39 * 16), v128.xor(v128.load(h, 14 * 16), v128.load(h))));
      v128.store(h, v128.xor(m, s), 209 * 16);
      h += 16;
      src += 16;
      first = false;
    }
    while (h < end) {
      v128.store(h, fold16At(src, h), 209 * 16);
      h += 16;
      src += 16;
    }
    // Keep the last FOLD_WORDS W values as history for the next pass.
    memory.copy(FOLD_SCRATCH, FOLD_SCRATCH + (count << 4), FOLD_WORDS << 4);
    folded -= count;
  }
  // Tail: the last FOLD_WORDS message words plus what the folded words moved
  // onto them, by the same recurrence with the tail's own (unfolded) words
  // read as zero: the history holds the last 209 W values, followed by 209
  // zero words.
  memory.fill(FOLD_SCRATCH + (FOLD_WORDS << 4), 0, FOLD_WORDS << 4);
  let h = FOLD_SCRATCH;
  let t = FOLD_TAIL;
  const tailEnd = FOLD_TAIL + (FOLD_WORDS << 4);
  while (t < tailEnd) {
    v128.store(t, fold16At(src, h));
    h += 16;
    t += 16;
    src += 16;
  }
  return foldInPlaceRaw(FOLD_TAIL, FOLD_WORDS << 4);
}

/** CRC-32C of [ptr, ptr+len) continuing from a finalised crc (0 to start). */
export function crc32c(ptr: usize, len: usize, crc: u32): u32 {
  if (len >= FOLD_MIN_BYTES) return ~crc32cFoldRaw(~crc, ptr, len);
  if (len >= SHORT_FOLD_MIN_BYTES) return ~crc32cShortFoldRaw(~crc, ptr, len);
  return ~crc32cRaw(~crc, ptr, len);
}

/** The table kernel alone (no folding), exported for tests and the bench. */
export function crc32cTable(ptr: usize, len: usize, crc: u32): u32 {
  return ~crc32cRaw(~crc, ptr, len);
}

buildTables();
