// Offset and time index search kernels (assembly/offset_index.ts,
// assembly/time_index.ts) against a linear search, over Kafka-format index
// bytes written into wasm memory: below/above/on entries, repeated keys, and
// the warm-tail boundary (the last 8 KiB of entries is searched first).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { getKernelsSync, WasmBuffer } from '../src/kernels.js';
import {
  offsetIndexLookup, offsetIndexLookupMany, timeIndexLookup, timeIndexLookupMany, OFFSET_INDEX_ENTRY, TIME_INDEX_ENTRY,
} from '../src/index_search.js';

const k = getKernelsSync();
const OFFSET_WARM = 1024; // 8192 / 8
const TIME_WARM = 682; // floor(8192 / 12)
const indexBuf = new WasmBuffer(k, 64 * 1024);
const targetBuf = new WasmBuffer(k, 64 * 1024);
const resultBuf = new WasmBuffer(k, 16 * 1024);

/** Writes (relativeOffset, position) entries as 8-byte big-endian pairs. */
function writeOffsetIndex(rel: readonly number[]): number {
  const p = indexBuf.ensure(Math.max(rel.length * OFFSET_INDEX_ENTRY, 1));
  const dv = k.dv;
  rel.forEach((r, i) => { dv.setUint32(p + i * 8, r); dv.setUint32(p + i * 8 + 4, i * 100); });
  return p;
}

/** Writes (timestamp, relativeOffset) entries as 12-byte big-endian entries. */
function writeTimeIndex(ts: readonly number[]): number {
  const p = indexBuf.ensure(Math.max(ts.length * TIME_INDEX_ENTRY, 1));
  const dv = k.dv;
  ts.forEach((t, i) => { dv.setBigInt64(p + i * 12, BigInt(t)); dv.setUint32(p + i * 12 + 8, i); });
  return p;
}

/** The largest slot whose key is <= target, or -1: the definition, literally. */
function linear(keys: readonly number[], target: number): number {
  let slot = -1;
  for (let i = 0; i < keys.length; i++) if (keys[i]! <= target) slot = i;
  return slot;
}

function sortedOffsets(n: number, seed: number, maxGap: number, allowRepeats: boolean): number[] {
  const out: number[] = [];
  let x = seed | 1;
  let v = 0;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    const gap = (x >>> 0) % maxGap;
    v += allowRepeats ? gap : gap + 1;
    out.push(v);
  }
  return out;
}

/** Targets that probe every interesting place of a key list. */
function probeTargets(keys: readonly number[], lo: number, hi: number): number[] {
  const t = new Set<number>([lo, hi]);
  for (const key of [keys[0], keys[keys.length - 1], keys[Math.max(0, keys.length - OFFSET_WARM)],
    keys[Math.max(0, keys.length - TIME_WARM)], keys[Math.max(0, keys.length - OFFSET_WARM - 1)]]) {
    if (key === undefined) continue;
    for (const d of [-2, -1, 0, 1, 2]) if (key + d >= lo && key + d <= hi) t.add(key + d);
  }
  return [...t];
}

test('offset index: empty index and single entry', () => {
  const p = writeOffsetIndex([]);
  assert.equal(offsetIndexLookup(k, p, 0, 0), -1);
  assert.equal(offsetIndexLookup(k, p, 0, 0xffffffff), -1);
  const q = writeOffsetIndex([10]);
  assert.equal(offsetIndexLookup(k, q, 1, 9), -1);
  assert.equal(offsetIndexLookup(k, q, 1, 10), 0);
  assert.equal(offsetIndexLookup(k, q, 1, 11), 0);
  assert.equal(offsetIndexLookup(k, q, 1, 0xffffffff), 0);
});

test('offset index: every target around every entry, across the warm-tail boundary', () => {
  for (const n of [1, 2, 3, 7, 1023, 1024, 1025, 1026, 2047, 2048, 2049, 5000]) {
    const keys = sortedOffsets(n, n * 31 + 7, 9, false);
    const p = writeOffsetIndex(keys);
    const targets = new Set<number>(probeTargets(keys, 0, 0xffffffff));
    for (let i = 0; i < n; i += Math.max(1, Math.floor(n / 300))) {
      targets.add(keys[i]!); targets.add(keys[i]! + 1); if (keys[i]! > 0) targets.add(keys[i]! - 1);
    }
    for (const t of targets) assert.equal(offsetIndexLookup(k, p, n, t), linear(keys, t), `n ${n} target ${t}`);
  }
});

