// Tiered storage through OpenDAL's s3 service against a real S3 HTTP server
// (s3rver on 127.0.0.1, OS-assigned port): archive, evict, remote reads and
// restore over HTTP; the server stopped in the middle of uploads and
// restarted (nothing lost, nothing listed that is not complete, the upload
// finished afterwards); backpressure while it is down; typed errors for
// remote reads during the outage; background uploads with backoff;
// presigned URLs fetched with plain HTTP (Range requests included);
// multipart uploads of large segments.

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Store } from '../src/store.js';
import { BackpressureError, ObjectStoreUnavailableError } from '../src/errors.js';
import { Manifest, OBJECT_KINDS } from '../src/tier/manifest.js';
import { crc32cRef } from './fixtures/reference.js';
import { crcHex } from './helpers/archive_fixture.js';
import { startS3rver, S3Server } from './helpers/s3rver.js';
import { tmp, cleanup, FAST, smallTopic, recentRecords, openTiered, appendAll, readPlain, waitFor, remoteManifest } from './helpers/tier_util.js';
import type { TierConfig } from '../src/tier/tier_config.js';

let s3: S3Server;
let seq = 0;

before(async () => { s3 = await startS3rver(); });
after(async () => { await s3.close(); cleanup(); });

/** A tier config on the shared server, under a fresh prefix. */
function tierCfg(extra: Partial<TierConfig> = {}): TierConfig {
  return s3.tier(`t${++seq}`, { ...FAST, ...extra });
}

/** Every object the manifest lists is in the store, complete, with its CRC-32C. */
async function assertManifestComplete(store: Store, m: Manifest): Promise<void> {
  const dir = store.tier!.layout.partitionDir('ev', 0);
  for (const s of m.segments) {
    for (const kind of OBJECT_KINDS) {
      const o = s.objects[kind];
      const bytes = await store.tier!.objects.read(dir + o.key);
      assert.equal(bytes.length, o.size, `${o.key} size`);
      assert.equal(crcHex(crc32cRef(bytes)), o.crc32c, `${o.key} CRC-32C`);
    }
  }
}

