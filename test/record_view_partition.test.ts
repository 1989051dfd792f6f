// Partition.readViews: CRC-checked batch views of a partition's records,
// checked against a model of what was appended (not against read(), which is
// built on readViews), with and without reused buffers.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { Store } from '../src/store.js';
import { Partition, ReadFrom, ViewReadOptions } from '../src/partition.js';
import { RecordBatchView } from '../src/record_batch.js';
import { RecordInput, StoredRecord } from '../src/record.js';
import { ClosedError, CorruptionError } from '../src/errors.js';
import { WasmBuffer, getKernelsSync } from '../src/kernels.js';
import { refBatch, refRecords, RefRecord } from './fixtures/reference.js';
import { tmpDir, cleanupTmp, openPartition, partitionDir, segPath, batchPositions, testOpts } from './helpers/log_util.js';
import { randomBytes } from './helpers/random.js';

after(cleanupTmp);

const utf8 = new TextEncoder();

interface Model { offset: number; timestamp: number; key: Uint8Array | null; value: Uint8Array | null; headers: { key: string; value: Uint8Array | null }[] }

/** ReadOptions.maxBytes counts key, value, header name (UTF-8) and header value bytes. */
function modelBytes(r: Model): number {
  let n = (r.key?.length ?? 0) + (r.value?.length ?? 0);
  for (const h of r.headers) n += utf8.encode(h.key).length + (h.value?.length ?? 0);
  return n;
}

/** What a read from `from` with these limits must return. */
function expectedRead(all: Model[], from: ReadFrom, maxRecords = Infinity, maxBytes = Infinity): Model[] {
  const start = 'offset' in from ? from.offset : (all.find((r) => r.timestamp >= from.timestamp)?.offset ?? Infinity);
  const out: Model[] = [];
  let bytes = 0;
  for (const r of all) {
    if (r.offset < start) continue;
    const size = modelBytes(r);
    if (out.length > 0 && bytes + size > maxBytes) break;
    out.push(r);
    bytes += size;
    if (out.length >= maxRecords || bytes >= maxBytes) break;
  }
  return out;
}

function plain(r: StoredRecord): Model {
  return {
    offset: r.offset, timestamp: r.timestamp,
    key: r.key === null ? null : Uint8Array.from(r.key), value: r.value === null ? null : Uint8Array.from(r.value),
    headers: r.headers.map((h) => ({ key: h.key, value: h.value === null ? null : Uint8Array.from(h.value) })),
  };
}

/** Copies a view's records out while it is valid (what a reuseBuffers consumer must do). */
function copyOut(v: RecordBatchView): Model[] {
  const out: Model[] = [];
  for (let i = 0; i < v.count; i++) {
    const key = v.keyAt(i);
    const value = v.valueAt(i);
    out.push({
      offset: v.offsetAt(i), timestamp: v.timestampAt(i), key: key && Uint8Array.from(key), value: value && Uint8Array.from(value),
      headers: v.headersAt(i).map((h) => ({ key: h.key, value: h.value && Uint8Array.from(h.value) })),
    });
  }
  return out;
}

/** Appends batches of varying shapes; returns the model of every record. */
function fill(p: Partition, batches: number): Model[] {
  const all: Model[] = [];
  let ts = 50_000;
  for (let b = 0; b < batches; b++) {
    const n = 1 + ((b * 11) % 29);
    const recs: RecordInput[] = [];
    for (let i = 0; i < n; i++) {
      const key = i % 6 === 0 ? null : i % 6 === 1 ? '' : `key-${b}-${i}`;
      const value = i % 9 === 0 ? null : 'v'.repeat((b * 17 + i * 5) % 90);
      const headers: [string, string | null][] = i % 4 === 0 ? [['trace', `t${i}`], ['ünï', i % 8 === 0 ? null : 'x']] : [];
      recs.push({ key, value, headers, timestamp: ts++ });
    }
    const res = p.appendSync(recs);
    recs.forEach((r, i) => all.push({
      offset: res.baseOffset + i, timestamp: r.timestamp!,
      key: r.key === null ? null : utf8.encode(r.key as string), value: r.value === null ? null : utf8.encode(r.value as string),
      headers: (r.headers as [string, string | null][]).map(([k, v]) => ({ key: k, value: v === null ? null : utf8.encode(v) })),
    }));
  }
  return all;
}

