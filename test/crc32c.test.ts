// CRC-32C kernel (assembly/crc32c.ts) through Crc32c: published vectors,
// agreement with a bytewise reference on every code path of the kernel
// (folding by 128-bit words from 8 KiB: head, first word, 1024-word passes,
// the tail; folding by 2 bytes from 512 B and of that tail: folded blocks,
// the 418-433 bytes left, the last block past the end; the table kernel:
// 3 x 1 KiB interleaved blocks, slicing-by-8, byte tail), unaligned input,
// chaining, and data already in wasm memory.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { getKernelsSync } from '../src/kernels.js';
import { Crc32c } from '../src/crc32c.js';
import { crc32cRef } from './fixtures/reference.js';
import { randomBytes } from './helpers/random.js';

const k = getKernelsSync();
const crc = new Crc32c(k);


test('check value: crc32c("123456789") = 0xE3069283', () => {
  const bytes = new TextEncoder().encode('123456789');
  assert.equal(crc.of(bytes), 0xe3069283);
  assert.equal(crc32cRef(bytes), 0xe3069283, 'the reference itself is right');
});

test('empty input leaves the CRC unchanged', () => {
  assert.equal(crc.of(new Uint8Array(0)), 0);
  assert.equal(crc.of(new Uint8Array(0), 0xe3069283), 0xe3069283);
});

// RFC 3720 (iSCSI) appendix B.4. The RFC prints the CRC bytes in wire order
// (least significant byte first), e.g. "aa 36 91 8a" is 0x8A9136AA.
test('RFC 3720 B.4 vectors', () => {
  const zeros = new Uint8Array(32);
  const ones = new Uint8Array(32).fill(0xff);
  const inc = Uint8Array.from({ length: 32 }, (_, i) => i);
  const dec = Uint8Array.from({ length: 32 }, (_, i) => 31 - i);
  const pdu = Uint8Array.from([
    0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18,
    0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  ]);
  const cases: [string, Uint8Array, number][] = [
    ['32 bytes of zeros', zeros, 0x8a9136aa],
    ['32 bytes of 0xff', ones, 0x62a8ab43],
    ['32 incrementing bytes', inc, 0x46dd794e],
    ['32 decrementing bytes', dec, 0x113fdb5c],
    ['iSCSI SCSI Read (10) command PDU', pdu, 0xd9963a56],
  ];
  for (const [name, bytes, want] of cases) {
    assert.equal(crc32cRef(bytes), want, `reference: ${name}`);
    assert.equal(crc.of(bytes), want, name);
  }
});

test('agrees with the bytewise reference around every kernel path boundary', () => {
  // 3 x 1024-byte interleaved blocks, then 8-byte steps, then single bytes.
  const lengths = new Set<number>();
  for (const b of [0, 8, 1024, 2048, 3072, 6144, 9216, 12288, 65536]) {
    for (let d = -9; d <= 9; d++) if (b + d >= 0) lengths.add(b + d);
  }
  for (let n = 0; n <= 64; n++) lengths.add(n);
  const data = randomBytes(70_000, 0x5eed);
  for (const n of lengths) {
    const slice = data.subarray(0, n);
    assert.equal(crc.of(slice), crc32cRef(slice), `length ${n}`);
  }
});

test('agrees with the reference for random data of random length 0..70000', () => {
  fc.assert(fc.property(
    fc.integer({ min: 0, max: 70_000 }), fc.integer(), fc.integer({ min: 0, max: 0xffffffff }),
    (n, seed, init) => {
      const data = randomBytes(n, seed);
      assert.equal(crc.of(data, init), crc32cRef(data, init));
    }), { numRuns: 150 });
});

test('fast-check byte arrays (small and unusual contents)', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 4000 }), (data) => {
    assert.equal(crc.of(data), crc32cRef(data));
  }), { numRuns: 300 });
});

test('unaligned pointers in wasm memory give the same CRC', () => {
  const data = randomBytes(7000, 42);
  const want = crc32cRef(data);
  const base = k.alloc(data.length + 16);
  try {
    for (let shift = 0; shift < 16; shift++) {
      k.u8.set(data, base + shift);
      assert.equal(crc.at(base + shift, data.length), want, `ptr % 16 = ${(base + shift) % 16}`);
    }
  } finally {
    k.free(base);
  }
});

