// Tiered storage under adversarial conditions: each test here reproduces a
// bug found by review (docs/tiering.md is the contract) and keeps it fixed.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Store } from '../src/store.js';
import { CorruptionError, ObjectStoreUnavailableError, OffsetOutOfRangeError, StorageError, TierConflictError, TopicExistsError } from '../src/errors.js';
import { TierConfig, resolveTierConfig } from '../src/tier/tier_config.js';
import { ObjectStore } from '../src/tier/object_store.js';
import { parseManifest, Manifest } from '../src/tier/manifest.js';
import type { ReadOptions } from 'opendal';
import { FaultyStorage } from './helpers/faulty_storage.js';
import {
  tmp, cleanup, memoryTier, fsTier, forgetMemoryTier, plain, smallTopic, recentRecords, makeRecords, openTiered, appendAll, readPlain, PlainRecord, assertRestoreRefused, remoteManifest,
} from './helpers/tier_util.js';

after(cleanup);

test('remote retention by size counts the segments still held locally: it drops no more than the log\'s own retention keeps', async () => {
  // Every closed segment is both local and archived (no local retention). The
  // total log is the local log; retention.bytes must keep the same segments in
  // the archive that the log's own retention keeps locally.
  const tier = memoryTier();
  const dir = tmp();
  const config = smallTopic({ retentionBytes: 40 * 1024 });
  let { store, p } = await openTiered(dir, tier, config);
  try {
    await appendAll(p, recentRecords(600, 71));
    await p.flush();
    const all = await readPlain(p);
    assert.ok(p.segments.length >= 8, `expected many segments, got ${p.segments.length}`);
    await store.tier!.archiveNow();
    store.enforceRetention();
    const kept = p.localLogStartOffset;
    assert.ok(kept > 0, 'the log\'s retention deleted old segments');
    const m = await remoteManifest(store);
    assert.equal(m.logStartOffset, kept, 'the archive starts where the log\'s retention starts');
    for (const seg of p.segments.slice(0, -1)) {
      assert.ok(m.segments.some((s) => s.baseOffset === seg.baseOffset), `segment ${seg.baseOffset}, kept by retention, is still archived`);
    }
    await store.close();
    // Reopened with local retention 0: the archived local copies are evicted; every retained record stays readable.
    ({ store, p } = await openTiered(dir, { ...tier, localRetentionBytes: 0 }, config));
    await store.tier!.archiveNow();
    assert.equal(p.logStartOffset, kept);
    assert.deepEqual(await readPlain(p, { offset: kept }), all.slice(kept));
  } finally {
    await store.close();
    forgetMemoryTier(tier);
  }
});

test('a restore cut off between moving a partition into place and recording its topic loses nothing: the re-run completes with the archived config', async () => {
  const tier = memoryTier();
  const dir = tmp();
  // Old records and no retention: the archived config keeps them; the default (7 days) would not.
  const old = makeRecords(300, 72, { t0: Date.now() - 30 * 24 * 3_600_000 });
  const config = smallTopic();
  const { store, p } = await openTiered(dir, tier, config);
  let before: Manifest;
  try {
    await appendAll(p, old);
    await store.tier!.archiveNow({ roll: true });
    before = await remoteManifest(store);
    assert.ok(before.segments.length >= 3);
  } finally {
    await store.close();
  }
  const expected = (await readAll(tier)).records;
  // The store's metadata write fails once during the restore (a crash there).
  const target = tmp();
  const faulty = new FaultyStorage();
  faulty.failOn({ op: 'rename', path: /sediment\.json\.tmp$/ });
  await assert.rejects(Store.restore(target, tier, { storeOptions: { storage: faulty, retentionCheckMs: -1 } }), StorageError);
  // Reopened as it is, with archiving: nothing of the archive may go.
  const reopened = await Store.open(target, { retentionCheckMs: -1, tier });
  try {
    await reopened.tier!.archiveNow().catch(() => undefined);
    reopened.enforceRetention();
    const now = parseManifest(await reopened.tier!.objects.read(reopened.tier!.layout.manifestKey('ev', 0)), 'manifest');
    assert.deepEqual(now.segments, before.segments, 'the archive is untouched');
  } finally {
    await reopened.close();
  }
  // The re-run completes: the same records and offsets, the archived config.
  const r = await Store.restore(target, tier, { storeOptions: { retentionCheckMs: -1 } });
  try {
    const rp = r.partition('ev', 0);
    assert.equal(rp.config.retentionMs, -1);
    assert.equal(rp.config.segmentBytes, config.segmentBytes);
    assert.deepEqual(await readPlain(rp, { offset: 0 }), expected);
  } finally {
    await r.close();
    forgetMemoryTier(tier);
  }
});