describe('tiered storage over s3 (s3rver)', () => {
  test('archive, evict, read back remotely and restore over HTTP', async () => {
    const tier = tierCfg({ localRetentionBytes: 0, chunkBytes: 16 * 1024 });
    const dir = tmp();
    const { store, p } = await openTiered(dir, tier);
    let expected;
    try {
      await appendAll(p, recentRecords(500, 100, 600));
      await p.flush();
      expected = await readPlain(p);
      await store.tier!.archiveNow({ roll: true });
      assert.equal(p.localLogStartOffset, 500);
      const m = await remoteManifest(store);
      await assertManifestComplete(store, m);
      assert.deepEqual(await readPlain(p, { offset: 0 }), expected);
      assert.deepEqual(await readPlain(p, { offset: 321 }, { maxRecords: 40 }), expected.slice(321, 361));
      const ts = expected[250]!.timestamp;
      assert.equal(await p.offsetForTimestamp(ts), expected.findIndex((r) => r.timestamp >= ts));
    } finally {
      await store.close();
    }
    const restored = await Store.restore(tmp(), tier);
    try {
      assert.deepEqual(await readPlain(restored.partition('ev', 0), { offset: 0 }), expected);
    } finally {
      await restored.close();
    }
  });

  test('the server stopped in the middle of uploads and restarted: nothing lost, the manifest never lists an incomplete object', async () => {
    const tier = tierCfg({ localRetentionBytes: 0, multipartThresholdBytes: 5 << 20, autoArchive: false });
    const { store, p } = await openTiered(tmp(), tier, smallTopic({ segmentBytes: 6 << 20, maxMessageBytes: 256 * 1024 }));
    try {
      // Segments of ~6 MiB, streamed as multipart uploads two at a time.
      const recs = recentRecords(12_000, 101, 4000);
      await appendAll(p, recs, 100);
      await p.flush();
      const expected = await readPlain(p);
      const closed = p.segments.length - 1;
      assert.ok(closed >= 3, `need several segments, got ${closed}`);
      // The server goes down right after the first manifest write, while
      // later segments are still being sent. (Not in the middle of a
      // manifest PUT: s3rver writes an object in place as its body arrives,
      // so that would leave a truncated manifest that real S3, whose PUTs
      // are atomic, never shows.)
      const objects = store.tier!.objects;
      const write = objects.write.bind(objects);
      let stopped = false;
      let progressBytes = 0;
      objects.write = async (key, data) => {
        await write(key, data);
        if (key.endsWith('/manifest.json') && !stopped) { stopped = true; void s3.stop(); }
      };
      const run = store.tier!.archiveNow({ roll: true, onProgress: (e) => { progressBytes += e.bytes; } });
      await assert.rejects(run, ObjectStoreUnavailableError);
      const mid = store.tier!.status().partitions[0]!;
      assert.ok(mid.uploadedSegments < closed, 'the outage interrupted the uploads');
      assert.ok(progressBytes > p.segments[0]!.size, `progress reported ${progressBytes} bytes`);
      assert.ok(mid.pendingSegments > 0);
      // Nothing that is not archived left the disk; every record still reads.
      assert.deepEqual(await readPlain(p, { offset: 0 }), expected);
      // Appends go on during the outage (no backpressure configured).
      await p.append([{ value: 'during outage' }]);
      await s3.start();
      const before = await remoteManifest(store);
      assert.ok(before.segments.length >= 1 && before.segments.length < closed, `${before.segments.length} of ${closed} segments listed before the outage`);
      await assertManifestComplete(store, before);
      await store.tier!.archiveNow({ roll: true });
      const m = await remoteManifest(store);
      await assertManifestComplete(store, m);
      assert.equal(m.segments[m.segments.length - 1]!.nextOffset, expected.length + 1);
      assert.equal(p.localLogStartOffset, expected.length + 1, 'all archived and evicted');
      store.tier!.cache.clear();
      const all = await readPlain(p, { offset: 0 });
      assert.deepEqual(all.slice(0, expected.length), expected);
      assert.equal(Buffer.from(all[expected.length]!.value!, 'hex').toString(), 'during outage');
    } finally {
      if (!s3.running) await s3.start();
      await store.close();
    }
  });

  test('backpressure: appends are refused once unarchived bytes pass the limit, and resume after the outage', async () => {
    const tier = tierCfg({ backpressureBytes: 40 * 1024 });
    const { store, p } = await openTiered(tmp(), tier);
    try {
      await appendAll(p, recentRecords(50, 102));
      await store.tier!.archiveNow({ roll: true });
      await s3.stop();
      let refused: unknown = null;
      let appended = 0;
      const value = 'x'.repeat(1000);
      for (let i = 0; i < 1000 && !refused; i++) {
        try { p.appendSync([{ value }]); appended++; } catch (e) { refused = e; }
      }
      assert.ok(refused instanceof BackpressureError, `expected BackpressureError, got ${String(refused)}`);
      assert.equal(refused.code, 'ERR_BACKPRESSURE');
      assert.equal(refused.limit, 40 * 1024);
      assert.ok(refused.bytes > 40 * 1024);
      assert.ok(appended >= 30 && appended <= 50, `appended ${appended} records of ~1 KiB before refusing`);
      assert.equal(p.logEndOffset, 50 + appended, 'the refused append wrote nothing');
      await assert.rejects(store.tier!.archiveNow(), ObjectStoreUnavailableError);
      assert.throws(() => p.appendSync([{ value }]), BackpressureError);
      await s3.start();
      await store.tier!.archiveNow();
      p.appendSync([{ value }]);
      assert.equal(p.logEndOffset, 50 + appended + 1);
    } finally {
      if (!s3.running) await s3.start();
      await store.close();
    }
  });

  test('remote reads while the server is down fail with ObjectStoreUnavailableError, then work again', async () => {
    const tier = tierCfg({ localRetentionBytes: 0 });
    const { store, p } = await openTiered(tmp(), tier);
    try {
      await appendAll(p, recentRecords(200, 103));
      await store.tier!.archiveNow({ roll: true });
      const expected = await readPlain(p, { offset: 0 });
      store.tier!.cache.clear();
      await s3.stop();
      await assert.rejects(readPlain(p, { offset: 0 }), (e: unknown) => e instanceof ObjectStoreUnavailableError && e.code === 'ERR_OBJECT_STORE_UNAVAILABLE' && e.attempts >= 1);
      await s3.start();
      assert.deepEqual(await readPlain(p, { offset: 0 }), expected);
    } finally {
      if (!s3.running) await s3.start();
      await store.close();
    }
  });

  test('background uploads on roll, with backoff through an outage', async () => {
    const tier = tierCfg({ maxBackoffMs: 100 });
    const { store, p } = await openTiered(tmp(), tier);
    try {
      await appendAll(p, recentRecords(300, 104));
      await p.flush();
      await waitFor(() => store.tier!.status().partitions[0]!.pendingSegments === 0 && store.tier!.status().partitions[0]!.state === 'idle', 'background uploads');
      await s3.stop();
      await appendAll(p, recentRecords(200, 105));
      await p.flush();
      await waitFor(() => store.tier!.status().partitions[0]!.consecutiveFailures >= 2, 'failed attempts during the outage');
      const st = store.tier!.status().partitions[0]!;
      assert.equal(st.lastError?.code, 'ERR_OBJECT_STORE_UNAVAILABLE');
      await s3.start();
      await waitFor(() => { const x = store.tier!.status().partitions[0]!; return x.pendingSegments === 0 && x.consecutiveFailures === 0; }, 'uploads after the outage', 15_000);
      const m = await remoteManifest(store);
      assert.equal(m.segments[m.segments.length - 1]!.nextOffset, p.active.baseOffset);
      await assertManifestComplete(store, m);
    } finally {
      if (!s3.running) await s3.start();
      await store.close();
    }
  });

  test('presigned URLs serve the manifest and objects over plain HTTP, Range requests included', async () => {
    const tier = tierCfg();
    const { store, p } = await openTiered(tmp(), tier);
    try {
      await appendAll(p, recentRecords(200, 106));
      await store.tier!.archiveNow({ roll: true });
      const ps = await store.tier!.presign('ev', 0, 600);
      const mres = await fetch(ps.manifest.url, { headers: ps.manifest.headers });
      assert.equal(mres.status, 200);
      assert.deepEqual(JSON.parse(await mres.text()), ps.manifestContent);
      const seg = ps.manifestContent.segments[0]!;
      const req = ps.objects[seg.objects.log.key]!;
      const full = Buffer.from(await (await fetch(req.url, { headers: req.headers })).arrayBuffer());
      assert.equal(full.length, seg.objects.log.size);
      assert.equal(crcHex(crc32cRef(full)), seg.objects.log.crc32c);
      const part = await fetch(req.url, { headers: { ...req.headers, Range: 'bytes=10-99' } });
      assert.equal(part.status, 206);
      assert.ok(Buffer.compare(Buffer.from(await part.arrayBuffer()), full.subarray(10, 100)) === 0);
      assert.equal(Object.keys(ps.objects).length, ps.manifestContent.segments.length * 3);
    } finally {
      await store.close();
    }
  });

  test('segments above the multipart threshold go up in parts and read back identically', async () => {
    const tier = tierCfg({ localRetentionBytes: 0, multipartThresholdBytes: 5 << 20 });
    const { store, p } = await openTiered(tmp(), tier, smallTopic({ segmentBytes: 12 << 20, maxMessageBytes: 1 << 20 }));
    try {
      await appendAll(p, recentRecords(2500, 107, 8000), 100);
      await p.flush();
      assert.ok(p.active.size > 5 << 20, 'the segment must exceed the threshold');
      const expected = await readPlain(p);
      await store.tier!.archiveNow({ roll: true });
      const m = await remoteManifest(store);
      assert.ok(m.segments[0]!.objects.log.size > 5 << 20);
      await assertManifestComplete(store, m);
      store.tier!.cache.clear();
      assert.deepEqual(await readPlain(p, { offset: 0 }), expected);
    } finally {
      await store.close();
    }
  });
});
