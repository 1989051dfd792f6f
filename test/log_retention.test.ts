// Roll (segment.bytes, segment.ms) and retention (retention.ms by record
// timestamps, retention.bytes) at their exact boundaries.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { Store } from '../src/store.js';
import { OffsetOutOfRangeError } from '../src/errors.js';
import { tmpDir, cleanupTmp, openPartition, partitionDir, readAll, segmentBases, segPath, testOpts, valueOf, assertRecord } from './helpers/log_util.js';

after(cleanupTmp);

const T0 = 1_700_000_000_000;
/** One record per batch, fixed sizes: every batch has the same byte size. */
const VALUE = 600;
const rec = (i: number, ts = T0) => ({ value: valueOf(i, VALUE), timestamp: ts });

test('segment.bytes: a segment may reach segment.bytes exactly; the next batch rolls', async () => {
  const probeDir = tmpDir();
  const probe = await openPartition(probeDir);
  await probe.p.append([rec(0)]);
  const b = probe.p.active.size;
  await probe.store.close();
  for (const [segmentBytes, perSegment] of [[3 * b, 3], [3 * b - 1, 2], [3 * b + 1, 3], [b, 1]] as const) {
    if (segmentBytes < 1024) continue;
    const dir = tmpDir();
    const { store, p } = await openPartition(dir, { segmentBytes });
    for (let i = 0; i < 10; i++) await p.append([rec(i)]);
    const sizes = p.segments.map((s) => s.size);
    const bases = p.segments.map((s) => s.baseOffset);
    assert.deepEqual(bases, Array.from({ length: Math.ceil(10 / perSegment) }, (_, j) => j * perSegment), `segment.bytes ${segmentBytes}`);
    for (const s of sizes.slice(0, -1)) assert.ok(s <= segmentBytes, `${s} <= ${segmentBytes}`);
    if (segmentBytes === 3 * b) assert.equal(sizes[0], segmentBytes, 'exactly full');
    assert.deepEqual(segmentBases(partitionDir(dir)), bases);
    await store.close();
  }
  // With b >= 1024/3, 3b is a valid segment.bytes: make sure the exact case ran.
  assert.ok(3 * b >= 1024, `batch of ${b} bytes`);
});

test('a batch larger than segment.bytes still goes in (alone, in a fresh segment)', async () => {
  const dir = tmpDir();
  const { store, p } = await openPartition(dir, { segmentBytes: 1024 });
  await p.append([{ value: 'small' }]);
  await p.append([{ value: new Uint8Array(3000) }]);
  await p.append([{ value: 'after' }]);
  assert.deepEqual(p.segments.map((s) => s.baseOffset), [0, 1, 2]);
  assert.ok(p.segments[1]!.size > 1024);
  assert.equal((await readAll(p)).length, 3);
  await store.close();
});

test('segment.ms: rolls when a batch is more than segment.ms after the segment\'s first batch (record timestamps), also after reopen', async () => {
  const dir = tmpDir();
  let { store, p } = await openPartition(dir, { segmentMs: 1000 });
  await p.append([rec(0, T0)]);
  await p.append([rec(1, T0 + 1000)]); // exactly segment.ms: no roll
  assert.equal(p.segments.length, 1);
  await p.append([rec(2, T0 + 500)]); // older timestamps never roll
  await p.append([rec(3, T0 + 1001)]); // past segment.ms: roll
  assert.deepEqual(p.segments.map((s) => s.baseOffset), [0, 3]);
  await store.close();
  ({ store, p } = await openPartition(dir));
  // The reference is the new segment's first batch (T0 + 1001), restored on open.
  await p.append([rec(4, T0 + 2001)]);
  assert.equal(p.segments.length, 2);
  await p.append([rec(5, T0 + 2002)]);
  assert.deepEqual(p.segments.map((s) => s.baseOffset), [0, 3, 5]);
  const all = await readAll(p);
  assert.deepEqual(all.map((r) => r.timestamp), [T0, T0 + 1000, T0 + 500, T0 + 1001, T0 + 2001, T0 + 2002]);
  await store.close();
});

/** A partition with `segments` closed segments of 3 records each (record i has timestamp T0 + i * 1000) and an active one. */
async function fiveSegments(dir: string, extra: Record<string, number> = {}) {
  const probe = tmpDir();
  const pr = await openPartition(probe);
  await pr.p.append([rec(0)]);
  const b = pr.p.active.size;
  await pr.store.close();
  const { store, p } = await openPartition(dir, { segmentBytes: 3 * b, ...extra });
  for (let i = 0; i < 16; i++) await p.append([rec(i, T0 + i * 1000)]);
  assert.deepEqual(p.segments.map((s) => s.baseOffset), [0, 3, 6, 9, 12, 15]);
  return { store, p, b };
}

