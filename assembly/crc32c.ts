// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78).
//
// Kernel: three interleaved slicing-by-8 streams over 1 KiB blocks, combined
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

/** CRC-32C of [ptr, ptr+len) continuing from a finalised crc (0 to start). */
export function crc32c(ptr: usize, len: usize, crc: u32): u32 {
  return ~crc32cRaw(~crc, ptr, len);
}

buildTables();
