// sediment/replay under Node: archives built from a real Store, served by
// `sediment serve`'s server (real HTTP, Range) or an in-memory fetch, read
// back and compared with what the local Partition returns.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { replay, openArchive, Archive, AbortedError, OffsetOutOfRangeError, InvalidArgumentError, ObjectNotFoundError,
  RangeNotSupportedError, NetworkError, StoredRecord } from '../src/replay/index.js';
import { startServer, RunningServer } from '../src/cli/serve_commands.js';
import { getKernelsSync } from '../src/kernels.js';
import { buildArchive, makeRecords, plain, BuiltArchive, writeHandArchive, PlainRecord } from './helpers/archive_fixture.js';
import { memoryFetch, filesOf, MEM_ORIGIN, LoggedRequest } from './helpers/replay_http.js';
import { refBatch, refRecords, RefRecord } from './fixtures/reference.js';

let tmp: string;
let a: BuiltArchive; // many small segments, varied records
let big: BuiltArchive; // large records (bigger than the smallest chunk)
let srv: RunningServer;
let url: string;
let files: Map<string, Uint8Array>;
let expected: PlainRecord[];

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sediment-replay-node-'));
  a = await buildArchive({ root: path.join(tmp, 'a'), records: makeRecords(4000, 11), segmentBytes: 48 * 1024, indexIntervalBytes: 1024, prefix: 'tier' });
  const bigRecords = makeRecords(40, 12, { maxValue: 8 }).map((r, i) => ({ ...r, value: new Uint8Array(150_000 + i * 997).fill(i) }));
  big = await buildArchive({ root: path.join(tmp, 'big'), records: bigRecords, batchSize: 3, segmentBytes: 2 << 20, indexIntervalBytes: 4096 });
  srv = await startServer({ dir: path.join(tmp, 'a'), port: 0 });
  url = `${srv.url}archive/${a.manifestRel}`;
  files = filesOf(path.join(tmp, 'a'));
  expected = a.records.map(plain);
});

after(async () => {
  await srv?.close();
  for (const d of [tmp, a?.storeDir, big?.storeDir]) if (d) fs.rmSync(d, { recursive: true, force: true });
});

async function collect(it: AsyncIterable<StoredRecord>): Promise<PlainRecord[]> {
  const out: PlainRecord[] = [];
  for await (const r of it) out.push(plain(r));
  return out;
}

const memUrl = (b: BuiltArchive): string => `${MEM_ORIGIN}/${b.manifestRel}`;

/** Expected replay from a timestamp: the first record at or after it, and everything after that. */
function fromTime(recs: PlainRecord[], ts: number): PlainRecord[] {
  const i = recs.findIndex((r) => r.timestamp >= ts);
  return i < 0 ? [] : recs.slice(i);
}

test('the fixture archive has several segments with non-empty indexes', { timeout: 120_000 }, () => {
  assert.ok(a.manifest.segments.length >= 5, `${a.manifest.segments.length} segments`);
  assert.ok(a.manifest.segments.every((s) => s.objects.index.size > 0 && s.objects.timeindex.size > 0));
  assert.equal(a.records.length, 4000);
});

test('a whole replay over HTTP equals what the local partition reads', { timeout: 120_000 }, async () => {
  const r = replay(url);
  assert.deepEqual(await collect(r), expected);
  const total = a.manifest.segments.reduce((n, s) => n + s.objects.log.size, 0);
  assert.equal(r.stats.records, 4000);
  assert.equal(r.stats.bytesScanned, total);
  assert.ok(r.stats.done);
  assert.ok(r.stats.bytesReceived >= total);
  // Nothing but the manifest and the logs is needed from offset 0.
  assert.equal(r.stats.roundTripsToFirstRecord, 2);
});

