// The wasm boundary (src/kernels.ts): loading, TLSF alloc/free, WasmBuffer,
// views re-created after memory growth, and typed errors for impossible
// allocations.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Kernels, WasmBuffer, compileKernels, getKernels, getKernelsSync } from '../src/kernels.js';
import { ClosedError, WasmMemoryError } from '../src/errors.js';

async function fresh(): Promise<Kernels> {
  return new Kernels(await compileKernels());
}

test('one compiled module and one shared instance per process', async () => {
  const a = await compileKernels();
  const b = await compileKernels();
  assert.equal(a, b);
  assert.ok(a instanceof WebAssembly.Module);
  const s1 = getKernelsSync();
  const s2 = await getKernels();
  assert.equal(s1, s2);
  const names = WebAssembly.Module.exports(a).map((e) => e.name).sort();
  for (const name of ['memory', 'alloc', 'free', 'crc32c', 'batchLayout', 'batchFinish', 'batchScan', 'recordsDecode',
    'offsetIndexLookup', 'timeIndexLookup', 'xxh64Into', 'xxh64Many', 'windowInit', 'windowCheckInsert']) {
    assert.ok(names.includes(name), `export ${name}`);
  }
  assert.deepEqual(WebAssembly.Module.imports(a).map((i) => `${i.module}.${i.name}`), ['env.abort'], 'only abort is imported');
});

test('separate instances have separate memories', async () => {
  const a = await fresh();
  const b = await fresh();
  const pa = a.alloc(64);
  const pb = b.alloc(64);
  a.u8[pa] = 11;
  b.u8[pb] = 22;
  assert.equal(a.u8[pa], 11);
  assert.notEqual(a.raw.memory, b.raw.memory);
});

test('views are re-created after memory grows; stale views are detached', async () => {
  const k = await fresh();
  const p = k.alloc(64);
  k.u8[p] = 0xab;
  k.dv.setUint32(p + 4, 0xdeadbeef);
  k.f64[(p + 8) >>> 3] = Math.PI;
  const stale = k.u8;
  const staleI32 = k.i32;
  const before = k.memoryBytes;
  // More than the initial memory: forces memory.grow inside alloc.
  const big = k.alloc(before + 1024 * 1024);
  assert.ok(k.memoryBytes > before, 'memory grew');
  assert.equal(stale.length, 0, 'a view taken before the growth is detached');
  assert.equal(staleI32.length, 0);
  stale[p] = 0x11; // silently dropped: the reason views must be re-read
  assert.equal(k.u8.length, k.memoryBytes);
  assert.equal(k.u8[p], 0xab, 'the value is still readable through k.u8');
  assert.equal(k.dv.getUint32(p + 4), 0xdeadbeef);
  assert.equal(k.f64[(p + 8) >>> 3], Math.PI);
  assert.equal(k.i32.length * 4, k.memoryBytes);
  assert.equal(k.u32.length * 4, k.memoryBytes);
  // The new block is usable at both ends.
  k.u8[big] = 1;
  k.u8[big + before + 1024 * 1024 - 1] = 2;
  assert.equal(k.u8[big + before + 1024 * 1024 - 1], 2);
  k.free(big);
  k.free(p);
});

test('alloc is 16-byte aligned, free makes the block reusable', async () => {
  const k = await fresh();
  const ptrs = [1, 7, 16, 100, 4096, 100_000].map((n) => k.alloc(n));
  for (const p of ptrs) assert.equal(p % 16, 0, `ptr ${p}`);
  assert.equal(new Set(ptrs).size, ptrs.length);
  const a = k.alloc(1000);
  k.free(a);
  assert.equal(k.alloc(1000), a, 'the freed block is handed out again');
  // Many alloc/free cycles do not grow memory (no leak per call).
  const mem = k.memoryBytes;
  for (let i = 0; i < 10_000; i++) k.free(k.alloc(1 + (i % 5000)));
  assert.equal(k.memoryBytes, mem);
  k.free(0); // a no-op, like free(NULL)
});

