// Dedup on a Store's topics: appends keep offsets contiguous and report what
// was dropped; the window survives clean restarts, crash images (with and
// without a torn tail) and a real SIGKILL, rebuilt from the log alone; a
// failed write leaves nothing in the window that is not in the log; stats
// through Store.dedupStats (also on read-only stores).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { Store } from '../src/store.js';
import { Partition, AppendResult } from '../src/partition.js';
import { DedupFilter, DedupUnavailableError, DEDUP_STATS_FILE } from '../src/dedup.js';
import { main } from '../src/cli/main.js';
import { Readable } from 'node:stream';
import { NodeStorage, FileHandle } from '../src/storage.js';
import { DedupConfig, TopicConfig } from '../src/topic_config.js';
import { RecordInput, normalizeRecord } from '../src/record.js';
import { StorageError } from '../src/errors.js';
import { getKernelsSync } from '../src/kernels.js';

const made: string[] = [];
after(() => { for (const d of made) fs.rmSync(d, { recursive: true, force: true }); });

function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'sediment-dedup-'));
  made.push(d);
  return d;
}

/** A crash image: the files as they are now (page cache), without the writer's lock. */
function crashCopy(src: string): string {
  const dst = tmp();
  fs.cpSync(src, dst, { recursive: true, filter: (p) => path.basename(p) !== '.lock' });
  return dst;
}

const rec = (key: string, ts?: number): RecordInput => ({ key, value: `value of ${key}`, ...(ts === undefined ? {} : { timestamp: ts }) });

async function openWith(dir: string, dedup: DedupConfig, extra: Partial<TopicConfig> = {}, partitions = 1): Promise<Store> {
  const s = await Store.open(dir, { retentionCheckMs: -1 });
  if (!s.hasTopic('t')) await s.createTopic('t', { partitions, config: { flushMs: -1, ...extra, dedup } });
  return s;
}

function filterOf(p: Partition): DedupFilter {
  assert.ok(p.appendFilter instanceof DedupFilter, 'dedup topics get a DedupFilter');
  return p.appendFilter;
}

async function readAll(p: Partition): Promise<{ offset: number; key: string | null }[]> {
  const out: { offset: number; key: string | null }[] = [];
  for await (const r of p.read({ offset: p.logStartOffset })) out.push({ offset: r.offset, key: r.key ? new TextDecoder().decode(r.key) : null });
  return out;
}

function checkResult(r: AppendResult, n: number, base: number): void {
  assert.equal(r.offsets.length, n);
  let next = base;
  const dropped: number[] = [];
  r.offsets.forEach((o, i) => { if (o === -1) dropped.push(i); else assert.equal(o, next++, 'kept records get contiguous offsets in input order'); });
  assert.deepEqual(r.dropped, dropped);
  assert.equal(r.count, n - dropped.length);
  assert.equal(r.baseOffset, base);
  assert.equal(r.lastOffset, base + r.count - 1);
}

test('append drops duplicates before offsets are assigned; the log holds only kept records, contiguous', async () => {
  const dir = tmp();
  const s = await openWith(dir, { by: 'key', window: { count: 100 } });
  try {
    const p = s.partition('t');
    const r1 = await p.append([rec('a'), rec('b'), rec('a'), { value: 'no key' }, rec('c'), rec('b')]);
    checkResult(r1, 6, 0);
    assert.deepEqual(r1.dropped, [2, 5]);
    const r2 = await p.append([rec('c'), rec('d')]);
    checkResult(r2, 2, 4);
    assert.deepEqual(r2.offsets, [-1, 4]);
    const r3 = await p.append([rec('a'), rec('b')]);
    assert.deepEqual(r3, { baseOffset: 5, lastOffset: 4, count: 0, dropped: [0, 1], offsets: [-1, -1] });
    assert.deepEqual(await readAll(p), [{ offset: 0, key: 'a' }, { offset: 1, key: 'b' }, { offset: 2, key: null }, { offset: 3, key: 'c' }, { offset: 4, key: 'd' }]);
    const st = await s.dedupStats('t');
    assert.ok(st);
    assert.equal(st.checked, 9);
    assert.equal(st.dropped, 5);
    assert.equal(st.skipped, 1);
    assert.equal(st.windowSize, 4);
    assert.equal(st.windowFill, 0.04);
  } finally {
    await s.close();
  }
});

