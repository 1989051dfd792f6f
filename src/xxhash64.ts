// xxHash64 in wasm. Hashes come back as u32 pairs in memory (hashesLo/Hi
// views) or, for convenience, as bigint; hot paths never use bigint.

import { Kernels, WasmBuffer } from './kernels.js';
import { InvalidArgumentError } from './errors.js';

export class XxHash64 {
  private readonly k: Kernels;
  private readonly data: WasmBuffer;
  private readonly offsets: WasmBuffer;
  /** u64 results of the last hashMany call (read with resultLo/resultHi). */
  readonly results: WasmBuffer;

  constructor(k: Kernels) {
    this.k = k;
    this.data = new WasmBuffer(k, 64 * 1024);
    this.offsets = new WasmBuffer(k, 4096 * 4);
    this.results = new WasmBuffer(k, 4096 * 8);
  }

  /** Hash of one byte array as a bigint (convenience; not for hot loops). */
  hash(bytes: Uint8Array, seed: bigint = 0n): bigint {
    const p = this.data.ensure(bytes.length + 8);
    const out = p + ((bytes.length + 7) & ~7);
    this.k.u8.set(bytes, p);
    this.k.raw.xxh64Into(p, bytes.length, Number(seed & 0xffffffffn), Number((seed >> 32n) & 0xffffffffn), out);
    const dv = this.k.dv;
    return (BigInt(dv.getUint32(out + 4, true)) << 32n) | BigInt(dv.getUint32(out, true));
  }

  /** Hash of bytes already in wasm memory, written as u64 at out. */
  hashAt(ptr: number, len: number, out: number, seedLo = 0, seedHi = 0): void {
    this.k.raw.xxh64Into(ptr, len, seedLo, seedHi, out);
  }

  /**
   * Hashes keys in one wasm call (one copy of the bytes in). Results are u64
   * at this.results.ptr (8 bytes per key); returns that pointer.
   */
  hashMany(keys: readonly Uint8Array[], seedLo = 0, seedHi = 0): number {
    const n = keys.length;
    let total = 0;
    for (let i = 0; i < n; i++) total += keys[i]!.length;
    const dataPtr = this.data.ensure(total);
    const offPtr = this.offsets.ensure((n + 1) * 4);
    const outPtr = this.results.ensure(n * 8);
    const u8 = this.k.u8;
    const u32 = this.k.u32;
    let w = offPtr >>> 2;
    let pos = 0;
    u32[w++] = 0;
    // One Uint8Array.set per key (~20-30 ns, most of the cost for short
    // keys): callers with fixed-width ids in one buffer use hashFixed.
    for (let i = 0; i < n; i++) {
      const key = keys[i]!;
      u8.set(key, dataPtr + pos);
      pos += key.length;
      u32[w++] = pos;
    }
    this.k.raw.xxh64Many(dataPtr, offPtr, n, seedLo, seedHi, outPtr);
    return outPtr;
  }

  /**
   * Hashes fixed-width keys given as one buffer (n = bytes.length / width,
   * e.g. 16-byte ids): one copy in, one wasm call, no offsets table. Results
   * are u64 at this.results.ptr; returns that pointer.
   */
  hashFixed(bytes: Uint8Array, width: number, seedLo = 0, seedHi = 0): number {
    if (!Number.isInteger(width) || width < 1 || bytes.length % width !== 0) {
      throw new InvalidArgumentError(`hashFixed: ${bytes.length} bytes are not a whole number of ${width}-byte keys`);
    }
    const n = bytes.length / width;
    const dataPtr = this.data.ensure(bytes.length);
    const outPtr = this.results.ensure(n * 8);
    this.k.u8.set(bytes, dataPtr);
    this.k.raw.xxh64Fixed(dataPtr, width, n, seedLo, seedHi, outPtr);
    return outPtr;
  }

  /** Hashes n keys already in wasm memory (data + n+1 u32 offsets) into out. */
  hashManyAt(dataPtr: number, offsetsPtr: number, n: number, out: number, seedLo = 0, seedHi = 0): void {
    this.k.raw.xxh64Many(dataPtr, offsetsPtr, n, seedLo, seedHi, out);
  }

  /** Result i of the last hashMany as a bigint (convenience). */
  resultBigInt(i: number): bigint {
    const u32 = this.k.u32;
    const w = (this.results.ptr >>> 2) + i * 2;
    return (BigInt(u32[w + 1]!) << 32n) | BigInt(u32[w]!);
  }

  free(): void { this.data.free(); this.offsets.free(); this.results.free(); }
}
