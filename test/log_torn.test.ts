// Torn writes at every byte of the last batch, bit flips in closed segments,
// and damaged index files: what recovery keeps, what reads report.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Store } from '../src/store.js';
import { CorruptionError } from '../src/errors.js';
import { CLEAN_SHUTDOWN_FILE, RECOVERY_POINT_FILE } from '../src/partition.js';
import { FaultyStorage } from './helpers/faulty_storage.js';
import {
  tmpDir, cleanupTmp, openPartition, partitionDir, valueOf, keyOf, readAll, readUntilError, segmentBases, segPath,
  batchPositions, assertRecord, testOpts, noSync,
} from './helpers/log_util.js';

after(cleanupTmp);

const T1 = 1_650_000_000_000;

function copyDir(from: string, to: string): void {
  fs.rmSync(to, { recursive: true, force: true });
  fs.cpSync(from, to, { recursive: true });
}

test('torn write at every byte of the last batch: the log ends at the previous batch and appends continue', async () => {
  const base = tmpDir();
  const pristine = path.join(base, 'pristine');
  const ts = 1_700_000_000_000;
  {
    const { store, p } = await openPartition(pristine, { indexIntervalBytes: 64 });
    let i = 0;
    for (const n of [3, 1, 4, 1]) {
      const recs = [];
      for (let j = 0; j < n; j++, i++) recs.push({ key: keyOf(i), value: valueOf(i), timestamp: ts + i, headers: { h: `x${i}` } });
      await p.append(recs);
    }
    await store.close();
  }
  const pdirPristine = partitionDir(pristine);
  const log = segPath(pdirPristine, 0, '.log');
  const batches = batchPositions(log);
  assert.equal(batches.length, 4);
  const last = batches[3]!;
  assert.equal(last.position + last.size, fs.statSync(log).size);
  const keptRecords = last.baseOffset; // 8: records 0..7 are in the first three batches

  const work = path.join(base, 'work');
  let checked = 0;
  for (const withMarker of [false, true]) {
    for (let cut = last.position; cut < last.position + last.size; cut++) {
      copyDir(pristine, work);
      const pdir = partitionDir(work);
      fs.truncateSync(segPath(pdir, 0, '.log'), cut);
      if (!withMarker) fs.rmSync(path.join(pdir, CLEAN_SHUTDOWN_FILE));
      const { store, p } = await openPartition(work, {}, { storage: noSync });
      try {
        assert.equal(p.logEndOffset, keptRecords, `cut at ${cut}`);
        assert.equal(fs.statSync(segPath(pdir, 0, '.log')).size, last.position, `truncated to the batch boundary (cut ${cut})`);
        const recs = await readAll(p, { offset: 0 });
        assert.equal(recs.length, keptRecords);
        recs.forEach((r, i) => assertRecord(r, i, valueOf(i), keyOf(i), ts + i));
        const res = await p.append([{ value: 'after' }, { value: 'after2' }]);
        assert.equal(res.baseOffset, keptRecords);
        assert.equal(res.lastOffset, keptRecords + 1);
        const tail = await readAll(p, { offset: keptRecords });
        assert.deepEqual(tail.map((r) => new TextDecoder().decode(r.value!)), ['after', 'after2']);
        // Timestamp lookups still work over the recovered indexes.
        const byTs = await readAll(p, { timestamp: ts + 5 }, { maxRecords: 1 });
        assert.equal(byTs[0]!.offset, 5);
      } finally {
        await store.close();
      }
      // And the repaired log survives another reopen (checked at a sample of cuts).
      if (cut % 5 === 0) {
        const again = await openPartition(work, {}, { storage: noSync });
        assert.equal(again.p.logEndOffset, keptRecords + 2);
        assert.equal((await readAll(again.p)).length, keptRecords + 2);
        await again.store.close();
      }
      checked++;
    }
  }
  assert.equal(checked, 2 * last.size);
});

