// A bounded window of 64-bit hashes in wasm memory (count and age bounds),
// with batched insert-if-absent. Sized once at construction: memory never
// grows while checking. Semantics: assembly/dedup_window.ts.

import { Kernels, WasmBuffer } from './kernels.js';
import { InvalidArgumentError } from './errors.js';

/** Largest window: about 41 bytes an entry (ring 16, tags 4, table 21), so 2^24 entries take ~660 MiB of wasm memory (of at most 4 GiB). */
export const WINDOW_MAX_COUNT = 1 << 24;

export interface DedupWindowOptions {
  /** Maximum entries kept (the oldest is evicted beyond it). */
  count: number;
  /** Entries whose timestamp is >= ageMs older than the key checked are ignored and evicted. 0 = no age bound. */
  ageMs?: number;
}

export class DedupWindow {
  readonly count: number;
  readonly ageMs: number;
  private readonly k: Kernels;
  private block: number;
  private readonly times: WasmBuffer;
  private readonly flags: WasmBuffer;
  private readonly matched: WasmBuffer;

  constructor(k: Kernels, opts: DedupWindowOptions) {
    const { count, ageMs = 0 } = opts;
    if (!Number.isInteger(count) || count < 1 || count > WINDOW_MAX_COUNT) {
      throw new InvalidArgumentError(`dedup window count must be an integer in [1, ${WINDOW_MAX_COUNT}], got ${count}`);
    }
    if (typeof ageMs !== 'number' || !(ageMs >= 0) || !Number.isFinite(ageMs)) {
      throw new InvalidArgumentError(`dedup window ageMs must be a finite number >= 0, got ${ageMs}`);
    }
    this.k = k;
    this.count = count;
    this.ageMs = ageMs;
    this.block = k.alloc(k.raw.windowBytes(count));
    k.raw.windowInit(this.block, count, ageMs);
    this.times = new WasmBuffer(k, 1024 * 8);
    this.flags = new WasmBuffer(k, 1024);
    this.matched = new WasmBuffer(k, 1024 * 4);
  }

  /** Entries currently in the window. */
  get size(): number { return this.k.raw.windowSize(this.block); }

  /** Forgets every entry. */
  clear(): void { this.k.raw.windowInit(this.block, this.count, this.ageMs); }

  /** Evicts entries too old relative to now. */
  expire(now: number): void { this.k.raw.windowExpire(this.block, now); }

  /**
   * Checks n hashes (u64 at hashesPtr in wasm memory) with their timestamps,
   * inserting those not present. Returns a pointer to n flag bytes
   * (1 = duplicate) valid until the next call; tagsPtr (u32 per key, or 0)
   * are stored with inserted keys and reported for duplicates at matchedPtr.
   */
  checkInsertAt(hashesPtr: number, timestamps: ArrayLike<number> | number, n: number, tagsPtr = 0): { flagsPtr: number; matchedPtr: number; duplicates: number } {
    const tPtr = this.times.ensure(n * 8);
    const fPtr = this.flags.ensure(n);
    const mPtr = this.matched.ensure(n * 4);
    const f64 = this.k.f64;
    const w = tPtr >>> 3;
    if (typeof timestamps === 'number') f64.fill(timestamps, w, w + n);
    else for (let i = 0; i < n; i++) f64[w + i] = timestamps[i]!;
    const duplicates = this.k.raw.windowCheckInsert(this.block, hashesPtr, tPtr, tagsPtr, n, fPtr, mPtr);
    return { flagsPtr: fPtr, matchedPtr: mPtr, duplicates };
  }

  free(): void {
    this.k.free(this.block);
    this.block = 0;
    this.times.free(); this.flags.free(); this.matched.free();
  }
}