test('chaining: crc(b, crc(a)) == crc(a + b) for every split', () => {
  const data = randomBytes(3 * 1024 + 100, 7);
  const whole = crc32cRef(data);
  for (const cut of [0, 1, 7, 8, 9, 1023, 1024, 1025, 3071, 3072, 3073, data.length - 1, data.length]) {
    const a = data.subarray(0, cut);
    const b = data.subarray(cut);
    assert.equal(crc.of(b, crc.of(a)), whole, `split at ${cut}`);
  }
  fc.assert(fc.property(fc.uint8Array({ maxLength: 5000 }), fc.uint8Array({ maxLength: 5000 }), (a, b) => {
    const ab = new Uint8Array(a.length + b.length);
    ab.set(a); ab.set(b, a.length);
    assert.equal(crc.of(b, crc.of(a)), crc32cRef(ab));
  }), { numRuns: 100 });
});

test('Crc32c.at on data already in wasm memory (no copy)', () => {
  const data = randomBytes(10_000, 99);
  const p = k.alloc(data.length);
  try {
    k.u8.set(data, p);
    assert.equal(crc.at(p, data.length), crc32cRef(data));
    assert.equal(crc.at(p, 0), 0);
    assert.equal(crc.at(p + 5000, 5000, crc.at(p, 5000)), crc32cRef(data));
    // The kernel reads memory, so a change in memory changes the result.
    k.u8[p + 1234] ^= 0x10;
    assert.notEqual(crc.at(p, data.length), crc32cRef(data));
  } finally {
    k.free(p);
  }
});

test('inputs larger than the 1 MiB copy chunk', () => {
  const data = randomBytes(3 * 1024 * 1024 + 13, 1234);
  assert.equal(crc.of(data), crc32cRef(data));
});

test('every single-bit flip changes the CRC', () => {
  const data = randomBytes(4096, 3);
  const want = crc32cRef(data);
  for (let i = 0; i < data.length; i += 37) {
    for (let bit = 0; bit < 8; bit++) {
      data[i] ^= 1 << bit;
      assert.notEqual(crc.of(data), want, `byte ${i} bit ${bit}`);
      data[i] ^= 1 << bit;
    }
  }
  assert.equal(crc.of(data), want);
});

// ---- folding (by 128-bit words from 8 KiB, by 2 bytes from 512 B) ----

/** x^e mod P in normal bit order (bit i = coefficient of x^i), P = x^32 + 0x1EDC6F41. */
function xPowMod(e: number): number {
  let r = 1;
  for (let i = 0; i < e; i++) r = ((r << 1) ^ (r >>> 31 ? 0x1edc6f41 : 0)) >>> 0;
  return r;
}

test('the folding polynomial x^209 + x^144 + x^54 + x^39 + x^14 + 1 is a multiple of P', () => {
  const exps = [209, 144, 54, 39, 14, 0];
  assert.equal(exps.reduce((acc, e) => (acc ^ xPowMod(e)) >>> 0, 0), 0);
  // and dropping any one term breaks it (so a typo in the kernel's offsets cannot pass)
  for (const skip of exps) assert.notEqual(exps.filter((e) => e !== skip).reduce((acc, e) => (acc ^ xPowMod(e)) >>> 0, 0), 0);
});

test('folding by 2 bytes uses a multiple of P too: F(x^16), the stride in bits', () => {
  // Byte offsets 130, 310, 340, 390, 418 = 2 * (65, 155, 170, 195, 209): bit distances 16 * (209 - e).
  const exps = [209, 144, 54, 39, 14, 0].map((e) => 16 * e);
  assert.equal(exps.reduce((acc, e) => (acc ^ xPowMod(e)) >>> 0, 0), 0);
  for (const skip of exps) assert.notEqual(exps.filter((e) => e !== skip).reduce((acc, e) => (acc ^ xPowMod(e)) >>> 0, 0), 0);
});

