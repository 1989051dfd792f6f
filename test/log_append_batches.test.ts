// Partition.appendBatches / appendBatchesSync: the Kafka produce path. Framed
// RecordBatch v2 bytes are validated, stamped with offsets and written as
// they are. Round trips (property test, across calls and segment rolls),
// batches from an independent field-by-field encoder (Kafka-style producer
// fields kept byte for byte), every single-byte corruption and every
// truncation refused with nothing written, all-or-nothing calls, codecs,
// max.message.bytes, crash after flush, index rebuild, dedup topics.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { Store } from '../src/store.js';
import { Partition, BatchesAppendResult } from '../src/partition.js';
import { MAX_APPEND_BATCHES_BYTES } from '../src/batch_ingest.js';
import { RecordBatchEncoder, CODEC_GZIP, ATTR_TRANSACTIONAL, ATTR_CONTROL, ATTR_LOG_APPEND_TIME } from '../src/record_batch.js';
import { RecordInput, StoredRecord, NormalizedRecord, normalizeRecord } from '../src/record.js';
import { getKernelsSync, WasmBuffer } from '../src/kernels.js';
import { SedimentError, CorruptionError, InvalidArgumentError, RecordTooLargeError, UnsupportedCodecError, ClosedError } from '../src/errors.js';
import { CLEAN_SHUTDOWN_FILE } from '../src/partition.js';
import { FaultyStorage } from './helpers/faulty_storage.js';
import { tmpDir, cleanupTmp, openPartition, partitionDir, readAll, segmentBases, segPath, readUntilError } from './helpers/log_util.js';
import { refBatch, refRecords, refFixCrc, RefRecord } from './fixtures/reference.js';
import { Readable } from 'node:stream';
import { main } from '../src/cli/main.js';

after(cleanupTmp);

const k = getKernelsSync();
const enc = new RecordBatchEncoder(k);
const encBuf = new WasmBuffer(k, 1 << 16);
const te = new TextEncoder();
const b = (s: string): Uint8Array => te.encode(s);

