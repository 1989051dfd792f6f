// Remote reads of archived segments (src/tier/remote_reader.ts): the streamed
// source (one GET per segment, pieces handed over as they arrive) and the
// ranged source (chunks through the cache, bounded prefetch), checked against
// the records the local log held before eviction:
//   - a property test over chunk sizes, cache sizes, prefetch depths, stream
//     on/off and read positions and limits, with concurrent reads sharing one
//     cache: every read returns exactly the expected records, every chunk
//     the cache holds equals the object's bytes at that chunk's range, and
//     the cache never holds more than its bound;
//   - each log byte fetched once by a sequential read, whatever the cache
//     size (prefetch never runs past what the cache can keep);
//   - reads crossing segment boundaries open the next segment ahead;
//   - a stream that fails midway is continued by ranged reads (same records);
//     when the object store fails too, the typed error, after a prefix of
//     the records and nothing else;
//   - early stops (maxRecords, break) leave the reader usable and bounded.
// The s3 case (a real server stopped under a streamed read) is in
// tier_s3.test.ts style at the end, against s3rver.

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Store } from '../src/store.js';
import { Partition } from '../src/partition.js';
import { Crc32c } from '../src/crc32c.js';
import { ClosedError, ObjectStoreUnavailableError } from '../src/errors.js';
import { RecordBatchView } from '../src/record_batch.js';
import { ChunkCache } from '../src/tier/chunk_cache.js';
import { ObjectStore } from '../src/tier/object_store.js';
import { Manifest } from '../src/tier/manifest.js';
import { archivedBatchLimit } from '../src/tier/segment_check.js';
import { RemotePartitionReader } from '../src/tier/remote_reader.js';
import { startS3rver, S3Server } from './helpers/s3rver.js';
import { tmp, cleanup, FAST, memoryTier, fsTier, forgetMemoryTier, smallTopic, recentRecords, openTiered, appendAll, readPlain, plain, PlainRecord } from './helpers/tier_util.js';
import type { TierConfig } from '../src/tier/tier_config.js';

interface Archived {
  store: Store;
  p: Partition;
  tier: TierConfig;
  expected: PlainRecord[];
  manifest: Manifest;
  logBytes: number;
}

/** n records appended and archived (everything evicted locally), with what the local log returned before. */
async function archived(tier: TierConfig, n: number, seed: number, segmentBytes: number, maxValue = 900): Promise<Archived> {
  const { store, p } = await openTiered(tmp(), { ...tier, localRetentionBytes: 0, autoArchive: false }, smallTopic({ segmentBytes, indexIntervalBytes: 1024 }));
  await appendAll(p, recentRecords(n, seed, maxValue), 9);
  await p.flush();
  const expected = await readPlain(p);
  await store.tier!.archiveNow({ roll: true });
  assert.equal(p.localLogStartOffset, n, 'everything was archived and evicted');
  const manifest = store.tier!.archiver('ev', 0).currentManifest();
  assert.ok(manifest.segments.length >= 3, 'the archive needs several segments');
  const logBytes = manifest.segments.reduce((a, s) => a + s.objects.log.size, 0);
  return { store, p, tier, expected, manifest, logBytes };
}

interface ReaderParams { chunkBytes: number; cacheBytes: number; prefetchChunks: number; stream: boolean; store?: ObjectStore }

/** A reader of the archive with its own cache and parameters (the partition's own reader is left alone). */
function readerOf(a: Archived, o: ReaderParams): { reader: RemotePartitionReader; cache: ChunkCache } {
  const cache = new ChunkCache(o.cacheBytes);
  const reader = new RemotePartitionReader({
    k: a.store.k, crc: new Crc32c(a.store.k), store: o.store ?? a.store.tier!.objects, cache,
    dir: a.store.tier!.layout.partitionDir('ev', 0), manifest: () => a.manifest,
    chunkBytes: o.chunkBytes, prefetchChunks: o.prefetchChunks, maxBatchBytes: archivedBatchLimit(a.p.config.maxMessageBytes), stream: o.stream,
  });
  return { reader, cache };
}

