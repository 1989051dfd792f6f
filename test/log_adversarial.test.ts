// Adversarial review of the partition log: each test here reproduces a bug
// found by that review (it failed before the fix named in its title) or
// covers a path no other test reached.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { refBatch, refRecords, RefRecord } from './fixtures/reference.js';
import * as fs from 'node:fs';
import { CorruptionError, InvalidArgumentError } from '../src/errors.js';
import * as path from 'node:path';
import { tmpDir, cleanupTmp, openPartition, readAll, readUntilError, partitionDir, segPath, segmentBases, batchPositions, valueOf, keyOf, noSync } from './helpers/log_util.js';
import { FaultyStorage, FaultOp } from './helpers/faulty_storage.js';

after(cleanupTmp);

const rec = (d: number, ts: bigint): RefRecord => ({ timestampDelta: ts, offsetDelta: d, key: null, value: new Uint8Array([d]), headers: [] });

test('appendBatches refuses timestamps past 2^53 - 1 (they read back rounded) with InvalidArgumentError, writing nothing', async () => {
  const dir = tmpDir();
  const { store, p } = await openPartition(dir);
  try {
    // Largest safe timestamp: accepted and read back exactly.
    const safe = BigInt(Number.MAX_SAFE_INTEGER) - 1n;
    await p.appendBatches(refBatch({ lastOffsetDelta: 1, baseTimestamp: safe, maxTimestamp: safe + 1n, recordCount: 2 }, refRecords([rec(0, 0n), rec(1, 1n)])));
    assert.deepEqual((await readAll(p)).map((r) => r.timestamp), [Number.MAX_SAFE_INTEGER - 1, Number.MAX_SAFE_INTEGER]);
    const cases: [string, bigint, bigint[]][] = [
      ['max one past 2^53 - 1', BigInt(Number.MAX_SAFE_INTEGER), [0n, 1n]],
      ['2^53 + 1 (not a double)', 2n ** 53n + 1n, [0n, 1n]],
      ['2^60, two records one ms apart', 2n ** 60n, [0n, 1n]],
      ['2^62', 2n ** 62n, [0n, 5n]],
      ['i64 max', 2n ** 63n - 1n, [0n, 0n]],
    ];
    for (const [label, base, deltas] of cases) {
      const max = base + deltas.reduce((a, b) => (b > a ? b : a), 0n);
      const bytes = refBatch({ lastOffsetDelta: deltas.length - 1, baseTimestamp: base, maxTimestamp: max, recordCount: deltas.length },
        refRecords(deltas.map((d, i) => rec(i, d))));
      await assert.rejects(p.appendBatches(bytes), InvalidArgumentError, label);
      assert.equal(p.logEndOffset, 2, `${label}: nothing written`);
    }
    assert.equal((await readAll(p)).length, 2);
  } finally {
    await store.close();
  }
});

test('clean reopen of an active segment at base offset 0: no CRC scan, and a damaged length field is reported by reads, not cut with every later flushed record', async () => {
  const dir = tmpDir();
  const cfg = { indexIntervalBytes: 100 };
  let { store, p } = await openPartition(dir, cfg);
  for (let i = 0; i < 50; i++) await p.append([{ value: new Uint8Array(50).fill(i), timestamp: 1000 + i }]);
  assert.ok(p.active.index.entries > 10);
  await store.close();
  // A clean shutdown needs no scan: loadTail reads headers from the last index entry.
  ({ store, p } = await openPartition(dir, cfg));
  assert.deepEqual(p.recoveryReport, [], 'clean open scanned the segment');
  assert.equal(p.logEndOffset, 50);
  await store.close();
  // Media damage after the clean shutdown: batch 10's length field (before the last index entry).
  const file = segPath(partitionDir(dir), 0, '.log');
  const before = fs.statSync(file).size;
  const bad = batchPositions(file)[10]!.position;
  const bytes = fs.readFileSync(file);
  bytes[bad + 9] ^= 0x40;
  fs.writeFileSync(file, bytes);
  ({ store, p } = await openPartition(dir, cfg));
  try {
    assert.equal(fs.statSync(file).size, before, 'flushed data was truncated at open');
    assert.equal(p.logEndOffset, 50, 'offsets of flushed records would be reused');
    const r = await readUntilError(p, { offset: 0 });
    assert.deepEqual(r.records.map((x) => x.offset), Array.from({ length: 10 }, (_, i) => i));
    assert.ok(r.error instanceof CorruptionError, `expected CorruptionError, got ${String(r.error)}`);
    assert.equal(r.error.file, file);
    assert.equal(r.error.position, bad);
    // Records after the damage are still there and readable from their offsets.
    const tail = await readAll(p, { offset: 11 });
    assert.deepEqual(tail.map((x) => x.value![0]), Array.from({ length: 39 }, (_, i) => i + 11));
  } finally {
    await store.close();
  }
});

