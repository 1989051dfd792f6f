// Reads: by offset (every offset, random offsets against a model), by
// timestamp (first record with ts >= target, timestamps out of order),
// maxRecords/maxBytes, tailing reads, isolation 'flushed', concurrent appends.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Partition, MAX_LOADED_CLOSED_INDEXES } from '../src/partition.js';
import { StoredRecord } from '../src/record.js';
import { ClosedError, OffsetOutOfRangeError } from '../src/errors.js';
import { tmpDir, cleanupTmp, openPartition, readAll, valueOf, keyOf, assertRecord } from './helpers/log_util.js';

after(cleanupTmp);

interface ModelRecord { key: Uint8Array | null; value: Uint8Array; timestamp: number; headers: [string, string][] }

/** Appends `n` records in batches of varying size; returns the model. */
async function fill(p: Partition, n: number, tsOf: (i: number) => number): Promise<ModelRecord[]> {
  const model: ModelRecord[] = [];
  let i = 0;
  while (i < n) {
    const batch = Math.min(n - i, 1 + (i % 7));
    const recs = [];
    for (let j = 0; j < batch; j++, i++) {
      const m: ModelRecord = { key: keyOf(i), value: valueOf(i), timestamp: tsOf(i), headers: i % 3 === 0 ? [['h', `v${i}`]] : [] };
      model.push(m);
      recs.push({ key: m.key, value: m.value, timestamp: m.timestamp, headers: m.headers });
    }
    await p.append(recs);
  }
  return model;
}

function check(r: StoredRecord, offset: number, m: ModelRecord): void {
  assertRecord(r, offset, m.value, m.key, m.timestamp);
  assert.deepEqual(r.headers.map((h) => [h.key, new TextDecoder().decode(h.value!)]), m.headers);
}

const T0 = 1_700_000_000_000;

test('read by offset: every offset, across batches and segments', async () => {
  const dir = tmpDir();
  const { store, p } = await openPartition(dir, { segmentBytes: 2048, indexIntervalBytes: 200 });
  const model = await fill(p, 300, (i) => T0 + i);
  assert.ok(p.segments.length > 5);
  for (let o = 0; o < model.length; o++) {
    const one = await readAll(p, { offset: o }, { maxRecords: 1 });
    assert.equal(one.length, 1);
    check(one[0]!, o, model[o]!);
  }
  const all = await readAll(p, { offset: 0 });
  assert.equal(all.length, 300);
  all.forEach((r, i) => check(r, i, model[i]!));
  await store.close();
  // Same after a clean reopen (indexes loaded from files) and read-only.
  for (const readOnly of [false, true]) {
    const again = await openPartition(dir, {}, { readOnly });
    for (let o = 0; o < model.length; o += 7) {
      const r = await readAll(again.p, { offset: o }, { maxRecords: 3 });
      r.forEach((x, k) => check(x, o + k, model[o + k]!));
    }
    await again.store.close();
  }
});

test('read by offset: random offsets and limits against a model (property)', async () => {
  const dir = tmpDir();
  const { store, p } = await openPartition(dir, { segmentBytes: 4096, indexIntervalBytes: 300 });
  const model = await fill(p, 400, (i) => T0 + ((i * 37) % 101));
  await fc.assert(fc.asyncProperty(
    fc.integer({ min: 0, max: 400 }), fc.integer({ min: 1, max: 50 }), fc.option(fc.integer({ min: 1, max: 3000 }), { nil: undefined }),
    async (offset, maxRecords, maxBytes) => {
      const got = await readAll(p, { offset }, { maxRecords, maxBytes });
      // Expected: records from offset, at most maxRecords, stopping before the byte budget would be passed (at least one).
      let bytes = 0;
      const want: number[] = [];
      for (let o = offset; o < model.length && want.length < maxRecords; o++) {
        const m = model[o]!;
        const size = (m.key?.length ?? 0) + m.value.length + m.headers.reduce((n, [k, v]) => n + k.length + v.length, 0);
        if (maxBytes !== undefined && want.length > 0 && bytes + size > maxBytes) break;
        want.push(o);
        bytes += size;
        if (maxBytes !== undefined && bytes >= maxBytes) break;
      }
      assert.deepEqual(got.map((r) => r.offset), want);
      got.forEach((r) => check(r, r.offset, model[r.offset]!));
    }), { numRuns: 150 });
  await store.close();
});