test('offset index: exactly on the first warm entry and just below it', () => {
  for (const n of [1025, 1500, 4096]) {
    const keys = Array.from({ length: n }, (_, i) => 10 + i * 10);
    const p = writeOffsetIndex(keys);
    const w = n - OFFSET_WARM;
    assert.equal(offsetIndexLookup(k, p, n, keys[w]!), w);
    assert.equal(offsetIndexLookup(k, p, n, keys[w]! - 1), w - 1);
    assert.equal(offsetIndexLookup(k, p, n, keys[w - 1]!), w - 1);
    assert.equal(offsetIndexLookup(k, p, n, keys[w]! + 1), w);
    assert.equal(offsetIndexLookup(k, p, n, 9), -1);
    assert.equal(offsetIndexLookup(k, p, n, 10), 0);
  }
});

test('offset index: random sorted indexes (strict and with repeats) equal a linear search', () => {
  fc.assert(fc.property(
    fc.integer({ min: 0, max: 3000 }), fc.integer(), fc.integer({ min: 1, max: 5000 }), fc.boolean(),
    fc.array(fc.integer({ min: 0, max: 0xffffffff }), { maxLength: 40 }),
    (n, seed, maxGap, repeats, extra) => {
      const keys = sortedOffsets(n, seed, maxGap, repeats).filter((v) => v <= 0xffffffff);
      const p = writeOffsetIndex(keys);
      for (const t of [...probeTargets(keys, 0, 0xffffffff), ...extra]) {
        assert.equal(offsetIndexLookup(k, p, keys.length, t), linear(keys, t), `target ${t}`);
      }
    }), { numRuns: 200 });
});

test('offset index: keys and targets above 2^31 compare unsigned', () => {
  const keys = [0, 5, 0x7fffffff, 0x80000000, 0x80000001, 0xfffffffe, 0xffffffff];
  const p = writeOffsetIndex(keys);
  for (const t of [0, 4, 5, 0x7ffffffe, 0x7fffffff, 0x80000000, 0x80000001, 0xc0000000, 0xfffffffe, 0xffffffff]) {
    assert.equal(offsetIndexLookup(k, p, keys.length, t), linear(keys, t), `target ${t.toString(16)}`);
  }
});

test('offset index: targets outside u32 (negative, beyond 2^32) clamp instead of wrapping', () => {
  const keys = [3, 8, 20];
  const p = writeOffsetIndex(keys);
  assert.equal(offsetIndexLookup(k, p, 3, -1), -1, 'below the segment base: nothing');
  assert.equal(offsetIndexLookup(k, p, 3, -4_000_000_000), -1);
  assert.equal(offsetIndexLookup(k, p, 3, 2 ** 32 + 5), 2, 'beyond u32: the last entry');
  assert.equal(offsetIndexLookup(k, p, 3, 8.5), 1);
});

test('offsetIndexLookupMany equals single lookups', () => {
  fc.assert(fc.property(
    fc.integer({ min: 0, max: 2500 }), fc.integer(), fc.array(fc.integer({ min: 0, max: 0xffffffff }), { maxLength: 200 }),
    (n, seed, randomTargets) => {
      const keys = sortedOffsets(n, seed, 50, false);
      const targets = [...probeTargets(keys, 0, 0xffffffff), ...randomTargets];
      // Allocate everything first, then take views.
      const tp = targetBuf.ensure(targets.length * 4 + 4);
      const rp = resultBuf.ensure(targets.length * 4 + 4);
      const p = writeOffsetIndex(keys);
      const u32 = k.u32;
      targets.forEach((t, i) => { u32[(tp >>> 2) + i] = t; });
      offsetIndexLookupMany(k, p, n, tp, targets.length, rp);
      const i32 = k.i32;
      targets.forEach((t, i) => {
        assert.equal(i32[(rp >>> 2) + i], offsetIndexLookup(k, p, n, t), `target ${t}`);
        assert.equal(i32[(rp >>> 2) + i], linear(keys, t));
      });
    }), { numRuns: 100 });
});

function sortedTimestamps(n: number, seed: number, start: number, maxStep: number): number[] {
  const out: number[] = [];
  let x = seed | 1;
  let v = start;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    // About a third of the steps repeat the previous timestamp.
    const r = (x >>> 0) % (maxStep * 3);
    v += r < maxStep ? 0 : r - maxStep;
    out.push(v);
  }
  return out;
}

