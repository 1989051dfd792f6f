// CRC-32C (Castagnoli) over bytes, in wasm. For data already in wasm memory
// call crc32cAt (no copy); crc32c(bytes) copies into a scratch buffer first.

import { Kernels, WasmBuffer } from './kernels.js';

const SCRATCH_CHUNK = 1 << 20; // copy at most 1 MiB per call (keeps calls in the optimised tier)

export class Crc32c {
  private readonly k: Kernels;
  private readonly scratch: WasmBuffer;

  constructor(k: Kernels) {
    this.k = k;
    this.scratch = new WasmBuffer(k, 64 * 1024);
  }

  /** CRC of [ptr, ptr+len) in wasm memory, continuing from crc (0 to start). */
  at(ptr: number, len: number, crc = 0): number {
    return this.k.raw.crc32c(ptr, len, crc) >>> 0;
  }

  /** CRC of a JS byte array, continuing from crc (0 to start). */
  of(bytes: Uint8Array, crc = 0): number {
    let c = crc >>> 0;
    for (let off = 0; off < bytes.length; off += SCRATCH_CHUNK) {
      const part = bytes.subarray(off, Math.min(bytes.length, off + SCRATCH_CHUNK));
      const p = this.scratch.ensure(part.length);
      this.k.u8.set(part, p);
      c = this.k.raw.crc32c(p, part.length, c) >>> 0;
    }
    return c;
  }
}
