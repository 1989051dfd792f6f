// The upload path of tiered storage (src/tier/archiver.ts): segments
// pipelined (several in flight), the manifest written once per group of
// verified segments and only ever listing a run of segments from the oldest
// up whose objects are all in the store; a crash between the objects and the
// manifest redone on reopen with nothing lost; a failed segment in the middle
// of a run; the log streamed in chunks (fs) recording the same CRC-32C as the
// whole file, at any chunk size; the pooled read buffers.

import { test, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import fc from 'fast-check';
import { Store } from '../src/store.js';
import { CorruptionError, InvalidArgumentError, ObjectStoreError, StorageError } from '../src/errors.js';
import { NodeStorage, FileHandle } from '../src/storage.js';
import { TierConfig, resolveTierConfig } from '../src/tier/tier_config.js';
import { ObjectStore } from '../src/tier/object_store.js';
import { parseManifest, Manifest, MANIFEST_NAME, OBJECT_KINDS } from '../src/tier/manifest.js';
import { BufferPool, uploadTuning } from '../src/tier/archiver.js';
import { crc32cRef } from './fixtures/reference.js';
import { crcHex } from './helpers/archive_fixture.js';
import {
  tmp, cleanup, memoryTier, fsTier, forgetMemoryTier, smallTopic, recentRecords, openTiered, appendAll, readPlain, remoteManifest,
} from './helpers/tier_util.js';

after(cleanup);

/** Writes a store's partition ev-0 without tiering: closed segments, nothing archived. */
async function writeUntiered(dir: string, records: number, seed: number): Promise<void> {
  const store = await Store.open(dir, { retentionCheckMs: -1 });
  try {
    await store.createTopic('ev', { config: smallTopic() });
    const p = store.partition('ev', 0);
    await appendAll(p, recentRecords(records, seed));
    p.roll();
    await p.flush();
  } finally {
    await store.close();
  }
}

interface ManifestWrite { manifest: Manifest; missing: string[] }

/**
 * Wraps the store's object writes: every manifest write is recorded with the
 * listed objects missing from the store at that moment (there must be none);
 * `before` runs first on every write and may throw or delay it.
 */
function watchWrites(objects: ObjectStore, dir: string, before: (key: string) => Promise<void> | void = () => undefined): ManifestWrite[] {
  const seen: ManifestWrite[] = [];
  const write = objects.write.bind(objects);
  objects.write = async (key: string, data: Buffer) => {
    await before(key);
    // fs writes the manifest under <key>.tmp and renames it over the key.
    if (key === dir + MANIFEST_NAME || key === `${dir}${MANIFEST_NAME}.tmp`) {
      const manifest = parseManifest(data, key);
      const missing: string[] = [];
      for (const s of manifest.segments) {
        for (const kind of OBJECT_KINDS) {
          const st = await objects.stat(dir + s.objects[kind].key);
          if (!st || st.size !== s.objects[kind].size) missing.push(s.objects[kind].key);
        }
      }
      seen.push({ manifest, missing });
    }
    await write(key, data);
  };
  return seen;
}

/** Every manifest written lists, complete, a run of the closed segments from the first, growing. */
function assertPrefixes(writes: ManifestWrite[], bases: number[]): void {
  let prev = 0;
  for (const w of writes) {
    assert.deepEqual(w.missing, [], `manifest version ${w.manifest.version} lists objects not in the store`);
    const listed = w.manifest.segments.map((s) => s.baseOffset);
    assert.deepEqual(listed, bases.slice(0, listed.length), `manifest version ${w.manifest.version} is not a run from the oldest segment`);
    assert.ok(listed.length > prev, 'each manifest write lists more segments');
    prev = listed.length;
  }
}

/** The archived objects of every listed segment equal the local files; the recorded CRC-32C is the file's. */
async function assertArchivedEqualsLocal(objects: ObjectStore, dir: string, m: Manifest, localDir: string): Promise<void> {
  for (const s of m.segments) {
    for (const kind of OBJECT_KINDS) {
      const o = s.objects[kind];
      const local = fs.readFileSync(`${localDir}/${o.key}`);
      const remote = await objects.read(dir + o.key);
      assert.ok(Buffer.compare(local, remote) === 0, `${o.key} differs from the local file`);
      assert.equal(o.size, local.length);
      assert.equal(o.crc32c, crcHex(crc32cRef(local)), `${o.key} CRC-32C`);
    }
  }
}

const backends: [string, () => TierConfig][] = [['memory', () => memoryTier({ autoArchive: false })], ['fs', () => fsTier({ autoArchive: false })]];

for (const [name, make] of backends) {
  describe(`pipelined uploads (${name})`, () => {
    test('a crash between several segments\' objects and the manifest: redone on reopen, nothing lost', async () => {
      const tier = make();
      const dir = tmp();
      await writeUntiered(dir, 300, 21);
      let { store, p } = await openTiered(dir, tier);
      const od = store.tier!.layout.partitionDir('ev', 0);
      const bases = p.segments.slice(0, -1).map((s) => s.baseOffset);
      assert.ok(bases.length >= 4, `need several closed segments, got ${bases.length}`);
      const expected = await readPlain(p);
      try {
        // The "crash": the process never gets to write a manifest.
        const started: string[] = [];
        watchWrites(store.tier!.objects, od, (key) => {
          if (key.endsWith('.index')) started.push(key);
          if (key.startsWith(od + MANIFEST_NAME)) throw new ObjectStoreError('write', key, 'Unexpected', 'simulated crash before the manifest write');
        });
        await assert.rejects(store.tier!.archiveNow(), ObjectStoreError);
        assert.ok(started.length >= 2, `segments were in flight together (${started.length} started)`);
        const left = (await store.tier!.objects.list(od)).map((k) => k.slice(od.length));
        assert.ok(!left.some((k) => k.startsWith(MANIFEST_NAME)), 'no manifest was written');
        assert.ok(left.filter((k) => k.endsWith('.log')).length >= 2, `objects of several segments reached the store: ${left.join(', ')}`);
        assert.equal(store.tier!.status().partitions[0]!.uploadedSegments, 0);
      } finally {
        await store.close();
      }
      // Reopened (a new process): the leftovers are found and uploaded again.
      ({ store, p } = await openTiered(dir, { ...tier, localRetentionBytes: 0 }));
      try {
        const writes = watchWrites(store.tier!.objects, od);
        await store.tier!.archiveNow();
        const st = store.tier!.status().partitions[0]!;
        assert.ok(st.interruptedUploads >= 2, `interrupted uploads noticed: ${st.interruptedUploads}`);
        assert.equal(st.uploadedSegments, bases.length);
        assertPrefixes(writes, bases);
        const m = await remoteManifest(store);
        assert.deepEqual(m.segments.map((s) => s.baseOffset), bases);
        // Evicted locally after the verified upload: every record now comes back from the archive.
        assert.equal(p.localLogStartOffset, p.active.baseOffset);
        store.tier!.cache.clear();
        assert.deepEqual(await readPlain(p, { offset: 0 }), expected);
      } finally {
        await store.close();
        forgetMemoryTier(tier);
      }
    });

    test('a segment failing in the middle of a run: the segments before it are listed, none after it; the next cycle completes', async () => {
      const tier = make();
      const dir = tmp();
      await writeUntiered(dir, 300, 22);
      const { store, p } = await openTiered(dir, tier);
      const od = store.tier!.layout.partitionDir('ev', 0);
      const bases = p.segments.slice(0, -1).map((s) => s.baseOffset);
      assert.ok(bases.length >= 5, `need several closed segments, got ${bases.length}`);
      const failing = bases[2]!;
      try {
        let failed = false;
        const writes = watchWrites(store.tier!.objects, od, (key) => {
          if (!failed && key.endsWith(`${String(failing).padStart(20, '0')}.index`)) {
            failed = true;
            throw new ObjectStoreError('write', key, 'PermissionDenied', 'simulated refusal');
          }
        });
        await assert.rejects(store.tier!.archiveNow(), (e: unknown) => e instanceof ObjectStoreError && /simulated refusal/.test(e.message));
        assertPrefixes(writes, bases);
        const mid = await remoteManifest(store);
        assert.deepEqual(mid.segments.map((s) => s.baseOffset), bases.slice(0, 2), 'exactly the run before the failed segment');
        const st = store.tier!.status().partitions[0]!;
        assert.equal(st.archivedUpTo, failing);
        assert.equal(st.pendingSegments, bases.length - 2);
        await store.tier!.archiveNow();
        assertPrefixes(writes, bases);
        const m = await remoteManifest(store);
        assert.deepEqual(m.segments.map((s) => s.baseOffset), bases);
        await assertArchivedEqualsLocal(store.tier!.objects, od, m, p.dir);
      } finally {
        await store.close();
        forgetMemoryTier(tier);
      }
    });

    test('one manifest write covers every segment verified while the previous write was in flight', async () => {
      const tier = make();
      const dir = tmp();
      await writeUntiered(dir, 400, 23);
      const { store, p } = await openTiered(dir, tier);
      const od = store.tier!.layout.partitionDir('ev', 0);
      const bases = p.segments.slice(0, -1).map((s) => s.baseOffset);
      assert.ok(bases.length >= 6, `need several closed segments, got ${bases.length}`);
      try {
        // Slow manifest writes: segments verified meanwhile wait for the next one.
        const writes = watchWrites(store.tier!.objects, od, async (key) => {
          if (key.startsWith(od + MANIFEST_NAME)) await new Promise((r) => setTimeout(r, 100));
        });
        await store.tier!.archiveNow();
        assertPrefixes(writes, bases);
        assert.ok(writes.length < bases.length, `${writes.length} manifest writes for ${bases.length} segments`);
        const m = await remoteManifest(store);
        assert.equal(m.version, writes.length);
        assert.deepEqual(m.segments.map((s) => s.baseOffset), bases);
        assert.equal(store.tier!.status().partitions[0]!.uploadedSegments, bases.length);
        await assertArchivedEqualsLocal(store.tier!.objects, od, m, p.dir);
      } finally {
        await store.close();
        forgetMemoryTier(tier);
      }
    });
  });
}

test('pipelineSegments (object stores) and pipelineSegmentsFiles (fs) bound the segments sending at once: 1 uploads one after the other', async () => {
  const saved = { ...uploadTuning };
  const dir = tmp();
  await writeUntiered(dir, 200, 24);
  try {
    for (const [make, knob] of [[() => memoryTier({ autoArchive: false }), 'pipelineSegments'], [() => fsTier({ autoArchive: false }), 'pipelineSegmentsFiles']] as const) {
      for (const window of [1, 2, 3]) {
        uploadTuning.pipelineSegments = saved.pipelineSegments;
        uploadTuning.pipelineSegmentsFiles = saved.pipelineSegmentsFiles;
        uploadTuning[knob] = window;
        const tier = make();
        const { store, p } = await openTiered(dir, tier);
        try {
          assert.equal(store.tier!.archiver('ev', 0).pipelineWindow, window);
          const od = store.tier!.layout.partitionDir('ev', 0);
          const bases = p.segments.slice(0, -1).map((s) => s.baseOffset);
          assert.ok(bases.length >= 4);
          // Segments whose log is being written (one PUT each), and the most at once.
          const active = new Map<string, number>();
          let most = 0;
          const objects = store.tier!.objects;
          const write = objects.write.bind(objects);
          objects.write = async (key: string, data: Buffer) => {
            const seg = /(\d{20})\.log$/.exec(key)?.[1];
            if (seg) { active.set(seg, (active.get(seg) ?? 0) + 1); most = Math.max(most, active.size); }
            try { await write(key, data); } finally {
              if (seg) { const n = active.get(seg)! - 1; if (n === 0) active.delete(seg); else active.set(seg, n); }
            }
          };
          const writes = watchWrites(objects, od);
          await store.tier!.archiveNow();
          assert.equal(most, window, `${tier.service}: ${knob} ${window}`);
          assertPrefixes(writes, bases);
          assert.deepEqual((await remoteManifest(store)).segments.map((s) => s.baseOffset), bases);
        } finally {
          await store.close();
          forgetMemoryTier(tier);
        }
      }
    }
  } finally {
    Object.assign(uploadTuning, saved);
  }
});

test('streamed log uploads (fs, streamSmallSegments) record the CRC-32C of the whole file at any chunk size; one PUT records the same', async () => {
  const saved = uploadTuning.streamChunkBytes;
  uploadTuning.streamSmallSegments = true;
  const dir = tmp();
  await writeUntiered(dir, 250, 25);
  try {
    await fc.assert(fc.asyncProperty(fc.integer({ min: 61, max: 20_000 }), async (chunk) => {
      uploadTuning.streamChunkBytes = chunk;
      const tier = fsTier({ autoArchive: false });
      const { store, p } = await openTiered(dir, tier);
      try {
        assert.equal(store.tier!.objects.streamsWrites, true, 'fs takes streamed writes');
        const od = store.tier!.layout.partitionDir('ev', 0);
        const closed = p.segments.slice(0, -1);
        const objects = store.tier!.objects;
        const writer = objects.writer.bind(objects);
        let streams = 0;
        objects.writer = async (key: string, chunkBytes?: number) => { streams++; assert.equal(chunkBytes, undefined, 'fs appends as it goes'); return writer(key, chunkBytes); };
        const entries = await store.tier!.archiver('ev', 0).uploadSegments(closed);
        assert.equal(streams, closed.length, 'every log was streamed');
        assert.deepEqual(entries.map((e) => e.baseOffset), closed.map((s) => s.baseOffset));
        for (const [i, e] of entries.entries()) {
          const file = fs.readFileSync(closed[i]!.logPath);
          assert.equal(e.objects.log.crc32c, crcHex(crc32cRef(file)), `segment ${e.baseOffset} with ${chunk}-byte chunks`);
          assert.ok(Buffer.compare(await store.tier!.objects.read(od + e.objects.log.key), file) === 0);
        }
      } finally {
        await store.close();
      }
    }), { numRuns: 8, seed: 2611 });
    // The same segments through one PUT each (the default below the multipart threshold, fs included) record the same checksums.
    uploadTuning.streamChunkBytes = saved;
    uploadTuning.streamSmallSegments = false;
    for (const tier of [memoryTier({ autoArchive: false }), fsTier({ autoArchive: false })]) {
      const { store, p } = await openTiered(dir, tier);
      try {
        const objects = store.tier!.objects;
        assert.equal(objects.streamsWrites, tier.service === 'fs');
        objects.writer = async () => { throw new Error('no streamed upload expected'); };
        const entries = await store.tier!.archiver('ev', 0).uploadSegments(p.segments.slice(0, -1));
        for (const [i, e] of entries.entries()) assert.equal(e.objects.log.crc32c, crcHex(crc32cRef(fs.readFileSync(p.segments[i]!.logPath))));
      } finally {
        await store.close();
        forgetMemoryTier(tier);
      }
    }
  } finally {
    uploadTuning.streamChunkBytes = saved;
    uploadTuning.streamSmallSegments = false;
  }
});

test('a streamed upload fails cleanly when its writer cannot open or its file reads short, at any chunk size: typed error, nothing listed, the next pass completes', async () => {
  const saved = { ...uploadTuning };
  uploadTuning.streamSmallSegments = true;
  const dir = tmp();
  await writeUntiered(dir, 120, 29);
  try {
    // A chunk larger than the segment (the one read happens while the writer opens) and a small one (the short read comes after the first writes).
    for (const chunk of [64 << 20, 4096]) {
      uploadTuning.streamChunkBytes = chunk;
      const tier = fsTier({ autoArchive: false });
      const { store, p } = await openTiered(dir, tier);
      try {
        const a = store.tier!.archiver('ev', 0);
        const objects = store.tier!.objects;
        const writer = objects.writer.bind(objects);
        const seg = p.segments[0]!;
        // The writer is refused after a delay, once the first chunk has been read.
        objects.writer = async (key: string) => { await new Promise((r) => setTimeout(r, 10)); throw new ObjectStoreError('write', key, 'PermissionDenied', 'injected refusal'); };
        await assert.rejects(a.uploadSegments([seg]), (err: unknown) => err instanceof ObjectStoreError && /injected refusal/.test(err.message));
        assert.equal(a.currentManifest().version, 0, 'nothing listed');
        // The writer opens slowly and the file turns out shorter than the segment (damaged under us).
        objects.writer = async (key: string, c?: number) => { await new Promise((r) => setTimeout(r, 10)); return writer(key, c); };
        const whole = fs.readFileSync(seg.logPath);
        fs.truncateSync(seg.logPath, whole.length - 7);
        try {
          await assert.rejects(a.uploadSegments([seg]), (err: unknown) => err instanceof CorruptionError && err.file === seg.logPath);
        } finally {
          fs.writeFileSync(seg.logPath, whole);
        }
        assert.equal(a.currentManifest().version, 0, 'nothing listed');
        // Whole again: the same archiver uploads and lists it.
        const [e] = await a.uploadSegments([seg]);
        assert.equal(e!.objects.log.crc32c, crcHex(crc32cRef(whole)));
        assert.equal(a.currentManifest().segments.length, 1);
      } finally {
        await store.close();
      }
    }
  } finally {
    Object.assign(uploadTuning, saved);
  }
});

/** NodeStorage whose readAsync can be made to fail at the nth call, counting reads in flight. */
class ParallelReadStorage extends NodeStorage {
  asyncReads = 0;
  inFlight = 0;
  maxInFlight = 0;
  /** readAsync calls (1-based) that fail with EIO. */
  failAt = -1;

  override open(file: string, mode: 'read' | 'write'): FileHandle {
    const h = super.open(file, mode);
    const inner = h.readAsync?.bind(h);
    if (!inner || !file.endsWith('.log') || mode !== 'read') return h;
    h.readAsync = async (buf, offset, length, position) => {
      const n = ++this.asyncReads;
      this.inFlight++;
      this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
      try {
        // Later pieces finish first: completion order differs from issue order.
        await new Promise((r) => setTimeout(r, n % 3 === 0 ? 1 : 5));
        if (n === this.failAt) throw new StorageError(file, 'read', new Error('injected read failure'));
        return await inner(buf, offset, length, position);
      } finally {
        this.inFlight--;
      }
    };
    return h;
  }
}

test('a segment sent in one PUT is read in parallel pieces: the same bytes; a short file or a failed read is a typed error raised once no read is in flight', async () => {
  const saved = { ...uploadTuning };
  const dir = tmp();
  await writeUntiered(dir, 120, 31);
  const storage = new ParallelReadStorage();
  const tier = memoryTier({ autoArchive: false });
  const { store, p } = await openTiered(dir, tier, smallTopic(), { storage });
  try {
    uploadTuning.readPieceBytes = 700;
    const a = store.tier!.archiver('ev', 0);
    const [s0, s1] = p.segments;
    const whole = fs.readFileSync(s0!.logPath);
    assert.ok(whole.length > 8 * 700, 'more pieces than reads in flight');
    // Whole: every piece lands where it belongs.
    const [e] = await a.uploadSegments([s0!]);
    assert.equal(e!.objects.log.crc32c, crcHex(crc32cRef(whole)));
    assert.ok(Buffer.compare(await store.tier!.objects.read(store.tier!.layout.partitionDir('ev', 0) + e!.objects.log.key), whole) === 0);
    assert.equal(storage.asyncReads, Math.ceil(whole.length / 700));
    assert.equal(storage.maxInFlight, 8);
    // A read fails in the middle: the read error, after the other reads settled; nothing more listed.
    const before = a.currentManifest().version;
    storage.asyncReads = 0;
    storage.failAt = 4;
    await assert.rejects(a.uploadSegments([s1!]), (err: unknown) => err instanceof StorageError && /injected read failure/.test(err.message));
    assert.equal(storage.inFlight, 0, 'no read in flight once the upload failed');
    assert.equal(a.currentManifest().version, before);
    storage.failAt = -1;
    // The file is shorter than the segment (damaged under us): CorruptionError naming it.
    const second = fs.readFileSync(s1!.logPath);
    fs.truncateSync(s1!.logPath, second.length - 1000);
    try {
      await assert.rejects(a.uploadSegments([s1!]), (err: unknown) => err instanceof CorruptionError && err.file === s1!.logPath);
      assert.equal(storage.inFlight, 0);
    } finally {
      fs.writeFileSync(s1!.logPath, second);
    }
    assert.equal(a.currentManifest().version, before);
    // Whole again: uploaded and listed; a bad piece size is refused.
    const [e1] = await a.uploadSegments([s1!]);
    assert.equal(e1!.objects.log.crc32c, crcHex(crc32cRef(second)));
    uploadTuning.readPieceBytes = 0;
    await assert.rejects(a.uploadSegments([s1!]), InvalidArgumentError);
  } finally {
    Object.assign(uploadTuning, saved);
    await store.close();
    forgetMemoryTier(tier);
  }
});

test('uploadSegments refuses segments of another partition, out of order or active, and bad tuning', async () => {
  const tier = memoryTier({ autoArchive: false });
  const dir = tmp();
  await writeUntiered(dir, 100, 26);
  const { store, p } = await openTiered(dir, tier);
  try {
    const a = store.tier!.archiver('ev', 0);
    const [s0, s1] = p.segments;
    assert.throws(() => a.uploadSegments([s1!, s0!]), InvalidArgumentError);
    await assert.rejects(a.uploadSegments([p.active]), InvalidArgumentError);
    const saved = uploadTuning.pipelineSegments;
    uploadTuning.pipelineSegments = 0;
    try {
      await assert.rejects(a.uploadSegments([s0!]), InvalidArgumentError);
    } finally {
      uploadTuning.pipelineSegments = saved;
    }
    const other = await Store.open(tmp(), { retentionCheckMs: -1 });
    try {
      await other.createTopic('ev', { config: smallTopic() });
      assert.throws(() => a.uploadSegments([other.partition('ev', 0).active]), InvalidArgumentError);
    } finally {
      await other.close();
    }
    // Still usable afterwards.
    const [e] = await a.uploadSegments([s0!]);
    assert.equal(e!.baseOffset, s0!.baseOffset);
  } finally {
    await store.close();
    forgetMemoryTier(tier);
  }
});

test('buffer pool: buffers are reused once released, never while on loan; retention is bounded', () => {
  const pool = new BufferPool(2, 4 << 20, 60_000);
  try {
    const a = pool.take(1000);
    assert.equal(a.buf.length, 1000);
    const b = pool.take(1000);
    assert.notEqual(a.buf.buffer, b.buf.buffer, 'two loans never share memory');
    assert.equal(pool.allocations, 2);
    a.buf.fill(7);
    a.release();
    a.release(); // idempotent
    assert.deepEqual(pool.retained, { buffers: 1, bytes: BufferPool.capacityFor(1000) });
    const c = pool.take(5000);
    assert.equal(c.buf.buffer, a.buf.buffer, 'the released buffer is reused');
    assert.equal(c.buf.length, 5000);
    assert.equal(pool.allocations, 2);
    // Too big for what is retained: a new one.
    const big = pool.take((1 << 20) + 1);
    assert.equal(big.buf.length, (1 << 20) + 1);
    assert.equal(pool.allocations, 3);
    b.release();
    big.release();
    c.release(); // over maxRetained (2): dropped
    assert.deepEqual(pool.retained, { buffers: 2, bytes: 3 << 20 });
    // The smallest buffer that fits is taken.
    const d = pool.take(10);
    assert.equal(d.buf.buffer, b.buf.buffer);
    const g = pool.take(1 << 20);
    assert.equal(g.buf.buffer, big.buf.buffer);
    assert.equal(pool.allocations, 3);
    d.release();
    g.release();
    // Over maxRetainedBytes: not kept.
    const e = pool.take(3 << 20);
    const f = pool.take(3 << 20);
    pool.clear();
    e.release();
    f.release();
    assert.deepEqual(pool.retained, { buffers: 1, bytes: 3 << 20 });
    assert.throws(() => pool.take(-1), InvalidArgumentError);
    assert.throws(() => pool.take(1.5), InvalidArgumentError);
    assert.equal(BufferPool.capacityFor(0), 1 << 20);
    assert.equal(BufferPool.capacityFor((5 << 20) + 1), 6 << 20);
  } finally {
    pool.clear();
  }
});

test('verification looks again at an object shown late or short, and fails the upload when it stays wrong', async () => {
  const tier = memoryTier({ autoArchive: false });
  const dir = tmp();
  await writeUntiered(dir, 100, 27);
  const { store, p } = await openTiered(dir, tier);
  try {
    const objects = store.tier!.objects;
    const stat = objects.stat.bind(objects);
    const od = store.tier!.layout.partitionDir('ev', 0);
    const seg = p.segments[0]!;
    const logKey = od + String(seg.baseOffset).padStart(20, '0') + '.log';
    // Shown missing, then short, then as written (a store that acknowledges before the write is visible).
    let looks = 0;
    objects.stat = async (key: string) => {
      if (key !== logKey) return stat(key);
      looks++;
      if (looks === 1) return null;
      const st = await stat(key);
      return looks === 2 && st ? { ...st, size: 0 } : st;
    };
    const [e] = await store.tier!.archiver('ev', 0).uploadSegments([seg]);
    assert.equal(looks, 3);
    assert.equal(e!.objects.log.size, seg.size);
    // Always short: the upload fails after a bounded number of looks, nothing is listed.
    looks = 0;
    const m0 = store.tier!.archiver('ev', 0).currentManifest().version;
    objects.stat = async (key: string) => {
      const st = await stat(key);
      if (key !== logKey) return st;
      looks++;
      return st ? { ...st, size: st.size - 1 } : st;
    };
    await assert.rejects(store.tier!.archiver('ev', 0).uploadSegments([seg]), (err: unknown) => err instanceof ObjectStoreError && /expected \d+ \(5 looks\)/.test(err.message));
    assert.equal(looks, 5);
    assert.equal(store.tier!.archiver('ev', 0).currentManifest().version, m0, 'no manifest write');
  } finally {
    await store.close();
    forgetMemoryTier(tier);
  }
});

test('property: whatever write fails at any pipeline width, every manifest lists a complete run from the oldest segment, and the next pass completes', async () => {
  const saved = uploadTuning.pipelineSegments;
  const dir = tmp();
  await writeUntiered(dir, 250, 28);
  try {
    await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 0, max: 40 }), async (window, failAt) => {
      uploadTuning.pipelineSegments = window;
      const tier = memoryTier({ autoArchive: false });
      const { store, p } = await openTiered(dir, tier);
      try {
        const od = store.tier!.layout.partitionDir('ev', 0);
        const bases = p.segments.slice(0, -1).map((s) => s.baseOffset);
        // The failAt-th write of the partition (objects and manifests) is refused.
        let n = 0;
        const writes = watchWrites(store.tier!.objects, od, (key) => {
          if (!key.startsWith(od)) return;
          if (n++ === failAt) throw new ObjectStoreError('write', key, 'PermissionDenied', 'injected failure');
        });
        const first = await store.tier!.archiveNow().then(() => null, (e: unknown) => e);
        if (first !== null) assert.ok(first instanceof ObjectStoreError && /injected failure/.test(first.message), String(first));
        assertPrefixes(writes, bases);
        const st = store.tier!.status().partitions[0]!;
        const listed = writes.length > 0 ? writes[writes.length - 1]!.manifest.segments.length : 0;
        assert.equal(st.archivedSegments, listed);
        if (first === null) assert.equal(listed, bases.length);
        await store.tier!.archiveNow();
        assertPrefixes(writes, bases);
        const m = await remoteManifest(store);
        assert.deepEqual(m.segments.map((s) => s.baseOffset), bases);
        await assertArchivedEqualsLocal(store.tier!.objects, od, m, p.dir);
      } finally {
        await store.close();
        forgetMemoryTier(tier);
      }
    }), { numRuns: 25, seed: 2612 });
  } finally {
    uploadTuning.pipelineSegments = saved;
  }
});