test('folding by 2 bytes (512 B to 8 KiB) agrees with the reference at its boundaries (start, folded length steps, the last block past the end)', () => {
  const lengths = new Set<number>();
  for (let n = 500; n <= 530; n++) lengths.add(n);            // where folding starts
  for (let n = 418 + 16 * 5; n < 418 + 16 * 7; n++) lengths.add(n); // every remainder of (n - 418) mod 16
  for (let n = 8192 - 20; n < 8192; n++) lengths.add(n);        // the largest copies
  for (const n of [1000, 3344, 4099, 6145]) lengths.add(n);
  const data = randomBytes(9000, 0x2b17);
  for (const n of lengths) {
    for (const init of [0, 0xffffffff, 0x9abcdef0]) {
      for (const off of [0, 5]) {
        const slice = data.subarray(off, off + n);
        assert.equal(crc.of(slice, init), crc32cRef(slice, init), `length ${n}, offset ${off}, init ${init}`);
      }
    }
  }
});

test('folding by 2 bytes: every bit position reaches the CRC exactly as the reference says', () => {
  // One set bit at a time in zeros: a wrong source distance, a block folded
  // twice or not at all, or a remainder byte missed shows at once.
  for (const n of [517, 1000, 2 * 418 + 16 * 3 + 9, 5003]) {
    const data = new Uint8Array(n);
    const positions: number[] = [];
    for (let i = 0; i < 40; i++) positions.push(i);              // the register's bytes and the first blocks
    for (let i = 40; i < n; i += n > 2000 ? 11 : 1) positions.push(i); // everywhere (every byte for the short ones)
    for (let i = Math.max(0, n - 450); i < n; i++) positions.push(i); // the remainder and what folds onto it
    for (const i of positions) {
      for (const bit of [0, 5]) {
        data[i] = 1 << bit;
        assert.equal(crc.of(data), crc32cRef(data), `length ${n}, byte ${i} bit ${bit}`);
        assert.equal(crc.of(data, 0x5eed1234), crc32cRef(data, 0x5eed1234), `length ${n}, byte ${i} bit ${bit}, chained`);
        data[i] = 0;
      }
    }
  }
});

test('folding agrees with the reference at its boundaries (8 KiB start, head bytes, 1024-word passes)', () => {
  const lengths = new Set<number>();
  for (const b of [8192, 8192 + 16, (1024 + 209) * 16, (2048 + 209) * 16, (3072 + 209) * 16 + 7, 3 * 209 * 16]) {
    for (let d = -17; d <= 17; d++) lengths.add(b + d);
  }
  const data = randomBytes(60_000, 0xf01d);
  for (const n of lengths) {
    for (const init of [0, 0xffffffff, 0x12345678]) {
      const slice = data.subarray(3, 3 + n);
      assert.equal(crc.of(slice, init), crc32cRef(slice, init), `length ${n}, init ${init}`);
    }
  }
});

test('folding: every bit position of a 20 KiB input reaches the CRC exactly as the reference says', () => {
  // One set bit at a time in zeros (plus a register): catches a wrong fold
  // distance, a missed tail zone or a mishandled first word exactly.
  const n = 20 * 1024 + 5;
  const data = new Uint8Array(n);
  const positions: number[] = [];
  for (let i = 0; i < 64; i++) positions.push(i);                  // head and the first words
  for (let i = 64; i < n; i += 29) positions.push(i);              // everywhere
  for (let i = n - 209 * 16 - 40; i < n; i += 3) positions.push(i); // the tail zones
  for (const i of positions) {
    for (const bit of [0, 3, 7]) {
      data[i] = 1 << bit;
      assert.equal(crc.of(data), crc32cRef(data), `byte ${i} bit ${bit}`);
      assert.equal(crc.of(data, 0xdeadbeef), crc32cRef(data, 0xdeadbeef), `byte ${i} bit ${bit}, chained`);
      data[i] = 0;
    }
  }
});

test('folding kernel and table kernel agree in wasm memory (random lengths, offsets, registers)', () => {
  const size = 300_000;
  const p = k.alloc(size + 64);
  try {
    k.u8.set(randomBytes(size + 64, 77), p);
    fc.assert(fc.property(
      fc.oneof(fc.integer({ min: 0, max: size }), fc.integer({ min: 0, max: 20_000 })), fc.integer({ min: 0, max: 63 }), fc.integer({ min: 0, max: 0xffffffff }),
      (len, off, init) => {
        assert.equal(k.raw.crc32c(p + off, len, init) >>> 0, k.raw.crc32cTable(p + off, len, init) >>> 0);
      }), { numRuns: 400 });
  } finally {
    k.free(p);
  }
});