test('torn write in the middle of a multi-segment log: later segments are not affected when the tail is in the active one', async () => {
  const dir = tmpDir();
  {
    const { store, p } = await openPartition(dir, { segmentBytes: 1024 });
    for (let i = 0; i < 60; i++) await p.append([{ value: valueOf(i, 40) }]);
    await p.flush();
    // Simulate a crash: no clean-shutdown marker.
    await store.close();
    fs.rmSync(path.join(partitionDir(dir), CLEAN_SHUTDOWN_FILE));
  }
  const pdir = partitionDir(dir);
  const bases = segmentBases(pdir);
  assert.ok(bases.length >= 3, `expected several segments, got ${bases.length}`);
  const active = segPath(pdir, bases.at(-1)!, '.log');
  const bs = batchPositions(active);
  fs.truncateSync(active, bs.at(-1)!.position + 30);
  const { store, p } = await openPartition(dir);
  assert.equal(p.logEndOffset, 59);
  assert.equal(p.segments.length, bases.length);
  const recs = await readAll(p);
  assert.equal(recs.length, 59);
  recs.forEach((r, i) => assertRecord(r, i, valueOf(i, 40)));
  await store.close();
});

/** A clean store with several closed segments of single-record batches; returns its layout. */
async function multiSegmentStore(dir: string, n = 80, valueSize = 40): Promise<{ pdir: string; bases: number[] }> {
  const { store, p } = await openPartition(dir, { segmentBytes: 1024, indexIntervalBytes: 100 });
  for (let i = 0; i < n; i++) await p.append([{ key: keyOf(i), value: valueOf(i, valueSize), timestamp: 1000 + i }]);
  await store.close();
  const pdir = partitionDir(dir);
  return { pdir, bases: segmentBases(pdir) };
}

for (const mode of ['clean', 'crash'] as const) {
  test(`bit flip inside a closed segment (${mode} reopen): CorruptionError names file, position and offset; records before it are returned`, async () => {
    const dir = tmpDir();
    const { pdir, bases } = await multiSegmentStore(dir);
    assert.ok(bases.length >= 4);
    const victimBase = bases[1]!;
    const victim = segPath(pdir, victimBase, '.log');
    const batches = batchPositions(victim);
    const bad = batches[2]!;
    // A bit in the record section, covered by the CRC.
    FaultyStorage.flipBit(victim, bad.position + bad.size - 5, 3);
    if (mode === 'crash') fs.rmSync(path.join(pdir, CLEAN_SHUTDOWN_FILE));
    const { store, p } = await openPartition(dir);
    try {
      assert.equal(p.logEndOffset, 80, 'nothing was truncated');
      assert.equal(p.segments.length, bases.length, 'no segment was deleted');
      const { records, error } = await readUntilError(p, { offset: 0 });
      assert.ok(error instanceof CorruptionError, `expected CorruptionError, got ${String(error)}`);
      assert.equal(error.code, 'ERR_CORRUPTION');
      assert.equal(error.file, victim);
      assert.equal(error.position, bad.position);
      assert.equal(error.offset, bad.baseOffset);
      assert.match(error.message, new RegExp(`${path.basename(victim)} at byte ${bad.position} \\(offset ${bad.baseOffset}\\)`));
      assert.equal(records.length, bad.baseOffset);
      records.forEach((r, i) => assertRecord(r, i, valueOf(i, 40), keyOf(i), 1000 + i));
      // Reading from the corrupt offset itself fails the same way; reading past it works.
      const direct = await readUntilError(p, { offset: bad.baseOffset });
      assert.ok(direct.error instanceof CorruptionError);
      assert.equal(direct.records.length, 0);
      const after = await readAll(p, { offset: bad.lastOffset + 1 });
      assert.equal(after.length, 80 - bad.lastOffset - 1);
      after.forEach((r, i) => assertRecord(r, bad.lastOffset + 1 + i, valueOf(bad.lastOffset + 1 + i, 40), keyOf(bad.lastOffset + 1 + i)));
      // Appends still work.
      assert.equal((await p.append([{ value: 'x' }])).baseOffset, 80);
    } finally {
      await store.close();
    }
  });
}

