// Flush semantics under simulated crashes (FaultyStorage): a resolved flush()
// survives; unflushed data may vanish but never leaves a corrupt readable
// log; group commit; flush policies; I/O errors; the clean-shutdown marker.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Store } from '../src/store.js';
import { Partition } from '../src/partition.js';
import { StorageError, ClosedError } from '../src/errors.js';
import { TopicConfig } from '../src/topic_config.js';
import { FaultyStorage, CrashOptions } from './helpers/faulty_storage.js';
import { tmpDir, cleanupTmp, openPartition, partitionDir, valueOf, keyOf, readAll, readUntilError, segmentBases, testOpts, assertRecord } from './helpers/log_util.js';

after(cleanupTmp);

/** Simulates a crash and reopens the store like a new process would (the dead process's lock is stale). */
async function crashAndReopen(fsx: FaultyStorage, dir: string, crash: CrashOptions = {}, config: Partial<TopicConfig> = {}): Promise<{ store: Store; p: Partition }> {
  fsx.crash(crash);
  fs.rmSync(path.join(dir, '.lock'), { force: true });
  return openPartition(dir, config, { storage: fsx });
}

/** The log must read cleanly to its end and be a prefix of what was appended, at least `flushed` long. */
async function assertPrefix(p: Partition, appended: number, flushed: number, valueSize = 0): Promise<number> {
  const { records, error } = await readUntilError(p, { offset: p.logStartOffset });
  assert.equal(error, null, `the log reads cleanly to its end (${String(error)})`);
  assert.ok(records.length >= flushed, `kept ${records.length} records, flushed ${flushed}`);
  assert.ok(records.length <= appended, `kept ${records.length} records, appended ${appended}`);
  records.forEach((r, i) => assertRecord(r, i, valueOf(i, valueSize), keyOf(i)));
  assert.equal(p.logEndOffset, records.length);
  assert.equal(p.highWatermark, records.length);
  return records.length;
}

test('after a resolved flush everything flushed survives a crash; what was not flushed is dropped cleanly', async () => {
  const dir = tmpDir();
  const fsx = new FaultyStorage();
  let { store, p } = await openPartition(dir, { segmentBytes: 2048, indexIntervalBytes: 128 }, { storage: fsx });
  let appended = 0;
  let flushed = 0;
  for (let round = 0; round < 12; round++) {
    const n = 5 + (round * 7) % 23;
    for (let i = 0; i < n; i++, appended++) await p.append([{ key: keyOf(appended), value: valueOf(appended) }]);
    if (round % 3 !== 2) {
      await p.flush();
      flushed = appended;
      assert.equal(p.highWatermark, appended);
    }
    // Some more that are never flushed.
    for (let i = 0; i < 4; i++, appended++) p.appendSync([{ key: keyOf(appended), value: valueOf(appended) }]);
    ({ store, p } = await crashAndReopen(fsx, dir));
    // Unsynced data was really dropped: the log ends exactly at the last flush.
    const kept = await assertPrefix(p, appended, flushed);
    assert.equal(kept, flushed);
    appended = kept;
    assert.equal((await p.append([{ key: keyOf(appended), value: valueOf(appended) }])).baseOffset, appended);
    appended++;
  }
  assert.ok(segmentBases(partitionDir(dir)).length > 2, 'rolled several times');
  await store.close();
});

test('a torn last write (any prefix of it reached the disk) is cut back to the last whole batch', async () => {
  const dir = tmpDir();
  const fsx = new FaultyStorage();
  let { store, p } = await openPartition(dir, {}, { storage: fsx });
  let appended = 0;
  for (; appended < 10; appended++) await p.append([{ key: keyOf(appended), value: valueOf(appended, 50) }]);
  await p.flush();
  for (const torn of [1, 11, 12, 30, 61, 62, 90, 10_000]) {
    p.appendSync([{ key: keyOf(appended), value: valueOf(appended, 50) }]);
    appended++;
    ({ store, p } = await crashAndReopen(fsx, dir, { tornLastWrite: torn }));
    const kept = await assertPrefix(p, appended, appended - 1, 50);
    // A torn write that happens to be complete (the whole batch) is kept.
    appended = kept;
    await p.flush();
  }
  await store.close();
});

test('process crash (page cache intact): everything appended is there, and recovery makes it durable', async () => {
  const dir = tmpDir();
  const fsx = new FaultyStorage();
  let { store, p } = await openPartition(dir, { segmentBytes: 1500 }, { storage: fsx });
  for (let i = 0; i < 60; i++) p.appendSync([{ key: keyOf(i), value: valueOf(i) }]);
  ({ store, p } = await crashAndReopen(fsx, dir, { keepUnsynced: true }));
  await assertPrefix(p, 60, 60);
  // Recovery fsynced what it kept before calling it flushed: a power loss now loses nothing.
  ({ store, p } = await crashAndReopen(fsx, dir));
  await assertPrefix(p, 60, 60);
  await store.close();
});