test('WasmMemoryError for sizes that can never be allocated', async () => {
  const k = await fresh();
  for (const size of [-1, 1.5, Number.NaN, Infinity, 2 ** 31, 2 ** 40, '16' as unknown as number]) {
    assert.throws(() => k.alloc(size), (e: unknown) => e instanceof WasmMemoryError && e.code === 'ERR_WASM_MEMORY', `size ${size}`);
  }
  // Larger than one allocator block (about 1 GiB): the kernel aborts, typed.
  assert.throws(() => k.alloc(0x7fff0000), WasmMemoryError);
  assert.throws(() => new WasmBuffer(k, 2 ** 31), WasmMemoryError);
  // The instance is still usable afterwards.
  const p = k.alloc(32);
  k.u8[p] = 5;
  assert.equal(k.u8[p], 5);
});

test('exhausting the 4 GiB address space gives WasmMemoryError and leaves the instance usable', async () => {
  const k = await fresh();
  const blocks: number[] = [];
  let error: unknown;
  for (let i = 0; i < 8 && error === undefined; i++) {
    try { blocks.push(k.alloc(0x3ff00000)); } catch (e) { error = e; }
  }
  assert.ok(error instanceof WasmMemoryError, `got ${String(error)}`);
  // wasm32 memory ends at 4 GiB: at most three 1 GiB blocks fit beside the
  // initial 16 MiB (fewer where the process may not reserve that much).
  assert.ok(blocks.length <= 3, `${blocks.length} blocks of 1 GiB`);
  const small = k.alloc(100);
  k.u8[small] = 9;
  assert.equal(k.u8[small], 9);
  for (const b of blocks) k.free(b);
  if (blocks.length > 0) assert.equal(k.alloc(0x3ff00000), blocks[0], 'freed space is reused');
});

test('WasmBuffer: ensure keeps the requested prefix, view follows the pointer, free releases', async () => {
  const k = await fresh();
  const buf = new WasmBuffer(k, 10);
  assert.ok(buf.capacity >= 16, 'minimum capacity');
  const first = buf.ptr;
  assert.equal(buf.ensure(buf.capacity), first, 'no reallocation when it fits');
  k.u8.set([1, 2, 3, 4, 5, 6, 7, 8], buf.ptr);
  const p = buf.ensure(100_000, 5);
  assert.equal(p, buf.ptr);
  assert.ok(buf.capacity >= 100_000);
  assert.deepEqual(Array.from(k.u8.subarray(p, p + 5)), [1, 2, 3, 4, 5], 'kept bytes moved with the buffer');
  const v = buf.view(4, 1);
  assert.equal(v.length, 4);
  assert.equal(v.byteOffset, buf.ptr + 1);
  assert.deepEqual(Array.from(v), [2, 3, 4, 5]);
  assert.equal(buf.view().length, buf.capacity);
  const last = buf.ptr;
  const cap = buf.capacity;
  buf.free();
  assert.equal(buf.ptr, 0);
  assert.equal(buf.capacity, 0);
  // Both blocks are free now (and merged): the next allocation of that size
  // lands in them; with a leak it would land after the buffer.
  assert.ok(k.alloc(cap) <= last, 'free() released the block');
});

test('WasmBuffer after free: ensure and view throw ClosedError (ensure used to double 0 forever), free again is a no-op', async () => {
  const k = await fresh();
  const buf = new WasmBuffer(k, 64);
  buf.free();
  assert.throws(() => buf.ensure(100), ClosedError);
  assert.throws(() => buf.ensure(1), ClosedError);
  assert.throws(() => buf.view(), ClosedError);
  buf.free();
  // The heap is intact: a block of the freed size is handed out again, once.
  const a = k.alloc(64);
  const b = k.alloc(64);
  assert.notEqual(a, b);
});

test('WasmBuffer.ensure across memory growth keeps data and re-reads views', async () => {
  const k = await fresh();
  const buf = k.newBuffer(1024);
  for (let i = 0; i < 1024; i++) k.u8[buf.ptr + i] = i & 0xff;
  const before = k.memoryBytes;
  buf.ensure(before * 2, 1024);
  assert.ok(k.memoryBytes > before);
  for (let i = 0; i < 1024; i += 97) assert.equal(k.u8[buf.ptr + i], i & 0xff);
  buf.free();
});
