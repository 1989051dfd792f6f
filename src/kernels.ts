// The WebAssembly boundary. This module is the only code that touches the
// wasm exports; everything else goes through Kernels and WasmBuffer.
//
// Loading: the .wasm bytes are embedded as base64 in a generated module and
// compiled once per process (WebAssembly.compile, or new WebAssembly.Module on
// the synchronous path). That is the one path that works unchanged in Node,
// Deno and browsers: no fs, no fetch of a sibling file, no bundler plugin.
// `@assemblyscript/loader` is deprecated upstream and its lowering allocates
// per call, so the exports are used raw (see docs/wasm-boundary.md).
//
// Memory: kernels never allocate. Buffers are TLSF blocks from alloc/free,
// owned by WasmBuffer. alloc may grow memory, which detaches every view of
// the old ArrayBuffer: views here are re-created whenever memory.buffer
// changes, and callers must not keep a view across an allocation.

import { WASM_BASE64 } from './generated/wasm-module.js';
import { ClosedError, WasmMemoryError } from './errors.js';

/** Raw exports of assembly/index.ts. Pointers and lengths are byte addresses / counts. */
export interface KernelExports {
  readonly memory: WebAssembly.Memory;
  alloc(size: number): number;
  free(ptr: number): void;
  crc32c(ptr: number, len: number, crc: number): number;
  /** The table-driven CRC-32C kernel alone (crc32c folds inputs of 512 B and more); for tests and the bench. */
  crc32cTable(ptr: number, len: number, crc: number): number;
  batchLayout(desc: number, n: number, out: number, cap: number, pos: number): number;
  batchFinish(out: number, total: number, n: number, firstTsLo: number, firstTsHi: number,
    maxTsLo: number, maxTsHi: number, attributes: number, producerIdLo: number, producerIdHi: number,
    producerEpoch: number, baseSequence: number): number;
  batchScan(ptr: number, len: number, out: number, maxRows: number, maxBatchBytes: number, verifyCrc: number): number;
  scanStopReason(): number;
  scanStopPosition(): number;
  recordsDecode(ptr: number, len: number, count: number, rows: number, maxRows: number, hdrs: number, maxHeaders: number): number;
  decodeHeaderCount(): number;
  /** Validates a records section like recordsDecode, offset deltas 0..count-1, no row tables; min and max timestamp delta (i64) at out. */
  recordsCheck(ptr: number, len: number, count: number, out: number): number;
  offsetIndexLookup(idx: number, entries: number, target: number): number;
  offsetIndexLookupMany(idx: number, entries: number, targets: number, n: number, out: number): void;
  timeIndexLookup(idx: number, entries: number, target: number): number;
  timeIndexLookupMany(idx: number, entries: number, targets: number, n: number, out: number): void;
  xxh64Into(ptr: number, len: number, seedLo: number, seedHi: number, out: number): void;
  xxh64Many(data: number, offsets: number, n: number, seedLo: number, seedHi: number, out: number): void;
  xxh64Fixed(data: number, width: number, n: number, seedLo: number, seedHi: number, out: number): void;
  windowBytes(capacity: number): number;
  windowInit(w: number, capacity: number, ageMs: number): void;
  windowExpire(w: number, now: number): void;
  windowCheckInsert(w: number, hashes: number, times: number, tags: number, n: number, flags: number, matched: number): number;
  windowSize(w: number): number;
  dedupBatch(w: number, batch: number, size: number, mode: number, name: number, nameLen: number,
    maskLo: number, maskHi: number, scratch: number, flags: number): number;
  dedupLayout(w: number, batch: number, size: number, desc: number, pos: number, mode: number, name: number, nameLen: number,
    maskLo: number, maskHi: number, scratch: number, flags: number): number;
  dedupSkipped(): number;
}