test('clean restart with the window half full: every earlier record is still caught, eviction continues where it was', async () => {
  const dir = tmp();
  const ids = Array.from({ length: 50 }, (_, i) => `id${i}`);
  let s = await openWith(dir, { by: 'key', window: { count: 100 } });
  await s.partition('t').append(ids.map((id) => rec(id)));
  await s.close();
  s = await openWith(dir, { by: 'key', window: { count: 100 } });
  try {
    const p = s.partition('t');
    const st = (await s.dedupStats('t'))!;
    assert.equal(st.rebuildEntries, 50);
    assert.equal(st.windowSize, 50);
    assert.equal(st.rebuilds, 1);
    assert.equal(st.checked, 0, 'counters start at open');
    const again = await p.append(ids.map((id) => rec(id)));
    assert.equal(again.count, 0);
    // 50 more fill the window; 10 after that evict id0..id9 (count bound, across the restart).
    await p.append(Array.from({ length: 60 }, (_, i) => rec(`new${i}`)));
    const probe = await p.append([rec('id10'), rec('id9')]);
    assert.deepEqual(probe.offsets, [-1, 110]);
  } finally {
    await s.close();
  }
});

test('age bound across a restart: the rebuilt window keeps exactly the entries still inside ageMs', async () => {
  const dir = tmp();
  const cfg: DedupConfig = { by: 'key', window: { count: 1000, ageMs: 1000 } };
  let s = await openWith(dir, cfg);
  await s.partition('t').append([rec('old', 5000), rec('mid', 5500), rec('new', 5999)]);
  await s.close();
  s = await openWith(dir, cfg);
  try {
    const p = s.partition('t');
    // At 6000: old@5000 is exactly ageMs old (out), mid@5500 and new@5999 are inside.
    const r = await p.append([rec('old', 6000), rec('mid', 6000), rec('new', 6000)]);
    assert.deepEqual(r.dropped, [1, 2]);
    const r2 = await p.append([rec('mid', 6499), rec('mid', 6500)]);
    assert.deepEqual(r2.dropped, [0], 'mid@5500 matches at 6499, not at 6500');
  } finally {
    await s.close();
  }
});

test('rebuild walks back past records without an identity, and stops at the age bound', async () => {
  const dir = tmp();
  const cfg: DedupConfig = { by: 'key', window: { count: 1000, ageMs: 1000 } };
  let s = await openWith(dir, cfg);
  const p0 = s.partition('t');
  await p0.append(Array.from({ length: 3000 }, (_, i) => rec(`old${i}`, 0)));
  await p0.append(Array.from({ length: 1500 }, () => ({ value: 'no key', timestamp: 9000 })));
  await p0.append(Array.from({ length: 10 }, (_, i) => rec(`new${i}`, 10_000)));
  const probe = [rec('new3', 10_500), rec('old2999', 10_500), rec('new9', 10_999), rec('fresh', 10_999)];
  const live = crashCopy(dir);
  await s.close();
  s = await openWith(dir, cfg);
  const s2 = await openWith(live, cfg);
  try {
    const st = (await s.dedupStats('t'))!;
    // [3510, 4510) has 10 keyed records; [2520, 3510) has 480 keyed ones all 10 s old: the walk stops there.
    assert.equal(st.rebuildScanned, 1990);
    const a = await s.partition('t').append(probe);
    assert.deepEqual(a.dropped, [0, 2]);
    assert.deepEqual((await s2.partition('t').append(probe)).offsets, a.offsets, 'crash image decides the same');
  } finally {
    await s.close();
    await s2.close();
  }
  // Without an age bound the walk continues until `count` keyed records are found.
  const dir3 = crashCopy(dir);
  const s3 = await Store.open(dir3, { retentionCheckMs: -1 });
  try {
    const f = new DedupFilter(s3.k, { by: 'key', window: { count: 1000 } });
    try {
      await f.rebuild(s3.partition('t'));
      // Log now: 3000 old, 1500 unkeyed, 10 new, then 2 probe records kept (fresh, old2999).
      // old2999 appears twice in the replayed range (kept the second time only because of the age bound): without it, one entry.
      assert.equal(f.stats().rebuildEntries, 999);
      // [3512, 4512) holds 12 keyed records, [2524, 3512) 476, [2012, 2524) the last 512 needed.
      assert.equal(f.stats().rebuildScanned, 2500);
    } finally {
      f.close();
    }
  } finally {
    await s3.close();
  }
});