test('bit flip in a closed segment with no recovery point (full scan on open): reported, nothing deleted', async () => {
  const dir = tmpDir();
  const { pdir, bases } = await multiSegmentStore(dir);
  const victim = segPath(pdir, bases[1]!, '.log');
  const bad = batchPositions(victim)[1]!;
  FaultyStorage.flipBit(victim, bad.position + 40, 0); // inside the CRC-covered header fields
  fs.rmSync(path.join(pdir, CLEAN_SHUTDOWN_FILE));
  fs.rmSync(path.join(pdir, RECOVERY_POINT_FILE));
  const reports: { segment: number; damaged?: { position: number; offset: number }[] }[] = [];
  const store = await Store.open(dir, testOpts({ onRecovery: (e) => reports.push({ segment: e.segment, damaged: e.result.damaged }) }));
  const p = store.partition('t', 0);
  try {
    const reported = reports.find((r) => r.damaged);
    assert.ok(reported, 'recovery reported the corruption');
    assert.equal(reported.segment, bases[1]);
    assert.deepEqual(reported.damaged!.map((d) => [d.position, d.offset]), [[bad.position, bad.baseOffset]]);
    assert.equal(p.logEndOffset, 80);
    assert.equal(p.segments.length, bases.length);
    const { records, error } = await readUntilError(p, { offset: 0 });
    assert.ok(error instanceof CorruptionError);
    assert.equal(error.position, bad.position);
    assert.equal(error.offset, bad.baseOffset);
    assert.equal(records.length, bad.baseOffset);
  } finally {
    await store.close();
  }
});

test('bit flip in a batch baseOffset (outside the CRC) of a closed segment is caught', async () => {
  for (const bit of [0, 1, 5]) {
    const dir = tmpDir();
    const { pdir, bases } = await multiSegmentStore(dir);
    const victim = segPath(pdir, bases[1]!, '.log');
    const bad = batchPositions(victim)[3]!;
    FaultyStorage.flipBit(victim, bad.position + 7, bit); // lowest byte of baseOffset
    const { store, p } = await openPartition(dir);
    try {
      const { records, error } = await readUntilError(p, { offset: 0 });
      assert.ok(error instanceof CorruptionError, `bit ${bit}: expected CorruptionError, got ${String(error)}`);
      assert.equal(error.file, victim);
      assert.equal(error.position, bad.position);
      assert.equal(error.offset, bad.baseOffset);
      assert.equal(records.length, bad.baseOffset, `bit ${bit}: records before the corrupt batch`);
      records.forEach((r, i) => assert.equal(r.offset, i));
      // Also when the read starts right at the damaged batch.
      const direct = await readUntilError(p, { offset: bad.baseOffset });
      assert.ok(direct.error instanceof CorruptionError, `bit ${bit}: direct read`);
      assert.deepEqual(direct.records.filter((r) => r.offset === bad.baseOffset), []);
    } finally {
      await store.close();
    }
  }
});

test('bit flips at every byte of one closed-segment batch never return wrong data', async () => {
  const base = tmpDir();
  const pristine = path.join(base, 'pristine');
  const { pdir: pp, bases } = await multiSegmentStore(pristine, 40, 20);
  const rel = path.relative(pristine, segPath(pp, bases[1]!, '.log'));
  const bad = batchPositions(path.join(pristine, rel))[2]!;
  const work = path.join(base, 'work');
  for (let at = bad.position; at < bad.position + bad.size; at++) {
    copyDir(pristine, work);
    // partitionLeaderEpoch (bytes 12..15) is outside the CRC and not data: a flip there is harmless.
    const benign = at - bad.position >= 12 && at - bad.position < 16;
    FaultyStorage.flipBit(path.join(work, rel), at, (at * 3) % 8);
    const { store, p } = await openPartition(work, {}, { storage: noSync });
    try {
      const { records, error } = await readUntilError(p, { offset: 0 });
      for (const r of records) assertRecord(r, r.offset, valueOf(r.offset, 20), keyOf(r.offset), 1000 + r.offset);
      assert.deepEqual(records.map((r) => r.offset), records.map((_, i) => i), `byte ${at}: offsets contiguous`);
      if (benign) {
        assert.equal(error, null);
        assert.equal(records.length, 40);
      } else {
        assert.ok(error instanceof CorruptionError, `byte ${at}: expected CorruptionError, got ${String(error)} after ${records.length} records`);
        assert.equal(records.length, bad.baseOffset, `byte ${at}`);
      }
    } finally {
      await store.close();
    }
  }
});

