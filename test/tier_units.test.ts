// Units of tiered storage: manifest validation (a valid manifest round-trips,
// every broken invariant is refused as corruption), key layout against the
// documented example, catalog parsing, tier config validation and defaults,
// OpenDAL error classification, the ObjectStore wrapper's retry bounds and
// typed errors (against a port nothing listens on), the chunk cache's bounds
// and sharing, and the segment checker (CRC-32C against a bytewise
// reference, batches cut at every chunk boundary, damage found).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { getKernelsSync } from '../src/kernels.js';
import { Crc32c } from '../src/crc32c.js';
import { CorruptionError, InvalidArgumentError, ObjectStoreError, ObjectStoreUnavailableError } from '../src/errors.js';
import {
  ArchiveLayout, Manifest, ManifestSegment, parseManifest, serializeManifest, validateManifest, parseCatalog, crcHex as crcHexSrc,
  findSegment, archivedUpTo, emptyManifest, segmentObjectKey,
} from '../src/tier/manifest.js';
import { resolveTierConfig, normalizePrefix, describeTierConfig } from '../src/tier/tier_config.js';
import { classifyOpenDalError, ObjectStore } from '../src/tier/object_store.js';
import { ChunkCache } from '../src/tier/chunk_cache.js';
import { SegmentChecker, checkSegmentBytes } from '../src/tier/segment_check.js';
import { RecordBatchEncoder, stampBaseOffset } from '../src/record_batch.js';
import { normalizeRecord } from '../src/record.js';
import { WasmBuffer } from '../src/kernels.js';
import { crc32cRef } from './fixtures/reference.js';
import { partitionHash } from './helpers/archive_fixture.js';

const k = getKernelsSync();
const crc = new Crc32c(k);

function seg(base: number, n: number, size = 100): ManifestSegment {
  const o = (ext: string, sz: number) => ({ key: `${String(base).padStart(20, '0')}.${ext}`, size: sz, crc32c: '0badf00d' });
  return { baseOffset: base, lastOffset: base + n - 1, nextOffset: base + n, firstTimestamp: 1000 + base, maxTimestamp: 2000 + base, records: n, objects: { log: o('log', size), index: o('index', 8), timeindex: o('timeindex', 12) } };
}

function manifest(segs: ManifestSegment[], logStartOffset = segs[0]?.baseOffset ?? 0): Manifest {
  return { format: 1, topic: 'events', partition: 0, version: segs.length, updatedAt: 1_763_700_000_000, logStartOffset, segments: segs };
}

test('manifest: the documented example parses; valid manifests round-trip', () => {
  const doc = {
    format: 1, topic: 'events', partition: 0, version: 7, updatedAt: 1763700000000, logStartOffset: 0,
    segments: [{
      baseOffset: 0, lastOffset: 159, nextOffset: 160, firstTimestamp: 1763600000000, maxTimestamp: 1763600009999, records: 160,
      objects: {
        log: { key: '00000000000000000000.log', size: 19680, crc32c: '1a2b3c4d' },
        index: { key: '00000000000000000000.index', size: 32, crc32c: '00000000' },
        timeindex: { key: '00000000000000000000.timeindex', size: 48, crc32c: 'ffffffff' },
      },
    }],
  };
  assert.deepEqual(parseManifest(Buffer.from(JSON.stringify(doc, null, 2)), 'doc'), doc);
  fc.assert(fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 1, max: 1000 })), { maxLength: 20 }), (parts) => {
    let base = 0;
    const segs: ManifestSegment[] = [];
    for (const [gap, n] of parts) { base += gap; segs.push(seg(base, n)); base += n; }
    const m = manifest(segs);
    assert.deepEqual(parseManifest(serializeManifest(m), 'x'), m);
    assert.equal(archivedUpTo(m), segs.length ? segs[segs.length - 1]!.nextOffset : m.logStartOffset);
    for (let i = 0; i < segs.length; i++) {
      assert.equal(findSegment(m, segs[i]!.baseOffset), i);
      assert.equal(findSegment(m, segs[i]!.nextOffset - 1), i);
    }
    if (segs.length > 0 && segs[0]!.baseOffset > 0) assert.equal(findSegment(m, segs[0]!.baseOffset - 1), -1);
  }));
});