test('a restore cut off after recording its topic, before moving the partition in: the archive is untouched and the re-run completes', async () => {
  const tier = memoryTier();
  const { store, p } = await openTiered(tmp(), tier);
  try {
    await appendAll(p, recentRecords(300, 73));
    await store.tier!.archiveNow({ roll: true });
  } finally {
    await store.close();
  }
  const expected = (await readAll(tier)).records;
  const target = tmp();
  const faulty = new FaultyStorage();
  // The move of the staged partition into place fails.
  faulty.failOn({ op: 'rename', path: (f: string) => f.includes(`${path.sep}.restore${path.sep}ev-0`) });
  await assert.rejects(Store.restore(target, tier, { storeOptions: { storage: faulty, retentionCheckMs: -1 } }), StorageError);
  const r = await Store.restore(target, tier, { storeOptions: { retentionCheckMs: -1 } });
  try {
    assert.deepEqual(await readPlain(r.partition('ev', 0), { offset: 0 }), expected);
  } finally {
    await r.close();
    forgetMemoryTier(tier);
  }
});

/** Every record of topic ev partition 0, restored from the archive into a scratch directory. */
async function readAll(tier: TierConfig): Promise<{ records: PlainRecord[] }> {
  const r = await Store.restore(tmp(), tier, { storeOptions: { retentionCheckMs: -1 } });
  try {
    return { records: await readPlain(r.partition('ev', 0), { offset: 0 }) };
  } finally {
    await r.close();
  }
}

test('a wiped local directory rewritten with other records of the same sizes is a conflict: nothing evicted, the local records read back', async () => {
  const tier = memoryTier({ localRetentionBytes: 0 });
  const dir = tmp();
  const ts = Date.now() - 60_000;
  // Same sizes, offsets and timestamps; different bytes.
  const records = (fill: string) => Array.from({ length: 300 }, (_, i) => ({ key: `k${i % 10}`, value: fill.repeat(120), timestamp: ts + i }));
  let { store, p } = await openTiered(dir, tier);
  try {
    await appendAll(p, records('a'));
    await store.tier!.archiveNow({ roll: true });
  } finally {
    await store.close();
  }
  fs.rmSync(dir, { recursive: true, force: true });
  const plainStore = await Store.open(dir, { retentionCheckMs: -1 });
  try {
    await plainStore.createTopic('ev', { config: smallTopic() });
    const q = plainStore.partition('ev', 0);
    await appendAll(q, records('b'));
    q.roll();
    await q.flush();
  } finally {
    await plainStore.close();
  }
  ({ store, p } = await openTiered(dir, tier));
  try {
    const expected = await readPlain(p, { offset: 0 });
    assert.equal(expected.length, 300);
    await assert.rejects(store.tier!.archiveNow(), TierConflictError);
    const st = store.tier!.status().partitions[0]!;
    assert.equal(st.state, 'conflict');
    assert.equal(st.evictedSegments, 0);
    assert.equal(p.localLogStartOffset, 0, 'nothing evicted');
    assert.equal(p.enforceRetention(), 0);
    assert.deepEqual(await readPlain(p, { offset: 0 }), expected);
  } finally {
    await store.close();
    forgetMemoryTier(tier);
  }
});