// --- damaged index files -------------------------------------------------------

type Damage = (file: string, other: string) => void;

const indexDamages: Record<string, Damage> = {
  missing: (f) => fs.rmSync(f),
  'odd length': (f) => fs.truncateSync(f, fs.statSync(f).size - 3),
  'random garbage': (f) => {
    const n = fs.statSync(f).size;
    const g = Buffer.alloc(n);
    for (let i = 0; i < n; i++) g[i] = (i * 131 + 17) & 0xff;
    fs.writeFileSync(f, g);
  },
  'increasing garbage': (f) => {
    // Every entry shifted: still strictly increasing and inside the log, but wrong.
    const b = fs.readFileSync(f);
    const size = f.endsWith('.index') ? 8 : 12;
    for (let at = 0; at + size <= b.length; at += size) {
      if (size === 8) b.writeUInt32BE(b.readUInt32BE(at + 4) + 3, at + 4);
      else b.writeUInt32BE(b.readUInt32BE(at + 4) - 500, at + 4);
    }
    fs.writeFileSync(f, b);
  },
  'one middle entry wrong': (f) => {
    const b = fs.readFileSync(f);
    const size = f.endsWith('.index') ? 8 : 12;
    const mid = Math.floor(b.length / size / 2) * size;
    if (size === 8) b.writeUInt32BE(b.readUInt32BE(mid + 4) + 1, mid + 4);
    else b.writeUInt32BE(b.readUInt32BE(mid + 4) - 1, mid + 4);
    fs.writeFileSync(f, b);
  },
  'zero-filled tail (Kafka preallocation)': (f) => fs.appendFileSync(f, Buffer.alloc(4800)),
  'last entry cut off': (f) => fs.truncateSync(f, fs.statSync(f).size - (f.endsWith('.index') ? 8 : 12)),
  'stale (from another segment)': (f, other) => fs.copyFileSync(other, f),
  empty: (f) => fs.truncateSync(f, 0),
};

