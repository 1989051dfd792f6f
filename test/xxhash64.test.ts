// xxHash64 kernel (assembly/xxhash64.ts) through XxHash64: published
// reference values and agreement with the independent xxhash-wasm package
// on every length path (32-byte stripes, 8/4/1-byte tails) and random seeds.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import xxhash from 'xxhash-wasm';
import { getKernelsSync } from '../src/kernels.js';
import { XxHash64 } from '../src/xxhash64.js';
import { randomBytes } from './helpers/random.js';

const k = getKernelsSync();
const xx = new XxHash64(k);
const ref = await xxhash();
const utf8 = new TextEncoder();


test('reference values', () => {
  // From the xxHash specification / reference implementation.
  assert.equal(xx.hash(new Uint8Array(0)), 0xef46db3751d8e999n, 'empty, seed 0');
  assert.equal(xx.hash(utf8.encode('abc')), 0x44bc2cf5ad770999n, '"abc", seed 0');
  // The oracle agrees on the same values, so it is a fair oracle below.
  assert.equal(ref.h64Raw(new Uint8Array(0), 0n), 0xef46db3751d8e999n);
  assert.equal(ref.h64('abc', 0n), 0x44bc2cf5ad770999n);
});

test('every length 0..300 and around the 32-byte stripe boundary agrees with xxhash-wasm', () => {
  const data = randomBytes(5000, 77);
  const lengths = new Set<number>();
  for (let n = 0; n <= 300; n++) lengths.add(n);
  for (const b of [1024, 4096, 4999, 5000]) for (let d = -5; d <= 0; d++) lengths.add(b + d);
  for (const seed of [0n, 1n, 0xffffffffn, 0x100000000n, 0xffffffffffffffffn, 0x9e3779b185ebca87n]) {
    for (const n of lengths) {
      const slice = data.subarray(0, n);
      assert.equal(xx.hash(slice, seed), ref.h64Raw(slice, seed), `length ${n} seed ${seed}`);
    }
  }
});

test('random inputs of length 0..5000 and random 64-bit seeds agree with xxhash-wasm', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 5000 }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), (data, seed) => {
    assert.equal(xx.hash(data, seed), ref.h64Raw(data, seed));
  }), { numRuns: 500 });
});

test('unaligned input in wasm memory (hashAt) gives the same hash', () => {
  const data = randomBytes(1000, 5);
  const want = ref.h64Raw(data, 0n);
  const base = k.alloc(data.length + 32);
  try {
    for (let shift = 0; shift < 8; shift++) {
      k.u8.set(data, base + shift);
      const out = base + data.length + 16;
      xx.hashAt(base + shift, data.length, out);
      const dv = k.dv;
      const got = (BigInt(dv.getUint32(out + 4, true)) << 32n) | BigInt(dv.getUint32(out, true));
      assert.equal(got, want, `shift ${shift}`);
    }
  } finally {
    k.free(base);
  }
});

test('hashMany equals single hashes (seed as lo/hi u32 halves)', () => {
  fc.assert(fc.property(
    fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 100 }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
    (keys, seed) => {
      const lo = Number(seed & 0xffffffffn);
      const hi = Number(seed >> 32n);
      const ptr = xx.hashMany(keys, lo, hi);
      assert.equal(ptr, xx.results.ptr);
      for (let i = 0; i < keys.length; i++) {
        assert.equal(xx.resultBigInt(i), ref.h64Raw(keys[i]!, seed), `key ${i}`);
      }
    }), { numRuns: 200 });
});

test('hashMany beyond the initial buffers (5000 keys, 1 MiB of data)', () => {
  const keys = Array.from({ length: 5000 }, (_, i) => randomBytes((i * 37) % 420, i + 1));
  xx.hashMany(keys, 0x1234, 0x5678);
  const seed = (0x5678n << 32n) | 0x1234n;
  for (let i = 0; i < keys.length; i += 7) assert.equal(xx.resultBigInt(i), ref.h64Raw(keys[i]!, seed), `key ${i}`);
  assert.equal(xx.resultBigInt(4999), ref.h64Raw(keys[4999]!, seed));
});