test('time index: empty, single entry, repeated timestamps (the last equal slot wins)', () => {
  const p = writeTimeIndex([]);
  assert.equal(timeIndexLookup(k, p, 0, 1e12), -1);
  const keys = [100, 100, 100, 200, 200, 300];
  const q = writeTimeIndex(keys);
  assert.equal(timeIndexLookup(k, q, 6, 99), -1);
  assert.equal(timeIndexLookup(k, q, 6, 100), 2);
  assert.equal(timeIndexLookup(k, q, 6, 199), 2);
  assert.equal(timeIndexLookup(k, q, 6, 200), 4);
  assert.equal(timeIndexLookup(k, q, 6, 300), 5);
  assert.equal(timeIndexLookup(k, q, 6, 1e15), 5);
  const all = writeTimeIndex(Array(2000).fill(7));
  assert.equal(timeIndexLookup(k, all, 2000, 7), 1999);
  assert.equal(timeIndexLookup(k, all, 2000, 6), -1);
});

test('time index: negative and very large timestamps (full i64 sign handling)', () => {
  const keys = [Number.MIN_SAFE_INTEGER, -1e15, -5, -1, 0, 1, 2 ** 32, 2 ** 32 + 1, 1.7e12, 2 ** 52, Number.MAX_SAFE_INTEGER];
  const p = writeTimeIndex(keys);
  for (const t of [...probeTargets(keys, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER), -6, -2, 2 ** 32 - 1, 2 ** 31, -(2 ** 31)]) {
    assert.equal(timeIndexLookup(k, p, keys.length, t), linear(keys, t), `target ${t}`);
  }
});

test('time index: non-integer and non-finite targets', () => {
  const keys = [-3, -2, -1, 0, 1, 2, 3];
  const p = writeTimeIndex(keys);
  for (const t of [-2.5, -1.5, -0.5, 0.5, 1.5, 2.9999, -3.0001, Infinity, -Infinity, 1e300, -1e300, -0]) {
    assert.equal(timeIndexLookup(k, p, keys.length, t), linear(keys, t), `target ${t}`);
  }
  assert.equal(timeIndexLookup(k, p, keys.length, Number.NaN), -1, 'NaN matches no entry');
});

test('time index: random non-decreasing indexes equal a linear search, across the warm tail', () => {
  fc.assert(fc.property(
    fc.integer({ min: 0, max: 2500 }), fc.integer(), fc.integer({ min: -1e13, max: 1e13 }), fc.integer({ min: 1, max: 100_000 }),
    fc.array(fc.integer({ min: -2e13, max: 2e13 }), { maxLength: 40 }),
    (n, seed, start, maxStep, extra) => {
      const keys = sortedTimestamps(n, seed, start, maxStep);
      const p = writeTimeIndex(keys);
      for (const t of [...probeTargets(keys, -2e13, 2e13), ...extra]) {
        assert.equal(timeIndexLookup(k, p, keys.length, t), linear(keys, t), `target ${t}`);
      }
    }), { numRuns: 200 });
});

test('time index: exactly on the first warm entry and just below it', () => {
  for (const n of [683, 684, 1000, 3000]) {
    const keys = Array.from({ length: n }, (_, i) => 1000 + i * 3);
    const p = writeTimeIndex(keys);
    const w = n - TIME_WARM;
    assert.equal(timeIndexLookup(k, p, n, keys[w]!), w);
    assert.equal(timeIndexLookup(k, p, n, keys[w]! - 1), w - 1);
    assert.equal(timeIndexLookup(k, p, n, keys[w - 1]!), w - 1);
    assert.equal(timeIndexLookup(k, p, n, 999), -1);
  }
});

test('timeIndexLookupMany equals single lookups', () => {
  fc.assert(fc.property(
    fc.integer({ min: 0, max: 2000 }), fc.integer(), fc.array(fc.integer({ min: -1e6, max: 1e8 }), { maxLength: 200 }),
    (n, seed, randomTargets) => {
      const keys = sortedTimestamps(n, seed, 0, 1000);
      const targets = [...probeTargets(keys, -1e6, 1e8), ...randomTargets];
      const tp = targetBuf.ensure(targets.length * 8 + 8);
      const rp = resultBuf.ensure(targets.length * 4 + 4);
      const p = writeTimeIndex(keys);
      const f64 = k.f64;
      targets.forEach((t, i) => { f64[(tp >>> 3) + i] = t; });
      timeIndexLookupMany(k, p, n, tp, targets.length, rp);
      const i32 = k.i32;
      targets.forEach((t, i) => {
        assert.equal(i32[(rp >>> 2) + i], timeIndexLookup(k, p, n, t), `target ${t}`);
        assert.equal(i32[(rp >>> 2) + i], linear(keys, t));
      });
    }), { numRuns: 100 });
});