test('damaged .index/.timeindex files are rebuilt on open; every offset and timestamp lookup stays right', async () => {
  const base = tmpDir();
  const pristine = path.join(base, 'pristine');
  const n = 120;
  // Timestamps not monotonic (so the time index is sparse and lookups must scan), one record per batch.
  const tsOf = (i: number) => 10_000 + i * 10 - (i % 4 === 1 ? 25 : 0);
  {
    const { store, p } = await openPartition(pristine, { segmentBytes: 2048, indexIntervalBytes: 90 });
    for (let i = 0; i < n; i++) await p.append([{ key: keyOf(i), value: valueOf(i, 30), timestamp: tsOf(i) }]);
    await store.close();
  }
  const pp = partitionDir(pristine);
  const bases = segmentBases(pp);
  assert.ok(bases.length >= 3, `${bases.length} segments`);
  const targets = [bases[1]!, bases.at(-1)!]; // a closed segment and the active one
  const expectedFirstAtOrAfter = (t: number) => { for (let i = 0; i < n; i++) if (tsOf(i) >= t) return i; return n; };
  const work = path.join(base, 'work');
  let cases = 0;
  for (const [name, damage] of Object.entries(indexDamages)) {
    for (const suffix of ['.index', '.timeindex'] as const) {
      for (const seg of targets) {
        for (const crash of [false, true]) {
          copyDir(pristine, work);
          const pdir = partitionDir(work);
          const f = segPath(pdir, seg, suffix);
          const other = segPath(pdir, seg === bases[1] ? bases[0]! : bases[1]!, suffix);
          damage(f, other);
          if (crash) fs.rmSync(path.join(pdir, CLEAN_SHUTDOWN_FILE));
          const label = `${name} ${suffix} of segment ${seg} (${crash ? 'crash' : 'clean'})`;
          const { store, p } = await openPartition(work, {}, { storage: noSync });
          try {
            assert.equal(p.logEndOffset, n, label);
            for (let o = 0; o < n; o++) {
              const r = await readAll(p, { offset: o }, { maxRecords: 1 });
              assert.equal(r.length, 1, `${label}: offset ${o}`);
              assertRecord(r[0]!, o, valueOf(o, 30), keyOf(o), tsOf(o));
            }
            for (let t = 9_990; t <= tsOf(n - 1) + 5; t += 7) {
              assert.equal(await p.offsetForTimestamp(t), expectedFirstAtOrAfter(t), `${label}: timestamp ${t}`);
            }
            // Segment max timestamps are right (retention depends on them).
            for (const s of p.segments) {
              let max = -1;
              for (let i = s.baseOffset; i < s.nextOffset; i++) max = Math.max(max, tsOf(i));
              assert.equal(s.maxTimestamp, max, `${label}: max timestamp of segment ${s.baseOffset}`);
            }
          } finally {
            await store.close();
          }
          // Rebuilt and written back: byte-identical to the indexes written by appends.
          for (const b of bases) {
            for (const sfx of ['.index', '.timeindex'] as const) {
              assert.deepEqual(fs.readFileSync(segPath(pdir, b, sfx)), fs.readFileSync(segPath(pp, b, sfx)), `${label}: ${b}${sfx} after reopen`);
            }
          }
          cases++;
        }
      }
    }
  }
  assert.equal(cases, Object.keys(indexDamages).length * 8);
});

test("index files follow Kafka's rules exactly (checked by an independent reading of the files), before and after a rebuild", async () => {
  const dir = tmpDir();
  const interval = 300;
  const tsOf = (i: number) => T1 + i * 10 - (i % 6 === 2 ? 70 : 0);
  {
    const { store, p } = await openPartition(dir, { segmentBytes: 4096, indexIntervalBytes: interval });
    let i = 0;
    while (i < 400) {
      const n = 1 + (i % 5);
      const recs = [];
      for (let j = 0; j < n; j++, i++) recs.push({ value: valueOf(i), timestamp: tsOf(i) });
      await p.append(recs);
    }
    await store.close();
  }
  const pdir = partitionDir(dir);
  const bases = segmentBases(pdir);
  const expected = (base: number, closed: boolean) => {
    const idx: number[][] = [];
    const tidx: number[][] = [];
    let since = 0;
    let max = -1;
    let offOfMax = -1;
    for (const b of batchPositions(segPath(pdir, base, '.log'))) {
      if (b.maxTimestamp > max) { max = b.maxTimestamp; offOfMax = b.lastOffset; }
      if (since > interval) {
        idx.push([b.lastOffset - base, b.position]);
        if (tidx.length === 0 || max > tidx.at(-1)![0]!) tidx.push([max, offOfMax - base]);
        since = 0;
      }
      since += b.size;
    }
    if (closed && (tidx.length === 0 || max > tidx.at(-1)![0]!)) tidx.push([max, offOfMax - base]);
    return { idx, tidx };
  };
  const actual = (base: number) => {
    const i = fs.readFileSync(segPath(pdir, base, '.index'));
    const t = fs.readFileSync(segPath(pdir, base, '.timeindex'));
    const idx: number[][] = [];
    const tidx: number[][] = [];
    for (let at = 0; at < i.length; at += 8) idx.push([i.readUInt32BE(at), i.readUInt32BE(at + 4)]);
    for (let at = 0; at < t.length; at += 12) tidx.push([Number(t.readBigInt64BE(at)), t.readUInt32BE(at + 8)]);
    return { idx, tidx };
  };
  assert.ok(bases.length >= 3);
  const check = (label: string) => {
    bases.forEach((b, k) => {
      const want = expected(b, k < bases.length - 1);
      assert.ok(want.idx.length >= 3, `segment ${b} has ${want.idx.length} index entries`);
      assert.deepEqual(actual(b), want, `${label}: segment ${b}`);
    });
  };
  check('written by appends');
  // Rebuilt from scratch (both files of every segment removed), after a crash-style open.
  for (const b of bases) { fs.rmSync(segPath(pdir, b, '.index')); fs.rmSync(segPath(pdir, b, '.timeindex')); }
  fs.rmSync(path.join(pdir, RECOVERY_POINT_FILE));
  fs.rmSync(path.join(pdir, CLEAN_SHUTDOWN_FILE));
  const { store } = await openPartition(dir);
  await store.close();
  check('rebuilt');
});