test('readViews gives the appended records under random start points and limits, with and without reused buffers', async () => {
  const dir = tmpDir();
  const { store, p } = await openPartition(dir, { segmentBytes: 6 * 1024, indexIntervalBytes: 256 });
  try {
    const all = fill(p, 70);
    const batchOf = new Map<number, number>();
    for (const b of p.segments.flatMap((s) => batchPositions(s.logPath))) for (let o = b.baseOffset; o <= b.lastOffset; o++) batchOf.set(o, b.baseOffset);
    const end = p.logEndOffset;
    await fc.assert(fc.asyncProperty(
      fc.oneof(fc.record({ offset: fc.integer({ min: 0, max: end }) }), fc.record({ timestamp: fc.integer({ min: 49_000, max: 50_000 + end + 5 }) })),
      fc.option(fc.integer({ min: 1, max: 300 }), { nil: undefined }),
      fc.option(fc.integer({ min: 1, max: 8_000 }), { nil: undefined }),
      fc.boolean(),
      async (from, maxRecords, maxBytes, reuseBuffers) => {
        const opts: ViewReadOptions = { maxRecords, maxBytes, reuseBuffers };
        const got: Model[] = [];
        let prev: RecordBatchView | null = null;
        for await (const v of p.readViews(from as ReadFrom, opts)) {
          if (reuseBuffers && prev) {
            assert.equal(prev.valid, false, 'the previous view ended');
            assert.throws(() => prev!.offsetAt(0), ClosedError);
          }
          assert.ok(v.count > 0, 'views are never empty');
          assert.ok(v.valid);
          // One stored batch per view.
          const base = batchOf.get(v.offsetAt(0));
          assert.equal(v.batch!.baseOffset, base);
          for (let i = 0; i < v.count; i++) assert.equal(batchOf.get(v.offsetAt(i)), base);
          got.push(...copyOut(v));
          prev = v;
        }
        if (reuseBuffers && prev) assert.equal(prev.valid, false, 'the last view ends with the read');
        assert.deepEqual(got, expectedRead(all, from as ReadFrom, maxRecords, maxBytes));
      },
    ), { numRuns: 120 });
    // read() and readBatches() give the same records.
    const viaRead: Model[] = [];
    for await (const r of p.read({ offset: 0 })) viaRead.push(plain(r));
    assert.deepEqual(viaRead, all);
    const viaBatches: Model[] = [];
    for await (const b of p.readBatches({ offset: 0 })) viaBatches.push(...b.map(plain));
    assert.deepEqual(viaBatches, all);
  } finally {
    await store.close();
  }
});

test('owned views outlive the iteration, later appends, wasm memory growth and the partition', async () => {
  const dir = tmpDir();
  const opened = await openPartition(dir, { segmentBytes: 4 * 1024 });
  const all = fill(opened.p, 20);
  const views: RecordBatchView[] = [];
  for await (const v of opened.p.readViews({ offset: 0 })) views.push(v);
  fill(opened.p, 10);
  const k = getKernelsSync();
  const before = k.raw.memory.buffer;
  const big = new WasmBuffer(k, k.memoryBytes + (8 << 20));
  big.free();
  assert.notEqual(k.raw.memory.buffer, before, 'wasm memory grew');
  await opened.store.close();
  assert.deepEqual(views.flatMap(copyOut), all);
  assert.ok(views.every((v) => v.valid));
});

test('a reused-buffer view ends when the consumer breaks out of the loop', async () => {
  const dir = tmpDir();
  const { store, p } = await openPartition(dir);
  try {
    fill(p, 5);
    let kept: RecordBatchView | null = null;
    for await (const v of p.readViews({ offset: 0 }, { reuseBuffers: true })) { kept = v; break; }
    assert.ok(kept);
    assert.equal(kept.valid, false);
    assert.throws(() => kept!.valueAt(0), ClosedError);
  } finally {
    await store.close();
  }
});

test('corruption in a closed segment: the views before it, then CorruptionError; never a view of the damaged batch', async () => {
  const dir = tmpDir();
  let all: Model[];
  let damaged: { baseOffset: number; lastOffset: number };
  {
    const { store, p } = await openPartition(dir, { segmentBytes: 8 * 1024 });
    all = fill(p, 40);
    await store.close();
  }
  const pdir = partitionDir(dir);
  const firstLog = segPath(pdir, 0, '.log');
  const batches = batchPositions(firstLog);
  const victim = batches[Math.floor(batches.length / 2)]!;
  damaged = victim;
  const bytes = fs.readFileSync(firstLog);
  bytes[victim.position + victim.size - 2]! ^= 0x10; // inside the last record: only the CRC notices
  fs.writeFileSync(firstLog, bytes);
  const store = await Store.open(dir, testOpts());
  try {
    const p = store.partition('t', 0);
    for (const reuseBuffers of [false, true]) {
      const got: Model[] = [];
      let error: unknown = null;
      try {
        for await (const v of p.readViews({ offset: 0 }, { reuseBuffers })) {
          assert.ok(v.lastOffset! < damaged.baseOffset, 'no view of the damaged batch or after it');
          got.push(...copyOut(v));
        }
      } catch (e) { error = e; }
      assert.ok(error instanceof CorruptionError, String(error));
      assert.equal((error as CorruptionError).message.includes(path.basename(firstLog)), true);
      assert.deepEqual(got, all.filter((r) => r.offset < damaged.baseOffset));
    }
  } finally {
    await store.close();
  }
});