test('two stores archiving one partition (a restored copy started while the original runs): the second to write is stopped with TierConflictError; the first keeps reading its own records', async () => {
  const tier = memoryTier({ autoArchive: false });
  const ts = Date.now() - 60_000;
  const records = (fill: string, from: number, n: number) => Array.from({ length: n }, (_, i) => ({ key: `k${(from + i) % 10}`, value: fill.repeat(120), timestamp: ts + from + i }));
  const a = await openTiered(tmp(), { ...tier, localRetentionBytes: 0 });
  const restored = await (async () => {
    await appendAll(a.p, records('a', 0, 200));
    await a.store.tier!.archiveNow({ roll: true });
    return Store.restore(tmp(), tier, { storeOptions: { retentionCheckMs: -1 } });
  })();
  try {
    await restored.tier!.refresh();
    const b = restored.partition('ev', 0);
    assert.equal(b.logEndOffset, 200);
    // Both go on from offset 200 with their own records, the original first.
    await appendAll(a.p, records('a', 200, 100));
    await a.store.tier!.archiveNow({ roll: true });
    await appendAll(b, records('b', 200, 100));
    await assert.rejects(restored.tier!.archiveNow({ roll: true }), TierConflictError);
    assert.equal(restored.tier!.status().partitions[0]!.state, 'conflict');
    // The original's archive is intact: its records, read back from the object store.
    assert.ok(a.p.localLogStartOffset >= 300, 'the original evicted its archived segments');
    const got = await readPlain(a.p, { offset: 0 }, { maxRecords: 300 });
    assert.equal(got.length, 300);
    for (const [i, r] of got.entries()) assert.equal(Buffer.from(r.value!, 'hex').toString()[0], 'a', `record ${i}`);
    // The restored copy keeps its own records locally.
    const mine = await readPlain(b, { offset: 200 });
    assert.equal(mine.length, 100);
    for (const r of mine) assert.equal(Buffer.from(r.value!, 'hex').toString()[0], 'b');
  } finally {
    await restored.close();
    await a.store.close();
    forgetMemoryTier(tier);
  }
});

test('a manifest write that fails after reaching the store is no conflict: the next pass adopts it and goes on', async () => {
  const tier = memoryTier({ autoArchive: false });
  const { store, p } = await openTiered(tmp(), tier);
  try {
    await appendAll(p, recentRecords(200, 74));
    await store.tier!.archiveNow({ roll: true });
    await appendAll(p, recentRecords(200, 75));
    const objects = store.tier!.objects;
    const writeAtomic = objects.writeAtomic.bind(objects);
    let failed = 0;
    objects.writeAtomic = async (key: string, data: Buffer) => {
      await writeAtomic(key, data);
      if (failed++ === 0) throw new ObjectStoreUnavailableError('writeAtomic', key, 1, 0, { cause: new Error('timed out after the write') });
    };
    await assert.rejects(store.tier!.archiveNow({ roll: true }), ObjectStoreUnavailableError);
    await appendAll(p, recentRecords(100, 76));
    await store.tier!.archiveNow({ roll: true });
    const st = store.tier!.status().partitions[0]!;
    assert.equal(st.state, 'idle');
    assert.equal(st.archivedUpTo, p.logEndOffset);
    const m = await remoteManifest(store);
    assert.equal(m.version, st.manifestVersion);
    assert.equal(m.segments[m.segments.length - 1]!.nextOffset, p.logEndOffset);
  } finally {
    await store.close();
    forgetMemoryTier(tier);
  }
});