/** Records of reader.readViews from offset (to the end of the archive), at most maxRecords; checks the cache bound after every view. */
async function readAll(reader: RemotePartitionReader, cache: ChunkCache, end: number, offset: number, maxRecords = Infinity, slow = false): Promise<PlainRecord[]> {
  const out: PlainRecord[] = [];
  for await (const view of reader.readViews(offset, end, { maxRecords })) {
    if (slow) await new Promise((resolve) => setImmediate(resolve));
    for (let i = 0; i < view.count && out.length < maxRecords; i++) out.push(plain(view.recordAt(i)));
    assert.ok(cache.stats().bytes <= cache.maxBytes, `cache holds ${cache.stats().bytes} bytes, bound ${cache.maxBytes}`);
    if (out.length >= maxRecords) break;
  }
  return out;
}

/** Every chunk in the cache equals the object's bytes at its range (keys "<object key>#<chunkBytes>:<index>"). */
async function assertCachedChunksExact(a: Archived, cache: ChunkCache, chunkBytes: number): Promise<number> {
  const dir = a.store.tier!.layout.partitionDir('ev', 0);
  let checked = 0;
  for (const seg of a.manifest.segments) {
    const key = dir + seg.objects.log.key;
    const whole = await a.store.tier!.objects.read(key);
    for (let ci = 0; ci * chunkBytes < whole.length; ci++) {
      const ck = `${key}#${chunkBytes}:${ci}`;
      if (!cache.has(ck)) continue;
      const got = await cache.get(ck, () => Promise.reject(new Error('not cached')));
      assert.ok(Buffer.compare(got, whole.subarray(ci * chunkBytes, (ci + 1) * chunkBytes)) === 0, `cached chunk ${ci} of ${seg.objects.log.key} differs from the object`);
      checked++;
    }
  }
  return checked;
}