/** A workload: batches of records with ids from a small alphabet and non-decreasing timestamps. */
function workloadArb(mode: DedupConfig['by']) {
  const id = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz'.split('').map((c) => c.repeat(3)));
  const one = fc.tuple(id, fc.integer({ min: 0, max: 40 }), fc.boolean());
  return fc.array(fc.array(one, { minLength: 1, maxLength: 25 }), { minLength: 1, maxLength: 12 }).map((batches) => {
    let t = 1_000_000;
    return batches.map((b) => b.map(([s, dt, withId]): RecordInput => {
      t += dt;
      const present = withId || mode === 'content';
      switch (mode) {
        case 'key': return { key: present ? s : null, value: 'x', timestamp: t };
        case 'value': return { key: 'k', value: present ? s : null, timestamp: t };
        case 'content': return { key: s.slice(0, 1), value: s, headers: withId ? { h: s } : {}, timestamp: t };
        default: return { value: 'x', headers: present ? { id: s, other: 'y' } : { other: s }, timestamp: t };
      }
    }));
  });
}

test('restart and crash equivalence: a cleanly reopened store and a crash image decide like the live store, every mode', async () => {
  for (const by of ['key', 'value', 'content', 'header:id'] as const) {
    await fc.assert(fc.asyncProperty(
      fc.integer({ min: 1, max: 30 }), fc.constantFrom(0, 20, 60), workloadArb(by), workloadArb(by),
      async (count, ageMs, phase1, phase2) => {
        const cfg: DedupConfig = { by, window: { count, ageMs } };
        const extra = { segmentBytes: 2048 };
        // live: never closed. clean: the same history, closed and reopened. crash: a copy of live's files.
        const live = await openWith(tmp(), cfg, extra);
        const cleanDir = tmp();
        let clean = await openWith(cleanDir, cfg, extra);
        let crash: Store | null = null;
        try {
          for (const batch of phase1) {
            const x = await live.partition('t').append(batch);
            assert.deepEqual(await clean.partition('t').append(batch), x);
          }
          await clean.close();
          clean = await openWith(cleanDir, cfg, extra);
          crash = await openWith(crashCopy(live.dir), cfg, extra);
          // Phase 2 continues right after phase 1 in time (timestamps stay non-decreasing).
          const shift = phase1.flat().at(-1)!.timestamp! - 1_000_000;
          for (const batch of phase2) {
            const shifted = batch.map((r) => ({ ...r, timestamp: r.timestamp! + shift }));
            const x = await live.partition('t').append(shifted);
            assert.deepEqual(await clean.partition('t').append(shifted), x, 'clean restart');
            assert.deepEqual(await crash.partition('t').append(shifted), x, 'crash image');
          }
        } finally {
          await live.close();
          await clean.close();
          await crash?.close();
        }
      }), { numRuns: 10 });
  }
});