/** The active (base 0) segment of 50 one-record batches after a clean close, with the magic byte of the batch at its third index entry damaged. */
async function damagedAtIndexEntry(dir: string, cfg: { indexIntervalBytes: number }, lengthToo = false): Promise<{ file: string; entry: { offset: number; position: number } }> {
  const { store, p } = await openPartition(dir, cfg);
  for (let i = 0; i < 50; i++) await p.append([{ value: new Uint8Array(50).fill(i), timestamp: 1000 + i }]);
  const entry = p.active.index.entry(2);
  await store.close();
  const file = segPath(partitionDir(dir), 0, '.log');
  const bytes = fs.readFileSync(file);
  bytes[entry.position + 16] = 1; // magic
  if (lengthToo) bytes[entry.position + 8] = 0x7f; // batchLength: past the end, nothing to step to
  fs.writeFileSync(file, bytes);
  return { file, entry };
}

test('a damaged batch at an index entry of the active segment: the index rebuild a read triggers neither lowers logEndOffset (offsets reused by the next append) nor stops at the damage (every later flushed record unreachable)', async () => {
  const dir = tmpDir();
  const cfg = { indexIntervalBytes: 1000 };
  const { file, entry } = await damagedAtIndexEntry(dir, cfg);
  let { store, p } = await openPartition(dir, cfg);
  try {
    assert.equal(p.logEndOffset, 50);
    // The lookup finds the entry's batch damaged and rebuilds the indexes; the read goes on past the damage.
    const r = await readUntilError(p, { offset: entry.offset + 2 }, { maxRecords: 3 });
    assert.equal(r.error, null);
    assert.deepEqual(r.records.map((x) => x.offset), [entry.offset + 2, entry.offset + 3, entry.offset + 4]);
    assert.equal(p.logEndOffset, 50, 'the rebuild lowered the log end');
    assert.equal(p.active.maxTimestamp, 1049, 'the rebuild lowered the max timestamp');
    // The damaged batch itself is a CorruptionError naming file and position.
    const bad = await readUntilError(p, { offset: entry.offset });
    assert.deepEqual(bad.records, []);
    assert.ok(bad.error instanceof CorruptionError, String(bad.error));
    assert.equal(bad.error.file, file);
    assert.equal(bad.error.position, entry.position);
    const a = await p.append([{ value: new Uint8Array([200]), timestamp: 5000 }]);
    assert.equal(a.baseOffset, 50, 'an offset was reused');
    await store.close();
    ({ store, p } = await openPartition(dir, cfg));
    assert.equal(p.logEndOffset, 51);
    const tail = await readAll(p, { offset: entry.offset + 1 });
    assert.deepEqual(tail.map((x) => [x.offset, x.value![0]]),
      [...Array.from({ length: 49 - entry.offset }, (_, i) => [entry.offset + 1 + i, entry.offset + 1 + i]), [50, 200]]);
    assert.equal(await p.offsetForTimestamp(1040), 40);
    assert.equal(await p.offsetForTimestamp(5000), 50);
  } finally {
    await store.close();
  }
});

test('a damaged batch at an index entry of the active segment whose length is damaged too: the rebuild stops there, but logEndOffset and the max timestamp stay, and appends get fresh offsets', async () => {
  const dir = tmpDir();
  const cfg = { indexIntervalBytes: 1000 };
  const { file, entry } = await damagedAtIndexEntry(dir, cfg, true);
  let { store, p } = await openPartition(dir, cfg);
  try {
    const r = await readUntilError(p, { offset: entry.offset + 2 });
    assert.deepEqual(r.records, []);
    assert.ok(r.error instanceof CorruptionError, String(r.error));
    assert.equal(r.error.file, file);
    assert.equal(r.error.position, entry.position);
    assert.equal(p.logEndOffset, 50, 'the rebuild lowered the log end');
    assert.equal(p.active.maxTimestamp, 1049, 'the rebuild lowered the max timestamp');
    const a = await p.append([{ value: new Uint8Array([200]), timestamp: 5000 }]);
    assert.equal(a.baseOffset, 50, 'an offset was reused');
    assert.deepEqual((await readAll(p, { offset: 50 })).map((x) => x.value![0]), [200]);
    await store.close();
    ({ store, p } = await openPartition(dir, cfg));
    assert.equal(p.logEndOffset, 51);
    assert.deepEqual((await readAll(p, { offset: 0 }, { maxRecords: entry.offset })).map((x) => x.offset), Array.from({ length: entry.offset }, (_, i) => i));
  } finally {
    await store.close();
  }
});