for (const [service, make] of [['memory', memoryTier], ['fs', fsTier]] as const) describe(`remote reads (${service} service)`, () => {
  let a: Archived;

  before(async () => {
    // About 560 KiB of log in segments of 96 KiB: many chunks per segment at the chunk sizes below.
    a = await archived(make(), 1200, 77, 96 * 1024);
  });

  after(async () => {
    await a.store.close();
    forgetMemoryTier(a.tier);
    cleanup();
  });

  test('property: streamed and ranged reads, concurrent on one cache, return exactly the archived records; cached chunks are exact and bounded', async () => {
    const n = a.expected.length;
    await fc.assert(fc.asyncProperty(
      fc.integer({ min: 4096, max: 70_000 }),
      fc.integer({ min: 0, max: 5 }),
      fc.integer({ min: 0, max: 4 }),
      fc.boolean(),
      fc.array(fc.record({ offset: fc.nat({ max: n - 1 }), max: fc.oneof(fc.constant(Infinity), fc.integer({ min: 1, max: 400 })) }), { minLength: 1, maxLength: 3 }),
      async (chunkBytes, cacheChunks, prefetchChunks, stream, reads) => {
        const { reader, cache } = readerOf(a, { chunkBytes, cacheBytes: cacheChunks * chunkBytes + (cacheChunks > 0 ? 100 : 0), prefetchChunks, stream });
        // A read from 0 first (streams when allowed), then the others at once.
        assert.deepEqual(await readAll(reader, cache, n, 0), a.expected);
        const got = await Promise.all(reads.map((r) => readAll(reader, cache, n, r.offset, r.max)));
        reads.forEach((r, i) => assert.deepEqual(got[i], a.expected.slice(r.offset, r.max === Infinity ? n : r.offset + r.max), `read from ${r.offset}, at most ${r.max}`));
        await assertCachedChunksExact(a, cache, chunkBytes);
        assert.ok(cache.stats().bytes <= cache.maxBytes);
        if (stream) assert.ok(reader.stats.streams > 0, 'a read from offset 0 over segments larger than a chunk streams');
        else assert.equal(reader.stats.streams, 0);
      }), { numRuns: 30 });
  });

  test('property: every piece a source delivers holds the object bytes of the range it claims, in order, to the end (streamed and ranged, two chunk sizes sharing a cache)', async () => {
    const objects = await Promise.all(a.manifest.segments.map((s) => a.store.tier!.objects.read(a.store.tier!.layout.partitionDir('ev', 0) + s.objects.log.key)));
    await fc.assert(fc.asyncProperty(
      fc.integer({ min: 4096, max: 70_000 }),
      fc.integer({ min: 0, max: 6 }),
      fc.integer({ min: 0, max: 4 }),
      fc.boolean(),
      fc.array(fc.record({ seg: fc.nat(), at: fc.nat({ max: 150_000 }), want: fc.oneof(fc.constant(Infinity), fc.nat({ max: 200_000 })) }), { minLength: 1, maxLength: 4 }),
      async (chunkBytes, cacheChunks, prefetchChunks, stream, reads) => {
        const first = readerOf(a, { chunkBytes, cacheBytes: cacheChunks * chunkBytes, prefetchChunks, stream });
        // A second reader with another chunk size on the same cache: its chunks must never be taken for the first one's.
        const second = new RemotePartitionReader({
          k: a.store.k, crc: new Crc32c(a.store.k), store: a.store.tier!.objects, cache: first.cache, dir: a.store.tier!.layout.partitionDir('ev', 0),
          manifest: () => a.manifest, chunkBytes: chunkBytes + 1, prefetchChunks, maxBatchBytes: 1 << 30, stream,
        });
        await Promise.all(reads.flatMap((r) => [first.reader, second].map(async (reader) => {
          const si = r.seg % objects.length;
          const obj = objects[si]!;
          const start = r.at % obj.length;
          let pos = start;
          for await (const piece of reader.logBytes(si, start, r.want)) {
            assert.equal(piece.position, pos, 'pieces are contiguous');
            assert.ok(piece.bytes.length > 0);
            assert.ok(Buffer.compare(Buffer.from(piece.bytes.buffer, piece.bytes.byteOffset, piece.bytes.length), obj.subarray(pos, pos + piece.bytes.length)) === 0,
              `bytes at ${pos} (+${piece.bytes.length}) of segment ${si} differ from the object`);
            pos += piece.bytes.length;
          }
          assert.equal(pos, obj.length, 'the source runs to the end of the object');
        })));
        assert.ok(first.cache.stats().bytes <= first.cache.maxBytes);
      }), { numRuns: 40 });
  });

  test('a sequential read fetches every log byte once, whatever the cache and prefetch sizes; segments are opened ahead; streams bypass the cache', async () => {
    const n = a.expected.length;
    const chunkBytes = 16 * 1024;
    for (const stream of [true, false]) {
      for (const cacheBytes of [0, chunkBytes, 3 * chunkBytes, 64 * chunkBytes]) {
        const objects = a.store.tier!.objects;
        const { reader, cache } = readerOf(a, { chunkBytes, cacheBytes, prefetchChunks: 4, stream });
        const before = objects.counters.bytesRead;
        // A consumer that yields to the event loop after every batch: fetches issued ahead complete before they are needed.
        assert.deepEqual(await readAll(reader, cache, n, 0, Infinity, true), a.expected);
        assert.equal(objects.counters.bytesRead - before, a.logBytes, `stream ${stream}, cache ${cacheBytes}: log bytes fetched`);
        assert.ok(reader.stats.segmentsPreopened >= a.manifest.segments.length - 1, `stream ${stream}: ${reader.stats.segmentsPreopened} segments opened ahead`);
        if (stream) assert.equal(reader.stats.streams, a.manifest.segments.length);
        const chunks = await assertCachedChunksExact(a, cache, chunkBytes);
        if (stream) assert.equal(cache.stats().bytes, 0, 'streamed bytes bypass the cache');
        else if (cacheBytes >= 64 * chunkBytes) assert.ok(chunks > 0, 'ranged chunks are cached');
      }
    }
  });

  test('point reads stay ranged and fetch little; a read stopped midway leaves the reader usable', async () => {
    const n = a.expected.length;
    const chunkBytes = 16 * 1024;
    const objects = a.store.tier!.objects;
    const { reader, cache } = readerOf(a, { chunkBytes, cacheBytes: 8 * chunkBytes, prefetchChunks: 4, stream: true });
    const before = objects.counters.bytesRead;
    assert.deepEqual(await readAll(reader, cache, n, 0, 3), a.expected.slice(0, 3));
    assert.equal(reader.stats.streams, 0, 'a read of 3 records does not stream the segment');
    assert.ok(objects.counters.bytesRead - before <= chunkBytes, `a 3-record read fetched ${objects.counters.bytesRead - before} bytes`);
    // A streamed read abandoned after its first view.
    cache.clear();
    for await (const view of reader.readViews(0, n, {})) { assert.ok(view.count > 0); break; }
    assert.equal(reader.stats.streams, 1);
    assert.deepEqual(await readAll(reader, cache, n, 5, 700), a.expected.slice(5, 705));
    assert.deepEqual(await readAll(reader, cache, n, 0), a.expected);
    assert.ok(cache.stats().bytes <= cache.maxBytes);
  });

  test('through the partition: read, readBatches and readViews across the archive agree with the local log', async () => {
    const n = a.expected.length;
    const before = a.store.tier!.status().reads.records;
    assert.deepEqual(await readPlain(a.p, { offset: 0 }), a.expected);
    assert.equal(a.store.tier!.status().reads.records - before, n, 'status counts the records read remotely');
    const flat: PlainRecord[] = [];
    for await (const batch of a.p.readBatches({ offset: 17 }, { maxRecords: 900 })) for (const r of batch) flat.push(plain(r));
    assert.deepEqual(flat, a.expected.slice(17, 917));
    let count = 0;
    for await (const view of a.p.readViews({ offset: 0 }, { maxBytes: 50_000 })) count += view.count;
    assert.ok(count > 0 && count < n);
    // Reused buffers: the same records, copied out within each step; a superseded view is closed.
    const reused: PlainRecord[] = [];
    let previous: RecordBatchView | null = null;
    for await (const view of a.p.readViews({ offset: 5 }, { reuseBuffers: true })) {
      if (previous) assert.throws(() => previous!.recordAt(0), ClosedError);
      for (let i = 0; i < view.count; i++) reused.push(plain(view.recordAt(i)));
      previous = view;
    }
    assert.deepEqual(reused, a.expected.slice(5));
  });

  /** An ObjectStore whose streamed reads fail after failAt bytes and whose ranged reads fail when failRanged() says so. */
  function faulty(failAt: number, failRanged: () => boolean): ObjectStore {
    const real = a.store.tier!.objects;
    const op = real.operator;
    const fake = {
      reader: async (key: string) => {
        const r = await op.reader(key);
        let got = 0;
        return {
          read: async (buf: Buffer) => {
            if (got >= failAt) throw new Error('Unexpected (temporary) at read => connection reset by peer');
            const n = Number(await r.read(buf.subarray(0, Math.min(buf.length, failAt - got))));
            got += n;
            return BigInt(n);
          },
        };
      },
      read: (key: string, opts?: unknown) => failRanged()
        ? Promise.reject(new Error('Unexpected (temporary) at read => send http request: connection refused'))
        : op.read(key, opts as Parameters<typeof op.read>[1]),
    };
    const store = Object.create(real) as ObjectStore;
    Object.defineProperty(store, 'operator', { value: fake });
    return store;
  }

  test('a stream that fails midway is continued with ranged reads from the same position', async () => {
    const n = a.expected.length;
    for (const failAt of [1, 5000, 40_000, 95_000]) {
      const { reader, cache } = readerOf(a, { chunkBytes: 16 * 1024, cacheBytes: 1 << 20, prefetchChunks: 2, stream: true, store: faulty(failAt, () => false) });
      assert.deepEqual(await readAll(reader, cache, n, 0), a.expected, `stream failing after ${failAt} bytes`);
      const cut = a.manifest.segments.filter((s) => s.objects.log.size > failAt).length;
      assert.equal(reader.stats.streams, a.manifest.segments.length);
      assert.equal(reader.stats.streamFallbacks, cut, 'every stream of a segment longer than failAt failed over');
      await assertCachedChunksExact(a, cache, 16 * 1024);
    }
  });

  test('the object store failing under a streamed read: ObjectStoreUnavailableError after a prefix of the records, nothing partial', async () => {
    const n = a.expected.length;
    for (const failAt of [3000, 60_000, 90_000]) {
      let down = false;
      const { reader, cache } = readerOf(a, { chunkBytes: 16 * 1024, cacheBytes: 1 << 20, prefetchChunks: 2, stream: true, store: faulty(failAt, () => down) });
      const got: PlainRecord[] = [];
      await assert.rejects(async () => {
        for await (const view of reader.readViews(0, n, {})) {
          for (let i = 0; i < view.count; i++) got.push(plain(view.recordAt(i)));
          down = true; // from the first batch on, ranged reads fail too
        }
      }, (e: unknown) => e instanceof ObjectStoreUnavailableError && e.code === 'ERR_OBJECT_STORE_UNAVAILABLE' && e.op === 'read');
      assert.ok(got.length > 0 && got.length < n, `${got.length} records before the failure`);
      assert.deepEqual(got, a.expected.slice(0, got.length), 'the records returned are exactly the first ones');
      assert.ok(reader.stats.streamFallbacks >= 1);
      assert.ok(cache.stats().bytes <= cache.maxBytes);
    }
  });
});