test('crash with a torn tail: records that did not survive are accepted again, the rest are still caught', async () => {
  const dir = tmp();
  const cfg: DedupConfig = { by: 'key', window: { count: 100 } };
  const s = await openWith(dir, cfg);
  const p = s.partition('t');
  await p.append(Array.from({ length: 20 }, (_, i) => rec(`first${i}`)));
  await p.flush();
  await p.append(Array.from({ length: 20 }, (_, i) => rec(`second${i}`))); // one batch, never flushed
  const copy = crashCopy(dir);
  await s.close();
  const log = path.join(copy, 't-0', '00000000000000000000.log');
  fs.truncateSync(log, fs.statSync(log).size - 7); // the second batch is torn
  const s2 = await openWith(copy, cfg);
  try {
    const p2 = s2.partition('t');
    assert.equal(p2.logEndOffset, 20);
    assert.equal((await s2.dedupStats('t'))!.windowSize, 20);
    const r = await p2.append([...Array.from({ length: 20 }, (_, i) => rec(`second${i}`)), rec('first0'), rec('first19')]);
    assert.equal(r.count, 20);
    assert.deepEqual(r.dropped, [20, 21]);
    assert.equal(r.baseOffset, 20);
  } finally {
    await s2.close();
  }
});

test('a real crash (SIGKILL, window half full, nothing flushed) loses no dedup state that reached the log', async () => {
  const dir = tmp();
  const index = fileURLToPath(new URL('../src/index.js', import.meta.url));
  const script = `
    const { Store } = await import(${JSON.stringify(index)});
    const s = await Store.open(${JSON.stringify(dir)}, { retentionCheckMs: -1 });
    await s.createTopic('t', { config: { flushMs: -1, dedup: { by: 'header:id', window: { count: 64, ageMs: 60000 } } } });
    const p = s.partition('t');
    for (let b = 0; b < 4; b++) {
      const r = await p.append(Array.from({ length: 8 }, (_, i) => ({ value: 'v', headers: { id: 'm' + (b * 8 + i) }, timestamp: 1000 + b })));
      if (r.count !== 8) throw new Error('unexpected drop');
    }
    process.kill(process.pid, 'SIGKILL');
  `;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(child.signal, 'SIGKILL', child.stderr);
  assert.ok(fs.existsSync(path.join(dir, '.lock')), 'the dead writer left its lock');
  const s = await Store.open(dir, { retentionCheckMs: -1 });
  try {
    const st = (await s.dedupStats('t'))!;
    assert.equal(st.windowSize, 32);
    assert.equal(st.windowFill, 0.5);
    const r = await s.partition('t').append([
      { value: 'again', headers: { id: 'm0' }, timestamp: 2000 },
      { value: 'again', headers: { id: 'm31' }, timestamp: 2000 },
      { value: 'new', headers: { id: 'm32' }, timestamp: 2000 },
    ]);
    assert.deepEqual(r.offsets, [-1, -1, 32]);
  } finally {
    await s.close();
  }
});

/** NodeStorage whose .log writes fail on demand (optionally after writing part of the data). */
class FailingStorage extends NodeStorage {
  /** Successful .log writes left before failures start; -1: never fail. */
  failAfter = -1;
  partialBytes = 0;
  override open(file: string, mode: 'read' | 'write'): FileHandle {
    const h = super.open(file, mode);
    if (!file.endsWith('.log')) return h;
    const self = this;
    return {
      get path() { return h.path; },
      size: () => h.size(),
      read: (buf, off, len, pos) => h.read(buf, off, len, pos),
      write(buf, off, len, pos) {
        if (self.failAfter === 0) {
          if (self.partialBytes > 0) h.write(buf, off, Math.min(len, self.partialBytes), pos);
          throw new StorageError(file, 'write', Object.assign(new Error('no space left on device'), { code: 'ENOSPC' }));
        }
        if (self.failAfter > 0) self.failAfter--;
        h.write(buf, off, len, pos);
      },
      truncate: (n) => h.truncate(n),
      datasync: () => h.datasync(),
      close: () => h.close(),
    };
  }
}

