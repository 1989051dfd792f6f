// Tiered storage end to end through OpenDAL's memory and fs services:
// archiving closed segments (objects byte-identical to the local files,
// CRC-32C against an independent bytewise reference, manifest facts against
// the records), local eviction only after upload, transparent reads across
// the remote/local boundary (offsets, timestamps, limits; a property test
// with chunks cutting batches), remote retention (manifest before objects),
// an upload cut off by a crash redone, leftovers of a cut-off retention
// deleted, corruption of archived bytes detected, reopen, restore (full and
// metadata-only, with and without the catalog, refused on corruption).

import { test, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { Store } from '../src/store.js';
import { CorruptionError, ObjectStoreError, OffsetOutOfRangeError, TopicExistsError, TopicNotFoundError } from '../src/errors.js';
import { TierConfig, resolveTierConfig } from '../src/tier/tier_config.js';
import { ObjectStore } from '../src/tier/object_store.js';
import { getKernelsSync } from '../src/kernels.js';
import { parseManifest, MANIFEST_NAME, ArchiveLayout } from '../src/tier/manifest.js';
import { LOCAL_MANIFEST_FILE } from '../src/tier/archiver.js';
import { crc32cRef } from './fixtures/reference.js';
import { partitionHash, crcHex } from './helpers/archive_fixture.js';
import {
  tmp, cleanup, memoryTier, fsTier, forgetMemoryTier, smallTopic, recentRecords, makeRecords, openTiered, appendAll, readPlain, PlainRecord, plain, assertRestoreRefused, remoteManifest,
} from './helpers/tier_util.js';

after(cleanup);

/** A second client of the same bucket (what another process would see). */
function bucket(tier: TierConfig): { objects: ObjectStore; layout: ArchiveLayout } {
  const cfg = resolveTierConfig(tier);
  return { objects: new ObjectStore(cfg), layout: new ArchiveLayout(getKernelsSync(), cfg.prefix) };
}

function objectDir(store: Store, topic = 'ev', id = 0): string { return store.tier!.layout.partitionDir(topic, id); }

const backends: [string, () => TierConfig][] = [['memory', () => memoryTier()], ['fs', () => fsTier()]];

for (const [name, make] of backends) {
  describe(`tiered storage (${name})`, () => {
    test('archives closed segments: objects equal the local files, manifest facts match the records', async () => {
      const tier = make();
      const dir = tmp();
      const { store, p } = await openTiered(dir, tier);
      try {
        await appendAll(p, recentRecords(400, 1));
        await p.flush();
        const expected = await readPlain(p);
        const closed = p.segments.slice(0, -1);
        assert.ok(closed.length >= 5, `expected several closed segments, got ${closed.length}`);
        await store.tier!.archiveNow();
        const m = await remoteManifest(store);
        assert.equal(m.format, 1);
        assert.equal(m.topic, 'ev');
        assert.equal(m.partition, 0);
        // One manifest write covers every segment verified while the previous write was in flight.
        assert.ok(m.version >= 1 && m.version <= closed.length, `manifest version ${m.version} for ${closed.length} segments`);
        assert.equal(store.tier!.status().partitions[0]!.uploadedSegments, closed.length);
        assert.equal(m.logStartOffset, 0);
        assert.deepEqual(m.segments.map((s) => s.baseOffset), closed.map((s) => s.baseOffset));
        // Keys: <prefix>/<h>/<topic>-<partition>/, h from xxHash64 as the format says.
        assert.equal(objectDir(store), `arch/${partitionHash('ev', 0)}/ev-0/`);
        for (const [i, s] of m.segments.entries()) {
          const seg = closed[i]!;
          assert.equal(s.nextOffset, seg.nextOffset);
          assert.equal(s.lastOffset, seg.nextOffset - 1);
          const recs = expected.filter((r) => r.offset >= s.baseOffset && r.offset < s.nextOffset);
          assert.equal(s.records, recs.length);
          assert.equal(s.firstTimestamp, recs[0]!.timestamp);
          assert.equal(s.maxTimestamp, Math.max(...recs.map((r) => r.timestamp)));
          for (const kind of ['log', 'index', 'timeindex'] as const) {
            const o = s.objects[kind];
            const local = fs.readFileSync(path.join(p.dir, o.key));
            const remote = await store.tier!.objects.read(objectDir(store) + o.key);
            assert.ok(Buffer.compare(local, remote) === 0, `${o.key} differs from the local file`);
            assert.equal(o.size, local.length);
            assert.equal(o.crc32c, crcHex(crc32cRef(local)));
          }
        }
        // The active segment is never archived; the catalog names the topic.
        const st = store.tier!.status().partitions[0]!;
        assert.equal(st.pendingSegments, 0);
        assert.equal(st.unarchivedBytes, p.active.size);
        assert.equal(st.archivedUpTo, p.active.baseOffset);
        const catalog = JSON.parse((await store.tier!.objects.read('arch/topics.json')).toString()) as { topics: Record<string, { partitions: number; config: { segmentBytes: number } }> };
        assert.equal(catalog.topics.ev!.partitions, 1);
        assert.equal(catalog.topics.ev!.config.segmentBytes, 8 * 1024);
        // Local copies stay (no local retention configured).
        assert.equal(p.localLogStartOffset, 0);
      } finally {
        await store.close();
        forgetMemoryTier(tier);
      }
    });

    test('local copies are evicted only once archived; reads cross the remote/local boundary transparently', async () => {
      const tier = make();
      const { store, p } = await openTiered(tmp(), { ...tier, localRetentionBytes: 20 * 1024 });
      try {
        await appendAll(p, recentRecords(600, 2));
        await p.flush();
        const expected = await readPlain(p);
        const probes = [0, 1, 57, 150, 299, 300, 301, 450, 599];
        const tsProbe = [expected[0]!.timestamp, expected[100]!.timestamp + 1, expected[420]!.timestamp, expected[599]!.timestamp];
        const tsBefore: number[] = [];
        for (const ts of tsProbe) tsBefore.push(await p.offsetForTimestamp(ts));
        // Retention of the log itself cannot evict what is not archived.
        assert.equal(p.enforceRetention(), 0);
        await store.tier!.archiveNow();
        assert.ok(p.localLogStartOffset > 0, 'archived segments beyond local retention were evicted');
        assert.ok(p.sizeBytes <= 20 * 1024 + 8 * 1024, `local bytes ${p.sizeBytes}`);
        assert.equal(p.logStartOffset, 0, 'the archive still starts at 0');
        assert.deepEqual(await readPlain(p, { offset: 0 }), expected);
        for (const o of probes) assert.deepEqual(await readPlain(p, { offset: o }), expected.slice(o), `read from ${o}`);
        // Limits across the boundary.
        const boundary = p.localLogStartOffset;
        assert.deepEqual(await readPlain(p, { offset: boundary - 3 }, { maxRecords: 6 }), expected.slice(boundary - 3, boundary + 3));
        // Timestamps resolve the same as before eviction.
        for (const [i, ts] of tsProbe.entries()) assert.equal(await p.offsetForTimestamp(ts), tsBefore[i], `timestamp ${ts}`);
        const first = expected.find((r) => r.timestamp >= tsProbe[1]!)!;
        assert.deepEqual((await readPlain(p, { timestamp: tsProbe[1]! }, { maxRecords: 1 }))[0], first);
        const rs = store.tier!.status().partitions[0]!;
        assert.ok(rs.evictedSegments > 0);
        assert.equal(rs.pendingSegments, 0);
      } finally {
        await store.close();
        forgetMemoryTier(tier);
      }
    });

    test('retention of the log waits for the upload, then remote retention removes the manifest entries before the objects', async () => {
      const tier = make();
      const { store, p } = await openTiered(tmp(), tier, smallTopic({ retentionBytes: 0 }));
      try {
        await appendAll(p, recentRecords(300, 3));
        await p.flush();
        const before = await readPlain(p);
        assert.equal(store.enforceRetention(), 0, 'nothing is deleted before it is archived');
        assert.deepEqual(await readPlain(p, { offset: 0 }), before);
        await store.tier!.archiveNow();
        const m = await remoteManifest(store);
        assert.deepEqual(m.segments, [], 'retention.bytes 0 leaves nothing in the archive');
        assert.equal(m.logStartOffset, p.active.baseOffset);
        const left = await store.tier!.objects.list(objectDir(store));
        assert.deepEqual(left.map((k) => k.slice(objectDir(store).length)), [MANIFEST_NAME]);
        store.enforceRetention();
        assert.equal(p.logStartOffset, p.active.baseOffset);
        await assert.rejects(readPlain(p, { offset: 0 }), OffsetOutOfRangeError);
        assert.ok(store.tier!.status().partitions[0]!.remoteDeletedSegments > 0);
      } finally {
        await store.close();
        forgetMemoryTier(tier);
      }
    });

    test('remote retention by time keeps what is younger than retention.ms', async () => {
      const tier = make();
      const { store, p } = await openTiered(tmp(), { ...tier, localRetentionBytes: 0 }, smallTopic({ retentionMs: 3_600_000 }));
      try {
        const now = Date.now();
        const old = makeRecords(200, 4, { t0: now - 10 * 3_600_000 });
        const fresh = makeRecords(200, 5, { t0: now - 60_000 });
        await appendAll(p, old);
        p.roll();
        await appendAll(p, fresh);
        await p.flush();
        const expected = await readPlain(p);
        await store.tier!.archiveNow({ roll: true });
        const m = await remoteManifest(store);
        assert.equal(m.segments[0]!.baseOffset, 200, 'segments older than retention.ms left the archive');
        assert.equal(m.logStartOffset, 200);
        assert.equal(p.logStartOffset, 200);
        assert.deepEqual(await readPlain(p, { offset: 200 }), expected.slice(200));
      } finally {
        await store.close();
        forgetMemoryTier(tier);
      }
    });

    test('an upload cut off by a crash is detected and redone; leftovers of a cut-off retention are deleted', async () => {
      const tier = make();
      const dir = tmp();
      // Written without tiering first, so nothing is archived yet.
      let store = await Store.open(dir, { retentionCheckMs: -1 });
      try {
        await store.createTopic('ev', { config: smallTopic() });
        const p = store.partition('ev', 0);
        await appendAll(p, recentRecords(200, 6));
        p.roll();
        await p.flush();
      } finally {
        await store.close();
      }
      let p;
      // The "crash": half of segment 0's log and a damaged index reached the store, no manifest.
      const first = fs.readFileSync(path.join(dir, 'ev-0', '00000000000000000000.log'));
      const { objects, layout } = bucket(tier);
      const od = layout.partitionDir('ev', 0);
      await objects.write(od + '00000000000000000000.log', first.subarray(0, 100));
      await objects.write(od + '00000000000000000000.index', Buffer.from([1, 2, 3]));
      ({ store, p } = await openTiered(dir, tier));
      try {
        await store.tier!.archiveNow();
        const st = store.tier!.status().partitions[0]!;
        assert.equal(st.interruptedUploads, 1, 'the partial upload was noticed');
        const m = await remoteManifest(store);
        assert.equal(m.segments[0]!.objects.log.size, first.length);
        assert.ok(Buffer.compare(await objects.read(od + '00000000000000000000.log'), first) === 0, 'redone with the full bytes');
        assert.equal((await objects.read(od + '00000000000000000000.index')).length, m.segments[0]!.objects.index.size);
      } finally {
        await store.close();
      }
      // Remote retention whose object deletes were cut short leaves objects below the archive start.
      {
        const key = od + MANIFEST_NAME;
        const m = parseManifest(await objects.read(key), key);
        const rest = m.segments.slice(1);
        await objects.write(key, Buffer.from(JSON.stringify({ ...m, version: m.version + 1, segments: rest, logStartOffset: rest[0]!.baseOffset })));
        fs.rmSync(path.join(dir, 'ev-0', LOCAL_MANIFEST_FILE));
      }
      ({ store, p } = await openTiered(dir, tier));
      try {
        await store.tier!.archiveNow();
        const keys = (await store.tier!.objects.list(objectDir(store))).map((k) => k.slice(objectDir(store).length));
        assert.ok(!keys.includes('00000000000000000000.log') && !keys.includes('00000000000000000000.index'), `leftovers remain: ${keys.join(', ')}`);
        assert.ok(keys.includes(MANIFEST_NAME));
      } finally {
        await store.close();
        forgetMemoryTier(tier);
      }
    });

    test('corrupted archived bytes are reported as CorruptionError, never returned', async () => {
      const tier = make();
      const { store, p } = await openTiered(tmp(), { ...tier, localRetentionBytes: 0 });
      try {
        await appendAll(p, recentRecords(300, 7));
        await store.tier!.archiveNow({ roll: true });
        const expected = await readPlain(p, { offset: 0 });
        const m = await remoteManifest(store);
        const seg = m.segments[1]!;
        const key = objectDir(store) + seg.objects.log.key;
        const bytes = Buffer.from(await store.tier!.objects.read(key));
        bytes[Math.floor(bytes.length / 2)]! ^= 0x40;
        await store.tier!.objects.write(key, bytes);
        store.tier!.cache.clear();
        const got: PlainRecord[] = [];
        await assert.rejects(async () => { for await (const r of p.read({ offset: 0 })) got.push(plain(r)); }, CorruptionError);
        assert.deepEqual(got, expected.slice(0, got.length), 'records before the damage are intact');
        assert.ok(got.length >= seg.baseOffset && got.length < seg.nextOffset);
        // A damaged index object fails its CRC-32C check against the manifest.
        const ikey = objectDir(store) + m.segments[2]!.objects.index.key;
        const ib = Buffer.from(await store.tier!.objects.read(ikey));
        assert.ok(ib.length >= 8, 'the test needs a non-empty index');
        ib[ib.length - 1]! ^= 1;
        await store.tier!.objects.write(ikey, ib);
        store.tier!.cache.clear();
        await assert.rejects(readPlain(p, { offset: m.segments[2]!.nextOffset - 1 }), CorruptionError);
      } finally {
        await store.close();
        forgetMemoryTier(tier);
      }
    });

    test('reopened, the local manifest copy serves remote reads at once and archiving continues where it stopped', async () => {
      const tier = { ...make(), localRetentionBytes: 0 };
      const dir = tmp();
      let { store, p } = await openTiered(dir, tier);
      let expected: PlainRecord[];
      try {
        await appendAll(p, recentRecords(300, 8));
        await store.tier!.archiveNow({ roll: true });
        expected = await readPlain(p, { offset: 0 });
      } finally {
        await store.close();
      }
      ({ store, p } = await openTiered(dir, tier));
      try {
        assert.equal(p.logStartOffset, 0);
        assert.deepEqual(await readPlain(p, { offset: 0 }), expected);
        const had = (await remoteManifest(store)).segments.length;
        await appendAll(p, recentRecords(100, 9));
        await store.tier!.archiveNow({ roll: true });
        const st = store.tier!.status().partitions[0]!;
        assert.equal(st.uploadedSegments, (await remoteManifest(store)).segments.length - had, 'only new segments were uploaded');
        assert.equal((await readPlain(p, { offset: 0 })).length, 400);
      } finally {
        await store.close();
        forgetMemoryTier(tier);
      }
    });

    test('restore rebuilds every partition from the object store alone; reads and appends continue', async () => {
      const tier = make();
      const dir = tmp();
      const store = await Store.open(dir, { retentionCheckMs: -1, tier });
      const expected: PlainRecord[][] = [];
      try {
        await store.createTopic('ev', { partitions: 3, config: smallTopic() });
        await store.createTopic('other', { config: smallTopic({ segmentBytes: 4096 }) });
        for (let id = 0; id < 3; id++) await appendAll(store.partition('ev', id), recentRecords(150 + 50 * id, 10 + id));
        await appendAll(store.partition('other', 0), recentRecords(80, 20));
        await store.tier!.archiveNow({ roll: true });
        for (let id = 0; id < 3; id++) expected.push(await readPlain(store.partition('ev', id)));
        expected.push(await readPlain(store.partition('other', 0)));
      } finally {
        await store.close();
      }
      fs.rmSync(dir, { recursive: true, force: true });
      for (const download of ['all', 'none'] as const) {
        const target = tmp();
        const progress: number[] = [];
        const r = await Store.restore(target, tier, { download, onProgress: (e) => progress.push(e.doneBytes) });
        try {
          assert.deepEqual(r.listTopics(), ['ev', 'other']);
          assert.equal(r.describeTopic('other').config.segmentBytes, 4096, 'the topic config came back');
          for (let id = 0; id < 3; id++) assert.deepEqual(await readPlain(r.partition('ev', id), { offset: 0 }), expected[id], `ev-${id} (${download})`);
          assert.deepEqual(await readPlain(r.partition('other', 0), { offset: 0 }), expected[3]);
          const p0 = r.partition('ev', 0);
          if (download === 'none') {
            assert.equal(p0.segments.length, 1, 'metadata only: one empty local segment');
            assert.equal(progress.length, 0);
          } else {
            assert.ok(p0.segments.length > 1);
            assert.ok(progress.length > 0 && progress.every((x, i) => i === 0 || x >= progress[i - 1]!));
          }
          const end = p0.logEndOffset;
          assert.equal(end, expected[0]!.length);
          const res = await p0.append([{ value: 'after restore' }]);
          assert.equal(res.baseOffset, end);
          await r.tier!.archiveNow({ roll: true });
          const m = await remoteManifest(r);
          assert.equal(m.segments[m.segments.length - 1]!.nextOffset, end + 1, 'archiving continued after the restored data');
          // The next round restores this record too.
          const now = await readPlain(p0, { offset: 0 });
          assert.deepEqual(now.slice(0, end), expected[0]);
          assert.equal(Buffer.from(now[end]!.value!, 'hex').toString(), 'after restore');
          expected[0] = now;
        } finally {
          await r.close();
        }
        fs.rmSync(target, { recursive: true, force: true });
      }
      forgetMemoryTier(tier);
    });

    test('restore: unknown topics, existing topics, a missing catalog and a damaged archive', async () => {
      const tier = make();
      const dir = tmp();
      const { store, p } = await openTiered(dir, tier);
      let expected: PlainRecord[];
      try {
        await appendAll(p, recentRecords(200, 30));
        await store.tier!.archiveNow({ roll: true });
        expected = await readPlain(p);
      } finally {
        await store.close();
      }
      await assert.rejects(Store.restore(tmp(), tier, { topics: ['nope'] }), TopicNotFoundError);
      await assert.rejects(Store.restore(dir, tier), TopicExistsError);
      // Without the catalog the topics are found by listing the manifests.
      const t = await Store.open(tmp(), { retentionCheckMs: -1, tier });
      await t.tier!.objects.delete('arch/topics.json');
      await t.close();
      const r = await Store.restore(tmp(), tier);
      try {
        assert.deepEqual(await readPlain(r.partition('ev', 0), { offset: 0 }), expected);
      } finally {
        await r.close();
      }
      // A damaged object stops the restore; nothing half-built is left to adopt.
      const d = await Store.open(tmp(), { retentionCheckMs: -1, tier });
      const key = d.tier!.layout.partitionDir('ev', 0) + '00000000000000000000.log';
      const bytes = Buffer.from(await d.tier!.objects.read(key));
      bytes[70]! ^= 0xff;
      await d.tier!.objects.write(key, bytes);
      await d.close();
      await assertRestoreRefused(tier, CorruptionError);
      forgetMemoryTier(tier);
    });

    test('compacted topics are not tiered; presign needs a service that can sign', async () => {
      const tier = make();
      const { store } = await openTiered(tmp(), tier);
      try {
        await store.createTopic('kv', { config: smallTopic({ cleanupPolicy: 'compact' }) });
        await appendAll(store.partition('kv', 0), recentRecords(100, 40));
        await store.tier!.archiveNow({ topic: 'kv', roll: true });
        const st = store.tier!.status('kv').partitions[0]!;
        assert.equal(st.state, 'disabled');
        assert.equal(st.archivedSegments, 0);
        assert.deepEqual(await store.tier!.objects.list(objectDir(store, 'kv')), []);
        await assert.rejects(store.tier!.presign('ev', 0), (e: unknown) => e instanceof ObjectStoreError && e.kind === 'Unsupported');
      } finally {
        await store.close();
        forgetMemoryTier(tier);
      }
    });
  });
}

test('property: remote reads equal local reads for any records, segment, index and chunk sizes', async () => {
  await fc.assert(fc.asyncProperty(
    fc.integer({ min: 1, max: 400 }),
    fc.integer({ min: 1, max: 2 ** 31 - 1 }),
    fc.integer({ min: 1024, max: 16 * 1024 }),
    fc.integer({ min: 0, max: 4096 }),
    fc.integer({ min: 4096, max: 40_000 }),
    fc.integer({ min: 1, max: 30 }),
    fc.array(fc.nat(), { minLength: 1, maxLength: 4 }),
    async (n, seed, segmentBytes, indexIntervalBytes, chunkBytes, per, probes) => {
      const tier = memoryTier({ localRetentionBytes: 0, chunkBytes, cacheBytes: 2 * chunkBytes, prefetchChunks: seed % 3 });
      const { store, p } = await openTiered(tmp(), tier, smallTopic({ segmentBytes, indexIntervalBytes }));
      try {
        await appendAll(p, recentRecords(n, seed, 900), per);
        await p.flush();
        const expected = await readPlain(p);
        await store.tier!.archiveNow({ roll: true });
        assert.equal(p.localLogStartOffset, n, 'everything was archived and evicted');
        assert.deepEqual(await readPlain(p, { offset: 0 }), expected);
        for (const x of probes) {
          const o = x % n;
          assert.deepEqual(await readPlain(p, { offset: o }, { maxRecords: 1 + (x % 17) }), expected.slice(o, o + 1 + (x % 17)));
        }
      } finally {
        await store.close();
        forgetMemoryTier(tier);
      }
    }), { numRuns: 25 });
});

test('a read in progress goes on from the archive when its local segments are evicted under it', async () => {
  // Segments larger than a local read's first chunk (64 KiB), so the read goes back to the file after eviction.
  for (const at of [1, 10, 137, 1500]) {
    const tier = memoryTier({ localRetentionBytes: 0, autoArchive: false });
    const { store, p } = await openTiered(tmp(), tier, smallTopic({ segmentBytes: 200 * 1024 }));
    try {
      await appendAll(p, recentRecords(3000, 50 + at), 20);
      await p.flush();
      const expected = await readPlain(p);
      const got: PlainRecord[] = [];
      let evicted = false;
      for await (const r of p.read({ offset: 0 })) {
        got.push(plain(r));
        if (got.length === at) {
          evicted = true;
          await store.tier!.archiveNow({ roll: at === 1 });
          assert.ok(p.localLogStartOffset > r.offset + 1, 'the segment being read was evicted');
        }
      }
      assert.ok(evicted);
      assert.deepEqual(got, expected, `eviction after ${at} records`);
    } finally {
      await store.close();
      forgetMemoryTier(tier);
    }
  }
});

test('local retention by time, and uploads read back and compared when verifyReadBack is set', async () => {
  const tier = memoryTier({ localRetentionMs: 30 * 60_000, verifyReadBack: true, verifyBatchesOnUpload: true });
  const { store, p } = await openTiered(tmp(), tier);
  try {
    const now = Date.now();
    await appendAll(p, makeRecords(300, 60, { t0: now - 3 * 3_600_000 }));
    p.roll();
    await appendAll(p, makeRecords(300, 61, { t0: now - 60_000 }));
    await p.flush();
    const expected = await readPlain(p);
    const readBefore = store.tier!.objects.counters.bytesRead;
    await store.tier!.archiveNow();
    const st = store.tier!.status().partitions[0]!;
    assert.equal(p.localLogStartOffset, 300, 'segments older than local retention were evicted, newer ones kept');
    assert.equal(st.pendingSegments, 0);
    assert.ok(store.tier!.objects.counters.bytesRead - readBefore >= st.uploadedBytes, 'every uploaded byte was read back');
    assert.deepEqual(await readPlain(p, { offset: 0 }), expected);
  } finally {
    await store.close();
    forgetMemoryTier(tier);
  }
});