describe('remote reads over s3 (s3rver)', () => {
  let s3: S3Server;
  before(async () => { s3 = await startS3rver(); });
  after(async () => { if (!s3.running) await s3.start(); await s3.close(); cleanup(); });

  test('the server stopped under a streamed read: typed error after a prefix; restarted, the read works again', async () => {
    // At least three segments of about 1 MiB, in 256 KiB chunks: the read streams the first one, and the
    // next ones are opened only once the read gets near them, which is after the server stopped.
    const a = await archived(s3.tier('stream', { ...FAST, chunkBytes: 256 * 1024 }), 5000, 5, 1 << 20, 2000);
    try {
      assert.ok(a.manifest.segments[0]!.objects.log.size > 256 * 1024, 'the first segment is longer than a chunk (it streams)');
      a.store.tier!.cache.clear();
      const reader = a.store.tier!.archiver('ev', 0).reader;
      const got: PlainRecord[] = [];
      await assert.rejects(async () => {
        for await (const r of a.p.read({ offset: 0 })) {
          got.push(plain(r));
          if (got.length === 1) await s3.stop();
        }
      }, (e: unknown) => e instanceof ObjectStoreUnavailableError && e.attempts >= 1);
      assert.ok(got.length >= 1 && got.length < a.expected.length, `${got.length} records before the outage`);
      assert.deepEqual(got, a.expected.slice(0, got.length));
      assert.ok(reader.stats.streams >= 1 && reader.stats.streamFallbacks >= 1, JSON.stringify(reader.stats));
      assert.deepEqual(a.store.tier!.status().reads, reader.stats, 'tier status reports the partition\'s read counters');
      await s3.start();
      a.store.tier!.cache.clear();
      assert.deepEqual(await readPlain(a.p, { offset: 0 }), a.expected);
    } finally {
      if (!s3.running) await s3.start();
      await a.store.close();
    }
  });
});