test('a failed write: the window is rebuilt from the log, so the records that were not written are not held against a retry', async () => {
  const dir = tmp();
  const storage = new FailingStorage();
  const cfg: DedupConfig = { by: 'key', window: { count: 1000 } };
  const s = await Store.open(dir, { storage, retentionCheckMs: -1 });
  await s.createTopic('t', { config: { flushMs: -1, dedup: cfg } });
  const p = s.partition('t');
  const f = filterOf(p);
  await p.append([rec('a'), rec('b')]);
  storage.failAfter = 0;
  storage.partialBytes = 30;
  const failed = [rec('c'), rec('d'), rec('a')];
  await assert.rejects(p.append(failed), StorageError);
  assert.equal(f.stats().stale, true, 'the window waits for its rebuild');
  assert.throws(() => f.filter([]), DedupUnavailableError);
  await f.whenReady();
  assert.equal(f.stats().stale, false);
  assert.equal(f.windowSize, 2, 'only what the log holds');
  assert.equal(f.stats().rebuilds, 2);
  // The partition itself refuses writes until reopened; the window already agrees with the log.
  const keep = f.filter([rec('c'), rec('a')].map((r, i) => normalizeRecord(r, i, 0)));
  assert.deepEqual(keep, [true, false]);
  await s.close();
  storage.failAfter = -1;
  const s2 = await Store.open(dir, { retentionCheckMs: -1 });
  try {
    const r = await s2.partition('t').append(failed);
    assert.deepEqual(r.offsets, [2, 3, -1], 'the retry is written; only the true duplicate is dropped');
  } finally {
    await s2.close();
  }
});

test('a write failing after part of the append reached the log: the retry drops exactly the part that was written', async () => {
  const dir = tmp();
  const storage = new FailingStorage();
  const s = await Store.open(dir, { storage, retentionCheckMs: -1 });
  // Small batches: 12 records of ~300 bytes make several batches.
  await s.createTopic('t', { config: { flushMs: -1, maxMessageBytes: 1024, dedup: { by: 'value', window: { count: 1000 } } } });
  const p = s.partition('t');
  const f = filterOf(p);
  const recs: RecordInput[] = Array.from({ length: 12 }, (_, i) => ({ value: `${i}`.padEnd(300, '.') }));
  storage.failAfter = 1; // the first batch is written, the second fails
  await assert.rejects(p.append(recs), StorageError);
  await f.whenReady();
  const written = p.logEndOffset;
  assert.ok(written > 0 && written < 12, `first batch written (${written} records)`);
  assert.equal(f.windowSize, written);
  await s.close();
  const s2 = await Store.open(dir, { retentionCheckMs: -1 });
  try {
    const r = await s2.partition('t').append(recs);
    assert.deepEqual(r.dropped, Array.from({ length: written }, (_, i) => i));
    assert.equal(r.baseOffset, written);
    assert.equal(s2.partition('t').logEndOffset, 12);
  } finally {
    await s2.close();
  }
});

test('stats: null for topics without dedup, per partition, and built from the log on a read-only store', async () => {
  const dir = tmp();
  const s = await openWith(dir, { by: 'key', window: { count: 10, ageMs: 0 } }, {}, 2);
  try {
    await s.createTopic('plain', { config: { flushMs: -1 } });
    assert.equal(await s.dedupStats('plain'), null);
    assert.equal(s.partition('plain').appendFilter, null);
    await s.partition('t', 0).append([rec('a'), rec('a'), rec('b')]);
    await s.partition('t', 1).append([rec('a')]);
    const s0 = (await s.dedupStats('t', 0))!;
    const s1 = (await s.dedupStats('t', 1))!;
    assert.deepEqual([s0.checked, s0.dropped, s0.windowSize], [3, 1, 2]);
    assert.deepEqual([s1.checked, s1.dropped, s1.windowSize], [1, 0, 1]);
    assert.deepEqual([s0.by, s0.count, s0.ageMs, s0.confirm], ['key', 10, 0, false]);
    await s.flush();
    const ro = await Store.open(dir, { readOnly: true });
    try {
      assert.equal(ro.partition('t', 0).appendFilter, null, 'read-only stores do not build windows on open');
      const r0 = (await ro.dedupStats('t', 0))!;
      assert.deepEqual([r0.checked, r0.windowSize, r0.rebuildEntries], [0, 2, 2]);
    } finally {
      await ro.close();
    }
  } finally {
    await s.close();
  }
});