test('retention.ms by record timestamps, with an explicit now: whole closed segments from the oldest, never the active one', async () => {
  const dir = tmpDir();
  const { store, p } = await fiveSegments(dir, { retentionMs: 10_000 });
  // Segment 0 holds timestamps T0..T0+2000: its max is T0 + 2000.
  assert.equal(p.segments[0]!.maxTimestamp, T0 + 2000);
  assert.equal(p.enforceRetention(T0 + 12_000), 0, 'max == now - retention.ms is kept');
  assert.equal(p.enforceRetention(T0 + 12_001), 1);
  assert.equal(p.logStartOffset, 3);
  assert.deepEqual(segmentBases(partitionDir(dir)), [3, 6, 9, 12, 15]);
  assert.equal(fs.existsSync(segPath(partitionDir(dir), 0, '.index')), false);
  // Reads below the log start are out of range; at it they work.
  await assert.rejects(readAll(p, { offset: 0 }), (e: unknown) => e instanceof OffsetOutOfRangeError && e.logStartOffset === 3 && e.logEndOffset === 16);
  await assert.rejects(readAll(p, { offset: 2 }), OffsetOutOfRangeError);
  const rest = await readAll(p, { offset: 3 });
  rest.forEach((r, i) => assertRecord(r, 3 + i, valueOf(3 + i, VALUE), null, T0 + (3 + i) * 1000));
  // Everything expired: every closed segment goes, the active one stays.
  assert.equal(p.enforceRetention(T0 + 10_000_000), 4);
  assert.deepEqual(p.segments.map((s) => s.baseOffset), [15]);
  assert.equal(p.logStartOffset, 15);
  assert.equal(p.logEndOffset, 16);
  assert.equal(p.enforceRetention(T0 + 10_000_000), 0);
  assert.equal((await p.append([rec(16, T0)])).baseOffset, 16);
  await store.close();
  // The new log start survives a reopen.
  const again = await openPartition(dir);
  assert.equal(again.p.logStartOffset, 15);
  assert.equal(again.p.logEndOffset, 17);
  await again.store.close();
});

test('retention.ms stops at the first segment that is not expired (timestamps out of order)', async () => {
  const dir = tmpDir();
  const probe = tmpDir();
  const pr = await openPartition(probe);
  await pr.p.append([rec(0)]);
  const b = pr.p.active.size;
  await pr.store.close();
  const { store, p } = await openPartition(dir, { segmentBytes: 2 * b, retentionMs: 1000 });
  // Segment 0: a recent record; segments 1 and 2: old ones.
  const ts = [T0, T0 + 50_000, T0, T0, T0, T0, T0];
  for (let i = 0; i < ts.length; i++) await p.append([rec(i, ts[i])]);
  assert.equal(p.segments.length, 4);
  assert.equal(p.enforceRetention(T0 + 20_000), 0, 'segment 0 is recent: nothing behind it goes first');
  assert.equal(p.enforceRetention(T0 + 60_000), 3);
  assert.equal(p.logStartOffset, 6);
  await store.close();
});

test('retention.bytes: the oldest segments go while the rest is still at least retention.bytes', async () => {
  const dir = tmpDir();
  const { store, p, b } = await fiveSegments(dir, { retentionMs: -1 });
  const seg = 3 * b;
  const total = 5 * seg + b;
  assert.equal(p.sizeBytes, total);
  p.config = { ...p.config, retentionBytes: total - seg };
  assert.equal(p.enforceRetention(), 1, 'what remains is exactly retention.bytes');
  assert.equal(p.sizeBytes, total - seg);
  p.config = { ...p.config, retentionBytes: total - 2 * seg + 1 };
  assert.equal(p.enforceRetention(), 0, 'deleting one more would go below retention.bytes');
  p.config = { ...p.config, retentionBytes: 0 };
  assert.equal(p.enforceRetention(), 4);
  assert.equal(p.segments.length, 1, 'the active segment is never deleted');
  assert.equal(p.logStartOffset, 15);
  await store.close();
});

test('store-wide retention (Store.enforceRetention) and compacted topics (never deleted by retention)', async () => {
  const dir = tmpDir();
  const store = await Store.open(dir, testOpts());
  await store.createTopic('del', { config: { segmentBytes: 1024, retentionMs: 1000, flushMs: -1 } });
  await store.createTopic('kept', { config: { segmentBytes: 1024, retentionMs: 1000, flushMs: -1, cleanupPolicy: 'compact' } });
  for (const t of ['del', 'kept']) {
    for (let i = 0; i < 30; i++) await store.partition(t, 0).append([{ key: `k${i}`, value: valueOf(i, 100), timestamp: T0 }]);
  }
  const delSegments = store.partition('del', 0).segments.length;
  const keptSegments = store.partition('kept', 0).segments.length;
  assert.ok(delSegments > 2);
  assert.equal(store.enforceRetention(T0 + 5000), delSegments - 1);
  assert.equal(store.partition('del', 0).segments.length, 1);
  assert.equal(store.partition('kept', 0).segments.length, keptSegments);
  await store.close();
});