test('read by timestamp: the first record (by offset) with timestamp >= target, timestamps out of order', async () => {
  const dir = tmpDir();
  const { store, p } = await openPartition(dir, { segmentBytes: 2048, indexIntervalBytes: 150 });
  // Mostly increasing, with late records and runs of equal timestamps.
  const tsOf = (i: number) => T0 + i * 10 - (i % 5 === 3 ? 95 : 0) + (i % 11 === 0 ? 300 : 0);
  const model = await fill(p, 250, tsOf);
  const first = (t: number) => { const i = model.findIndex((m) => m.timestamp >= t); return i < 0 ? model.length : i; };
  const targets = new Set<number>([T0 - 1000, T0, T0 + 1, tsOf(249), tsOf(249) + 1, T0 + 10_000_000]);
  for (let i = 0; i < 250; i++) { targets.add(tsOf(i)); targets.add(tsOf(i) - 1); targets.add(tsOf(i) + 1); }
  for (const t of targets) {
    const want = first(t);
    assert.equal(await p.offsetForTimestamp(t), want, `offsetForTimestamp(${t})`);
    const got = await readAll(p, { timestamp: t }, { maxRecords: 2 });
    if (want === model.length) assert.deepEqual(got, []);
    else {
      assert.equal(got[0]!.offset, want, `read({ timestamp: ${t} })`);
      check(got[0]!, want, model[want]!);
      // Reads go on by offset from there, whatever the later timestamps.
      if (want + 1 < model.length) assert.equal(got[1]!.offset, want + 1);
    }
  }
  await store.close();
});

test('maxBytes: at least one record, even one larger than the budget', async () => {
  const dir = tmpDir();
  const { store, p } = await openPartition(dir);
  await p.append([{ value: new Uint8Array(5000) }, { value: 'small' }, { value: 'tiny' }]);
  assert.deepEqual((await readAll(p, { offset: 0 }, { maxBytes: 10 })).map((r) => r.offset), [0]);
  assert.deepEqual((await readAll(p, { offset: 1 }, { maxBytes: 9 })).map((r) => r.offset), [1, 2]);
  assert.deepEqual((await readAll(p, { offset: 1 }, { maxBytes: 8 })).map((r) => r.offset), [1]);
  await store.close();
});

test('tailing read: receives records appended later (across a roll) and ends on abort', async () => {
  const dir = tmpDir();
  const { store, p } = await openPartition(dir, { segmentBytes: 1024 });
  await p.append([{ value: 'before' }]);
  const ac = new AbortController();
  const got: StoredRecord[] = [];
  const reader = (async () => {
    for await (const r of p.read({ offset: 1 }, { tail: true, signal: ac.signal })) got.push(r);
  })();
  for (let i = 0; i < 40; i++) {
    await p.append([{ value: valueOf(i, 90) }]);
    if (i % 5 === 0) await new Promise((r) => setTimeout(r, 1));
  }
  assert.ok(p.segments.length > 2, 'rolled while tailing');
  const t0 = Date.now();
  while (got.length < 40) {
    assert.ok(Date.now() - t0 < 10_000, `tailing reader got ${got.length} of 40`);
    await new Promise((r) => setTimeout(r, 2));
  }
  ac.abort();
  await reader;
  got.forEach((r, i) => assertRecord(r, 1 + i, valueOf(i, 90)));
  // An already aborted signal ends a tailing read at once.
  assert.deepEqual(await readAll(p, { offset: 41 }, { tail: true, signal: AbortSignal.abort() }), []);
  // A tailing read with maxRecords ends by itself.
  const lim = readAll(p, { offset: 41 }, { tail: true, maxRecords: 2 });
  await p.append([{ value: 'x' }, { value: 'y' }, { value: 'z' }]);
  assert.deepEqual((await lim).map((r) => r.offset), [41, 42]);
  // Closing the partition ends a tailing read too.
  const open = readAll(p, { offset: p.logEndOffset }, { tail: true });
  await store.close();
  assert.deepEqual(await open, []);
  await assert.rejects(readAll(p, { offset: 0 }), ClosedError);
});

test("isolation 'flushed': only records below the high watermark; a flushed tailing read wakes on flush", async () => {
  const dir = tmpDir();
  const { store, p } = await openPartition(dir);
  await p.append([{ value: 'a' }, { value: 'b' }]);
  await p.flush();
  await p.append([{ value: 'c' }]);
  assert.equal(p.highWatermark, 2);
  assert.deepEqual((await readAll(p, { offset: 0 }, { isolation: 'flushed' })).map((r) => r.offset), [0, 1]);
  assert.deepEqual((await readAll(p, { offset: 0 })).map((r) => r.offset), [0, 1, 2]);
  assert.deepEqual(await readAll(p, { offset: 2 }, { isolation: 'flushed' }), []);
  const ac = new AbortController();
  const got: number[] = [];
  const reader = (async () => {
    for await (const r of p.read({ offset: 0 }, { isolation: 'flushed', tail: true, signal: ac.signal })) {
      got.push(r.offset);
      if (got.length === 3) ac.abort();
    }
  })();
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(got, [0, 1], 'the unflushed record is not delivered');
  await p.flush();
  await reader;
  assert.deepEqual(got, [0, 1, 2]);
  await store.close();
});