test('a crash while a flush is in flight: that flush never resolved, nothing corrupt is readable', async () => {
  const dir = tmpDir();
  const fsx = new FaultyStorage();
  let { store, p } = await openPartition(dir, { segmentBytes: 1024 }, { storage: fsx });
  for (let i = 0; i < 20; i++) p.appendSync([{ key: keyOf(i), value: valueOf(i) }]);
  await p.flush();
  for (let i = 20; i < 50; i++) p.appendSync([{ key: keyOf(i), value: valueOf(i) }]);
  const inflight = p.flush();
  inflight.catch(() => undefined);
  // The crash lands before the fdatasync calls complete.
  ({ store, p } = await crashAndReopen(fsx, dir));
  await assert.rejects(inflight, StorageError);
  await assertPrefix(p, 50, 20);
  await store.close();
});

test('crash right after a roll: the new segment file may vanish (its directory entry was not synced)', async () => {
  const dir = tmpDir();
  const fsx = new FaultyStorage();
  let { store, p } = await openPartition(dir, { segmentBytes: 1024 }, { storage: fsx });
  let i = 0;
  while (p.segments.length === 1) { p.appendSync([{ key: keyOf(i), value: valueOf(i) }]); i++; }
  await p.flush();
  const flushed = i;
  const before = p.segments.length;
  while (p.segments.length === before) { p.appendSync([{ key: keyOf(i), value: valueOf(i) }]); i++; }
  const pending = fsx.pendingDirOps().filter((op) => op.kind === 'create' && /\.log$/.test(op.target));
  assert.equal(pending.length, 1, 'the new segment file is not yet durable');
  ({ store, p } = await crashAndReopen(fsx, dir));
  await assertPrefix(p, i, flushed);
  assert.equal(p.logEndOffset, flushed);
  assert.equal(p.segments.length, before);
  await store.close();
});

test('group commit: many concurrent flush() calls share fdatasyncs, and each covers the appends before it', async () => {
  const dir = tmpDir();
  const fsx = new FaultyStorage();
  let { store, p } = await openPartition(dir, {}, { storage: fsx });
  const syncsBefore = fsx.stats.datasyncs;
  const calls: { end: number; promise: Promise<void> }[] = [];
  for (let i = 0; i < 200; i++) {
    p.appendSync([{ key: keyOf(i), value: valueOf(i) }]);
    const end = p.logEndOffset;
    const promise = p.flush();
    calls.push({ end, promise });
    promise.then(() => assert.ok(p.highWatermark >= end, `flush called at ${end} resolved with high watermark ${p.highWatermark}`));
    if (i % 40 === 39) await new Promise((r) => setImmediate(r));
  }
  await Promise.all(calls.map((c) => c.promise));
  assert.equal(p.highWatermark, 200);
  const syncs = fsx.stats.datasyncs - syncsBefore;
  // One flush = log + 2 indexes (+ the recovery point when durable): far fewer than one per call.
  assert.ok(syncs < 200 / 4, `${syncs} fdatasyncs for 200 flush calls`);
  // Concurrent calls while one runs share the next one.
  const a = p.flush();
  const b = p.flush();
  assert.equal(a, b);
  await a;
  ({ store, p } = await crashAndReopen(fsx, dir));
  await assertPrefix(p, 200, 200);
  await store.close();
});

test('flush policy: flush.messages makes append wait for a flush every N records; flush.ms flushes in the background', async () => {
  const dir = tmpDir();
  const fsx = new FaultyStorage();
  const store = await Store.open(dir, testOpts({ storage: fsx }));
  await store.createTopic('n', { config: { flushMessages: 5, flushMs: -1 } });
  await store.createTopic('ms', { config: { flushMessages: -1, flushMs: 20 } });
  await store.createTopic('explicit', { config: { flushMessages: -1, flushMs: -1 } });
  const pn = store.partition('n', 0);
  for (let i = 1; i <= 12; i++) {
    await pn.append([{ value: valueOf(i) }]);
    assert.equal(pn.highWatermark, Math.floor(i / 5) * 5, `after ${i} appends`);
  }
  const pm = store.partition('ms', 0);
  await pm.append([{ value: 'a' }, { value: 'b' }]);
  assert.equal(pm.highWatermark, 0);
  const t0 = Date.now();
  while (pm.highWatermark < 2) {
    assert.ok(Date.now() - t0 < 10_000, 'background flush within 10 s');
    await new Promise((r) => setTimeout(r, 5));
  }
  const pe = store.partition('explicit', 0);
  await pe.append([{ value: 'x' }]);
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(pe.highWatermark, 0, 'no flush without a policy');
  // What the policies flushed survives a crash; the unflushed tail of 'n' and all of 'explicit' go.
  fsx.crash();
  fs.rmSync(path.join(dir, '.lock'));
  const again = await Store.open(dir, testOpts({ storage: fsx }));
  assert.equal(again.partition('n', 0).logEndOffset, 10);
  assert.equal(again.partition('ms', 0).logEndOffset, 2);
  assert.equal(again.partition('explicit', 0).logEndOffset, 0);
  await again.close();
});