test('damage inside flushed data of the active segment, found by a crash recovery, is kept and reported, not cut', async () => {
  const dir = tmpDir();
  const { store, p } = await openPartition(dir);
  for (let i = 0; i < 30; i++) await p.append([{ key: keyOf(i), value: valueOf(i, 40), timestamp: 1000 + i }]);
  await p.flush();
  // Unflushed records after the flush, then a torn write at the very end.
  for (let i = 30; i < 33; i++) p.appendSync([{ key: keyOf(i), value: valueOf(i, 40), timestamp: 1000 + i }]);
  const pdir = partitionDir(dir);
  const log = segPath(pdir, 0, '.log');
  const bs = batchPositions(log);
  fs.rmSync(path.join(dir, '.lock')); // the process "died" without closing
  const bad = bs[12]!;
  FaultyStorage.flipBit(log, bad.position + bad.size - 3, 6);
  fs.truncateSync(log, bs[32]!.position + 20);
  const reports: { damaged?: { position: number; offset: number }[]; problem?: { position: number } }[] = [];
  const again = await Store.open(dir, testOpts({ onRecovery: (e) => reports.push(e.result) }));
  try {
    const q = again.partition('t', 0);
    assert.deepEqual(reports[0]!.damaged!.map((d) => [d.position, d.offset]), [[bad.position, 12]]);
    assert.equal(reports[0]!.problem!.position, bs[32]!.position, 'the torn tail is still cut');
    assert.equal(q.logEndOffset, 32);
    assert.equal(fs.statSync(log).size, bs[32]!.position);
    const { records, error } = await readUntilError(q, { offset: 0 });
    assert.ok(error instanceof CorruptionError);
    assert.equal(error.position, bad.position);
    assert.equal(error.offset, 12);
    assert.equal(records.length, 12);
    const rest = await readAll(q, { offset: 13 });
    assert.deepEqual(rest.map((r) => r.offset), Array.from({ length: 19 }, (_, i) => 13 + i));
    rest.forEach((r) => assertRecord(r, r.offset, valueOf(r.offset, 40), keyOf(r.offset), 1000 + r.offset));
    assert.equal(await q.offsetForTimestamp(1020), 20);
    assert.equal((await q.append([{ value: 'next' }])).baseOffset, 32);
  } finally {
    await again.close();
  }
});

test('damage in unflushed data of the active segment is cut like a torn tail (Kafka rule)', async () => {
  const dir = tmpDir();
  const { p } = await openPartition(dir);
  for (let i = 0; i < 10; i++) await p.append([{ value: valueOf(i, 40) }]);
  await p.flush();
  for (let i = 10; i < 20; i++) p.appendSync([{ value: valueOf(i, 40) }]);
  const log = segPath(partitionDir(dir), 0, '.log');
  const bs = batchPositions(log);
  fs.rmSync(path.join(dir, '.lock'));
  FaultyStorage.flipBit(log, bs[14]!.position + 30, 1);
  const again = await openPartition(dir);
  try {
    assert.equal(again.p.logEndOffset, 14);
    assert.equal((await readAll(again.p)).length, 14);
  } finally {
    await again.store.close();
  }
});