test('concurrent appends while iterating: readers see only complete batches, contiguous offsets, correct data', async () => {
  const dir = tmpDir();
  const { store, p } = await openPartition(dir, { segmentBytes: 4096, indexIntervalBytes: 256 });
  const total = 1500;
  let written = 0;
  let writerFailed = false;
  const deadline = Date.now() + 60_000;
  const writer = (async () => {
    while (written < total) {
      const n = Math.min(total - written, 1 + (written % 13));
      const recs = [];
      for (let j = 0; j < n; j++) recs.push({ key: keyOf(written + j), value: valueOf(written + j) });
      p.appendSync(recs);
      written += n;
      if (written % 5 === 0) await p.flush();
      await new Promise((r) => setImmediate(r));
    }
  })().catch((e) => { writerFailed = true; throw e; });
  const readers = [0, 1, 2].map(async (k) => {
    let next = 0;
    let passes = 0;
    while (next < total && !writerFailed) {
      assert.ok(Date.now() < deadline, `reader ${k} stuck at ${next}`);
      // Non-tailing reads of whatever is there now, slowly.
      for await (const r of p.read({ offset: next }, { maxRecords: 97 + k })) {
        assert.equal(r.offset, next);
        assertRecord(r, next, valueOf(next), keyOf(next));
        next++;
        if (next % 50 === 0) await new Promise((res) => setImmediate(res));
      }
      passes++;
      await new Promise((res) => setImmediate(res));
    }
    return passes;
  });
  const tailAc = new AbortController();
  const tailed: number[] = [];
  const tailer = (async () => {
    for await (const r of p.read({ offset: 0 }, { tail: true, signal: tailAc.signal })) {
      tailed.push(r.offset);
      if (r.offset === total - 1) tailAc.abort();
    }
  })();
  writer.catch(() => tailAc.abort());
  await writer;
  const passes = await Promise.all(readers);
  await tailer;
  assert.deepEqual(tailed, Array.from({ length: total }, (_, i) => i));
  assert.ok(passes.every((n) => n > 1), `readers caught up with the writer repeatedly: ${passes}`);
  await store.close();
});

test('a reader whose segment is deleted by retention meanwhile gets OffsetOutOfRangeError', async () => {
  const dir = tmpDir();
  const { store, p } = await openPartition(dir, { segmentBytes: 1024, retentionMs: 1000 });
  for (let i = 0; i < 30; i++) await p.append([{ value: valueOf(i, 100), timestamp: T0 }]);
  const it = p.read({ offset: 0 });
  const first = await it.next();
  assert.equal(first.value!.offset, 0);
  assert.ok(p.enforceRetention(T0 + 10_000) > 0);
  await assert.rejects(async () => { for (;;) { const r = await it.next(); if (r.done) break; } }, OffsetOutOfRangeError);
  await store.close();
});

test('closed segments keep their indexes in memory only while recently used', async () => {
  const dir = tmpDir();
  const { store, p } = await openPartition(dir, { segmentBytes: 1024, indexIntervalBytes: 64 });
  const model = await fill(p, 600, (i) => T0 + i);
  const closed = () => p.segments.filter((s) => s.closed);
  const loaded = () => closed().filter((s) => s.index.loaded || s.timeIndex.loaded).length;
  assert.ok(closed().length > 40, `${closed().length} closed segments`);
  assert.ok(loaded() <= MAX_LOADED_CLOSED_INDEXES, `after appends: ${loaded()} loaded`);
  for (let o = 0; o < model.length; o += 3) {
    const r = await readAll(p, { offset: o }, { maxRecords: 1 });
    check(r[0]!, o, model[o]!);
    assert.ok(loaded() <= MAX_LOADED_CLOSED_INDEXES);
  }
  assert.equal(await p.offsetForTimestamp(T0 + 5), 5);
  await store.close();
  const again = await openPartition(dir);
  assert.equal(again.p.segments.filter((s) => s.closed && (s.index.loaded || s.timeIndex.loaded)).length, 0, 'nothing loaded on open');
  for (let o = 0; o < model.length; o += 11) check((await readAll(again.p, { offset: o }, { maxRecords: 1 }))[0]!, o, model[o]!);
  await again.store.close();
});
