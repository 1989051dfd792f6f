// Read-ahead (Partition.readSegmentFrom with NodeStorage): while one chunk of
// a segment is verified and handed out, the next is read off the thread into
// a second wasm buffer. These tests pin what must survive that: wasm memory
// growing while a read is in flight (the read is redone, the records stay
// right), a consumer that stops mid-read (the read in flight settles before
// its buffer is reused), closing under a read in flight (the descriptor is
// closed after the read, not under it), batches larger than a chunk, damage
// found in a chunk that was read ahead, and readAsync itself.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Kernels, compileKernels } from '../src/kernels.js';
import { Store } from '../src/store.js';
import { Partition } from '../src/partition.js';
import { LogSegment } from '../src/log_segment.js';
import { NodeStorage } from '../src/storage.js';
import { CorruptionError, StorageError } from '../src/errors.js';
import { RecordInput } from '../src/record.js';
import { tmpDir, cleanupTmp, testOpts, testConfig, valueOf } from './helpers/log_util.js';

after(cleanupTmp);

/** A partition on its own kernels instance (its own wasm memory, which the test grows). */
async function open(dir: string, k: Kernels, config = {}): Promise<{ store: Store; p: Partition }> {
  const store = await Store.open(dir, testOpts({ kernels: k }));
  if (!store.hasTopic('t')) await store.createTopic('t', { config: testConfig(config) });
  return { store, p: store.partition('t', 0) };
}

/** Appends `batches` batches of `perBatch` records of `size`-byte values; returns the values in offset order. */
function fill(p: Partition, batches: number, perBatch: number, size: number): Uint8Array[] {
  const values: Uint8Array[] = [];
  for (let b = 0; b < batches; b++) {
    const recs: RecordInput[] = [];
    for (let j = 0; j < perBatch; j++) {
      const v = valueOf(values.length, size);
      values.push(v);
      recs.push({ key: `k${values.length - 1}`, value: v, timestamp: 1_700_000_000_000 + values.length });
    }
    p.appendSync(recs);
  }
  return values;
}

/** Counts the segment file reads done on the calling thread and off it. */
function countReads(): { sync: number; async: number; restore(): void } {
  const proto = LogSegment.prototype;
  const { readInto, readIntoAsync } = proto;
  const c = {
    sync: 0, async: 0,
    restore() { proto.readInto = readInto; proto.readIntoAsync = readIntoAsync; },
  };
  proto.readInto = function (this: LogSegment, ...a: Parameters<LogSegment['readInto']>) { c.sync++; return readInto.apply(this, a); };
  proto.readIntoAsync = function (this: LogSegment, ...a: Parameters<LogSegment['readIntoAsync']>) { c.async++; return readIntoAsync.apply(this, a); };
  return c;
}

test('wasm memory growing at every step of a read: every read in flight is redone and every record is right', async () => {
  const k = new Kernels(await compileKernels());
  const dir = tmpDir();
  const { store, p } = await open(dir, k);
  // About 6 MiB in 64 KiB batches: the first read is 64 KiB, later ones 1 MiB, so reads ahead are in flight at most steps.
  const values = fill(p, 96, 64, 1000);
  const grown: number[] = [];
  const reads = countReads();
  try {
    let i = 0;
    for await (const v of p.readViews({ offset: 0 }, { reuseBuffers: true })) {
      for (let j = 0; j < v.count; j++, i++) {
        assert.equal(v.offsetAt(j), i);
        assert.deepEqual(v.valueAt(j), values[i], `offset ${i}`);
      }
      // Grow wasm memory while the next chunk may be on its way into it.
      const before = k.memoryBytes;
      k.alloc(4 << 20);
      if (k.memoryBytes > before) grown.push(i);
    }
    assert.equal(i, values.length);
  } finally {
    reads.restore();
  }
  assert.ok(grown.length >= 5, `memory grew during the read (${grown.length} times)`);
  assert.ok(reads.async >= 4, `reads ahead were issued (${reads.async})`);
  // A read ahead that met growth is read again on the thread: with growth at
  // every step, about one sync read per read ahead.
  assert.ok(reads.sync >= Math.min(grown.length, reads.async), `sync reads ${reads.sync}, growths ${grown.length}, async ${reads.async}`);
  await store.close();
});