test('confirm mode through a store: true duplicates dropped, window rebuilt with the bytes', async () => {
  const dir = tmp();
  const cfg: DedupConfig = { by: 'header:id', window: { count: 5 }, confirm: true };
  let s = await openWith(dir, cfg);
  await s.partition('t').append(['x', 'y', 'x', 'z'].map((id) => ({ value: 'v', headers: { id } })));
  await s.close();
  s = await openWith(dir, cfg);
  try {
    const r = await s.partition('t').append(['z', 'w', 'y'].map((id) => ({ value: 'v', headers: { id } })));
    assert.deepEqual(r.offsets, [-1, 3, -1]);
    assert.equal((await s.dedupStats('t'))!.collisions, 0);
  } finally {
    await s.close();
  }
});

test('a topic with an invalid dedup config cannot be created', async () => {
  const dir = tmp();
  const s = await Store.open(dir, { retentionCheckMs: -1 });
  try {
    await assert.rejects(s.createTopic('t', { config: { dedup: { by: 'value', window: { count: 5 }, confirm: true } } }), { code: 'ERR_INVALID_ARGUMENT' });
    await assert.rejects(s.createTopic('t', { config: { dedup: { by: 'key', window: { count: 0 } } } }), { code: 'ERR_INVALID_ARGUMENT' });
    assert.equal(s.hasTopic('t'), false);
  } finally {
    await s.close();
  }
});

test('lifetime counters: kept across clean closes, read by read-only stores, lost since the last clean close by a crash', async () => {
  const dir = tmp();
  const cfg: DedupConfig = { by: 'key', window: { count: 100 } };
  let s = await openWith(dir, cfg);
  await s.partition('t').append([rec('a'), rec('a'), { value: 'no key' }]);
  let st = (await s.dedupStats('t'))!;
  assert.deepEqual(st.total, { checked: 2, dropped: 1, skipped: 1, collisions: 0 });
  await s.close();
  assert.ok(fs.existsSync(path.join(dir, 't-0', DEDUP_STATS_FILE)));
  s = await openWith(dir, cfg);
  await s.partition('t').append([rec('a'), rec('b')]);
  st = (await s.dedupStats('t'))!;
  assert.deepEqual([st.checked, st.dropped], [2, 1], 'since open');
  assert.deepEqual(st.total, { checked: 4, dropped: 2, skipped: 1, collisions: 0 }, 'since creation');
  const crashed = crashCopy(dir);
  await s.close();
  const ro = await Store.open(dir, { readOnly: true });
  try {
    assert.deepEqual((await ro.dedupStats('t'))!.total, { checked: 4, dropped: 2, skipped: 1, collisions: 0 });
  } finally {
    await ro.close();
  }
  const before = fs.readFileSync(path.join(dir, 't-0', DEDUP_STATS_FILE));
  const ro2 = await Store.open(dir, { readOnly: true });
  await ro2.dedupStats('t');
  await ro2.close();
  assert.deepEqual(fs.readFileSync(path.join(dir, 't-0', DEDUP_STATS_FILE)), before, 'read-only stores never write it');
  // The crash image has the counters of the first clean close only; the window itself is complete.
  const c = await Store.open(crashed, { retentionCheckMs: -1 });
  try {
    const cs = (await c.dedupStats('t'))!;
    assert.deepEqual(cs.total, { checked: 2, dropped: 1, skipped: 1, collisions: 0 });
    assert.equal(cs.windowSize, 2);
  } finally {
    await c.close();
  }
  // A torn or foreign statistics file only resets the counters.
  fs.writeFileSync(path.join(dir, 't-0', DEDUP_STATS_FILE), '{"checked": 5, "dropp');
  s = await openWith(dir, cfg);
  try {
    assert.deepEqual((await s.dedupStats('t'))!.total, { checked: 0, dropped: 0, skipped: 0, collisions: 0 });
    assert.equal((await s.partition('t').append([rec('b')])).count, 0, 'the window does not depend on the file');
  } finally {
    await s.close();
  }
});

