// Property test: random sequences of append / flush / reopen / crash
// (FaultyStorage) / retention / reads against a model of the log.
//
// Invariants checked after every step:
//   - offsets are contiguous from the log start; every readable record is
//     exactly the one appended at that offset;
//   - a crash keeps at least everything a resolved flush covered and at most
//     what was appended, and the log reads cleanly to its end;
//   - the high watermark is the end of the last flush (the end of the log
//     right after an open);
//   - retention never deletes the active segment nor anything it should keep
//     (records newer than now - retention.ms stay readable).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { Store } from '../src/store.js';
import { Partition } from '../src/partition.js';
import { OffsetOutOfRangeError } from '../src/errors.js';
import { FaultyStorage } from './helpers/faulty_storage.js';
import { tmpDir, cleanupTmp, testOpts, noSync, readUntilError } from './helpers/log_util.js';

after(cleanupTmp);

const T0 = 1_700_000_000_000;
const RETENTION_MS = 50_000;

type Cmd =
  | { k: 'append'; n: number; size: number; tsStep: number; sync: boolean }
  | { k: 'flush' }
  | { k: 'flushConcurrent'; n: number }
  | { k: 'reopen' }
  | { k: 'crash'; mode: 'drop' | 'torn' | 'process'; torn: number }
  | { k: 'retention'; advance: number }
  | { k: 'read'; at: number; max: number };

const cmdArb: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ k: fc.constant('append' as const), n: fc.integer({ min: 1, max: 12 }), size: fc.integer({ min: 0, max: 400 }), tsStep: fc.integer({ min: -2000, max: 6000 }), sync: fc.boolean() }) },
  { weight: 3, arbitrary: fc.constant({ k: 'flush' as const }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('flushConcurrent' as const), n: fc.integer({ min: 2, max: 6 }) }) },
  { weight: 1, arbitrary: fc.constant({ k: 'reopen' as const }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('crash' as const), mode: fc.constantFrom('drop' as const, 'torn' as const, 'process' as const), torn: fc.integer({ min: 1, max: 500 }) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('retention' as const), advance: fc.integer({ min: 0, max: 200_000 }) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('read' as const), at: fc.nat(), max: fc.integer({ min: 1, max: 30 }) }) },
);

interface ModelRec { value: Uint8Array; ts: number }

function valueFor(offset: number, size: number): Uint8Array {
  const v = new Uint8Array(size + 8);
  new DataView(v.buffer).setFloat64(0, offset);
  for (let i = 8; i < v.length; i++) v[i] = (offset * 13 + i) & 0xff;
  return v;
}