test('remote retention deleting the objects under a remote read: the reader gets the right records or a typed error, never wrong ones, and never hangs', async () => {
  for (const [service, make] of [['memory', memoryTier], ['fs', fsTier]] as const) {
    for (const chunkBytes of [4096, 1 << 20]) {
      for (const at of [1, 40, 150]) {
        const tier = make({ localRetentionBytes: 0, autoArchive: false, chunkBytes, prefetchChunks: 1, cacheBytes: 64 * 1024 });
        const { store, p } = await openTiered(tmp(), tier, smallTopic({ segmentBytes: 16 * 1024 }));
        try {
          await appendAll(p, recentRecords(600, 77 + at));
          await store.tier!.archiveNow({ roll: true });
          const expected = await readPlain(p, { offset: 0 });
          assert.ok(p.localLogStartOffset === p.logEndOffset, 'everything is archived and evicted');
          const got: PlainRecord[] = [];
          let error: unknown = null;
          try {
            for await (const r of p.read({ offset: 0 })) {
              got.push(plain(r));
              if (got.length === at) {
                // The topic's retention now drops every archived segment: manifest first, then the objects.
                p.config = { ...p.config, retentionBytes: 0 };
                await store.tier!.archiveNow();
                assert.equal((await remoteManifest(store)).segments.length, 0);
              }
            }
          } catch (err) {
            error = err;
          }
          const where = `${service}, chunk ${chunkBytes}, after ${at}`;
          assert.deepEqual(got, expected.slice(0, got.length), `${where}: a prefix of the records`);
          // Kafka's answer for a fetch below the log start: consumers reset on it.
          if (error !== null) assert.ok(error instanceof OffsetOutOfRangeError, `${where}: OffsetOutOfRangeError, got ${String(error)}`);
          else assert.equal(got.length, expected.length, `${where}: all records`);
        } finally {
          await store.close();
          forgetMemoryTier(tier);
        }
      }
    }
  }
});

test('an archived log object shorter or longer than its manifest entry: CorruptionError for every kind of read, never a plain Error or extra records', async () => {
  for (const [service, make] of [['memory', memoryTier], ['fs', fsTier], ['memory, ranges clipped as S3 does', memoryTier]] as const) {
    for (const chunkBytes of [4096, 1 << 20]) {
      for (const change of ['cut mid-batch', 'cut to a batch end', 'cut to nothing', 'grown']) {
        const tier = make({ localRetentionBytes: 0, autoArchive: false, chunkBytes });
        const { store, p } = await openTiered(tmp(), tier);
        try {
          await appendAll(p, recentRecords(300, 78));
          await store.tier!.archiveNow({ roll: true });
          const expected = await readPlain(p, { offset: 0 });
          const m = await remoteManifest(store);
          const seg = m.segments[1]!;
          const key = store.tier!.layout.partitionDir('ev', 0) + seg.objects.log.key;
          const bytes = Buffer.from(await store.tier!.objects.read(key));
          // A cut at a batch boundary: the first batch's length field (bytes 8..11) gives its end.
          const firstBatchEnd = 12 + bytes.readInt32BE(8);
          const replaced = change === 'cut mid-batch' ? bytes.subarray(0, bytes.length - 5)
            : change === 'cut to a batch end' ? bytes.subarray(0, firstBatchEnd)
              : change === 'cut to nothing' ? bytes.subarray(0, 0)
                : Buffer.concat([bytes, bytes.subarray(0, firstBatchEnd)]);
          await store.tier!.objects.write(key, Buffer.from(replaced));
          store.tier!.cache.clear();
          if (service.includes('S3')) {
            // S3 answers a range running past the object's end with the bytes there are (206), not an error.
            const op = store.tier!.objects.operator;
            const read = op.read.bind(op);
            op.read = async (k: string, o?: ReadOptions | null) => {
              if (o?.offset === undefined || o.size === undefined) return read(k, o);
              const size = (await op.stat(k)).contentLength ?? 0n;
              const n = o.size < size - o.offset ? o.size : size - o.offset;
              return n > 0n ? read(k, { offset: o.offset, size: n }) : Buffer.alloc(0);
            };
          }
          const where = `${service}, chunk ${chunkBytes}, ${change}`;
          for (const [from, opts] of [[0, {}], [seg.baseOffset, {}], [seg.baseOffset + 3, { maxRecords: 5 }], [seg.nextOffset - 1, {}]] as const) {
            const got: PlainRecord[] = [];
            let error: unknown = null;
            try {
              for await (const r of p.read({ offset: from }, opts)) got.push(plain(r));
            } catch (err) {
              error = err;
            }
            assert.deepEqual(got, expected.slice(from, from + got.length), `${where}, from ${from}: right records`);
            if (change === 'grown') assert.equal(error, null, `${where}: bytes past the manifest's size are never read`);
            else if (error !== null) assert.ok(error instanceof CorruptionError, `${where}, from ${from}: CorruptionError, got ${String(error)}`);
            else assert.ok(from + got.length <= seg.baseOffset || (opts as { maxRecords?: number }).maxRecords === got.length, `${where}, from ${from}: the damaged segment's records cannot all be read`);
          }
        } finally {
          await store.close();
          forgetMemoryTier(tier);
        }
      }
    }
  }
});