test('sediment topics describe shows window fill and counters of dedup topics (text and JSON)', async () => {
  const dir = tmp();
  const s = await openWith(dir, { by: 'header:id', window: { count: 8, ageMs: 0 } }, {}, 2);
  await s.createTopic('plain', { config: {} });
  await s.partition('t', 1).append(['x', 'y', 'x', 'z'].map((id) => ({ value: 'v', headers: { id } })));
  await s.close();
  const cli = async (args: string[]) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const sink = (a: Buffer[]) => ({ write(x: string | Uint8Array) { a.push(Buffer.from(x)); return true; } });
    const code = await main(['node', 'sediment', ...args], { stdout: sink(out), stderr: sink(err), stdin: Readable.from([]), isTTY: false });
    return { code, out: Buffer.concat(out).toString(), err: Buffer.concat(err).toString() };
  };
  const text = await cli(['topics', 'describe', '--dir', dir, '--topic', 't']);
  assert.equal(text.code, 0, text.err);
  const lines = text.out.split('\n');
  const at = lines.findIndex((l) => l.startsWith('dedup ('));
  assert.ok(at > 0, text.out);
  assert.deepEqual(lines[at + 1]!.split(/\s+/), ['partition', 'windowEntries', 'windowFill', 'checked', 'dropped', 'skipped', 'collisions']);
  assert.deepEqual(lines[at + 2]!.split(/\s+/), ['0', '0', '0.0%', '0', '0', '0', '0']);
  assert.deepEqual(lines[at + 3]!.split(/\s+/), ['1', '3', '37.5%', '4', '1', '0', '0']);
  const json = await cli(['topics', 'describe', '--dir', dir, '--topic', 't', '--format', 'json']);
  assert.equal(json.code, 0, json.err);
  const d = JSON.parse(json.out) as { partitions: { dedup: { windowSize: number; total: { dropped: number } } }[] };
  assert.deepEqual(d.partitions.map((p) => [p.dedup.windowSize, p.dedup.total.dropped]), [[0, 0], [3, 1]]);
  const plain = await cli(['topics', 'describe', '--dir', dir, '--topic', 'plain']);
  assert.equal(plain.code, 0);
  assert.ok(!plain.out.includes('dedup'), 'no dedup section for topics without dedup');
  assert.ok(!('dedup' in (JSON.parse((await cli(['topics', 'describe', '--dir', dir, '--topic', 'plain', '--format', 'json'])).out) as { partitions: object[] }).partitions[0]!));
});

/**
 * Allocates wasm memory until allocation fails, then frees small blocks
 * totalling at most 16 MiB: a partition's small buffers still fit, a 40 MiB
 * window does not. Returns the blocks still held (free them after).
 */