test('hashManyAt over keys laid out in wasm memory', () => {
  const keys = ['', 'a', 'abc', 'a longer key that crosses one 32-byte stripe......'].map((s) => utf8.encode(s));
  const total = keys.reduce((n, key) => n + key.length, 0);
  const data = k.alloc(total + 1);
  const offsets = k.alloc((keys.length + 1) * 4);
  const out = k.alloc(keys.length * 8);
  try {
    const u8 = k.u8;
    const u32 = k.u32;
    let pos = 0;
    u32[offsets >>> 2] = 0;
    keys.forEach((key, i) => { u8.set(key, data + pos); pos += key.length; u32[(offsets >>> 2) + i + 1] = pos; });
    xx.hashManyAt(data, offsets, keys.length, out, 7, 0);
    const dv = k.dv;
    keys.forEach((key, i) => {
      const got = (BigInt(dv.getUint32(out + i * 8 + 4, true)) << 32n) | BigInt(dv.getUint32(out + i * 8, true));
      assert.equal(got, ref.h64Raw(key, 7n), `key ${i}`);
    });
  } finally {
    k.free(data); k.free(offsets); k.free(out);
  }
});

test('hashFixed equals per-key hashes for fixed-width keys in one buffer, and refuses ragged input', () => {
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 40 }), fc.integer({ min: 0, max: 200 }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
    (width, n, seed) => {
      const flat = randomBytes(width * n, width * 1000 + n);
      const lo = Number(seed & 0xffffffffn);
      const hi = Number(seed >> 32n);
      const ptr = xx.hashFixed(flat, width, lo, hi);
      const got: bigint[] = [];
      for (let i = 0; i < n; i++) got.push((BigInt(k.u32[(ptr >>> 2) + 2 * i + 1]!) << 32n) | BigInt(k.u32[(ptr >>> 2) + 2 * i]!));
      const want: bigint[] = [];
      for (let i = 0; i < n; i++) want.push(ref.h64Raw(flat.subarray(i * width, (i + 1) * width), seed));
      assert.deepEqual(got, want);
    }), { numRuns: 200 });
  assert.throws(() => xx.hashFixed(new Uint8Array(17), 16), /whole number/);
  assert.throws(() => xx.hashFixed(new Uint8Array(16), 0), /whole number/);
});

test('hashMany gives the same hashes for views of one buffer (adjacent, gapped, reordered) and separate arrays', () => {
  const payload = randomBytes(5000, 99);
  // Adjacent views (one copy), views with a gap (per-key copies), separate arrays.
  const lens = [0, 1, 7, 16, 33, 100, 0, 5, 250];
  const adjacent: Uint8Array[] = [];
  const gapped: Uint8Array[] = [];
  let at = 0;
  for (const len of lens) { adjacent.push(payload.subarray(at, at + len)); gapped.push(payload.subarray(at + 1, at + 1 + len)); at += len; }
  const separate = adjacent.map((a) => a.slice());
  const read = (ptr: number, n: number) => Array.from({ length: n }, (_, i) => (BigInt(k.u32[(ptr >>> 2) + 2 * i + 1]!) << 32n) | BigInt(k.u32[(ptr >>> 2) + 2 * i]!));
  const want = separate.map((b) => ref.h64Raw(b, 0n));
  assert.deepEqual(read(xx.hashMany(adjacent), lens.length), want);
  assert.deepEqual(read(xx.hashMany(separate), lens.length), want);
  assert.deepEqual(read(xx.hashMany(gapped), lens.length), gapped.map((b) => ref.h64Raw(b, 0n)));
  // Same buffer but out of order is not adjacent.
  const reversed = [...adjacent].reverse();
  assert.deepEqual(read(xx.hashMany(reversed), lens.length), [...want].reverse());
});