test('manifest writes on fs go through a temporary object and a rename: a crash before the rename leaves the old manifest whole', async () => {
  const tier = fsTier({ autoArchive: false });
  const dir = tmp();
  await writeUntiered(dir, 150, 29);
  const { store, p } = await openTiered(dir, tier);
  try {
    const objects = store.tier!.objects;
    assert.equal(objects.canRename, true);
    const od = store.tier!.layout.partitionDir('ev', 0);
    const [s0, s1] = p.segments;
    await store.tier!.archiver('ev', 0).uploadSegments([s0!]);
    const before = await objects.read(od + MANIFEST_NAME);
    // The "crash": the new manifest is written, the rename never happens.
    const op = objects.operator;
    const rename = op.rename.bind(op);
    op.rename = async () => { throw new Error('PermissionDenied (permanent) at rename => simulated crash'); };
    await assert.rejects(store.tier!.archiver('ev', 0).uploadSegments([s1!]), ObjectStoreError);
    assert.ok(Buffer.compare(await objects.read(od + MANIFEST_NAME), before) === 0, 'the old manifest is untouched');
    assert.equal(parseManifest(await objects.read(`${od}${MANIFEST_NAME}.tmp`), 'tmp').segments.length, 2, 'the new one waited in the temporary object');
    op.rename = rename;
    await store.tier!.archiver('ev', 0).uploadSegments([s1!]);
    const m = await remoteManifest(store);
    assert.deepEqual(m.segments.map((s) => s.baseOffset), [s0!.baseOffset, s1!.baseOffset]);
    const keys = (await objects.list(od)).map((k) => k.slice(od.length));
    assert.ok(!keys.includes(`${MANIFEST_NAME}.tmp`), `no temporary object left: ${keys.join(', ')}`);
    // Object stores (and memory) replace objects atomically on PUT: no rename there.
    const mem = memoryTier();
    try {
      const mo = new ObjectStore(resolveTierConfig(mem));
      assert.equal(mo.canRename, false);
      await mo.writeAtomic('a/k', Buffer.from('x'));
      assert.deepEqual(await mo.list('a/'), ['a/k']);
    } finally {
      forgetMemoryTier(mem);
    }
  } finally {
    await store.close();
  }
});