/** One batch framed by RecordBatchEncoder (base offset 0), copied out of wasm memory. */
function frame(records: readonly RecordInput[]): Uint8Array {
  const norm = records.map((r, i) => normalizeRecord(r, i, 0));
  const size = enc.encode(norm, encBuf, 0);
  return k.u8.slice(encBuf.ptr, encBuf.ptr + size);
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

/** What a record should read back as (headers as the reader returns them). */
function expected(r: RecordInput, offset: number): StoredRecord {
  const n = normalizeRecord(r, 0, 0);
  return {
    offset,
    timestamp: n.timestamp,
    key: n.key,
    value: n.value,
    headers: n.headerKeys.map((hk, j) => ({ key: new TextDecoder().decode(hk), value: n.headerValues[j]! })),
  };
}

function plain(r: StoredRecord): unknown {
  return {
    offset: r.offset, timestamp: r.timestamp,
    key: r.key ? Array.from(r.key) : null, value: r.value ? Array.from(r.value) : null,
    headers: r.headers.map((h) => [h.key, h.value ? Array.from(h.value) : null]),
  };
}

function assertSameRecords(actual: StoredRecord[], want: StoredRecord[], label = ''): void {
  assert.equal(actual.length, want.length, `${label}: record count`);
  assert.deepEqual(actual.map(plain), want.map(plain), label);
}

/** Bytes of the partition's .log files, in order. */
function logBytes(p: Partition): Uint8Array {
  return concat(segmentBases(p.dir).map((base) => fs.readFileSync(segPath(p.dir, base, '.log'))));
}

/** The input batches with base offsets stamped as the partition should have (starting at `first`, contiguous). */
function stamped(batches: readonly Uint8Array[], first: number): Uint8Array {
  let next = first;
  return concat(batches.map((x) => {
    const c = new Uint8Array(x); // a copy (Buffer.slice would be a view)
    const dv = new DataView(c.buffer);
    dv.setBigInt64(0, BigInt(next));
    next += dv.getInt32(57);
    return c;
  }));
}

/** State that must not change when a call is refused. */
function snapshot(p: Partition): { end: number; size: number; segments: number; log: string } {
  return { end: p.logEndOffset, size: p.sizeBytes, segments: p.segments.length, log: Buffer.from(logBytes(p)).toString('hex') };
}

function isTyped(err: unknown): boolean {
  return err instanceof SedimentError && !(err instanceof ClosedError);
}

// --- generators -----------------------------------------------------------------

const bytesArb = (max: number) => fc.uint8Array({ maxLength: max });
const recordArb: fc.Arbitrary<RecordInput> = fc.record({
  key: fc.option(bytesArb(24), { nil: null }),
  value: fc.option(bytesArb(300), { nil: null }),
  timestamp: fc.integer({ min: 0, max: 2 ** 42 }),
  headers: fc.array(fc.tuple(fc.string({ maxLength: 6 }), fc.option(bytesArb(10), { nil: null })), { maxLength: 3 }),
}).map(({ key, value, timestamp, headers }) => ({ key, value, timestamp, headers: headers.map(([hk, hv]) => ({ key: hk, value: hv })) }));
const batchArb = fc.array(recordArb, { minLength: 1, maxLength: 12 });

// --- round trips ------------------------------------------------------------------

test('round trip: random batches read back equal, offsets contiguous across calls and segment rolls, bytes stored as sent', async () => {
  await fc.assert(fc.asyncProperty(fc.array(fc.array(batchArb, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 6 }), async (calls) => {
    const dir = tmpDir();
    const { store, p } = await openPartition(dir, { segmentBytes: 4096, indexIntervalBytes: 256 });
    try {
      const want: StoredRecord[] = [];
      const sent: Uint8Array[] = [];
      for (const call of calls) {
        const batches = call.map(frame);
        const input = concat(batches);
        const copy = input.slice();
        const before = p.logEndOffset;
        const r = p.appendBatchesSync(input);
        assert.deepEqual(input, copy, 'the caller\'s bytes are never modified');
        const n = call.reduce((s, x) => s + x.length, 0);
        assert.equal(r.baseOffset, before);
        assert.equal(r.count, n);
        assert.equal(r.lastOffset, before + n - 1);
        assert.equal(r.dropped, 0);
        assert.equal(r.batches.length, call.length);
        let next = before;
        call.forEach((recs, i) => {
          assert.deepEqual(r.batches[i], { baseOffset: next, lastOffset: next + recs.length - 1, count: recs.length });
          for (const rec of recs) want.push(expected(rec, next++));
        });
        sent.push(...batches);
        assert.equal(p.logEndOffset, next);
      }
      assertSameRecords(await readAll(p, { offset: 0 }), want, 'read back');
      // Written as sent: the log is the input with base offsets stamped.
      assert.deepEqual(logBytes(p), stamped(sent, 0));
      // Every offset is found through the indexes.
      for (let o = 0; o < want.length; o += 3) {
        const one = await readAll(p, { offset: o }, { maxRecords: 1 });
        assert.deepEqual(one.map(plain), [plain(want[o]!)], `offset ${o}`);
      }
    } finally {
      await store.close();
    }
  }), { numRuns: 25 });
});

test('many batches in one call (more than the scanner\'s row table), rolling segments mid-call', async () => {
  const dir = tmpDir();
  const { store, p } = await openPartition(dir, { segmentBytes: 64 * 1024 });
  try {
    const batches: Uint8Array[] = [];
    const want: StoredRecord[] = [];
    for (let i = 0; i < 2500; i++) {
      const recs = Array.from({ length: 1 + (i % 3) }, (_, j) => ({ key: `k${i}-${j}`, value: `v${i}-${j}`, timestamp: 1_000 + i }));
      batches.push(frame(recs));
      for (const r of recs) want.push(expected(r, want.length));
    }
    const r = p.appendBatchesSync(concat(batches));
    assert.equal(r.count, want.length);
    assert.equal(r.batches.length, 2500);
    assert.ok(p.segments.length > 2, `${p.segments.length} segments`);
    assertSameRecords(await readAll(p, { offset: 0 }), want);
    assert.deepEqual(logBytes(p), stamped(batches, 0));
  } finally {
    await store.close();
  }
});

test('appendBatches and appendSync interleave on one partition with contiguous offsets', async () => {
  const dir = tmpDir();
  const { store, p } = await openPartition(dir, { segmentBytes: 2048 });
  try {
    const want: StoredRecord[] = [];
    for (let i = 0; i < 40; i++) {
      const recs = [{ key: `a${i}`, value: `x`.repeat(i * 5), timestamp: 5_000 + i }, { key: null, value: `y${i}`, timestamp: 4_000 + i }];
      const r = i % 2 === 0 ? p.appendBatchesSync(frame(recs)) : p.appendSync(recs);
      assert.equal(r.baseOffset, want.length);
      for (const x of recs) want.push(expected(x, want.length));
    }
    assertSameRecords(await readAll(p, { offset: 0 }), want);
    assert.ok(p.segments.length > 1);
    // lastBatchLayout describes appendSync batches only.
    p.appendBatchesSync(frame([{ key: 'z', value: 'z', timestamp: 1 }]));
    assert.equal(p.lastBatchLayout(), null);
  } finally {
    await store.close();
  }
});

test('batches from an independent encoder with Kafka producer fields: stored byte for byte (offsets stamped), read back, timestamps looked up', async () => {
  // Written field by field from the protocol docs (test/fixtures/reference.ts), as a Kafka
  // idempotent producer frames them: producer id, epoch and sequence set; base offset and
  // leader epoch are whatever the sender put there (the broker overwrites the offset).
  const recsA: RefRecord[] = [
    { timestampDelta: 0n, offsetDelta: 0, key: b('user-1'), value: b('{"a":1}'), headers: [{ key: b('trace'), value: b('abc') }] },
    { timestampDelta: 7n, offsetDelta: 1, key: null, value: b('second'), headers: [] },
    { timestampDelta: -3n, offsetDelta: 2, key: b(''), value: null, headers: [{ key: b('h'), value: null }, { key: b('h2'), value: new Uint8Array(300).fill(9) }] },
  ];
  const a = refBatch({ baseOffset: 4242n, partitionLeaderEpoch: 7, lastOffsetDelta: 2, baseTimestamp: 1_700_000_000_000n, maxTimestamp: 1_700_000_000_007n,
    producerId: 9001n, producerEpoch: 3, baseSequence: 17, recordCount: 3 }, refRecords(recsA));
  const recsB: RefRecord[] = Array.from({ length: 200 }, (_, i) => ({ timestampDelta: BigInt(i * 1000), offsetDelta: i, key: b(`k${i}`), value: new Uint8Array(i), headers: [] }));
  const bb = refBatch({ lastOffsetDelta: 199, baseTimestamp: 1_700_000_100_000n, maxTimestamp: 1_700_000_100_000n + 199_000n,
    producerId: 9001n, producerEpoch: 3, baseSequence: 20, recordCount: 200 }, refRecords(recsB));
  const dir = tmpDir();
  const { store, p } = await openPartition(dir, { indexIntervalBytes: 64 });
  try {
    p.appendSync([{ key: 'first', value: 'x', timestamp: 1 }]);
    const r = p.appendBatchesSync(concat([a, bb]));
    assert.deepEqual(r.batches, [{ baseOffset: 1, lastOffset: 3, count: 3 }, { baseOffset: 4, lastOffset: 203, count: 200 }]);
    const log = logBytes(p);
    const tail = log.subarray(log.length - a.length - bb.length);
    assert.deepEqual(tail, stamped([a, bb], 1), 'producer id, epoch, sequence, leader epoch and CRC kept; only the base offset changed');
    const got = await readAll(p, { offset: 1 });
    assert.equal(got.length, 203);
    assert.deepEqual(plain(got[0]!), plain({ offset: 1, timestamp: 1_700_000_000_000, key: b('user-1'), value: b('{"a":1}'), headers: [{ key: 'trace', value: b('abc') }] }));
    assert.deepEqual(plain(got[2]!), plain({ offset: 3, timestamp: 1_699_999_999_997, key: new Uint8Array(0), value: null,
      headers: [{ key: 'h', value: null }, { key: 'h2', value: new Uint8Array(300).fill(9) }] }));
    for (let i = 0; i < 200; i++) assert.equal(got[3 + i]!.timestamp, 1_700_000_100_000 + i * 1000);
    assert.equal(await p.offsetForTimestamp(1_700_000_100_000 + 150_500), 4 + 151);
  } finally {
    await store.close();
  }
});

// --- corruption and truncation -------------------------------------------------------

test('every single-byte corruption of a batch is refused with nothing written (except the base offset and leader epoch, which are not covered)', async () => {
  const dir = tmpDir();
  const { store, p } = await openPartition(dir);
  try {
    p.appendSync([{ key: 'before', value: 'x', timestamp: 10 }]);
    const good = frame([{ key: 'k1', value: 'value one', timestamp: 1000, headers: { h: 'v' } }, { key: null, value: 'value two', timestamp: 1002 }]);
    const prefix = frame([{ key: 'ok', value: 'valid batch before the bad one', timestamp: 999 }]);
    for (let i = 0; i < good.length; i++) {
      for (const mask of [0x01, 0x80, 0xff]) {
        const bad = good.slice();
        bad[i] ^= mask;
        for (const input of [bad, concat([prefix, bad])]) {
          const before = snapshot(p);
          let err: unknown = null;
          try { p.appendBatchesSync(input); } catch (e) { err = e; }
          const uncovered = i < 8 || (i >= 12 && i < 16);
          if (uncovered) {
            assert.equal(err, null, `byte ${i} ^ ${mask}: outside the CRC and overwritten or kept, so accepted`);
            continue;
          }
          assert.ok(isTyped(err), `byte ${i} ^ ${mask}: refused with a typed error (${String(err)})`);
          assert.deepEqual(snapshot(p), before, `byte ${i} ^ ${mask}: nothing written`);
        }
      }
    }
    // The partition is still fine afterwards.
    const r = p.appendBatchesSync(good);
    assert.equal(r.baseOffset, p.logEndOffset - 2);
    const all = await readAll(p, { offset: 0 });
    assert.equal(all.length, p.logEndOffset);
    assert.deepEqual(all.slice(-2).map((x) => [x.offset, new TextDecoder().decode(x.value!)]), [[r.baseOffset, 'value one'], [r.baseOffset + 1, 'value two']]);
  } finally {
    await store.close();
  }
});

test('every truncation, and trailing bytes after valid batches, are refused with nothing written', async () => {
  const dir = tmpDir();
  const { store, p } = await openPartition(dir);
  try {
    const one = frame([{ key: 'a', value: 'first', timestamp: 5 }]);
    const two = frame([{ key: 'b', value: 'second record, somewhat longer', timestamp: 6 }, { key: 'c', value: 'third', timestamp: 7 }]);
    const both = concat([one, two]);
    for (let len = 1; len < both.length; len++) {
      if (len === one.length) continue; // a whole batch: valid
      const before = snapshot(p);
      assert.throws(() => p.appendBatchesSync(both.subarray(0, len)), CorruptionError, `cut at ${len}`);
      assert.deepEqual(snapshot(p), before, `cut at ${len}: nothing written`);
    }
    for (const junk of [new Uint8Array(1), new Uint8Array(11).fill(7), new Uint8Array(12), new Uint8Array(70).fill(0xff)]) {
      const before = snapshot(p);
      assert.throws(() => p.appendBatchesSync(concat([both, junk])), CorruptionError, `${junk.length} trailing bytes`);
      assert.deepEqual(snapshot(p), before);
    }
    assert.equal(p.logEndOffset, 0);
    assert.equal(p.appendBatchesSync(both).count, 3);
  } finally {
    await store.close();
  }
});

test('a call mixing valid and invalid batches writes nothing; the error says where', async () => {
  const dir = tmpDir();
  const { store, p } = await openPartition(dir, { segmentBytes: 1024 });
  try {
    p.appendSync([{ key: 'x', value: 'y', timestamp: 1 }]);
    const valid = Array.from({ length: 6 }, (_, i) => frame([{ key: `k${i}`, value: 'v'.repeat(200), timestamp: 100 + i }]));
    const bad = valid[3]!.slice();
    bad[bad.length - 1] ^= 0x10;
    const input = concat([valid[0]!, valid[1]!, valid[2]!, bad, valid[4]!, valid[5]!]);
    const before = snapshot(p);
    const err = (() => { try { p.appendBatchesSync(input); } catch (e) { return e; } return null; })();
    assert.ok(err instanceof CorruptionError, String(err));
    assert.equal(err.position, valid[0]!.length * 3, 'the position of the bad batch in the input');
    assert.match(err.message, /CRC/);
    assert.deepEqual(snapshot(p), before, 'nothing written, no segment rolled');
    // Header consistent but records malformed (CRC recomputed): refused by the record checks, also nothing written.
    const malformed = valid[2]!.slice();
    malformed[61] = 0x7f; // first record's length varint
    refFixCrc(malformed);
    assert.throws(() => p.appendBatchesSync(concat([valid[0]!, malformed])), CorruptionError);
    assert.deepEqual(snapshot(p), before);
    const r = p.appendBatchesSync(concat(valid));
    assert.equal(r.baseOffset, 1);
    assert.equal(r.count, 6);
  } finally {
    await store.close();
  }
});

test('header/record inconsistencies with a valid CRC are refused (typed), nothing written', async () => {
  const dir = tmpDir();
  const { store, p } = await openPartition(dir);
  const rec = (i: number, tsDelta = BigInt(i)): RefRecord => ({ timestampDelta: tsDelta, offsetDelta: i, key: b(`k${i}`), value: b(`v${i}`), headers: [] });
  const cases: [string, Uint8Array, new (...a: never[]) => Error][] = [
    ['lastOffsetDelta > count - 1 (a gap)', refBatch({ lastOffsetDelta: 3, baseTimestamp: 100n, maxTimestamp: 101n, recordCount: 2 }, refRecords([rec(0), rec(1)])), CorruptionError],
    ['offset deltas not 0..n-1', refBatch({ lastOffsetDelta: 1, baseTimestamp: 100n, maxTimestamp: 101n, recordCount: 2 },
      refRecords([rec(0), { ...rec(1), offsetDelta: 0 }])), CorruptionError],
    ['record count above the records present', refBatch({ lastOffsetDelta: 2, baseTimestamp: 100n, maxTimestamp: 101n, recordCount: 3 }, refRecords([rec(0), rec(1)])), CorruptionError],
    ['record count below the records present', refBatch({ lastOffsetDelta: 0, baseTimestamp: 100n, maxTimestamp: 101n, recordCount: 1 }, refRecords([rec(0), rec(1)])), CorruptionError],
    ['maxTimestamp below a record\'s', refBatch({ lastOffsetDelta: 1, baseTimestamp: 100n, maxTimestamp: 100n, recordCount: 2 }, refRecords([rec(0), rec(1)])), CorruptionError],
    ['maxTimestamp above every record\'s', refBatch({ lastOffsetDelta: 1, baseTimestamp: 100n, maxTimestamp: 500n, recordCount: 2 }, refRecords([rec(0), rec(1)])), CorruptionError],
    ['negative first timestamp', refBatch({ lastOffsetDelta: 1, baseTimestamp: -1n, maxTimestamp: 0n, recordCount: 2 }, refRecords([rec(0), rec(1)])), InvalidArgumentError],
    ['a record timestamp below 0', refBatch({ lastOffsetDelta: 1, baseTimestamp: 5n, maxTimestamp: 5n, recordCount: 2 }, refRecords([rec(0, 0n), rec(1, -6n)])), InvalidArgumentError],
    ['empty batch', refBatch({ lastOffsetDelta: -1, baseTimestamp: 5n, maxTimestamp: 5n, recordCount: 0 }, new Uint8Array(0)), CorruptionError],
    ['magic 1', refBatch({ magic: 1, lastOffsetDelta: 0, baseTimestamp: 5n, maxTimestamp: 5n, recordCount: 1 }, refRecords([rec(0, 0n)])), CorruptionError],
    ['snappy', refBatch({ attributes: 2, lastOffsetDelta: 0, baseTimestamp: 5n, maxTimestamp: 5n, recordCount: 1 }, refRecords([rec(0, 0n)])), UnsupportedCodecError],
    ['lz4', refBatch({ attributes: 3, lastOffsetDelta: 0, baseTimestamp: 5n, maxTimestamp: 5n, recordCount: 1 }, refRecords([rec(0, 0n)])), UnsupportedCodecError],
    ['zstd', refBatch({ attributes: 4, lastOffsetDelta: 0, baseTimestamp: 5n, maxTimestamp: 5n, recordCount: 1 }, refRecords([rec(0, 0n)])), UnsupportedCodecError],
    ['codec 5', refBatch({ attributes: 5, lastOffsetDelta: 0, baseTimestamp: 5n, maxTimestamp: 5n, recordCount: 1 }, refRecords([rec(0, 0n)])), CorruptionError],
    ['transactional', refBatch({ attributes: ATTR_TRANSACTIONAL, lastOffsetDelta: 0, baseTimestamp: 5n, maxTimestamp: 5n, recordCount: 1 }, refRecords([rec(0, 0n)])), InvalidArgumentError],
    ['control', refBatch({ attributes: ATTR_CONTROL, lastOffsetDelta: 0, baseTimestamp: 5n, maxTimestamp: 5n, recordCount: 1 }, refRecords([rec(0, 0n)])), InvalidArgumentError],
    ['unknown attribute bit (delete horizon)', refBatch({ attributes: 0x40, lastOffsetDelta: 0, baseTimestamp: 5n, maxTimestamp: 5n, recordCount: 1 }, refRecords([rec(0, 0n)])), InvalidArgumentError],
    ['gzip data that does not inflate', refBatch({ attributes: CODEC_GZIP, lastOffsetDelta: 0, baseTimestamp: 5n, maxTimestamp: 5n, recordCount: 1 }, refRecords([rec(0, 0n)])), CorruptionError],
    ['gzip of malformed records', refBatch({ attributes: CODEC_GZIP, lastOffsetDelta: 1, baseTimestamp: 5n, maxTimestamp: 6n, recordCount: 2 },
      gzipSync(refRecords([rec(0, 0n)]))), CorruptionError],
  ];
  try {
    // A dedup topic checks records through the decoder's row tables (it needs the records), others in one kernel pass: both refuse alike.
    await store.createTopic('d', { config: { flushMs: -1, dedup: { by: 'key', window: { count: 100 } } } });
    const pd = store.partition('d', 0);
    const good = frame([{ key: 'g', value: 'good', timestamp: 1 }]);
    for (const part of [p, pd]) {
      for (const [name, bad, type] of cases) {
        for (const input of [bad, concat([good, bad]), concat([bad, good])]) {
          const before = snapshot(part);
          assert.throws(() => part.appendBatchesSync(input), type, `${part.topic}: ${name}`);
          assert.deepEqual(snapshot(part), before, `${part.topic}: ${name}: nothing written`);
        }
      }
      assert.equal(part.logEndOffset, 0);
      assert.equal(part.appendBatchesSync(good).count, 1, 'the good batch alone is fine');
    }
  } finally {
    await store.close();
  }
});

// --- codecs, timestamps, limits ------------------------------------------------------

test('gzip batches are accepted as sent (stored compressed) and read back; log-append-time batches keep their time', async () => {
  const dir = tmpDir();
  const { store, p } = await openPartition(dir);
  try {
    const recs: RefRecord[] = Array.from({ length: 50 }, (_, i) => ({ timestampDelta: BigInt(i), offsetDelta: i, key: b(`key-${i}`), value: b(`gzip value ${i} `.repeat(10)), headers: [] }));
    const gz = refBatch({ attributes: CODEC_GZIP, lastOffsetDelta: 49, baseTimestamp: 2_000n, maxTimestamp: 2_049n, recordCount: 50 }, gzipSync(refRecords(recs)));
    const lat = refBatch({ attributes: ATTR_LOG_APPEND_TIME, lastOffsetDelta: 1, baseTimestamp: 3_000n, maxTimestamp: 3_500n, recordCount: 2 },
      refRecords([{ timestampDelta: 0n, offsetDelta: 0, key: null, value: b('l0'), headers: [] }, { timestampDelta: 9n, offsetDelta: 1, key: null, value: b('l1'), headers: [] }]));
    const r = await p.appendBatches(concat([gz, lat]));
    assert.equal(r.count, 52);
    assert.deepEqual(logBytes(p), stamped([gz, lat], 0), 'stored as sent, compressed');
    const got = await readAll(p, { offset: 0 });
    assert.equal(got.length, 52);
    got.slice(0, 50).forEach((x, i) => {
      assert.equal(x.offset, i);
      assert.equal(x.timestamp, 2_000 + i);
      assert.equal(new TextDecoder().decode(x.key!), `key-${i}`);
      assert.equal(new TextDecoder().decode(x.value!), `gzip value ${i} `.repeat(10));
    });
    assert.deepEqual(got.slice(50).map((x) => [x.offset, x.timestamp]), [[50, 3_500], [51, 3_500]], 'log-append time: every record has the batch time');
    assert.equal(p.segments[0]!.maxTimestamp, 3_500);
  } finally {
    await store.close();
  }
});

test('max.message.bytes: a batch over the limit is refused (RecordTooLargeError), one at the limit accepted; input size bound', async () => {
  const dir = tmpDir();
  const big = frame([{ key: 'k', value: new Uint8Array(3000).fill(1), timestamp: 1 }]);
  const { store, p } = await openPartition(dir, { maxMessageBytes: big.length });
  try {
    const small = frame([{ key: 'k', value: 'v', timestamp: 1 }]);
    const over = frame([{ key: 'k', value: new Uint8Array(3001).fill(1), timestamp: 1 }]);
    assert.equal(p.appendBatchesSync(big).count, 1);
    const before = snapshot(p);
    const err = (() => { try { p.appendBatchesSync(concat([small, over])); } catch (e) { return e; } return null; })();
    assert.ok(err instanceof RecordTooLargeError, String(err));
    assert.equal(err.size, over.length);
    assert.equal(err.limit, big.length);
    assert.deepEqual(snapshot(p), before);
    assert.throws(() => p.appendBatchesSync(new Uint8Array(MAX_APPEND_BATCHES_BYTES + 1)), RecordTooLargeError);
    assert.throws(() => p.appendBatchesSync('not bytes' as unknown as Uint8Array), InvalidArgumentError);
    const empty = p.appendBatchesSync(new Uint8Array(0));
    assert.deepEqual(empty, { baseOffset: 1, lastOffset: 0, count: 0, dropped: 0, batches: [] });
  } finally {
    await store.close();
  }
  await assert.rejects(p.appendBatches(frame([{ key: 'k', value: 'v' }])), ClosedError);
});

// --- durability ---------------------------------------------------------------------

test('crash after a flush keeps the flushed batches; the unflushed tail goes cleanly; appendBatches follows the flush policy', async () => {
  const dir = tmpDir();
  const fsx = new FaultyStorage();
  const cfg = { segmentBytes: 3000, indexIntervalBytes: 200 };
  let { store, p } = await openPartition(dir, cfg, { storage: fsx });
  const want: StoredRecord[] = [];
  let flushed = 0;
  const batchOf = (i: number) => Array.from({ length: 1 + (i % 4) }, (_, j) => ({ key: `k${i}.${j}`, value: `value ${i}.${j} `.repeat(3), timestamp: 10_000 + i }));
  for (let round = 0; round < 6; round++) {
    for (let i = 0; i < 8; i++) {
      const recs = batchOf(round * 100 + i);
      const r = await p.appendBatches(concat([frame(recs), frame(recs.slice(0, 1))]));
      for (const x of [...recs, recs[0]!]) want.push(expected(x, want.length));
      assert.equal(r.lastOffset, want.length - 1);
    }
    await p.flush();
    flushed = want.length;
    assert.equal(p.highWatermark, flushed);
    // Unflushed, then a crash: page cache lost.
    for (let i = 0; i < 3; i++) p.appendBatchesSync(frame(batchOf(round * 100 + 50 + i)));
    fsx.crash({});
    fs.rmSync(path.join(dir, '.lock'), { force: true });
    ({ store, p } = await openPartition(dir, cfg, { storage: fsx }));
    const { records, error } = await readUntilError(p, { offset: 0 });
    assert.equal(error, null);
    assertSameRecords(records, want.slice(0, flushed), `round ${round}`);
    assert.equal(p.logEndOffset, flushed);
    want.length = flushed;
  }
  assert.ok(segmentBases(partitionDir(dir)).length > 1);
  await store.close();
  // flushMessages: the async call resolves after the flush.
  const dir2 = tmpDir();
  const o = await openPartition(dir2, { flushMessages: 5 });
  const r1 = await o.p.appendBatches(frame(batchOf(1)));
  assert.equal(o.p.highWatermark, 0, `${r1.count} records: below flushMessages, not flushed yet`);
  await o.p.appendBatches(frame(batchOf(3)));
  assert.equal(o.p.highWatermark, o.p.logEndOffset, 'flushed once flushMessages was reached');
  await o.store.close();
});

test('reopen after a crash rebuilds the indexes byte-identical to those appendBatches wrote; lookups right', async () => {
  const dir = tmpDir();
  const tsOf = (i: number) => 50_000 + i * 10 - (i % 5 === 2 ? 35 : 0);
  let n = 0;
  {
    const { store, p } = await openPartition(dir, { segmentBytes: 2500, indexIntervalBytes: 100 });
    for (let call = 0; call < 30; call++) {
      const batches: Uint8Array[] = [];
      for (let j = 0; j < 1 + (call % 3); j++) {
        const recs = Array.from({ length: 1 + ((call + j) % 4) }, () => { const i = n++; return { key: `k${i}`, value: `v${i}`.repeat(4), timestamp: tsOf(i) }; });
        batches.push(frame(recs));
      }
      p.appendBatchesSync(concat(batches));
    }
    await store.close();
  }
  const pdir = partitionDir(dir);
  const bases = segmentBases(pdir);
  assert.ok(bases.length >= 3);
  const written = new Map<string, Buffer>();
  for (const base of bases) for (const sfx of ['.index', '.timeindex'] as const) written.set(segPath(pdir, base, sfx), fs.readFileSync(segPath(pdir, base, sfx)));
  // Indexes gone and no clean-shutdown marker: everything is rebuilt from the batches.
  for (const f of written.keys()) fs.rmSync(f);
  fs.rmSync(path.join(pdir, CLEAN_SHUTDOWN_FILE));
  fs.rmSync(path.join(pdir, 'recovery-point'), { force: true });
  const { store, p } = await openPartition(dir);
  try {
    assert.equal(p.logEndOffset, n);
    for (let o = 0; o < n; o += 2) {
      const r = await readAll(p, { offset: o }, { maxRecords: 1 });
      assert.equal(r[0]!.offset, o);
      assert.equal(r[0]!.timestamp, tsOf(o));
    }
    for (let t = 49_990; t <= tsOf(n - 1) + 5; t += 13) {
      let firstAt = n;
      for (let i = 0; i < n; i++) if (tsOf(i) >= t) { firstAt = i; break; }
      assert.equal(await p.offsetForTimestamp(t), firstAt, `timestamp ${t}`);
    }
  } finally {
    await store.close();
  }
  for (const [f, bytes] of written) assert.deepEqual(fs.readFileSync(f), bytes, `${path.basename(f)} rebuilt identically`);
});

// --- dedup topics --------------------------------------------------------------------

async function dedupPair(by: 'key' | 'content', confirm = false): Promise<{ store: Store; framed: Partition; records: Partition }> {
  const dir = tmpDir();
  const store = await Store.open(dir, { retentionCheckMs: -1 });
  const dedup = { by, window: { count: 1000 }, ...(confirm ? { confirm } : {}) };
  await store.createTopic('framed', { config: { flushMs: -1, segmentBytes: 4096, dedup } });
  await store.createTopic('records', { config: { flushMs: -1, segmentBytes: 4096, dedup } });
  return { store, framed: store.partition('framed', 0), records: store.partition('records', 0) };
}

test('dedup topics: appendBatches drops exactly what appendSync drops (within a batch, across batches and calls), offsets contiguous', async () => {
  for (const [by, confirm] of [['key', false], ['key', true], ['content', false]] as const) {
    await fc.assert(fc.asyncProperty(
      fc.array(fc.array(fc.array(fc.record({ key: fc.integer({ min: 0, max: 12 }), value: fc.integer({ min: 0, max: 3 }) }), { minLength: 1, maxLength: 8 }), { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 5 }),
      async (calls) => {
        const { store, framed, records } = await dedupPair(by, confirm);
        try {
          let ts = 1_000;
          for (const call of calls) {
            const batches = call.map((recs) => recs.map((r) => ({ key: `key-${r.key}`, value: `value-${r.value}`, timestamp: ts++ })));
            const rf: BatchesAppendResult = framed.appendBatchesSync(concat(batches.map(frame)));
            const rr = records.appendSync(batches.flat());
            assert.equal(rf.count, rr.count);
            assert.equal(rf.dropped, rr.dropped.length);
            assert.equal(rf.baseOffset, rr.baseOffset);
            let next = rf.baseOffset;
            batches.forEach((recs, i) => {
              const kept = rf.batches[i]!;
              assert.equal(kept.baseOffset, next);
              assert.equal(kept.lastOffset, next + kept.count - 1);
              assert.ok(kept.count <= recs.length);
              next += kept.count;
            });
            assert.equal(next, framed.logEndOffset);
          }
          assertSameRecords(await readAll(framed, { offset: 0 }), await readAll(records, { offset: 0 }), 'same records kept');
        } finally {
          await store.close();
        }
      }), { numRuns: 15 });
  }
});

test('dedup topics: a batch that keeps every record is written as sent; one that loses some is re-encoded; gzip too; a refused call admits nothing', async () => {
  const { store, framed } = await dedupPair('key');
  try {
    const a = frame([{ key: 'a', value: '1', timestamp: 1 }, { key: 'b', value: '2', timestamp: 2 }]);
    framed.appendBatchesSync(a);
    assert.deepEqual(logBytes(framed), stamped([a], 0), 'nothing dropped: the batch as sent');
    // A refused call (bad second batch) must not leave 'c' in the window.
    const c = frame([{ key: 'c', value: '3', timestamp: 3 }]);
    const bad = frame([{ key: 'd', value: '4', timestamp: 4 }]);
    bad[bad.length - 1] ^= 1;
    assert.throws(() => framed.appendBatchesSync(concat([c, bad])), CorruptionError);
    const r = framed.appendBatchesSync(concat([c, frame([{ key: 'a', value: 'dup', timestamp: 5 }, { key: 'e', value: '5', timestamp: 6 }])]));
    assert.equal(r.dropped, 1);
    assert.deepEqual(r.batches, [{ baseOffset: 2, lastOffset: 2, count: 1 }, { baseOffset: 3, lastOffset: 3, count: 1 }]);
    // gzip: all duplicates dropped -> nothing written for that batch; the other batch kept.
    const gz = refBatch({ attributes: CODEC_GZIP, lastOffsetDelta: 1, baseTimestamp: 10n, maxTimestamp: 11n, recordCount: 2 },
      gzipSync(refRecords([{ timestampDelta: 0n, offsetDelta: 0, key: b('a'), value: b('x'), headers: [] }, { timestampDelta: 1n, offsetDelta: 1, key: b('f'), value: b('6'), headers: [{ key: b('h'), value: b('hv') }] }])));
    const r2 = framed.appendBatchesSync(gz);
    assert.equal(r2.dropped, 1);
    assert.deepEqual(r2.batches, [{ baseOffset: 4, lastOffset: 4, count: 1 }]);
    const got = await readAll(framed, { offset: 0 });
    assert.deepEqual(got.map((x) => [x.offset, new TextDecoder().decode(x.key!), new TextDecoder().decode(x.value!), x.timestamp]),
      [[0, 'a', '1', 1], [1, 'b', '2', 2], [2, 'c', '3', 3], [3, 'e', '5', 6], [4, 'f', '6', 11]]);
    assert.deepEqual((plain(got[4]!) as { headers: unknown }).headers, [['h', Array.from(b('hv'))]], 'headers kept when re-encoded');
    const r3 = framed.appendBatchesSync(frame([{ key: 'a', value: 'again', timestamp: 20 }]));
    assert.deepEqual(r3, { baseOffset: 5, lastOffset: 4, count: 0, dropped: 1, batches: [{ baseOffset: 5, lastOffset: 4, count: 0 }] });
  } finally {
    await store.close();
  }
});

// --- CLI: sediment produce --batches FILE ---------------------------------------------

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const sink = (to: string[]) => ({ write(s: string | Uint8Array): boolean { to.push(typeof s === 'string' ? s : Buffer.from(s).toString()); return true; } });
  const code = await main(['node', 'sediment', ...args], { stdout: sink(out), stderr: sink(err), stdin: Readable.from([]), isTTY: false });
  return { code, out: out.join(''), err: err.join('') };
}

test('sediment produce --batches copies a segment file (batches as they are, new offsets); damage stops it with exit 2 after the calls before', async () => {
  // A source partition's segment file, as a Kafka .log would be given.
  const srcDir = tmpDir();
  const src = await openPartition(srcDir, { segmentBytes: 1 << 30 });
  const want: StoredRecord[] = [];
  for (let i = 0; i < 300; i++) {
    const recs = Array.from({ length: 1 + (i % 5) }, (_, j) => ({ key: `k${i}`, value: `v${i}.${j}`.repeat(20), timestamp: 1_000 + i }));
    src.p.appendSync(recs);
    for (const r of recs) want.push(expected(r, want.length + 2));
  }
  await src.store.close();
  const segFile = segPath(partitionDir(srcDir), 0, '.log');
  const segBytes = fs.readFileSync(segFile);
  assert.ok(segBytes.length > 100_000);
  const dir = tmpDir();
  assert.equal((await cli(['topics', 'create', '--dir', dir, '--topic', 'copy'])).code, 0);
  assert.equal((await cli(['produce', '--dir', dir, '--topic', 'copy'])).code, 0); // nothing on stdin
  {
    const s = await Store.open(dir, { retentionCheckMs: -1 });
    s.partition('copy', 0).appendSync([{ key: 'a', value: 'b', timestamp: 1 }, { key: 'c', value: 'd', timestamp: 2 }]);
    await s.close();
  }
  const r = await cli(['produce', '--dir', dir, '--topic', 'copy', '--batches', segFile]);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, `produced ${want.length} records to copy-0 at offsets 2..${want.length + 1}\n`);
  {
    const s = await Store.open(dir, { readOnly: true });
    const p = s.partition('copy', 0);
    assertSameRecords((await readAll(p, { offset: 2 })), want);
    const log = logBytes(p);
    assert.deepEqual(log.subarray(log.length - segBytes.length), stamped(batchesOf(segBytes), 2), 'batches as they are, offsets moved by 2');
    await s.close();
  }
  // Damage in the middle of a file larger than one call: earlier calls stay written, exit 2, the message says where.
  const big = Buffer.concat(Array.from({ length: 90 }, () => segBytes));
  const badAt = big.length - 5000;
  big[badAt] ^= 0x40;
  const bigFile = path.join(tmpDir(), 'big.log');
  fs.writeFileSync(bigFile, big);
  const dir2 = tmpDir();
  await cli(['topics', 'create', '--dir', dir2, '--topic', 'copy']);
  const r2 = await cli(['produce', '--dir', dir2, '--topic', 'copy', '--batches', bigFile]);
  assert.equal(r2.code, 2, r2.err);
  assert.match(r2.err, /CRC-32C mismatch/);
  assert.match(r2.err, /records were written at offsets 0\.\./);
  assert.ok(big.length > 8 << 20, 'more than one call');
  const s2 = await Store.open(dir2, { readOnly: true });
  const kept = await readAll(s2.partition('copy', 0), { offset: 0 });
  await s2.close();
  // Whole calls of 8 MiB each were written before the damaged one; none of the damaged call.
  assert.ok(kept.length > 0 && kept.length < 90 * want.length, `${kept.length} records kept`);
  assertSameRecords(kept, kept.map((_, i) => ({ ...want[i % want.length]!, offset: i })), 'a prefix of the file\'s records');
  assert.match(r2.out, /^$/);
  // Truncated file, missing file, conflicting options.
  const cut = path.join(tmpDir(), 'cut.log');
  fs.writeFileSync(cut, segBytes.subarray(0, segBytes.length - 3));
  const r3 = await cli(['produce', '--dir', dir, '--topic', 'copy', '--batches', cut]);
  assert.equal(r3.code, 2);
  assert.match(r3.err, /truncated batch/);
  assert.equal((await cli(['produce', '--dir', dir, '--topic', 'copy', '--batches', path.join(dir, 'nope.log')])).code, 3);
  assert.equal((await cli(['produce', '--dir', dir, '--topic', 'copy', '--batches', segFile, '--key', 'k'])).code, 1);
});