test('replay from offsets: segment bases, their neighbours, random offsets, the end', { timeout: 120_000 }, async () => {
  const offsets = new Set<number>([0, 1, 3999, 4000]);
  for (const s of a.manifest.segments) { offsets.add(s.baseOffset); offsets.add(s.baseOffset + 1); if (s.baseOffset > 0) offsets.add(s.baseOffset - 1); }
  for (let i = 0; i < 12; i++) offsets.add(Math.floor((i * 4001) / 12));
  const f = memoryFetch(files);
  const archive = await openArchive(memUrl(a), { fetch: f });
  for (const off of offsets) {
    const got = await collect(archive.records({ from: { offset: off } }));
    assert.deepEqual(got, expected.slice(off), `from offset ${off}`);
  }
});

test('round trips to the first record: manifest, index, one range', { timeout: 120_000 }, async () => {
  const mid = a.manifest.segments[3]!;
  const r1 = replay(url, { from: { offset: mid.baseOffset + 37 } });
  await r1.next();
  assert.equal(r1.stats.roundTripsToFirstRecord, 3);
  await r1.return();
  const r2 = replay(url, { from: { offset: mid.baseOffset } });
  await r2.next();
  assert.equal(r2.stats.roundTripsToFirstRecord, 2, 'a segment base needs no index');
  await r2.return();
  const r3 = replay(url, { from: { timestamp: a.records[2500]!.timestamp } });
  await r3.next();
  assert.equal(r3.stats.roundTripsToFirstRecord, 3, 'time and offset index are fetched together');
  assert.ok(r3.stats.firstRecordMs >= 0 && r3.stats.requestsToFirstRecord >= 3);
  await r3.return();
});

test('replay from timestamps matches the first record at or after the time', { timeout: 120_000 }, async () => {
  const f = memoryFetch(files);
  const archive = await openArchive(memUrl(a), { fetch: f });
  const ts = [expected[0]!.timestamp - 1000, expected[0]!.timestamp, Math.max(...expected.map((r) => r.timestamp)) + 1];
  for (let i = 0; i < 15; i++) ts.push(expected[Math.floor((i * 3999) / 14)]!.timestamp + (i % 3) - 1);
  for (const t of ts) {
    const got = await collect(archive.records({ from: { timestamp: t } }));
    const want = fromTime(expected, t);
    assert.equal(got.length, want.length, `from time ${t}`);
    assert.deepEqual(got, want, `from time ${t}`);
    const off = await archive.offsetForTimestamp(t);
    assert.equal(off, want.length > 0 ? want[0]!.offset : null);
  }
});

test('endOffset and maxRecords stop the replay (and stop fetching)', { timeout: 120_000 }, async () => {
  const log: LoggedRequest[] = [];
  const archive = await openArchive(memUrl(a), { fetch: memoryFetch(files, { log }) });
  assert.deepEqual(await collect(archive.records({ from: { offset: 100 }, endOffset: 250 })), expected.slice(100, 250));
  assert.deepEqual(await collect(archive.records({ from: { offset: 100 }, maxRecords: 7 })), expected.slice(100, 107));
  assert.deepEqual(await collect(archive.records({ from: { offset: 100 }, endOffset: 100 })), []);
  log.length = 0;
  const seg0 = a.manifest.segments[0]!;
  await collect(archive.records({ from: { offset: 0 }, endOffset: seg0.nextOffset, prefetch: 4 }));
  assert.ok(log.every((r) => r.path.includes(seg0.objects.log.key.slice(0, 20))), 'only the first segment is fetched');
});