test('manifest: every broken invariant is refused as corruption', () => {
  const good = manifest([seg(0, 10), seg(10, 10), seg(25, 5)]);
  const mutations: [string, (m: Manifest) => void][] = [
    ['format', (m) => { m.format = 2; }],
    ['topic', (m) => { (m as { topic: unknown }).topic = ''; }],
    ['partition', (m) => { m.partition = -1; }],
    ['version', (m) => { m.version = 1.5; }],
    ['logStartOffset', (m) => { m.logStartOffset = 3; }],
    ['segments', (m) => { (m as { segments: unknown }).segments = {}; }],
    ['overlap', (m) => { m.segments[1]!.baseOffset = 5; m.segments[1]!.lastOffset = 14; }],
    ['order', (m) => { m.segments.reverse(); }],
    ['next <= base', (m) => { m.segments[0]!.nextOffset = 0; }],
    ['last outside', (m) => { m.segments[0]!.lastOffset = 10; }],
    ['records', (m) => { m.segments[0]!.records = 11; }],
    ['timestamp', (m) => { m.segments[0]!.maxTimestamp = -2; }],
    ['crc', (m) => { m.segments[0]!.objects.log.crc32c = '1A2B3C4D'; }],
    ['key path', (m) => { m.segments[0]!.objects.log.key = '../x.log'; }],
    ['key dot', (m) => { m.segments[0]!.objects.index.key = '.hidden'; }],
    ['size', (m) => { m.segments[0]!.objects.timeindex.size = -1; }],
    ['empty log', (m) => { m.segments[0]!.objects.log.size = 0; }],
    ['missing object', (m) => { delete (m.segments[0]!.objects as Partial<ManifestSegment['objects']>).index; }],
  ];
  for (const [what, mutate] of mutations) {
    const m = structuredClone(good);
    mutate(m);
    assert.throws(() => parseManifest(Buffer.from(JSON.stringify(m)), 'm.json'), CorruptionError, what);
  }
  assert.throws(() => parseManifest(Buffer.from('{"format":1'), 'm.json'), CorruptionError);
  assert.throws(() => parseManifest(Buffer.from([0xff, 0xfe]), 'm.json'), CorruptionError);
  assert.throws(() => parseManifest(serializeManifest(good), 'm.json', { topic: 'events', partition: 1 }), CorruptionError);
  assert.throws(() => validateManifest(null, 'x'), CorruptionError);
});

test('key layout: <prefix>/<h>/<topic>-<partition>/, h from xxHash64; segment keys are 20-digit bases', () => {
  const l = new ArchiveLayout(k, 'prod/sediment');
  const l0 = new ArchiveLayout(k, '');
  try {
    for (const [t, p] of [['events', 0], ['events', 1], ['a', 9999], ['clé', 3]] as const) {
      assert.equal(l.partitionDir(t, p), `prod/sediment/${partitionHash(t, p)}/${t}-${p}/`);
      assert.equal(l0.partitionDir(t, p), `${partitionHash(t, p)}/${t}-${p}/`);
      assert.match(partitionHash(t, p), /^[0-9a-f]{8}$/);
    }
    assert.notEqual(l.partitionDir('events', 0), l.partitionDir('events', 1));
    assert.equal(l.catalogKey(), 'prod/sediment/topics.json');
    assert.equal(l0.catalogKey(), 'topics.json');
    assert.equal(l.manifestKey('events', 0), l.partitionDir('events', 0) + 'manifest.json');
    assert.equal(segmentObjectKey(42, 'timeindex'), '00000000000000000042.timeindex');
    assert.equal(crcHexSrc(0x1a2b3c4d), '1a2b3c4d');
    assert.equal(crcHexSrc(0xe3069283), 'e3069283');
    assert.equal(crcHexSrc(5), '00000005');
  } finally { l.free(); l0.free(); }
});