test('restore from an archive whose log object is shorter than its manifest entry: CorruptionError, nothing restored', async () => {
  for (const make of [memoryTier, fsTier]) {
    const tier = make();
    const { store, p } = await openTiered(tmp(), tier);
    try {
      await appendAll(p, recentRecords(300, 79));
      await store.tier!.archiveNow({ roll: true });
      const m = await remoteManifest(store);
      const key = store.tier!.layout.partitionDir('ev', 0) + m.segments[1]!.objects.log.key;
      const bytes = await store.tier!.objects.read(key);
      await store.tier!.objects.write(key, Buffer.from(bytes.subarray(0, bytes.length - 7)));
    } finally {
      await store.close();
    }
    try {
      await assertRestoreRefused(tier, CorruptionError);
    } finally {
      forgetMemoryTier(tier);
    }
  }
});

test('refresh() of a store that archives does not adopt a manifest another writer wrote: TierConflictError, and the next pass stops too', async () => {
  const tier = memoryTier({ autoArchive: false });
  const a = await openTiered(tmp(), tier);
  const restored = await (async () => {
    await appendAll(a.p, recentRecords(200, 80));
    await a.store.tier!.archiveNow({ roll: true });
    return Store.restore(tmp(), tier, { storeOptions: { retentionCheckMs: -1 } });
  })();
  try {
    await restored.tier!.refresh();
    // The restored copy writes first this time.
    await appendAll(restored.partition('ev', 0), recentRecords(100, 81));
    await restored.tier!.archiveNow({ roll: true });
    const before = a.store.tier!.status().partitions[0]!.manifestVersion;
    await assert.rejects(a.store.tier!.refresh(), TierConflictError);
    assert.equal(a.store.tier!.status().partitions[0]!.manifestVersion, before, 'the other writer\'s manifest was not adopted');
    await appendAll(a.p, recentRecords(100, 82));
    await assert.rejects(a.store.tier!.archiveNow({ roll: true }), TierConflictError);
    assert.equal(a.store.tier!.status().partitions[0]!.state, 'conflict');
  } finally {
    await restored.close();
    await a.store.close();
    forgetMemoryTier(tier);
  }
});

test('a manifest read that shows the previous version for a moment (a store slow to show a PUT) is no conflict: the pass looks again', async () => {
  const tier = memoryTier({ autoArchive: false });
  const { store, p } = await openTiered(tmp(), tier);
  try {
    await appendAll(p, recentRecords(200, 83));
    await store.tier!.archiveNow({ roll: true });
    const key = store.tier!.layout.manifestKey('ev', 0);
    const objects = store.tier!.objects;
    const previous = await objects.read(key);
    await appendAll(p, recentRecords(100, 84));
    await store.tier!.archiveNow({ roll: true });
    // The next two reads of the manifest show the one before the last write; then the store catches up.
    const read = objects.read.bind(objects);
    let stale = 2;
    objects.read = async (k: string, range?: { offset: number; size: number }) => (k === key && !range && stale-- > 0 ? Buffer.from(previous) : read(k, range));
    await appendAll(p, recentRecords(100, 85));
    await store.tier!.archiveNow({ roll: true });
    assert.equal(stale, -1, 'the stale manifest was read');
    const st = store.tier!.status().partitions[0]!;
    assert.equal(st.state, 'idle');
    assert.equal(st.archivedUpTo, p.logEndOffset);
  } finally {
    await store.close();
    forgetMemoryTier(tier);
  }
});