test('memory stays bounded: ranges no larger than chunkBytes, no whole-log GET, a late start fetches little', { timeout: 120_000 }, async () => {
  const log: LoggedRequest[] = [];
  const f = memoryFetch(files, { log });
  const chunk = 64 * 1024;
  const last = a.manifest.segments[a.manifest.segments.length - 1]!;
  const r = replay(memUrl(a), { fetch: f, chunkBytes: chunk, firstChunkBytes: 16 * 1024, from: { offset: last.lastOffset - 5 } });
  assert.deepEqual(await collect(r), expected.slice(last.lastOffset - 5));
  const logReqs = log.filter((q) => q.path.endsWith('.log'));
  assert.ok(logReqs.length > 0);
  for (const q of logReqs) {
    assert.ok(q.range, 'every .log request has a Range');
    const [s, e] = q.range!.slice(6).split('-').map(Number);
    assert.ok(e! - s! + 1 <= chunk, `range ${q.range} is within chunkBytes`);
  }
  const total = a.manifest.segments.reduce((n, s) => n + s.objects.log.size, 0);
  assert.ok(r.stats.bytesReceived < total / 4, `read ${r.stats.bytesReceived} of ${total} bytes`);
});

test('batches larger than a range are assembled across ranges', { timeout: 120_000 }, async () => {
  const bigFiles = filesOf(big.root);
  const want = big.records.map(plain);
  for (const [chunkBytes, prefetch] of [[64 * 1024, 0], [64 * 1024, 3], [1 << 20, 1]] as const) {
    const got = await collect(replay(memUrl(big), { fetch: memoryFetch(bigFiles), chunkBytes, prefetch, firstChunkBytes: 4096 }));
    assert.deepEqual(got, want, `chunk ${chunkBytes} prefetch ${prefetch}`);
  }
  // From the middle of a multi-record batch.
  const got = await collect(replay(memUrl(big), { fetch: memoryFetch(bigFiles), chunkBytes: 64 * 1024, from: { offset: 19 } }));
  assert.deepEqual(got, want.slice(19));
});

test('property: any chunking, prefetch and start give the same records', { timeout: 120_000 }, async () => {
  const f = memoryFetch(files);
  const archive = await openArchive(memUrl(a), { fetch: f, kernels: getKernelsSync() });
  await fc.assert(fc.asyncProperty(
    fc.integer({ min: 64 * 1024, max: 512 * 1024 }), fc.integer({ min: 4096, max: 256 * 1024 }), fc.integer({ min: 0, max: 5 }),
    fc.integer({ min: 0, max: 4000 }), fc.option(fc.integer({ min: 1, max: 600 }), { nil: undefined }),
    async (chunkBytes, firstChunkBytes, prefetch, from, maxRecords) => {
      const got = await collect(archive.records({ chunkBytes, firstChunkBytes, prefetch, from: { offset: from }, maxRecords }));
      const want = expected.slice(from, maxRecords === undefined ? undefined : from + maxRecords);
      assert.deepEqual(got, want);
    }), { numRuns: 40 });
});

test('a server that ignores Range: one sequential GET per object under maxWholeBodyBytes, a typed error over it', { timeout: 120_000 }, async () => {
  const log: LoggedRequest[] = [];
  const f = memoryFetch(files, { ignoreRange: true, log });
  const got = await collect(replay(memUrl(a), { fetch: f, chunkBytes: 64 * 1024, firstChunkBytes: 8192, from: { offset: 10 } }));
  assert.deepEqual(got, expected.slice(10));
  const logGets = log.filter((q) => q.path.endsWith('.log'));
  assert.equal(logGets.length, a.manifest.segments.length, 'each log is streamed once, not once per range');
  const biggest = Math.max(...a.manifest.segments.map((s) => s.objects.log.size));
  await assert.rejects(collect(replay(memUrl(a), { fetch: f, maxWholeBodyBytes: biggest - 1 })), (e: unknown) => {
    assert.ok(e instanceof RangeNotSupportedError, String(e));
    assert.equal(e.code, 'ERR_RANGE_NOT_SUPPORTED');
    return true;
  });
});