test('catalog: valid ones parse, broken ones are refused', () => {
  const c = { format: 1, updatedAt: 1, topics: { ev: { partitions: 3, config: { segmentBytes: 4096 } } } };
  assert.deepEqual(parseCatalog(Buffer.from(JSON.stringify(c)), 'c'), c);
  for (const bad of [{ ...c, format: 2 }, { ...c, topics: null }, { ...c, topics: { ev: { partitions: 0, config: {} } } }, { ...c, topics: { ev: { partitions: 1 } } }]) {
    assert.throws(() => parseCatalog(Buffer.from(JSON.stringify(bad)), 'c'), CorruptionError);
  }
  assert.throws(() => parseCatalog(Buffer.from('nope'), 'c'), CorruptionError);
});

test('tier config: defaults, validation, s3 credential safety, masking', () => {
  const r = resolveTierConfig({ service: 'memory' });
  assert.equal(r.prefix, '');
  assert.equal(r.chunkBytes, 8 << 20);
  assert.equal(r.localRetentionBytes, -1);
  assert.equal(r.autoArchive, true);
  assert.equal(normalizePrefix('/a//b/'), 'a/b');
  assert.throws(() => normalizePrefix('a/../b'), InvalidArgumentError);
  const s3 = resolveTierConfig({ service: 's3', options: { bucket: 'b', access_key_id: 'AK', secret_access_key: 'SK' } });
  assert.equal(s3.options.disable_config_load, 'true');
  assert.equal(s3.options.disable_ec2_metadata, 'true');
  assert.equal(resolveTierConfig({ service: 's3', options: { bucket: 'b', access_key_id: 'AK', secret_access_key: 'SK', disable_config_load: 'false' } }).options.disable_config_load, 'false');
  assert.equal(resolveTierConfig({ service: 's3', options: { bucket: 'b' } }).options.disable_config_load, undefined);
  const masked = describeTierConfig(s3);
  assert.equal(masked.options.secret_access_key, '***');
  assert.equal(masked.options.access_key_id, '***');
  assert.equal(masked.options.bucket, 'b');
  const bad: unknown[] = [
    null, {}, { service: 'S3!' }, { service: 'fs', nope: 1 }, { service: 'fs', options: { root: 1 } }, { service: 'fs', options: [] },
    { service: 'fs', chunkBytes: 100 }, { service: 'fs', localRetentionBytes: -2 }, { service: 'fs', backpressureBytes: 0 },
    { service: 'fs', retryAttempts: 0 }, { service: 'fs', retryBaseDelayMs: 500, retryMaxDelayMs: 100 }, { service: 'fs', verifyReadBack: 'yes' },
    { service: 'fs', autoArchive: 1 }, { service: 'fs', prefix: 7 }, { service: 'fs', multipartThresholdBytes: 1024 },
  ];
  for (const b of bad) assert.throws(() => resolveTierConfig(b as never), InvalidArgumentError, JSON.stringify(b));
});

test('OpenDAL errors: kind and retryability from the message', () => {
  assert.deepEqual(classifyOpenDalError(new Error('NotFound (permanent) at stat, context: {...}')), { kind: 'NotFound', temporary: false });
  assert.deepEqual(classifyOpenDalError(new Error('Unexpected (temporary) at read => send http request')), { kind: 'Unexpected', temporary: true });
  assert.deepEqual(classifyOpenDalError(new Error('Unexpected (persistent) at write')), { kind: 'Unexpected', temporary: true });
  assert.deepEqual(classifyOpenDalError(new Error('RateLimited (permanent) at write')), { kind: 'RateLimited', temporary: true });
  assert.deepEqual(classifyOpenDalError(new Error('something else')), { kind: 'Unexpected', temporary: false });
  assert.deepEqual(classifyOpenDalError('weird'), { kind: 'Unexpected', temporary: false });
});