test('an fdatasync failure rejects the flush and stops writes until reopened; flushed data is intact', async () => {
  const dir = tmpDir();
  const fsx = new FaultyStorage();
  let { store, p } = await openPartition(dir, {}, { storage: fsx });
  for (let i = 0; i < 10; i++) p.appendSync([{ key: keyOf(i), value: valueOf(i) }]);
  await p.flush();
  for (let i = 10; i < 15; i++) p.appendSync([{ key: keyOf(i), value: valueOf(i) }]);
  fsx.failOn({ op: 'datasync', path: '.log', code: 'EIO' });
  await assert.rejects(p.flush(), (e: unknown) => e instanceof StorageError && e.code === 'ERR_STORAGE' && /EIO/.test(e.message));
  assert.equal(p.highWatermark, 10);
  // No retry can claim durability now (the kernel may have dropped the pages).
  await assert.rejects(p.flush(), StorageError);
  assert.throws(() => p.appendSync([{ value: 'x' }]), StorageError);
  // Readers still see every complete batch.
  assert.equal((await readAll(p)).length, 15);
  await store.close();
  assert.equal(fs.existsSync(path.join(partitionDir(dir), '.clean-shutdown')), false, 'no clean-shutdown marker after a failure');
  ({ store, p } = await crashAndReopen(fsx, dir));
  await assertPrefix(p, 15, 10);
  await store.close();
});

test('a write that fails midway (ENOSPC after part of the batch) leaves nothing visible and is cut on reopen', async () => {
  const dir = tmpDir();
  const fsx = new FaultyStorage();
  let { store, p } = await openPartition(dir, {}, { storage: fsx });
  for (let i = 0; i < 5; i++) await p.append([{ key: keyOf(i), value: valueOf(i) }]);
  await p.flush();
  fsx.failOn({ op: 'write', path: /\.log$/, code: 'ENOSPC', partialBytes: 20 });
  assert.throws(() => p.appendSync([{ key: keyOf(5), value: valueOf(5) }]), (e: unknown) => e instanceof StorageError && /ENOSPC/.test(e.message));
  assert.equal(p.logEndOffset, 5, 'the failed batch is not visible');
  assert.equal((await readAll(p)).length, 5);
  assert.throws(() => p.appendSync([{ value: 'y' }]), StorageError);
  await store.close();
  ({ store, p } = await crashAndReopen(fsx, dir, { keepUnsynced: true }));
  await assertPrefix(p, 6, 5);
  assert.equal(p.logEndOffset, 5);
  assert.equal((await p.append([{ key: keyOf(5), value: valueOf(5) }])).baseOffset, 5);
  await store.close();
});

test('the clean-shutdown marker skips the recovery scan; without it only segments past the recovery point are scanned', async () => {
  const dir = tmpDir();
  const scans: number[] = [];
  const onRecovery = (e: { segment: number }) => scans.push(e.segment);
  let { store, p } = await openPartition(dir, { segmentBytes: 1024 }, { onRecovery });
  for (let i = 0; i < 80; i++) await p.append([{ key: keyOf(i), value: valueOf(i) }]);
  const bases = p.segments.map((s) => s.baseOffset);
  assert.ok(bases.length >= 4);
  await store.close();
  scans.length = 0;
  ({ store, p } = await openPartition(dir, {}, { onRecovery }));
  assert.deepEqual(scans, [], 'clean: no scan');
  assert.deepEqual(p.recoveryReport, []);
  // The marker is gone while the store is open, durably (a crash now must recover).
  assert.equal(fs.existsSync(path.join(partitionDir(dir), '.clean-shutdown')), false);
  for (let i = 80; i < 100; i++) await p.append([{ key: keyOf(i), value: valueOf(i) }]);
  await p.flush();
  const recoveryPoint = p.logEndOffset;
  for (let i = 100; i < 130; i++) await p.append([{ key: keyOf(i), value: valueOf(i) }]);
  // Segments that end at or below the recovery point need no scan.
  const expected = p.segments.filter((s, j) => j === p.segments.length - 1 || p.segments[j + 1]!.baseOffset > recoveryPoint).map((s) => s.baseOffset);
  assert.ok(expected.length >= 2 && expected.length < p.segments.length, `scan ${expected} of ${p.segments.length}`);
  // A crash (here: the process ends without close).
  fs.rmSync(path.join(dir, '.lock'));
  scans.length = 0;
  const crashed = await openPartition(dir, {}, { onRecovery });
  assert.deepEqual(scans, expected);
  assert.equal(crashed.p.logEndOffset, 130);
  assert.equal((await readAll(crashed.p)).length, 130);
  await crashed.store.close();
  await store.close().catch(() => undefined);
});

test('close() refuses appends that arrive while it flushes (the marker never claims unflushed data)', async () => {
  const dir = tmpDir();
  const { store, p } = await openPartition(dir);
  p.appendSync([{ value: 'a' }]);
  const closing = p.close();
  assert.throws(() => p.appendSync([{ value: 'b' }]), ClosedError);
  await closing;
  await store.close();
  const again = await openPartition(dir);
  assert.equal(again.p.logEndOffset, 1);
  await again.store.close();
});