test('explicit object URLs (presigned style): a map or a function; a missing key is a typed error', { timeout: 120_000 }, async () => {
  const dir = a.manifestRel.slice(0, a.manifestRel.lastIndexOf('/') + 1);
  const signed = (key: string): string => `${MEM_ORIGIN}/${dir}${key}?X-Amz-Signature=secret`;
  const map: Record<string, string> = {};
  for (const s of a.manifest.segments) for (const o of Object.values(s.objects)) map[o.key] = signed(o.key);
  const f = memoryFetch(files);
  assert.deepEqual(await collect(replay({ manifest: `${memUrl(a)}?X-Amz-Signature=m`, objects: map }, { fetch: f, from: { offset: 1500 } })), expected.slice(1500));
  assert.deepEqual(await collect(replay({ manifest: memUrl(a), objects: async (k) => signed(k) }, { fetch: f, from: { offset: 3000 } })), expected.slice(3000));
  const partial = { ...map };
  delete partial[a.manifest.segments[2]!.objects.log.key];
  await assert.rejects(collect(replay({ manifest: memUrl(a), objects: partial }, { fetch: f })), (e: unknown) => {
    assert.ok(e instanceof ObjectNotFoundError);
    assert.ok(!e.message.includes('secret'), 'presigned query strings are not put in messages');
    return true;
  });
});

test('offsets outside the archive and bad arguments are typed errors', { timeout: 120_000 }, async () => {
  const archive = await openArchive(memUrl(a), { fetch: memoryFetch(files) });
  await assert.rejects(collect(archive.records({ from: { offset: 4001 } })), OffsetOutOfRangeError);
  await assert.rejects(collect(archive.records({ from: { offset: -1 } })), InvalidArgumentError);
  await assert.rejects(collect(archive.records({ from: { offset: 1.5 } })), InvalidArgumentError);
  await assert.rejects(collect(archive.records({ from: { timestamp: Number.NaN } })), InvalidArgumentError);
  await assert.rejects(collect(archive.records({ chunkBytes: 10 })), InvalidArgumentError);
  await assert.rejects(collect(archive.records({ prefetch: -1 })), InvalidArgumentError);
  await assert.rejects(collect(archive.records({ from: {} as never })), InvalidArgumentError);
  await assert.rejects(openArchive('ftp://x/manifest.json'), InvalidArgumentError);
  await assert.rejects(openArchive('not a url'), InvalidArgumentError);
});

test('logStartOffset: earlier offsets are out of range, the default start is logStartOffset', { timeout: 120_000 }, async () => {
  const root = path.join(tmp, 'lso');
  const b = await buildArchive({ root, records: makeRecords(600, 5), segmentBytes: 16 * 1024, logStartOffset: 250 });
  try {
    const f = memoryFetch(filesOf(root));
    const want = b.records.map(plain);
    assert.equal(want[0]!.offset, 250);
    assert.deepEqual(await collect(replay(memUrl(b), { fetch: f })), want);
    await assert.rejects(collect(replay(memUrl(b), { fetch: f, from: { offset: 249 } })), OffsetOutOfRangeError);
    assert.deepEqual(await collect(replay(memUrl(b), { fetch: f, from: { timestamp: 0 } })), want);
  } finally { fs.rmSync(b.storeDir, { recursive: true, force: true }); }
});

function gzipArchive(root: string): { manifestRel: string; want: PlainRecord[]; raw: Uint8Array[] } {
  const enc = new TextEncoder();
  const batches: Uint8Array[] = [];
  const want: PlainRecord[] = [];
  let offset = 0;
  const t0 = 1_700_000_000_000n;
  for (let b = 0; b < 6; b++) {
    const recs: RefRecord[] = [];
    const n = 3 + b;
    for (let i = 0; i < n; i++) {
      const value = enc.encode(`gzip batch ${b} record ${i} `.repeat(20));
      recs.push({ timestampDelta: BigInt(i * 10), offsetDelta: i, key: i % 2 ? enc.encode(`k${i}`) : null, value, headers: [{ key: enc.encode('b'), value: enc.encode(String(b)) }] });
      want.push(plain({ offset: offset + i, timestamp: Number(t0) + b * 1000 + i * 10, key: i % 2 ? enc.encode(`k${i}`) : null, value, headers: [{ key: 'b', value: enc.encode(String(b)) }] }));
    }
    const section = refRecords(recs);
    const gz = b % 2 === 0;
    batches.push(refBatch({
      baseOffset: BigInt(offset), attributes: gz ? 1 : 0, lastOffsetDelta: n - 1, baseTimestamp: t0 + BigInt(b * 1000),
      maxTimestamp: t0 + BigInt(b * 1000 + (n - 1) * 10), recordCount: n,
    }, gz ? new Uint8Array(gzipSync(section)) : section));
    offset += n;
  }
  const h = writeHandArchive(root, batches, { lastOffset: offset - 1, firstTimestamp: Number(t0), maxTimestamp: Number(t0) + 5000 + 70 });
  return { manifestRel: h.manifestRel, want, raw: batches };
}