test('ObjectStore: typed errors, retries bounded in attempts and time', async () => {
  const mem = new ObjectStore(resolveTierConfig({ service: 'memory', options: { root: `/units-${process.pid}` } }));
  await mem.write('a/b.bin', Buffer.from('hello world'));
  assert.equal((await mem.read('a/b.bin', { offset: 6, size: 5 })).toString(), 'world');
  assert.deepEqual(await mem.stat('a/b.bin'), { size: 11, etag: null });
  assert.equal(await mem.stat('a/none'), null);
  assert.deepEqual(await mem.list('a/'), ['a/b.bin']);
  assert.deepEqual(await mem.list('zzz/'), []);
  await assert.rejects(mem.list('a'), InvalidArgumentError);
  await assert.rejects(mem.read('a/none'), (e: unknown) => e instanceof ObjectStoreError && e.kind === 'NotFound' && e.code === 'ERR_OBJECT_STORE');
  await assert.rejects(mem.read('a/b.bin', { offset: 8, size: 10 }), ObjectStoreError);
  await mem.delete('a/none');
  await assert.rejects(mem.presignRead('a/b.bin', 60), (e: unknown) => e instanceof ObjectStoreError && e.kind === 'Unsupported');

  // Port 9 (discard) refuses connections on this machine: temporary failures until the budget runs out.
  const dead = new ObjectStore(resolveTierConfig({
    service: 's3',
    options: { bucket: 'b', endpoint: 'http://127.0.0.1:9', region: 'us-east-1', access_key_id: 'a', secret_access_key: 'b' },
    retryAttempts: 4, retryBaseDelayMs: 10, retryMaxDelayMs: 40, retryTotalMs: 5_000,
  }));
  const t0 = Date.now();
  await assert.rejects(dead.read('x'), (e: unknown) => e instanceof ObjectStoreUnavailableError && e.attempts === 4 && e.op === 'read' && e.key === 'x');
  assert.ok(Date.now() - t0 < 5_000);
  assert.equal(dead.counters.retries, 3);
  const quick = new ObjectStore(resolveTierConfig({
    service: 's3',
    options: { bucket: 'b', endpoint: 'http://127.0.0.1:9', region: 'us-east-1', access_key_id: 'a', secret_access_key: 'b' },
    retryAttempts: 100, retryBaseDelayMs: 50, retryMaxDelayMs: 50, retryTotalMs: 300,
  }));
  const t1 = Date.now();
  await assert.rejects(quick.write('x', Buffer.from('y')), (e: unknown) => e instanceof ObjectStoreUnavailableError && e.attempts < 100);
  assert.ok(Date.now() - t1 < 2_000, 'the time budget bounds the retries');
  assert.throws(() => new ObjectStore(resolveTierConfig({ service: 'no-such-service' })), ObjectStoreError);
});

test('chunk cache: bounded in bytes, least recently used out, one fetch per key, failures not kept', async () => {
  const c = new ChunkCache(100);
  let loads = 0;
  const load = (n: number) => async () => { loads++; return Buffer.alloc(n); };
  const [a, b] = await Promise.all([c.get('a', load(40)), c.get('a', load(40))]);
  assert.equal(a, b);
  assert.equal(loads, 1);
  await c.get('b', load(40));
  await c.get('a', load(40)); // a becomes most recent
  await c.get('c', load(40)); // evicts b
  assert.ok(c.has('a') && c.has('c') && !c.has('b'));
  assert.ok(c.stats().bytes <= 100);
  await c.get('huge', load(500));
  assert.ok(!c.has('huge'), 'larger than the budget: returned, not kept');
  await assert.rejects(c.get('bad', async () => { throw new Error('boom'); }), /boom/);
  assert.equal(await c.get('bad', load(1)).then((x) => x.length), 1, 'a failure is not cached');
  c.prefetch('p', load(10));
  c.prefetch('p', load(10));
  await c.get('p', load(10));
  const s = c.stats();
  assert.equal(s.evictions >= 1, true);
  c.invalidatePrefix('a');
  assert.ok(!c.has('a'));
  assert.throws(() => new ChunkCache(-1), RangeError);
});