test('a fault at any step of a recovery that cuts a damaged unflushed segment (truncate, later segments deleted, indexes rebuilt, syncs, recovery point), then a crash: the next open recovers a clean prefix holding every flushed record', async () => {
  const cfg = { segmentBytes: 1500, indexIntervalBytes: 128 };
  const ops: FaultOp[] = ['write', 'truncate', 'open', 'datasync', 'syncDir', 'rename', 'remove'];
  let faultsHit = 0;
  for (const op of ops) {
    for (let after = 0; after < 6; after++) {
      for (const second of ['drop', 'process'] as const) {
        const label = `${op} after ${after}, then ${second} crash`;
        const dir = tmpDir();
        const pdir = partitionDir(dir);
        const fsx = new FaultyStorage(noSync);
        let { store, p } = await openPartition(dir, cfg, { storage: fsx });
        let appended = 0;
        for (; appended < 20; appended++) p.appendSync([{ key: keyOf(appended), value: valueOf(appended, 40) }]);
        await p.flush();
        const flushed = appended;
        for (; appended < 60; appended++) p.appendSync([{ key: keyOf(appended), value: valueOf(appended, 40) }]);
        // The first closed segment past the flush, and a later one, exist; a process crash keeps them all.
        const unflushed = p.segments.find((sg, i) => i < p.segments.length - 2 && sg.baseOffset >= flushed)!;
        assert.ok(unflushed, `${label}: layout`);
        const damagedFile = segPath(pdir, unflushed.baseOffset, '.log');
        fsx.crash({ keepUnsynced: true });
        fs.rmSync(path.join(dir, '.lock'), { force: true });
        // Its second batch is damaged (a torn page): recovery must cut there and drop every later segment.
        const cutAt = unflushed.baseOffset + 1;
        FaultyStorage.flipBit(damagedFile, batchPositions(damagedFile)[1]!.position + 30);
        const clear = fsx.failOn({ op, after, partialBytes: op === 'write' ? 5 : undefined });
        try {
          ({ store, p } = await openPartition(dir, cfg, { storage: fsx }));
          await store.close();
        } catch {
          faultsHit++;
        }
        clear();
        fsx.crash(second === 'process' ? { keepUnsynced: true } : {});
        fs.rmSync(path.join(dir, '.lock'), { force: true });
        ({ store, p } = await openPartition(dir, cfg, { storage: fsx }));
        try {
          assert.equal(p.logEndOffset, cutAt, `${label}: log end`);
          assert.ok(segmentBases(pdir).every((b) => b <= unflushed.baseOffset), `${label}: later segments dropped`);
          const { records, error } = await readUntilError(p, { offset: 0 });
          assert.equal(error, null, `${label}: ${String(error)}`);
          assert.equal(records.length, cutAt, label);
          records.forEach((r, i) => { assert.equal(r.offset, i); assert.deepEqual(r.value, valueOf(i, 40), `${label}: value ${i}`); });
          assert.equal((await p.append([{ value: 'next' }])).baseOffset, cutAt, `${label}: next offset`);
        } finally {
          await store.close();
          fs.rmSync(dir, { recursive: true, force: true });
        }
      }
    }
  }
  assert.ok(faultsHit > 20, `faults hit during recovery: ${faultsHit}`);
});

test('an index rebuild of a closed segment stopped by damage keeps its max timestamp: offsetForTimestamp never skips to a later segment (it answers right or throws CorruptionError)', async () => {
  const dir = tmpDir();
  const cfg = { indexIntervalBytes: 1000, segmentBytes: 60 * 118 + 10 };
  let { store, p } = await openPartition(dir, cfg);
  const model: number[] = [];
  for (let i = 0; i < 70; i++) {
    // Segment 0 (offsets 0..59) rises to 1590; segment 1 starts low again.
    const ts = i < 60 ? 1000 + i * 10 : 1000 + (i - 60) * 5;
    model.push(ts);
    await p.append([{ value: new Uint8Array(50).fill(i), timestamp: ts }]);
  }
  assert.equal(p.segments[0]!.nextOffset, 60);
  const seg0 = p.segments[0]!;
  seg0.loadIndexes();
  const entry = seg0.index.entry(2);
  await store.close();
  const file = segPath(partitionDir(dir), 0, '.log');
  const bytes = fs.readFileSync(file);
  bytes[entry.position + 16] = 1; // magic
  bytes[entry.position + 8] = 0x7f; // and length: the rebuild cannot step over it
  fs.writeFileSync(file, bytes);
  ({ store, p } = await openPartition(dir, cfg));
  try {
    const r = await readUntilError(p, { offset: entry.offset + 1 });
    assert.ok(r.error instanceof CorruptionError);
    assert.equal(p.segments[0]!.maxTimestamp, 1590, 'the rebuild lowered the closed segment\'s max timestamp');
    let answered = 0;
    for (let ts = 990; ts <= 1600; ts += 7) {
      const i = model.findIndex((t) => t >= ts);
      const want = i < 0 ? model.length : i;
      try {
        assert.equal(await p.offsetForTimestamp(ts), want, `offsetForTimestamp(${ts})`);
        answered++;
      } catch (err) {
        assert.ok(err instanceof CorruptionError, `offsetForTimestamp(${ts}): ${String(err)}`);
        assert.equal(err.position, entry.position);
      }
    }
    assert.ok(answered > 20, `answered ${answered}`);
  } finally {
    await store.close();
  }
});