test('gzip batches (codec 1) are inflated and decoded, mixed with plain ones', { timeout: 120_000 }, async () => {
  const root = path.join(tmp, 'gz');
  const g = gzipArchive(root);
  const f = memoryFetch(filesOf(root));
  assert.deepEqual(await collect(replay(`${MEM_ORIGIN}/${g.manifestRel}`, { fetch: f })), g.want);
  assert.deepEqual(await collect(replay(`${MEM_ORIGIN}/${g.manifestRel}`, { fetch: f, from: { offset: 5 } })), g.want.slice(5));
  assert.deepEqual(await collect(replay(`${MEM_ORIGIN}/${g.manifestRel}`, { fetch: f, from: { timestamp: 1_700_000_002_005 } })),
    fromTime(g.want, 1_700_000_002_005));
});

test('control batches are skipped', { timeout: 120_000 }, async () => {
  const root = path.join(tmp, 'ctl');
  const enc = new TextEncoder();
  const data = refBatch({ baseOffset: 0n, lastOffsetDelta: 1, baseTimestamp: 5n, maxTimestamp: 6n, recordCount: 2 },
    refRecords([0, 1].map((i) => ({ timestampDelta: BigInt(i), offsetDelta: i, key: null, value: enc.encode(`v${i}`), headers: [] }))));
  // A transaction marker: control bit (0x20) + transactional (0x10), one record.
  const marker = refBatch({ baseOffset: 2n, attributes: 0x30, lastOffsetDelta: 0, baseTimestamp: 7n, maxTimestamp: 7n, recordCount: 1 },
    refRecords([{ timestampDelta: 0n, offsetDelta: 0, key: new Uint8Array([0, 0, 0, 1]), value: new Uint8Array([0, 0, 0, 0, 0, 0]), headers: [] }]));
  const after = refBatch({ baseOffset: 3n, lastOffsetDelta: 0, baseTimestamp: 8n, maxTimestamp: 8n, recordCount: 1 },
    refRecords([{ timestampDelta: 0n, offsetDelta: 0, key: null, value: enc.encode('v3'), headers: [] }]));
  const h = writeHandArchive(root, [data, marker, after], { lastOffset: 3, firstTimestamp: 5, maxTimestamp: 8 });
  const got = await collect(replay(`${MEM_ORIGIN}/${h.manifestRel}`, { fetch: memoryFetch(filesOf(root)) }));
  assert.deepEqual(got.map((r) => r.offset), [0, 1, 3]);
});

test('breaking out of the loop cancels the replay; abort signals give AbortedError', { timeout: 120_000 }, async () => {
  const log: LoggedRequest[] = [];
  const f = memoryFetch(files, { log });
  const r = replay(memUrl(a), { fetch: f, chunkBytes: 64 * 1024, firstChunkBytes: 4096, prefetch: 1 });
  let n = 0;
  for await (const _ of r) { if (++n === 5) break; }
  assert.ok(r.stats.done);
  const sent = log.length;
  await new Promise((res) => setTimeout(res, 20));
  assert.equal(log.length, sent, 'no request after the loop ended');
  assert.deepEqual(await r.next(), { done: true, value: undefined });

  const ctrl = new AbortController();
  const r2 = replay(memUrl(a), { fetch: f, signal: ctrl.signal, chunkBytes: 64 * 1024 });
  await assert.rejects((async () => { for await (const _ of r2) { ctrl.abort(new Error('user stop')); } })(), (e: unknown) => {
    assert.ok(e instanceof AbortedError, String(e));
    assert.equal(e.code, 'ERR_ABORTED');
    return true;
  });
  const pre = new AbortController();
  pre.abort();
  await assert.rejects(collect(replay(memUrl(a), { fetch: f, signal: pre.signal })), AbortedError);
});