/** Concatenated batches with offsets from base, and their record counts. */
function batches(base: number, sizes: number[]): { bytes: Uint8Array; records: number; lastOffset: number; first: number; max: number } {
  const enc = new RecordBatchEncoder(k);
  const buf = new WasmBuffer(k, 1024);
  const parts: Uint8Array[] = [];
  let off = base;
  let max = -1;
  const first = 5000 + base;
  for (const [i, n] of sizes.entries()) {
    const recs = Array.from({ length: n }, (_, j) => normalizeRecord({ key: `k${i}-${j}`, value: 'v'.repeat((i * 37 + j) % 300), timestamp: first + i * 10 + j }, j, 0));
    const size = enc.encode(recs, buf, 0);
    stampBaseOffset(k, buf.ptr, off);
    parts.push(k.u8.slice(buf.ptr, buf.ptr + size));
    max = Math.max(max, first + i * 10 + n - 1);
    off += n;
  }
  enc.free();
  buf.free();
  const bytes = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) { bytes.set(p, at); at += p.length; }
  return { bytes, records: off - base, lastOffset: off - 1, first, max };
}

test('segment checker: CRC-32C and facts at every chunking; damage and truncation found', () => {
  fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 30 }), fc.integer({ min: 1, max: 5000 }), fc.boolean(), (sizes, step, verify) => {
    const base = 1000;
    const b = batches(base, sizes);
    const c = new SegmentChecker(k, crc, { baseOffset: base, nextOffset: b.lastOffset + 1, maxBatchBytes: 1 << 20, file: 'x', verifyBatchCrcs: verify });
    try {
      for (let i = 0; i < b.bytes.length; i += step) c.update(b.bytes.subarray(i, i + step));
      const f = c.finish();
      assert.equal(f.crc32c, crc32cRef(b.bytes));
      assert.equal(f.size, b.bytes.length);
      assert.equal(f.records, b.records);
      assert.equal(f.batches, sizes.length);
      assert.equal(f.lastOffset, b.lastOffset);
      assert.equal(f.firstTimestamp, b.first);
      assert.equal(f.maxTimestamp, b.max);
    } finally { c.free(); }
  }), { numRuns: 60 });
  const b = batches(0, [5, 5, 5]);
  const o = { baseOffset: 0, nextOffset: 15, maxBatchBytes: 1 << 20, file: 'seg.log' };
  assert.throws(() => checkSegmentBytes(k, crc, b.bytes.subarray(0, b.bytes.length - 3), o), (e: unknown) => e instanceof CorruptionError && /ends inside a batch/.test(e.message));
  const damaged = b.bytes.slice();
  damaged[damaged.length - 2]! ^= 1;
  assert.throws(() => checkSegmentBytes(k, crc, damaged, o), (e: unknown) => e instanceof CorruptionError && e.reason === 'CRC-32C mismatch');
  // Without batch CRC checks the object CRC still tells the bytes apart.
  const f = checkSegmentBytes(k, crc, damaged, { ...o, verifyBatchCrcs: false });
  assert.notEqual(f.crc32c, crc32cRef(b.bytes));
  // Offsets outside the segment, or going back, are refused.
  assert.throws(() => checkSegmentBytes(k, crc, b.bytes, { ...o, nextOffset: 10 }), CorruptionError);
  assert.throws(() => checkSegmentBytes(k, crc, b.bytes, { ...o, baseOffset: 1 }), CorruptionError);
  const twice = new Uint8Array(b.bytes.length * 2);
  twice.set(b.bytes, 0);
  twice.set(b.bytes, b.bytes.length);
  assert.throws(() => checkSegmentBytes(k, crc, twice, { ...o, nextOffset: 100 }), CorruptionError);
  const empty = checkSegmentBytes(k, crc, new Uint8Array(0), o);
  assert.deepEqual([empty.size, empty.batches, empty.crc32c, empty.firstTimestamp], [0, 0, 0, -1]);
  assert.equal(emptyManifest('t', 1).version, 0);
});