/** Splits concatenated batches by their length fields. */
function batchesOf(bytes: Uint8Array): Uint8Array[] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Uint8Array[] = [];
  for (let at = 0; at < bytes.length;) { const size = dv.getInt32(at + 8) + 12; out.push(bytes.subarray(at, at + size)); at += size; }
  return out;
}

test('a filter failing mid-call: nothing written, aborted() called only when an earlier batch was already admitted; a write error fails the partition', async () => {
  const dir = tmpDir();
  const fsx = new FaultyStorage();
  const { store, p } = await openPartition(dir, {}, { storage: fsx });
  try {
    let calls = 0;
    let aborted = 0;
    let failAt = -1;
    p.appendFilter = {
      filter(recs: readonly NormalizedRecord[]): boolean[] {
        if (calls++ === failAt) throw new InvalidArgumentError('filter refused');
        return recs.map(() => true);
      },
      aborted() { aborted++; },
    };
    const two = concat([frame([{ key: 'a', value: '1', timestamp: 1 }]), frame([{ key: 'b', value: '2', timestamp: 2 }])]);
    for (const [at, wantAborted] of [[0, 0], [1, 1]] as const) {
      calls = 0; aborted = 0; failAt = at;
      const before = snapshot(p);
      assert.throws(() => p.appendBatchesSync(two), /filter refused/);
      assert.equal(aborted, wantAborted, `failing at batch ${at}`);
      assert.deepEqual(snapshot(p), before);
    }
    failAt = -1; calls = 0;
    assert.equal(p.appendBatchesSync(two).count, 2);
    // An I/O error while writing: the filter is told, the partition refuses writes until reopened.
    aborted = 0;
    fsx.failOn({ op: 'write', path: '.log' });
    assert.throws(() => p.appendBatchesSync(two), (e: unknown) => e instanceof SedimentError && e.code === 'ERR_STORAGE');
    assert.equal(aborted, 1);
    assert.throws(() => p.appendBatchesSync(two), (e: unknown) => e instanceof SedimentError && e.code === 'ERR_STORAGE');
  } finally {
    p.appendFilter = null;
    await store.close().catch(() => undefined);
  }
});

