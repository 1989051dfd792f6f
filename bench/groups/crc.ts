// CRC-32C: the wasm kernel against the best pure-TypeScript CRC-32C we could
// write and two native addons.

import { BenchGroup, BenchCase, Contender, gbPerSec } from '../harness.js';
import { getKernelsSync, Crc32c, WasmBuffer } from '../../src/index.js';
import { crc32cSlice16, crc32cMulti, crc32cFold, crc32cBytewise } from '../lib/crc32c_ts.js';
import { loadNodeRsCrc32, loadSse4Crc32 } from '../lib/peers.js';
import { randomBytes, sizeName } from '../lib/data.js';

const SIZES = [64, 1024, 4 * 1024, 16 * 1024, 1024 * 1024];
const TS_PEERS = ['pure TS slicing-by-16', 'pure TS 3-stream', 'pure TS folding'];

/** Checks the pure-TS implementations against the wasm kernel on awkward lengths and alignments. */
function crossCheck(crc: Crc32c): void {
  const data = randomBytes(70_003, 7);
  for (const len of [0, 1, 3, 15, 16, 17, 255, 256, 257, 1000, 6143, 6144, 6145, 8191, 8192, 8208, 12_289, 16_384, 70_000]) {
    for (const off of [0, 1, 2, 3]) {
      const s = data.subarray(off, off + len);
      const want = crc.of(s);
      const got = [crc32cBytewise(s), crc32cSlice16(s), crc32cMulti(s), crc32cMulti(s.subarray(len >> 1), crc32cSlice16(s.subarray(0, len >> 1))),
        crc32cFold(s), crc32cFold(s.subarray(len >> 1), crc32cFold(s.subarray(0, len >> 1)))];
      if (got.some((g) => g !== want)) throw new Error(`crc: pure-TS CRC-32C disagrees with wasm at length ${len}, offset ${off}`);
    }
  }
  if (crc32cSlice16(new TextEncoder().encode('123456789')) !== 0xe3069283) throw new Error('crc: check value mismatch');
}

function crcCase(size: number): BenchCase {
  return {
    name: `CRC-32C, ${sizeName(size)}`,
    metric: gbPerSec(size),
    bars: size === 1024 * 1024
      ? [{ label: 'wasm CRC-32C ≥ 2.5× the best pure-TS CRC-32C on 1 MiB', sediment: 'sediment wasm (at)', peers: TS_PEERS, minRatio: 2.5 }]
      : [],
    setup() {
      const k = getKernelsSync();
      const crc = new Crc32c(k);
      crossCheck(crc);
      const data = randomBytes(size, size);
      const inWasm = new WasmBuffer(k, size);
      k.u8.set(data, inWasm.ptr);
      const ptr = inWasm.ptr;
      const rs = loadNodeRsCrc32();
      const sse4 = loadSse4Crc32();
      const contenders: Contender[] = [
        {
          name: 'sediment wasm (at)', role: 'sediment',
          note: 'Crc32c.at: data already in wasm memory (how the log computes batch CRCs)',
          run(n) { let c = 0; for (let i = 0; i < n; i++) c ^= crc.at(ptr, size); return c; },
          output: () => crc.at(ptr, size),
        },
        {
          name: 'sediment wasm table kernel', role: 'sediment',
          note: 'the table-driven kernel alone (3 interleaved slicing-by-8 streams), which Crc32c uses below 512 B and for the last 418-433 bytes of a fold; data in wasm memory',
          run(n) { let c = 0; for (let i = 0; i < n; i++) c ^= k.raw.crc32cTable(ptr, size, 0); return c; },
          output: () => k.raw.crc32cTable(ptr, size, 0) >>> 0,
        },
        {
          name: 'sediment wasm (of)', role: 'sediment',
          note: 'Crc32c.of: copies the JS bytes into wasm memory first, then the same kernel',
          run(n) { let c = 0; for (let i = 0; i < n; i++) c ^= crc.of(data); return c; },
          output: () => crc.of(data),
        },
        {
          name: 'pure TS slicing-by-16', role: 'peer',
          note: 'bench/lib/crc32c_ts.ts: slicing-by-16, 32-bit word reads through an Int32Array view from 256 B',
          run(n) { let c = 0; for (let i = 0; i < n; i++) c ^= crc32cSlice16(data); return c; },
          output: () => crc32cSlice16(data),
        },
        {
          name: 'pure TS 3-stream', role: 'peer',
          note: 'bench/lib/crc32c_ts.ts: three interleaved slicing-by-8 streams over 2 KiB blocks, combined with shift tables (slicing-by-16 below 6 KiB)',
          run(n) { let c = 0; for (let i = 0; i < n; i++) c ^= crc32cMulti(data); return c; },
          output: () => crc32cMulti(data),
        },
        {
          name: 'pure TS folding', role: 'peer',
          note: 'bench/lib/crc32c_ts.ts: the 128-bit-word folding of the wasm kernel, four Int32 lanes per 16-byte word, its 3344-byte tail by slicing-by-16 (3-stream alone below 8 KiB)',
          run(n) { let c = 0; for (let i = 0; i < n; i++) c ^= crc32cFold(data); return c; },
          output: () => crc32cFold(data),
        },
        {
          name: '@node-rs/crc32', role: 'peer',
          note: '@node-rs/crc32 crc32c (native, napi-rs)',
          run(n) { let c = 0; for (let i = 0; i < n; i++) c ^= rs.crc32c(data); return c; },
          output: () => rs.crc32c(data) >>> 0,
        },
        {
          name: 'sse4_crc32', role: 'peer',
          note: `sse4_crc32 calculate (native N-API addon, SSE4.2 crc32 instruction${sse4.hardware_support === false ? ': NOT available here, table fallback' : ''})`,
          run(n) { let c = 0; for (let i = 0; i < n; i++) c ^= sse4.calculate(data); return c; },
          output: () => sse4.calculate(data) >>> 0,
        },
      ];
      return { contenders, teardown: () => inWasm.free() };
    },
  };
}

export const crc: BenchGroup = {
  name: 'crc',
  title: 'CRC-32C',
  description: 'CRC-32C (Castagnoli) throughput on one buffer per call, in GB/s (10^9 bytes per second). ' +
    'The wasm kernel (folding by a sparse multiple of the polynomial in wasm SIMD: by 128-bit words from 8 KiB, then by 2 bytes over ' +
    'the 3344-byte tail or over a copy of an input of 512 B to 8 KiB, then the table kernel on the last 418-433 bytes; below 512 B: ' +
    'three interleaved slicing-by-8 streams) runs on data already in wasm memory (`at`) and with the ' +
    'copy into wasm memory included (`of`). The pure-TypeScript peers are the fastest plain-TS versions we wrote ' +
    '(bench/lib/crc32c_ts.ts), including the same folding method in plain TypeScript; the native peers use the SSE4.2 crc32 ' +
    'instruction (`sse4_crc32`, one stream) or napi-rs (`@node-rs/crc32`): they win on short buffers (about 1 KiB and less) and lose to folding above.',
  cases: () => SIZES.map(crcCase),
};