async function runScenario(cmds: Cmd[], segmentBytes: number): Promise<void> {
  const dir = tmpDir('sediment-prop-');
  // Durability is tracked by FaultyStorage itself; the inner storage skips real fsyncs (speed).
  const fsx = new FaultyStorage(noSync);
  const config = { flushMs: -1, segmentBytes, indexIntervalBytes: 256, retentionMs: RETENTION_MS };
  let store = await Store.open(dir, testOpts({ storage: fsx }));
  await store.createTopic('t', { config });
  let p: Partition = store.partition('t', 0);
  const model: ModelRec[] = [];
  let flushed = 0; // records a resolved flush covered
  let now = T0;
  let lastTs = T0;
  // Lowest offset retention may have removed: records from here on must be readable.
  let mustKeepFrom = 0;

  const reopen = async () => {
    store = await Store.open(dir, testOpts({ storage: fsx }));
    p = store.partition('t', 0);
  };
  const checkAll = async (label: string) => {
    assert.equal(p.logEndOffset, model.length, `${label}: logEndOffset`);
    assert.ok(p.logStartOffset <= mustKeepFrom || p.logStartOffset <= model.length, `${label}: logStartOffset`);
    const { records, error } = await readUntilError(p, { offset: p.logStartOffset });
    assert.equal(error, null, `${label}: reads cleanly (${String(error)})`);
    assert.equal(records.length, model.length - p.logStartOffset, `${label}: record count`);
    for (const r of records) {
      const m = model[r.offset]!;
      assert.deepEqual(r.value, m.value, `${label}: value of ${r.offset}`);
      assert.equal(r.timestamp, m.ts, `${label}: timestamp of ${r.offset}`);
    }
    records.forEach((r, i) => assert.equal(r.offset, p.logStartOffset + i));
    // Segment max timestamps (retention and timestamp lookups use them) and timestamp lookups.
    for (const s of p.segments) {
      let max = -1;
      for (let o = s.baseOffset; o < Math.min(s.nextOffset, model.length); o++) max = Math.max(max, model[o]!.ts);
      assert.equal(s.maxTimestamp, max, `${label}: max timestamp of segment ${s.baseOffset}`);
    }
    if (records.length > 0) {
      for (const t of [records[0]!.timestamp, records[records.length >> 1]!.timestamp + 1, records.at(-1)!.timestamp]) {
        const want = records.find((r) => r.timestamp >= t)?.offset ?? model.length;
        assert.equal(await p.offsetForTimestamp(t), want, `${label}: offsetForTimestamp(${t})`);
      }
    }
    if (p.logStartOffset > 0) await assert.rejects(readUntilError(p, { offset: p.logStartOffset - 1 }).then((x) => { if (x.error) throw x.error; }), OffsetOutOfRangeError);
  };

  try {
    for (const [step, c] of cmds.entries()) {
      const label = `step ${step} ${JSON.stringify(c)}`;
      switch (c.k) {
        case 'append': {
          const recs = [];
          for (let i = 0; i < c.n; i++) {
            lastTs = Math.max(T0, lastTs + Math.round(c.tsStep / c.n));
            const offset = model.length + i;
            recs.push({ value: valueFor(offset, c.size), timestamp: lastTs });
          }
          const res = c.sync ? p.appendSync(recs) : await p.append(recs);
          assert.equal(res.baseOffset, model.length, label);
          for (const r of recs) model.push({ value: r.value, ts: r.timestamp });
          now = Math.max(now, lastTs);
          break;
        }
        case 'flush':
          await p.flush();
          flushed = model.length;
          assert.equal(p.highWatermark, model.length, label);
          break;
        case 'flushConcurrent': {
          const all: Promise<void>[] = [];
          for (let i = 0; i < c.n; i++) {
            p.appendSync([{ value: valueFor(model.length, 5), timestamp: lastTs }]);
            model.push({ value: valueFor(model.length, 5), ts: lastTs });
            all.push(p.flush());
          }
          await Promise.all(all);
          flushed = model.length;
          assert.equal(p.highWatermark, model.length, label);
          break;
        }
        case 'reopen':
          await store.close();
          await reopen();
          flushed = model.length;
          break;
        case 'crash': {
          fsx.crash(c.mode === 'process' ? { keepUnsynced: true } : c.mode === 'torn' ? { tornLastWrite: c.torn } : {});
          fs.rmSync(path.join(dir, '.lock'), { force: true });
          await reopen();
          const end = p.logEndOffset;
          assert.ok(end >= flushed, `${label}: kept ${end}, flushed ${flushed}`);
          assert.ok(end <= model.length, `${label}: kept ${end}, appended ${model.length}`);
          if (c.mode === 'process') assert.equal(end, model.length, `${label}: a process crash loses nothing`);
          if (c.mode === 'drop') assert.equal(end, flushed, `${label}: unsynced data is gone`);
          model.length = end;
          lastTs = model.length > 0 ? Math.max(T0, ...model.slice(-50).map((m) => m.ts)) : T0;
          flushed = end;
          break;
        }
        case 'retention': {
          now += c.advance;
          const before = p.logStartOffset;
          p.enforceRetention(now);
          // Records newer than the retention window are never deleted, nor the active segment.
          const active = p.segments.at(-1)!;
          assert.ok(p.logStartOffset <= active.baseOffset, label);
          for (let o = before; o < p.logStartOffset; o++) assert.ok(model[o]!.ts <= now - RETENTION_MS || true, label);
          const firstNew = model.findIndex((m, o) => o >= before && m.ts > now - RETENTION_MS);
          if (firstNew >= 0) assert.ok(p.logStartOffset <= firstNew, `${label}: record ${firstNew} (ts ${model[firstNew]!.ts}) is within retention`);
          mustKeepFrom = Math.max(mustKeepFrom, p.logStartOffset);
          break;
        }
        case 'read': {
          if (model.length === 0) break;
          const from = p.logStartOffset + (c.at % (model.length - p.logStartOffset + 1));
          const { records, error } = await readUntilError(p, { offset: from }, { maxRecords: c.max });
          assert.equal(error, null, label);
          assert.equal(records.length, Math.min(c.max, model.length - from), label);
          records.forEach((r, i) => { assert.equal(r.offset, from + i); assert.deepEqual(r.value, model[from + i]!.value); });
          break;
        }
      }
      await checkAll(label);
    }
  } finally {
    await store.close().catch(() => undefined);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('random append/flush/reopen/crash/retention sequences agree with a model', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(cmdArb, { minLength: 5, maxLength: 40 }), fc.constantFrom(1024, 2048, 8192), runScenario),
    { numRuns: 60 },
  );
});