test('kernel recordsCheck accepts exactly what recordsDecode accepts with offset deltas 0..n-1, and finds the min/max timestamp delta', () => {
  const rows = new WasmBuffer(k, 64 * 9 * 4);
  const hdrs = new WasmBuffer(k, 1024 * 16);
  const out = new WasmBuffer(k, 16);
  const area = new WasmBuffer(k, 1 << 16);
  const refArb = fc.array(fc.record({
    ts: fc.bigInt({ min: -(2n ** 40n), max: 2n ** 40n }),
    key: fc.option(fc.uint8Array({ maxLength: 140 }), { nil: null }),
    value: fc.option(fc.uint8Array({ maxLength: 300 }), { nil: null }),
    headers: fc.array(fc.record({ key: fc.uint8Array({ maxLength: 5 }), value: fc.option(fc.uint8Array({ maxLength: 5 }), { nil: null }) }), { maxLength: 3 }),
    odd: fc.integer({ min: 0, max: 15 }),
  }), { minLength: 1, maxLength: 40 });
  const mutation = fc.oneof(
    fc.constant({ kind: 'none' as const }),
    fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), mask: fc.integer({ min: 1, max: 255 }) }),
    fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
    fc.record({ kind: fc.constant('count' as const), delta: fc.integer({ min: -2, max: 2 }) }),
  );
  let valid = 0;
  fc.assert(fc.property(refArb, mutation, (recs, m) => {
    // Offset deltas 0..n-1, except where `odd` is 0 (then a wrong delta: still decodable, not acceptable here).
    const section = refRecords(recs.map((r, i) => ({ timestampDelta: r.ts, offsetDelta: r.odd === 0 && recs.length > 1 ? (i + 1) % recs.length : i, key: r.key, value: r.value, headers: r.headers })));
    const bytes = section.slice();
    let n = recs.length;
    let len = bytes.length;
    if (m.kind === 'flip' && len > 0) bytes[m.at % len] ^= m.mask;
    if (m.kind === 'cut') len = m.at % (len + 1);
    if (m.kind === 'count') n = Math.max(0, n + m.delta);
    const ptr = area.ensure(len + 1);
    k.u8.set(bytes.subarray(0, len), ptr);
    const rcDecode = k.raw.recordsDecode(ptr, len, n, rows.ensure(Math.max(1, n) * 36), Math.max(1, n), hdrs.ptr, 1024);
    let deltasOk = rcDecode === n;
    let minTs = Infinity;
    let maxTs = -Infinity;
    if (deltasOk) {
      const i32 = k.i32;
      for (let i = 0, w = rows.ptr >>> 2; i < n; i++, w += 9) {
        if (i32[w] !== i) deltasOk = false;
        const ts = i32[w + 2]! * 4294967296 + (i32[w + 1]! >>> 0);
        minTs = Math.min(minTs, ts);
        maxTs = Math.max(maxTs, ts);
      }
    }
    const rcCheck = k.raw.recordsCheck(ptr, len, n, out.ptr);
    assert.equal(rcCheck === n, deltasOk, `recordsDecode ${rcDecode}, deltas ok ${deltasOk}, recordsCheck ${rcCheck}`);
    if (deltasOk && n > 0) {
      valid++;
      const i32 = k.i32;
      const w = out.ptr >>> 2;
      assert.equal(i32[w + 1]! * 4294967296 + (i32[w]! >>> 0), minTs);
      assert.equal(i32[w + 3]! * 4294967296 + (i32[w + 2]! >>> 0), maxTs);
    }
  }), { numRuns: 3000 });
  assert.ok(valid > 300, `${valid} valid cases`);
  for (const x of [rows, hdrs, out, area]) x.free();
});