test('repeated replays do not grow wasm memory (buffers are freed)', { timeout: 120_000 }, async () => {
  const k = getKernelsSync();
  const archive = await Archive.open(memUrl(a), { fetch: memoryFetch(files), kernels: k });
  for (let i = 0; i < 3; i++) await collect(archive.records({ from: { offset: i * 100 } }));
  const base = k.memoryBytes;
  for (let i = 0; i < 25; i++) {
    const r = archive.records({ from: { offset: (i * 157) % 4000 } });
    let n = 0;
    for await (const _ of r) if (++n > (i % 4) * 300) break;
  }
  assert.equal(k.memoryBytes, base);
});

test('chunks() yields arrays of records, in order', { timeout: 120_000 }, async () => {
  const r = replay(memUrl(a), { fetch: memoryFetch(files), from: { offset: 42 } });
  const all: PlainRecord[] = [];
  let chunks = 0;
  for await (const c of r.chunks()) { assert.ok(c.length > 0); chunks++; for (const x of c) all.push(plain(x)); }
  assert.deepEqual(all, expected.slice(42));
  assert.ok(chunks > 1);
});

test('a server without Range: a paused consumer does not time out; a body that breaks is requested again (retries)', { timeout: 120_000 }, async () => {
  // Pauses longer than requestTimeoutMs between reads of one kept-open body.
  const paused = replay(memUrl(a), { fetch: memoryFetch(files, { ignoreRange: true }), requestTimeoutMs: 150, prefetch: 0, firstChunkBytes: 4096, chunkBytes: 65536 });
  const got: PlainRecord[] = [];
  let first = true;
  for await (const c of paused.chunks()) {
    for (const r of c) got.push(plain(r));
    if (first) { first = false; await new Promise((res) => setTimeout(res, 300)); }
  }
  assert.deepEqual(got, expected);
  // The first GET of each log breaks after 20 KiB: the body is requested again and read on.
  const log: LoggedRequest[] = [];
  const gets = new Map<string, number>();
  const breaking = memoryFetch(files, {
    ignoreRange: true, log,
    tamper: async (req, res) => {
      if (!req.path.endsWith('.log')) return res;
      gets.set(req.path, (gets.get(req.path) ?? 0) + 1);
      if (gets.get(req.path)! > 1) return res;
      const bytes = new Uint8Array(await res.arrayBuffer());
      let sent = false;
      return new Response(new ReadableStream<Uint8Array>({
        pull(c) { if (!sent) { sent = true; c.enqueue(bytes.slice(0, 20 * 1024)); } else c.error(new TypeError('terminated')); },
      }), { status: 200, headers: res.headers });
    },
  });
  assert.deepEqual(await collect(replay(memUrl(a), { fetch: breaking, prefetch: 0, firstChunkBytes: 4096, chunkBytes: 65536, retries: 1, retryDelayMs: 1 })), expected);
  for (const s of a.manifest.segments) {
    const gets = log.filter((q) => q.path.endsWith(s.objects.log.key)).length;
    assert.equal(gets, 2, `${s.objects.log.key}: one GET, then one more after the break`);
  }
  // Without retries the break is a NetworkError.
  gets.clear();
  await assert.rejects(collect(replay(memUrl(a), { fetch: breaking, prefetch: 0, retries: 0 })), (e: unknown) => e instanceof NetworkError);
});
