// xxHash64 of short keys: batched wasm hashing against a per-key wasm peer
// (xxhash-wasm) and a pure-TypeScript xxh64.

import { BenchGroup, Contender, nsPer } from '../harness.js';
import { getKernelsSync, XxHash64, WasmBuffer } from '../../src/index.js';
import { xxh64Ts } from '../lib/xxh64_ts.js';
import { loadXxHashWasm } from '../lib/peers.js';
import { randomBytes } from '../lib/data.js';

const BATCH = 1000;
const KEY = 16;

function readU64s(u32: Uint32Array, ptr: number, n: number): bigint[] {
  const out: bigint[] = new Array(n);
  const w = ptr >>> 2;
  for (let i = 0; i < n; i++) out[i] = (BigInt(u32[w + 2 * i + 1]!) << 32n) | BigInt(u32[w + 2 * i]!);
  return out;
}

/** Checks the pure-TS and wasm xxh64 against xxhash-wasm on every length up to 300 B and several seeds. */
function crossCheck(xx: XxHash64, xxw: { h64Raw(b: Uint8Array, seed?: bigint): bigint }): void {
  const data = randomBytes(303, 5);
  const out = new Uint32Array(2);
  for (let len = 0; len <= 300; len++) {
    const s = data.subarray(3, 3 + len);
    for (const seed of [0n, 0x0123456789abcdefn, 0xffffffffffffffffn]) {
      const want = xxw.h64Raw(s, seed);
      xxh64Ts(s, 0, len, Number(seed >> 32n), Number(seed & 0xffffffffn), out, 0);
      const ts = (BigInt(out[1]!) << 32n) | BigInt(out[0]!);
      if (ts !== want || xx.hash(s, seed) !== want) throw new Error(`xxhash: xxh64 mismatch at length ${len}, seed ${seed}`);
    }
  }
}

export const xxhash: BenchGroup = {
  name: 'xxhash',
  title: 'xxHash64 of 16-byte keys',
  description: `xxh64 of ${KEY}-byte keys, ${BATCH} keys per operation, reported in ns per key. ` +
    '`hashMany` copies the keys into wasm memory and hashes them in one call; `hashManyAt` hashes keys already in wasm ' +
    'memory. Both leave the hashes in wasm memory as u64 (no BigInt). `xxhash-wasm` h64Raw is called once per key and ' +
    'returns a BigInt. The pure-TypeScript xxh64 works on 32-bit halves (a BigInt version measured about 1 µs per key, ' +
    'far slower, so it is not included).',
  cases: () => [{
    name: `xxh64, ${KEY}-byte keys, batches of ${BATCH}`,
    metric: nsPer(BATCH, 'key'),
    bars: [
      { label: 'batched xxh64 (hashFixed: the batch\'s 16-byte keys in one buffer) ≥ 5× xxhash-wasm per 16-byte key', sediment: 'sediment hashFixed', peers: ['xxhash-wasm h64Raw'], minRatio: 5 },
      { label: 'batched xxh64 (hashMany: an array of separate 16-byte arrays, one copy each) ≥ 5× xxhash-wasm per 16-byte key', sediment: 'sediment hashMany', peers: ['xxhash-wasm h64Raw'], minRatio: 5 },
    ],
    async setup() {
      const k = getKernelsSync();
      const xx = new XxHash64(k);
      const xxw = await loadXxHashWasm();
      crossCheck(xx, xxw);
      const flat = randomBytes(BATCH * KEY, 42);
      const keys: Uint8Array[] = [];
      for (let i = 0; i < BATCH; i++) keys.push(flat.slice(i * KEY, (i + 1) * KEY));
      // Keys already in wasm memory for hashManyAt: data, n + 1 offsets, results.
      const data = new WasmBuffer(k, BATCH * KEY);
      const offsets = new WasmBuffer(k, (BATCH + 1) * 4);
      const results = new WasmBuffer(k, BATCH * 8);
      k.u8.set(flat, data.ptr);
      for (let i = 0; i <= BATCH; i++) k.u32[(offsets.ptr >>> 2) + i] = i * KEY;
      const bigOut: bigint[] = new Array(BATCH).fill(0n);
      const tsOut = new Uint32Array(BATCH * 2);
      const contenders: Contender[] = [
        {
          name: 'sediment hashMany', role: 'sediment',
          note: 'XxHash64.hashMany(keys): one copy of the keys into wasm memory and one wasm call per batch',
          run(n) { let p = 0; for (let i = 0; i < n; i++) p = xx.hashMany(keys); return p; },
          output: () => readU64s(k.u32, xx.hashMany(keys), BATCH),
        },
        {
          name: 'sediment hashManyAt', role: 'sediment',
          note: 'XxHash64.hashManyAt: keys already in wasm memory, one wasm call per batch',
          run(n) {
            const d = data.ptr, o = offsets.ptr, r = results.ptr;
            for (let i = 0; i < n; i++) xx.hashManyAt(d, o, BATCH, r);
            return r;
          },
          output: () => { xx.hashManyAt(data.ptr, offsets.ptr, BATCH, results.ptr); return readU64s(k.u32, results.ptr, BATCH); },
        },
        {
          name: 'sediment hashFixed', role: 'sediment',
          note: 'XxHash64.hashFixed(flat, 16): the batch arrives as one buffer of n × 16 B ids; one copy into wasm memory and one wasm call (xxh64Fixed, no offsets table)',
          run(n) { let p = 0; for (let i = 0; i < n; i++) p = xx.hashFixed(flat, KEY); return p; },
          output: () => readU64s(k.u32, xx.hashFixed(flat, KEY), BATCH),
        },
        {
          name: 'xxhash-wasm h64Raw', role: 'peer',
          note: 'xxhash-wasm 1.x h64Raw(key): one wasm call per key (copy in, BigInt out)',
          run(n) {
            for (let i = 0; i < n; i++) for (let j = 0; j < BATCH; j++) bigOut[j] = xxw.h64Raw(keys[j]!);
            return bigOut;
          },
          output: () => keys.map((key) => xxw.h64Raw(key)),
        },
        {
          name: 'pure TS xxh64', role: 'peer',
          note: 'bench/lib/xxh64_ts.ts: xxh64 on int32 halves (Math.imul partial products), results into a Uint32Array',
          run(n) {
            for (let i = 0; i < n; i++) for (let j = 0; j < BATCH; j++) xxh64Ts(keys[j]!, 0, KEY, 0, 0, tsOut, 2 * j);
            return tsOut;
          },
          output: () => {
            for (let j = 0; j < BATCH; j++) xxh64Ts(keys[j]!, 0, KEY, 0, 0, tsOut, 2 * j);
            const out: bigint[] = [];
            for (let j = 0; j < BATCH; j++) out.push((BigInt(tsOut[2 * j + 1]!) << 32n) | BigInt(tsOut[2 * j]!));
            return out;
          },
        },
      ];
      return { contenders, teardown: () => { data.free(); offsets.free(); results.free(); xx.free(); } };
    },
  }],
};