test('gzip and control batches of a Kafka-copied partition read as views', async () => {
  const dir = tmpDir();
  const pdir = path.join(dir, 'k-0');
  fs.mkdirSync(pdir, { recursive: true });
  const parts: Uint8Array[] = [];
  const want: Model[] = [];
  let offset = 0;
  for (let b = 0; b < 4; b++) {
    const n = 3 + b;
    const control = b === 1;
    const gzip = b === 2 || b === 3;
    const recs: RefRecord[] = [];
    for (let i = 0; i < n; i++) {
      const o = offset + i;
      const key = o % 3 === 0 ? null : utf8.encode(`key-${o}`);
      const value = utf8.encode(`value ${o} `.repeat(1 + (o % 4)));
      const headers = o % 2 === 0 ? [{ key: utf8.encode('h'), value: utf8.encode(`${o}`) }] : [];
      recs.push({ timestampDelta: BigInt(i * 10), offsetDelta: i, key, value, headers });
      if (!control) want.push({ offset: o, timestamp: 1_600_000_000_000 + offset * 10 + i * 10, key, value, headers: headers.map((h) => ({ key: 'h', value: h.value })) });
    }
    const section = refRecords(recs);
    parts.push(refBatch({
      baseOffset: BigInt(offset), attributes: (gzip ? 1 : 0) | (control ? 0x30 : 0), lastOffsetDelta: n - 1,
      baseTimestamp: BigInt(1_600_000_000_000 + offset * 10), maxTimestamp: BigInt(1_600_000_000_000 + offset * 10 + (n - 1) * 10), recordCount: n,
    }, gzip ? gzipSync(section) : section));
    offset += n;
  }
  fs.writeFileSync(path.join(pdir, '0'.repeat(20) + '.log'), Buffer.concat(parts));
  const store = await Store.open(dir, testOpts());
  try {
    const p = store.partition('k', 0);
    for (const reuseBuffers of [false, true]) {
      const got: Model[] = [];
      for await (const v of p.readViews({ offset: 0 }, { reuseBuffers })) got.push(...copyOut(v));
      assert.deepEqual(got, want);
    }
    // From the middle of a gzip batch.
    const mid = want.find((r) => r.offset > 9)!.offset;
    const got: Model[] = [];
    for await (const v of p.readViews({ offset: mid }, { maxRecords: 2 })) got.push(...copyOut(v));
    assert.deepEqual(got, want.filter((r) => r.offset >= mid).slice(0, 2));
  } finally {
    await store.close();
  }
});

test('batches larger than a read chunk and batches cut by chunk ends read back whole (the cut part is kept, not re-read)', async () => {
  const dir = tmpDir();
  const { store, p } = await openPartition(dir, { segmentBytes: 16 << 20, maxMessageBytes: 2 << 20 });
  try {
    // Batch sizes from 1 KiB to 700 KiB, so chunks of 64 KiB .. 1 MiB end inside batches at many places.
    const all: Model[] = [];
    let ts = 1;
    for (let b = 0; b < 24; b++) {
      const n = 1 + (b % 5);
      const size = [1024, 9000, 70_000, 140_000, 700 * 1024 / 5][b % 5]!;
      const recs: RecordInput[] = Array.from({ length: n }, (_, i) => ({ key: `b${b}r${i}`, value: randomBytes(size + i, b * 10 + i + 1), timestamp: ts++ }));
      const res = p.appendSync(recs);
      recs.forEach((r, i) => all.push({ offset: res.baseOffset + i, timestamp: r.timestamp!, key: utf8.encode(r.key as string), value: r.value as Uint8Array, headers: [] }));
    }
    for (const from of [0, 1, 7, Math.floor(all.length / 2), all.length - 1]) {
      for (const reuseBuffers of [false, true]) {
        const got: Model[] = [];
        for await (const v of p.readViews({ offset: from }, { reuseBuffers })) got.push(...copyOut(v));
        assert.deepEqual(got, all.slice(from), `from ${from}, reuseBuffers ${reuseBuffers}`);
      }
    }
  } finally {
    await store.close();
  }
});
