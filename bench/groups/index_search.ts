// Offset-index lookups: the wasm search (batched and per call) against
// pure-TypeScript binary searches.

import { BenchGroup, Contender, nsPer } from '../harness.js';
import { getKernelsSync, WasmBuffer, offsetIndexLookup, offsetIndexLookupMany, OFFSET_INDEX_ENTRY } from '../../src/index.js';
import { prng } from '../lib/data.js';

const ENTRIES = 100_000;
const BATCH = 1000;
const POOL = 64 * BATCH; // targets cycled through, BATCH per operation

/** Branchless search over decoded keys: last slot with keys[slot] <= target, or -1. Keys and targets < 2^31. */
export function searchBranchless(keys: Uint32Array, n: number, target: number): number {
  if (n === 0) return -1;
  let base = 0;
  let len = n;
  while (len > 1) {
    const half = len >>> 1;
    // (keys[mid] - target - 1) >> 31 is -1 exactly when keys[mid] <= target.
    base += half & ((keys[base + half]! - target - 1) >> 31);
    len -= half;
  }
  return keys[base]! <= target ? base : -1;
}

/** The textbook search reading big-endian entries with a DataView. */
export function searchDataView(dv: DataView, n: number, target: number): number {
  let lo = 0;
  let hi = n - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (dv.getUint32(mid * 8) <= target) { found = mid; lo = mid + 1; } else hi = mid - 1;
  }
  return found;
}

export const indexGroup: BenchGroup = {
  name: 'index',
  title: 'Offset-index lookups',
  description: `Random lookups in a Kafka-format offset index of ${ENTRIES.toLocaleString('en-US')} entries (8-byte big-endian ` +
    `(relative offset, position) pairs, ${Math.round(ENTRIES * 8 / 1024)} KiB), ${BATCH} targets per operation, in ns per lookup. ` +
    'Each finds the last entry with relative offset ≤ target. The wasm kernel searches the index bytes in wasm memory ' +
    '(branchless, `select`); the pure-TS searches use a decoded Uint32Array (branchless arithmetic) or a DataView ' +
    '(textbook, branchy). /work/shared/reference/wasm-perf.md §4 expected wasm to bring little here.',
  cases: () => [{
    name: `${ENTRIES / 1000}k-entry offset index, random targets`,
    metric: nsPer(BATCH, 'lookup'),
    setup() {
      const k = getKernelsSync();
      const next = prng(2024);
      const keys = new Uint32Array(ENTRIES);
      let rel = 0;
      let pos = 0;
      const idx = new WasmBuffer(k, ENTRIES * OFFSET_INDEX_ENTRY);
      const dvIdx = new DataView(new ArrayBuffer(ENTRIES * OFFSET_INDEX_ENTRY));
      for (let i = 0; i < ENTRIES; i++) {
        keys[i] = rel;
        dvIdx.setUint32(i * 8, rel);
        dvIdx.setUint32(i * 8 + 4, pos);
        rel += 1 + (next() % 8);
        pos += 4096 + (next() % 4096);
      }
      k.u8.set(new Uint8Array(dvIdx.buffer), idx.ptr);
      const maxTarget = rel + 10;
      const targets = new Uint32Array(POOL);
      for (let i = 0; i < POOL; i++) targets[i] = next() % maxTarget;
      const wasmTargets = new WasmBuffer(k, POOL * 4);
      const wasmOut = new WasmBuffer(k, BATCH * 4);
      k.u32.set(targets, wasmTargets.ptr >>> 2);
      const tsOut = new Int32Array(BATCH);
      const dvOut = new Int32Array(BATCH);
      const singleOut = new Int32Array(BATCH);
      // Each contender walks the target pool with its own cursor.
      let cMany = 0, cSingle = 0, cTs = 0, cDv = 0;
      const contenders: Contender[] = [
        {
          name: 'sediment wasm batched', role: 'sediment',
          note: `offsetIndexLookupMany: ${BATCH} targets in wasm memory, one wasm call`,
          run(n) {
            const ip = idx.ptr, tp = wasmTargets.ptr, op = wasmOut.ptr;
            for (let i = 0; i < n; i++) {
              offsetIndexLookupMany(k, ip, ENTRIES, tp + cMany * 4, BATCH, op);
              cMany = cMany + BATCH === POOL ? 0 : cMany + BATCH;
            }
            return op;
          },
          output: () => { offsetIndexLookupMany(k, idx.ptr, ENTRIES, wasmTargets.ptr, BATCH, wasmOut.ptr); return Array.from(k.i32.subarray(wasmOut.ptr >>> 2, (wasmOut.ptr >>> 2) + BATCH)); },
        },
        {
          name: 'sediment wasm per call', role: 'sediment',
          note: 'offsetIndexLookup: one wasm call per lookup, target from a JS array',
          run(n) {
            const ip = idx.ptr;
            for (let i = 0; i < n; i++) {
              for (let j = 0; j < BATCH; j++) singleOut[j] = offsetIndexLookup(k, ip, ENTRIES, targets[cSingle + j]!);
              cSingle = cSingle + BATCH === POOL ? 0 : cSingle + BATCH;
            }
            return singleOut;
          },
          output: () => { const o: number[] = []; for (let j = 0; j < BATCH; j++) o.push(offsetIndexLookup(k, idx.ptr, ENTRIES, targets[j]!)); return o; },
        },
        {
          name: 'pure TS branchless', role: 'peer',
          note: 'binary search over a decoded Uint32Array of relative offsets, branchless (`base += half & ((v - t - 1) >> 31)`)',
          run(n) {
            for (let i = 0; i < n; i++) {
              for (let j = 0; j < BATCH; j++) tsOut[j] = searchBranchless(keys, ENTRIES, targets[cTs + j]!);
              cTs = cTs + BATCH === POOL ? 0 : cTs + BATCH;
            }
            return tsOut;
          },
          output: () => { const o: number[] = []; for (let j = 0; j < BATCH; j++) o.push(searchBranchless(keys, ENTRIES, targets[j]!)); return o; },
        },
        {
          name: 'pure TS DataView', role: 'peer',
          note: 'textbook binary search reading the big-endian index bytes through a DataView',
          run(n) {
            for (let i = 0; i < n; i++) {
              for (let j = 0; j < BATCH; j++) dvOut[j] = searchDataView(dvIdx, ENTRIES, targets[cDv + j]!);
              cDv = cDv + BATCH === POOL ? 0 : cDv + BATCH;
            }
            return dvOut;
          },
          output: () => { const o: number[] = []; for (let j = 0; j < BATCH; j++) o.push(searchDataView(dvIdx, ENTRIES, targets[j]!)); return o; },
        },
      ];
      return { contenders, teardown: () => { idx.free(); wasmTargets.free(); wasmOut.free(); } };
    },
  }],
};