function decodeBase64(b64: string): Uint8Array {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

let compiled: WebAssembly.Module | undefined;
let compiling: Promise<WebAssembly.Module> | undefined;

function imports(): WebAssembly.Imports {
  return {
    env: {
      abort(_msg: number, _file: number, line: number, col: number): never {
        throw new WasmMemoryError(`wasm kernel aborted at ${line}:${col} (out of memory?)`);
      },
    },
  };
}

/**
 * One instance of the kernels: its own linear memory and views over it.
 * Most programs use the shared instance from getKernels()/getKernelsSync().
 */
export class Kernels {
  readonly raw: KernelExports;
  private buffer: ArrayBuffer;
  private _u8: Uint8Array;
  private _i32: Int32Array;
  private _u32: Uint32Array;
  private _f64: Float64Array;
  private _dv: DataView;

  constructor(module: WebAssembly.Module) {
    const instance = new WebAssembly.Instance(module, imports());
    this.raw = instance.exports as unknown as KernelExports;
    this.buffer = this.raw.memory.buffer;
    this._u8 = new Uint8Array(this.buffer);
    this._i32 = new Int32Array(this.buffer);
    this._u32 = new Uint32Array(this.buffer);
    this._f64 = new Float64Array(this.buffer);
    this._dv = new DataView(this.buffer);
  }

  private refresh(): void {
    this.buffer = this.raw.memory.buffer;
    this._u8 = new Uint8Array(this.buffer);
    this._i32 = new Int32Array(this.buffer);
    this._u32 = new Uint32Array(this.buffer);
    this._f64 = new Float64Array(this.buffer);
    this._dv = new DataView(this.buffer);
  }

  /** Byte view of all of wasm memory (valid until the next allocation). */
  get u8(): Uint8Array { if (this.raw.memory.buffer !== this.buffer) this.refresh(); return this._u8; }
  get i32(): Int32Array { if (this.raw.memory.buffer !== this.buffer) this.refresh(); return this._i32; }
  get u32(): Uint32Array { if (this.raw.memory.buffer !== this.buffer) this.refresh(); return this._u32; }
  get f64(): Float64Array { if (this.raw.memory.buffer !== this.buffer) this.refresh(); return this._f64; }
  get dv(): DataView { if (this.raw.memory.buffer !== this.buffer) this.refresh(); return this._dv; }

  /** Bytes of linear memory currently reserved. */
  get memoryBytes(): number { return this.raw.memory.buffer.byteLength; }

  /** Allocates size bytes (16-byte aligned). May grow memory: re-read views after. */
  alloc(size: number): number {
    if (!Number.isInteger(size) || size < 0 || size > 0x7fff0000) {
      throw new WasmMemoryError(`cannot allocate ${size} bytes in wasm memory`);
    }
    let ptr: number;
    try {
      ptr = this.raw.alloc(size) >>> 0;
    } catch (err) {
      throw err instanceof WasmMemoryError ? err : new WasmMemoryError(`wasm allocation of ${size} bytes failed`, { cause: err });
    }
    return ptr;
  }

  free(ptr: number): void {
    if (ptr !== 0) this.raw.free(ptr);
  }

  /** A growable buffer in wasm memory. */
  newBuffer(initialCapacity: number): WasmBuffer {
    return new WasmBuffer(this, initialCapacity);
  }
}

/**
 * A block of wasm memory owned by TypeScript. `ptr` changes when ensure()
 * reallocates; free() releases it. Not safe to use after free().
 */
export class WasmBuffer {
  readonly k: Kernels;
  ptr: number;
  capacity: number;

  constructor(k: Kernels, initialCapacity: number) {
    this.k = k;
    this.capacity = Math.max(16, Math.ceil(initialCapacity));
    this.ptr = k.alloc(this.capacity);
  }

  /** Guarantees capacity >= size; keeps the first `keep` bytes. Returns ptr. ClosedError once freed. */
  ensure(size: number, keep = 0): number {
    if (size <= this.capacity) return this.ptr;
    // Freed (capacity 0): doubling would never reach size.
    if (this.capacity === 0) throw new ClosedError('wasm buffer');
    let cap = this.capacity;
    while (cap < size) cap *= 2;
    const next = this.k.alloc(cap);
    if (keep > 0) this.k.u8.copyWithin(next, this.ptr, this.ptr + Math.min(keep, this.capacity));
    this.k.free(this.ptr);
    this.ptr = next;
    this.capacity = cap;
    return next;
  }

  /** A view of [ptr, ptr + len): valid until the next allocation. ClosedError once freed. */
  view(len = this.capacity, from = 0): Uint8Array {
    if (this.capacity === 0) throw new ClosedError('wasm buffer');
    return this.k.u8.subarray(this.ptr + from, this.ptr + from + len);
  }

  /** Gives the memory back to the wasm heap; idempotent. */
  free(): void {
    if (this.capacity === 0) return;
    this.k.free(this.ptr);
    this.ptr = 0;
    this.capacity = 0;
  }
}

/** Compiles the embedded module (once per process). Works in every runtime. */
export function compileKernels(): Promise<WebAssembly.Module> {
  if (compiled) return Promise.resolve(compiled);
  compiling ??= WebAssembly.compile(decodeBase64(WASM_BASE64) as Uint8Array<ArrayBuffer>).then((m) => (compiled = m));
  return compiling;
}

let shared: Kernels | undefined;

/** The process-wide kernels instance (async: safe on a browser main thread). */
export async function getKernels(): Promise<Kernels> {
  if (shared) return shared;
  const m = await compileKernels();
  shared ??= new Kernels(m);
  return shared;
}

/**
 * Synchronous variant for Node and Deno (and workers). Browsers refuse to
 * compile modules over 4 KiB synchronously on the main thread: use getKernels().
 */
export function getKernelsSync(): Kernels {
  if (shared) return shared;
  compiled ??= new WebAssembly.Module(decodeBase64(WASM_BASE64) as Uint8Array<ArrayBuffer>);
  shared = new Kernels(compiled);
  return shared;
}