test('no growth: every chunk after the second comes from a read ahead, and the records match a read without read-ahead', async () => {
  const k = new Kernels(await compileKernels());
  const dir = tmpDir();
  const { store, p } = await open(dir, k);
  // Batches of about 50 KB: the first 64 KiB read holds a whole one.
  const values = fill(p, 80, 50, 1000);
  // Warm the read pool and the buffers so that no allocation happens during the counted read.
  for await (const v of p.readViews({ offset: 0 })) void v;
  const reads = countReads();
  let n = 0;
  try {
    for await (const r of p.read({ offset: 0 })) { assert.deepEqual(r.value, values[n]); n++; }
  } finally {
    reads.restore();
  }
  assert.equal(n, values.length);
  assert.equal(reads.sync, 2, 'only the first two chunks are read on the thread (reads ahead start with the second)');
  assert.ok(reads.async >= 2);
  await store.close();
  // The same log read through a storage without readAsync (every read on the thread) gives the same records.
  const plain = new NodeStorage();
  const noAsync = Object.assign(Object.create(plain) as NodeStorage, {
    open(file: string, mode: 'read' | 'write') { const h = plain.open(file, mode); return { path: h.path, size: () => h.size(), read: h.read.bind(h), write: h.write.bind(h), truncate: h.truncate.bind(h), datasync: () => h.datasync(), close: () => h.close() }; },
  });
  const again = await Store.open(dir, testOpts({ kernels: k, storage: noAsync }));
  let m = 0;
  for await (const r of again.partition('t', 0).read({ offset: 0 })) { assert.deepEqual(r.value, values[m]); m++; }
  assert.equal(m, values.length);
  await again.close();
});

test('a consumer that stops with a read in flight: the next read reuses the context and sees the right bytes', async () => {
  const k = new Kernels(await compileKernels());
  const { store, p } = await open(tmpDir(), k);
  const values = fill(p, 64, 32, 1500);
  for (let round = 0; round < 5; round++) {
    const start = round * 300;
    // Stop at the third view (in the second chunk, which reads the third ahead): a read ahead is in flight.
    let seen = 0;
    let at = start;
    for await (const v of p.readViews({ offset: start })) {
      assert.deepEqual(v.valueAt(0), values[at]);
      at += v.count;
      if (++seen === 3) break;
    }
    // Another read right away takes the pooled context (and its second buffer).
    const other = (round * 617) % values.length;
    let i = other;
    for await (const v of p.readViews({ offset: other }, { maxRecords: 500 })) {
      for (let j = 0; j < v.count; j++, i++) assert.deepEqual(v.valueAt(j), values[i]);
    }
    assert.equal(i, Math.min(values.length, other + 500));
  }
  await store.close();
});

test('closing the store with a read ahead in flight: the read in flight completes, the read then ends with an error, nothing leaks', async () => {
  const k = new Kernels(await compileKernels());
  const { store, p } = await open(tmpDir(), k);
  fill(p, 32, 32, 2000);
  const it = p.readViews({ offset: 0 })[Symbol.asyncIterator]();
  const first = await it.next();
  assert.equal(first.done, false);
  await store.close();
  // The segment's file is closed: the chunk already read ahead may still be
  // handed out, then the read stops (closed partition or closed file), never with garbage.
  let n = 0;
  try {
    for (let r = await it.next(); !r.done; r = await it.next()) n += r.value.count;
  } catch (err) {
    assert.ok(err instanceof CorruptionError || err instanceof StorageError, `unexpected ${(err as Error).name}: ${(err as Error).message}`);
  }
  assert.ok(n < 32 * 32);
});

test('point reads and reads stopped in their first chunk issue no read ahead', async () => {
  const k = new Kernels(await compileKernels());
  const { store, p } = await open(tmpDir(), k);
  const values = fill(p, 64, 32, 1500);
  const reads = countReads();
  try {
    for (let o = 0; o < values.length; o += 97) {
      for await (const r of p.read({ offset: o }, { maxRecords: 1 })) assert.deepEqual(r.value, values[o]);
      for await (const r of p.read({ offset: o })) { assert.deepEqual(r.value, values[o]); break; }
    }
  } finally {
    reads.restore();
  }
  assert.equal(reads.async, 0);
  await store.close();
});