test('a restore cut off between moving two partitions of a topic into place: the re-run completes, every partition identical to the archive', async () => {
  const tier = memoryTier({ autoArchive: false });
  const dir = tmp();
  const store = await Store.open(dir, { retentionCheckMs: -1, tier });
  const expected: PlainRecord[][] = [];
  try {
    await store.createTopic('ev', { partitions: 2, config: smallTopic() });
    for (const id of [0, 1]) {
      const p = store.partition('ev', id);
      await appendAll(p, recentRecords(200, 86 + id));
      expected.push(await readPlain(p, { offset: 0 }));
    }
    await store.tier!.archiveNow({ roll: true });
  } finally {
    await store.close();
  }
  const target = tmp();
  const faulty = new FaultyStorage();
  // Partition 0 moves into place; the move of partition 1 fails (a crash there).
  faulty.failOn({ op: 'rename', path: (f: string) => f.includes(`${path.sep}.restore${path.sep}ev-1`) });
  await assert.rejects(Store.restore(target, tier, { storeOptions: { storage: faulty, retentionCheckMs: -1 } }), StorageError);
  const r = await Store.restore(target, tier, { storeOptions: { retentionCheckMs: -1 } });
  try {
    for (const id of [0, 1]) assert.deepEqual(await readPlain(r.partition('ev', id), { offset: 0 }), expected[id], `partition ${id}`);
  } finally {
    await r.close();
  }
  // A topic that is not a cut-off restore is still refused.
  await assert.rejects(Store.restore(target, tier), TopicExistsError);
  forgetMemoryTier(tier);
});

test('an archive whose manifest went back (a bucket restored from an older copy) is refused where it would unlist evicted segments, with the remedy; accepted once the local copy is removed', async () => {
  const tier = memoryTier({ autoArchive: false, localRetentionBytes: 0 });
  const dir = tmp();
  let { store, p } = await openTiered(dir, tier);
  let older: Buffer;
  let all: PlainRecord[];
  let evicted: number;
  const key = store.tier!.layout.manifestKey('ev', 0);
  try {
    await appendAll(p, recentRecords(150, 61));
    await store.tier!.archiveNow({ roll: true });
    older = await store.tier!.objects.read(key);
    await appendAll(p, recentRecords(150, 62));
    await store.tier!.archiveNow({ roll: true });
    evicted = p.localLogStartOffset;
    const listedBefore = parseManifest(older, 'older').segments.at(-1)!.nextOffset;
    assert.ok(evicted > listedBefore, 'segments listed only by the newer manifest were evicted');
    all = await readPlain(p, { offset: 0 });
    assert.equal(all.length, 300);
  } finally {
    await store.close();
  }
  // The bucket goes back to the older manifest while the store is closed.
  await new ObjectStore(resolveTierConfig(tier)).write(key, older);
  ({ store, p } = await openTiered(dir, tier));
  try {
    await assert.rejects(store.tier!.archiveNow(), (err: unknown) => err instanceof TierConflictError && /no longer held locally/.test(err.message) && /Remove the local copy/.test(err.message));
    // Nothing was adopted: every record still reads back (the newer segments' objects are where the local copy says).
    assert.deepEqual(await readPlain(p, { offset: 0 }), all);
    assert.equal(parseManifest(await store.tier!.objects.read(key), 'now').version, parseManifest(older, 'older').version, 'the archive was not rewritten');
  } finally {
    await store.close();
  }
  // The user accepts the archive as it is: the older manifest is adopted.
  fs.rmSync(`${dir}/ev-0/tier-manifest.json`);
  ({ store, p } = await openTiered(dir, tier));
  try {
    await store.tier!.archiveNow();
    assert.equal(store.tier!.status().partitions[0]!.manifestVersion, parseManifest(older, 'older').version);
  } finally {
    await store.close();
    forgetMemoryTier(tier);
  }
});