function exhaustWasmMemory(): number[] {
  const k = getKernelsSync();
  const blocks: { ptr: number; size: number }[] = [];
  for (let size = 256 << 20; size >= 1 << 20; size >>>= 1) {
    for (;;) {
      try { blocks.push({ ptr: k.alloc(size), size }); } catch { break; }
    }
  }
  blocks.sort((x, y) => x.size - y.size);
  let freed = 0;
  while (blocks.length > 0 && freed + blocks[0]!.size <= 16 << 20) {
    const b = blocks.shift()!;
    k.free(b.ptr);
    freed += b.size;
  }
  assert.ok(freed >= 4 << 20, `expected small blocks to free, freed ${freed}`);
  return blocks.map((b) => b.ptr);
}

test('a window that cannot be allocated: the store opens, appends fail with DedupUnavailableError, the topic can be deleted', async () => {
  const dir = tmp();
  const k = getKernelsSync();
  // Windows of 2^20 entries (~40 MiB) are valid; make wasm memory unable to hold one.
  const blocks = exhaustWasmMemory();
  try {
    const s = await Store.open(dir, { retentionCheckMs: -1 });
    try {
      await s.createTopic('huge', { config: { dedup: { by: 'key', window: { count: 2 ** 20 } } } });
      const p = s.partition('huge');
      await assert.rejects(p.append([rec('a')]), (e: unknown) => e instanceof DedupUnavailableError && (e as Error).cause instanceof Error && ((e as Error).cause as { code?: string }).code === 'ERR_WASM_MEMORY');
      await assert.rejects(s.dedupStats('huge'), DedupUnavailableError);
      assert.equal(p.logEndOffset, 0);
    } finally {
      await s.close();
    }
    const s2 = await Store.open(dir, { retentionCheckMs: -1 });
    try {
      await assert.rejects(s2.partition('huge').append([rec('a')]), DedupUnavailableError);
      await s2.deleteTopic('huge');
      assert.equal(s2.hasTopic('huge'), false);
    } finally {
      await s2.close();
    }
  } finally {
    for (const b of blocks) k.free(b);
  }
});

test('overlapping rebuilds: the newest one decides; filter() refuses work until it is done', async () => {
  const dir = tmp();
  const s = await openWith(dir, { by: 'key', window: { count: 500 } }, { segmentBytes: 4096 });
  try {
    const p = s.partition('t');
    await p.append(Array.from({ length: 300 }, (_, i) => rec(`k${i}`)));
    const f = filterOf(p);
    const a = f.rebuild();
    assert.throws(() => f.filter([]), DedupUnavailableError);
    const b = f.rebuild();
    await Promise.all([a, b]);
    assert.equal(f.windowSize, 300);
    assert.equal(f.stats().stale, false);
    assert.equal((await p.append([rec('k0'), rec('k299'), rec('new')])).count, 1);
  } finally {
    await s.close();
  }
});

test('corruption in the tail the window is rebuilt from: the store opens, reads work up to it, appends refuse until a rebuild succeeds', async () => {
  const dir = tmp();
  const cfg: DedupConfig = { by: 'key', window: { count: 10_000 } };
  let s = await openWith(dir, cfg, { segmentBytes: 2048 });
  await s.partition('t').append(Array.from({ length: 200 }, (_, i) => rec(`k${i}`)));
  await s.close();
  // Flip a byte inside the first (closed, trusted after a clean shutdown) segment.
  const first = path.join(dir, 't-0', '00000000000000000000.log');
  const bytes = fs.readFileSync(first);
  bytes[bytes.length - 5]! ^= 0xff;
  fs.writeFileSync(first, bytes);
  s = await openWith(dir, cfg, { segmentBytes: 2048 });
  try {
    const p = s.partition('t');
    const st = (await s.dedupStats('t'))!;
    assert.equal(st.stale, true);
    await assert.rejects(p.append([rec('x')]), (e: unknown) => e instanceof DedupUnavailableError && /corrupt/.test(String((e as Error).message)));
    assert.equal(p.logEndOffset, 200, 'nothing was written');
    await assert.rejects(filterOf(p).rebuild(), { code: 'ERR_CORRUPTION' });
  } finally {
    await s.close();
  }
});