test('batches larger than a read chunk, between small ones, read ahead whole', async () => {
  const k = new Kernels(await compileKernels());
  const { store, p } = await open(tmpDir(), k, { maxMessageBytes: 8 << 20 });
  const values: Uint8Array[] = [];
  const sizes = [10, 3000, 20, 2500, 5, 2600, 1];
  for (const [b, n] of sizes.entries()) {
    const recs: RecordInput[] = [];
    for (let j = 0; j < n; j++) { const v = valueOf(values.length, b % 2 ? 1000 : 50); values.push(v); recs.push({ value: v }); }
    p.appendSync(recs); // the odd batches are about 3 MiB: larger than the 1 MiB chunk
  }
  let i = 0;
  for await (const v of p.readViews({ offset: 0 }, { reuseBuffers: true })) {
    for (let j = 0; j < v.count; j++, i++) assert.deepEqual(v.valueAt(j), values[i]);
  }
  assert.equal(i, values.length);
  await store.close();
});

test('damage in a chunk that was read ahead is a CorruptionError at its position, after the records before it', async () => {
  const k = new Kernels(await compileKernels());
  const dir = tmpDir();
  const { store, p } = await open(dir, k);
  fill(p, 60, 40, 1000);
  const seg = p.segments[0]!;
  // A batch well past the first 64 KiB + 1 MiB: it is in a chunk read ahead.
  let pos = 0;
  let damagedAt = -1;
  let offsetAt = -1;
  for (let b = 0; b < 50; b++) {
    const h = seg.peekHeader(pos)!;
    if (b === 45) { damagedAt = pos; offsetAt = h.baseOffset; break; }
    pos += h.size;
  }
  await store.close();
  const file = seg.logPath;
  const fd = fs.openSync(file, 'r+');
  const byte = Buffer.alloc(1);
  fs.readSync(fd, byte, 0, 1, damagedAt + 500);
  byte[0] ^= 0x20;
  fs.writeSync(fd, byte, 0, 1, damagedAt + 500);
  fs.closeSync(fd);
  fs.rmSync(path.join(dir, 't-0', '.clean-shutdown'), { force: true });
  const again = await open(dir, k);
  // Recovery drops the damaged tail unless it was flushed; read what is there either way.
  let n = 0;
  let error: unknown = null;
  try {
    for await (const r of again.p.read({ offset: 0 })) { assert.equal(r.offset, n); n++; }
  } catch (err) {
    error = err;
  }
  if (error !== null) {
    assert.ok(error instanceof CorruptionError, String(error));
    assert.equal(error.position, damagedAt);
    assert.equal(error.file, file);
    assert.equal(n, offsetAt);
  } else {
    assert.equal(n, offsetAt, 'recovery cut the log at the damaged batch');
  }
  await again.store.close();
});

test('readAsync reads what read reads; close() with reads in flight waits for them; reads after close fail with StorageError', async () => {
  const dir = tmpDir();
  const file = path.join(dir, 'f.bin');
  const data = new Uint8Array(3 << 20);
  for (let i = 0; i < data.length; i++) data[i] = (i * 131 + (i >>> 11)) & 0xff;
  fs.writeFileSync(file, data);
  const h = new NodeStorage().open(file, 'read');
  assert.ok(h.readAsync);
  const a = new Uint8Array(1 << 20);
  const b = new Uint8Array(1 << 20);
  const inFlight = [h.readAsync!(a, 0, a.length, 12345), h.readAsync!(b, 0, b.length, (2 << 20) + 100)];
  h.close(); // deferred: the two reads still complete
  const [ga, gb] = await Promise.all(inFlight);
  assert.equal(ga, a.length);
  assert.deepEqual(a, data.subarray(12345, 12345 + a.length));
  assert.equal(gb, data.length - ((2 << 20) + 100), 'a read past the end returns what there is');
  assert.deepEqual(b.subarray(0, gb), data.subarray((2 << 20) + 100));
  await assert.rejects(h.readAsync!(a, 0, 10, 0), StorageError);
  assert.throws(() => h.read(a, 0, 10, 0), StorageError);
});
