// RecordBatch v2 kernels (assembly/record_batch.ts) through
// RecordBatchEncoder / BatchScanner / RecordBatchDecoder: byte-exact layout
// against a hand-built vector and an independent reference encoder, round
// trips, header fields, corruption and truncation detection, malformed
// record sections, codecs and input validation.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { getKernelsSync, WasmBuffer } from '../src/kernels.js';
import {
  RecordBatchEncoder, BatchScanner, RecordBatchDecoder, stampBaseOffset, ScanStop, ScanResult,
  ATTR_LOG_APPEND_TIME, ATTR_TRANSACTIONAL, BATCH_HEADER_SIZE, EncodeOptions, MAX_INFLATED_BYTES,
} from '../src/record_batch.js';
import { normalizeRecord, RecordInput, StoredRecord, NormalizedRecord } from '../src/record.js';
import { CorruptionError, InvalidArgumentError, UnsupportedCodecError } from '../src/errors.js';
import { crc32cRef, refBatch, refRecords, refFixCrc, refGzipBatch, pushVarint, pushVarlong, RefRecord, hex } from './fixtures/reference.js';

const k = getKernelsSync();
const encoder = new RecordBatchEncoder(k);
const scanner = new BatchScanner(k);
const decoder = new RecordBatchDecoder(k);
const outBuf = new WasmBuffer(k, 64 * 1024);
const inBuf = new WasmBuffer(k, 64 * 1024);
const utf8 = new TextEncoder();

function normalize(records: readonly RecordInput[]): NormalizedRecord[] {
  return records.map((r, i) => normalizeRecord(r, i, 0));
}

/** Encodes one batch and returns a copy of its bytes (base offset stamped). */
function encode(records: readonly RecordInput[], baseOffset = 0, opts: EncodeOptions = {}): Uint8Array {
  const size = encoder.encode(normalize(records), outBuf, 0, opts);
  stampBaseOffset(k, outBuf.ptr, baseOffset);
  return k.u8.slice(outBuf.ptr, outBuf.ptr + size);
}

/** Copies bytes into wasm memory; returns the pointer (valid until the next load). */
function load(bytes: Uint8Array): number {
  const p = inBuf.ensure(bytes.length + 1);
  k.u8.set(bytes, p);
  return p;
}

function scan(bytes: Uint8Array, opts: { maxBatchBytes?: number; verifyCrc?: boolean } = {}): ScanResult {
  return scanner.scan(load(bytes), bytes.length, opts);
}

function decodeAll(bytes: Uint8Array, minOffset = 0): StoredRecord[] {
  const p = load(bytes);
  const s = scanner.scan(p, bytes.length);
  assert.equal(s.stop, ScanStop.End, `scan stopped: ${ScanStop[s.stop]} at ${s.stopPosition}`);
  const out: StoredRecord[] = [];
  for (const b of s.batches) decoder.decode(p + b.position, b, out, minOffset);
  return out;
}

async function decodeAllAsync(bytes: Uint8Array): Promise<StoredRecord[]> {
  const p = load(bytes);
  const s = scanner.scan(p, bytes.length);
  assert.equal(s.stop, ScanStop.End);
  const out: StoredRecord[] = [];
  for (const b of s.batches) await decoder.decodeAsync(p + b.position, b, out);
  return out;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

/** What decoding must give back for records written at baseOffset. */
function expected(records: readonly RecordInput[], baseOffset: number): StoredRecord[] {
  return normalize(records).map((r, i) => ({
    offset: baseOffset + i,
    timestamp: r.timestamp,
    key: r.key === null ? null : Uint8Array.from(r.key),
    value: r.value === null ? null : Uint8Array.from(r.value),
    headers: r.headerKeys.map((hk, j) => ({
      key: new TextDecoder().decode(hk),
      value: r.headerValues[j] === null ? null : Uint8Array.from(r.headerValues[j]!),
    })),
  }));
}

/** The same records through the independent reference encoder. */
function reference(records: readonly RecordInput[], baseOffset: number, attributes = 0): Uint8Array {
  const norm = normalize(records);
  const first = norm[0]!.timestamp;
  const refs: RefRecord[] = norm.map((r, i) => ({
    timestampDelta: BigInt(r.timestamp) - BigInt(first),
    offsetDelta: i,
    key: r.key,
    value: r.value,
    headers: r.headerKeys.map((hk, j) => ({ key: hk, value: r.headerValues[j] ?? null })),
  }));
  return refBatch({
    baseOffset: BigInt(baseOffset),
    attributes,
    lastOffsetDelta: norm.length - 1,
    baseTimestamp: BigInt(first),
    maxTimestamp: BigInt(Math.max(...norm.map((r) => r.timestamp))),
    recordCount: norm.length,
  }, refRecords(refs));
}

// --- a hand-built vector ------------------------------------------------------

// Two records, from the Kafka RecordBatch v2 spec, byte by byte:
//   r0: timestamp 1700000000000, key null, value "hi", no headers
//   r1: timestamp 1700000000005, key "k", value "v2", header h="x"
const KNOWN_RECORDS: RecordInput[] = [
  { key: null, value: 'hi', timestamp: 1_700_000_000_000 },
  { key: 'k', value: 'v2', timestamp: 1_700_000_000_005, headers: [['h', 'x']] },
];
const KNOWN_SECTION = [
  // r0: length 8 (zig-zag 0x10), attributes 0, tsDelta 0, offsetDelta 0,
  //     key length -1 (0x01), value length 2 (0x04) "hi", 0 headers
  0x10, 0x00, 0x00, 0x00, 0x01, 0x04, 0x68, 0x69, 0x00,
  // r1: length 13 (0x1a), attributes 0, tsDelta 5 (0x0a), offsetDelta 1 (0x02),
  //     key length 1 (0x02) "k", value length 2 (0x04) "v2", 1 header (0x02):
  //     name length 1 (0x02) "h", value length 1 (0x02) "x"
  0x1a, 0x00, 0x0a, 0x02, 0x02, 0x6b, 0x04, 0x76, 0x32, 0x02, 0x02, 0x68, 0x02, 0x78,
];
function knownBatch(baseOffset: number): Uint8Array {
  const header = [
    ...[0, 0, 0, 0, 0, 0, 0, 0], //              0 baseOffset (patched below)
    0x00, 0x00, 0x00, 0x48, //                   8 batchLength = 84 - 12 = 72
    0xff, 0xff, 0xff, 0xff, //                  12 partitionLeaderEpoch -1
    0x02, //                                    16 magic
    0x00, 0x00, 0x00, 0x00, //                  17 crc (computed below)
    0x00, 0x00, //                              21 attributes
    0x00, 0x00, 0x00, 0x01, //                  23 lastOffsetDelta 1
    0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, // 27 baseTimestamp 1700000000000
    0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x05, // 35 maxTimestamp 1700000000005
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // 43 producerId -1
    0xff, 0xff, //                              51 producerEpoch -1
    0xff, 0xff, 0xff, 0xff, //                  53 baseSequence -1
    0x00, 0x00, 0x00, 0x02, //                  57 recordCount 2
  ];
  assert.equal(header.length, BATCH_HEADER_SIZE);
  const bytes = Uint8Array.from([...header, ...KNOWN_SECTION]);
  const dv = new DataView(bytes.buffer);
  dv.setBigUint64(0, BigInt(baseOffset));
  dv.setUint32(17, crc32cRef(bytes.subarray(21)));
  return bytes;
}

test('encoder output equals a hand-built batch byte for byte', () => {
  const want = knownBatch(0);
  const got = encode(KNOWN_RECORDS, 0);
  assert.equal(got.length, 84);
  assert.deepEqual(hex(got), hex(want));
  // A stamped base offset changes bytes 0..7 and nothing else.
  const stamped = encode(KNOWN_RECORDS, 0x1_2345_6789);
  assert.deepEqual(hex(stamped), hex(knownBatch(0x1_2345_6789)));
  assert.deepEqual(decodeAll(want), expected(KNOWN_RECORDS, 0));
});

test('the worked example in docs/format.md is what the encoder writes', () => {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const doc = readFileSync(join(root, 'docs', 'format.md'), 'utf8');
  const m = /<!-- example-batch-hex -->\s*```\n([\s\S]*?)```/.exec(doc);
  assert.ok(m, 'docs/format.md has the example block');
  const documented = Uint8Array.from(m[1]!.trim().split(/\s+/), (h) => parseInt(h, 16));
  const recs: RecordInput[] = [
    { key: null, value: 'hello', timestamp: 1_700_000_000_000 },
    { key: 'user-1', value: 'world', headers: [['trace', 'abc']], timestamp: 1_700_000_000_042 },
  ];
  const bytes = encode(recs, 100);
  assert.equal(hex(bytes), hex(documented));
  assert.equal(new DataView(bytes.buffer).getUint32(17), 0xae4a8d33, 'the CRC quoted in the docs');
  assert.equal(crc32cRef(bytes.subarray(21)), 0xae4a8d33);
});

test('header fields read back raw with DataView', () => {
  fc.assert(fc.property(
    fc.array(fc.integer({ min: -1e6, max: 1e6 }), { minLength: 1, maxLength: 30 }),
    fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    fc.integer({ min: 1e12, max: 2e12 }),
    (deltas, baseOffset, t0) => {
      const recs: RecordInput[] = deltas.map((d, i) => ({ value: `v${i}`, timestamp: i === 0 ? t0 : t0 + d }));
      const bytes = encode(recs, baseOffset);
      const dv = new DataView(bytes.buffer);
      const ts = recs.map((r) => r.timestamp!);
      assert.equal(dv.getBigUint64(0), BigInt(baseOffset), 'baseOffset');
      assert.equal(dv.getInt32(8), bytes.length - 12, 'batchLength');
      assert.equal(dv.getInt32(12), -1, 'partitionLeaderEpoch');
      assert.equal(dv.getInt8(16), 2, 'magic');
      assert.equal(dv.getUint32(17), crc32cRef(bytes.subarray(21)), 'crc over 21..end');
      assert.equal(dv.getInt16(21), 0, 'attributes');
      assert.equal(dv.getInt32(23), recs.length - 1, 'lastOffsetDelta');
      assert.equal(dv.getBigInt64(27), BigInt(ts[0]!), 'baseTimestamp = first record');
      assert.equal(dv.getBigInt64(35), BigInt(Math.max(...ts)), 'maxTimestamp');
      assert.equal(dv.getBigInt64(43), -1n, 'producerId');
      assert.equal(dv.getInt16(51), -1, 'producerEpoch');
      assert.equal(dv.getInt32(53), -1, 'baseSequence');
      assert.equal(dv.getInt32(57), recs.length, 'recordCount');
      const s = scan(bytes);
      assert.equal(s.stop, ScanStop.End);
      assert.equal(s.batches.length, 1);
      const b = s.batches[0]!;
      assert.deepEqual(b, {
        position: 0, size: bytes.length, baseOffset, lastOffsetDelta: recs.length - 1,
        firstTimestamp: ts[0], maxTimestamp: Math.max(...ts), recordCount: recs.length, attributes: 0,
        leaderEpoch: -1, producerId: -1, producerEpoch: -1, baseSequence: -1,
      });
    }), { numRuns: 100 });
});

test('producer fields and attributes pass through; codec bits are never set by the encoder', () => {
  const bytes = encode([{ value: 'x', timestamp: 5 }], 7,
    { producerId: 0x1_0000_0002, producerEpoch: 3, baseSequence: 99, attributes: ATTR_TRANSACTIONAL | 0x01 });
  const dv = new DataView(bytes.buffer);
  assert.equal(dv.getBigInt64(43), 0x1_0000_0002n);
  assert.equal(dv.getInt16(51), 3);
  assert.equal(dv.getInt32(53), 99);
  assert.equal(dv.getInt16(21), ATTR_TRANSACTIONAL, 'codec bits stripped: the encoder does not compress');
  const b = scan(bytes).batches[0]!;
  assert.equal(b.producerId, 0x1_0000_0002);
  assert.equal(b.producerEpoch, 3);
  assert.equal(b.baseSequence, 99);
  assert.equal(b.attributes, ATTR_TRANSACTIONAL);
});

// --- round trips ----------------------------------------------------------------

const bytesArb = fc.oneof(
  fc.constant(null),
  fc.constant(new Uint8Array(0)),
  fc.uint8Array({ minLength: 1, maxLength: 300 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
);
const headerArb = fc.tuple(fc.string({ unit: 'grapheme', maxLength: 12 }), bytesArb);
const MAX_DELTA = 2 ** 52 - 1; // spreads stay safe integers (see the spread test)
const batchArb = fc.record({
  first: fc.oneof(
    fc.integer({ min: 1.5e12, max: 2e12 }),
    fc.integer({ min: -1e13, max: 1e13 }),
    fc.constantFrom(0, -1, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER),
  ),
  records: fc.array(fc.record({
    key: bytesArb,
    value: bytesArb,
    headers: fc.array(headerArb, { maxLength: 4 }),
    delta: fc.oneof(fc.integer({ min: -100_000, max: 100_000 }), fc.integer({ min: -MAX_DELTA, max: MAX_DELTA })),
  }), { minLength: 1, maxLength: 40 }),
  baseOffset: fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER - 100 })),
});

function toInputs(b: { first: number; records: { key: unknown; value: unknown; headers: [string, unknown][]; delta: number }[] }): RecordInput[] {
  return b.records.map((r, i) => {
    let ts = b.first;
    if (i > 0) { ts = b.first + r.delta; if (!Number.isSafeInteger(ts)) ts = b.first - r.delta; }
    return { key: r.key as RecordInput['key'], value: r.value as RecordInput['value'], headers: r.headers as RecordInput['headers'], timestamp: ts };
  });
}

test('round trip encode -> scan -> decode, and byte equality with the reference encoder', () => {
  fc.assert(fc.property(batchArb, (b) => {
    const recs = toInputs(b);
    const bytes = encode(recs, b.baseOffset);
    assert.equal(hex(bytes), hex(reference(recs, b.baseOffset)));
    assert.deepEqual(decodeAll(bytes), expected(recs, b.baseOffset));
  }), { numRuns: 300 });
});

test('null key, empty key and a key are three different things', () => {
  const recs: RecordInput[] = [
    { value: 'a', timestamp: 1 },
    { key: null, value: 'b', timestamp: 1 },
    { key: '', value: 'c', timestamp: 1 },
    { key: new Uint8Array(0), value: null, timestamp: 1 },
    { key: 'k', value: '', timestamp: 1 },
    { value: null, headers: { n: null, e: '', v: 'x' }, timestamp: 1 },
  ];
  const out = decodeAll(encode(recs));
  assert.deepEqual(out.map((r) => r.key), [null, null, new Uint8Array(0), new Uint8Array(0), utf8.encode('k'), null]);
  assert.deepEqual(out.map((r) => r.value), [utf8.encode('a'), utf8.encode('b'), utf8.encode('c'), null, new Uint8Array(0), null]);
  assert.deepEqual(out[5]!.headers, [{ key: 'n', value: null }, { key: 'e', value: new Uint8Array(0) }, { key: 'v', value: utf8.encode('x') }]);
});

test('many records in one batch (row tables grow)', () => {
  const recs: RecordInput[] = [];
  for (let i = 0; i < 5000; i++) {
    recs.push({
      key: i % 3 === 0 ? null : `key-${i}`,
      value: new Uint8Array(i % 17).fill(i & 0xff),
      headers: i % 5 === 0 ? [['a', `${i}`], ['b', null]] : [],
      timestamp: 1_700_000_000_000 + ((i * 7919) % 1000) - 500,
    });
  }
  const bytes = encode(recs, 1_000_000);
  assert.equal(hex(bytes), hex(reference(recs, 1_000_000)));
  assert.deepEqual(decodeAll(bytes), expected(recs, 1_000_000));
  const tail = decodeAll(bytes, 1_004_990);
  assert.deepEqual(tail.map((r) => r.offset), [...Array(10).keys()].map((i) => 1_004_990 + i), 'minOffset skips earlier records');
});

test('timestamps further apart than 2^53 - 1 are rejected, not silently rounded', () => {
  assert.throws(() => encode([{ value: 'a', timestamp: Number.MAX_SAFE_INTEGER }, { value: 'b', timestamp: -2 }]), InvalidArgumentError);
  assert.throws(() => encode([{ value: 'a', timestamp: Number.MIN_SAFE_INTEGER }, { value: 'b', timestamp: 2 }]), InvalidArgumentError);
  // The widest spread that is still exact round-trips.
  const recs = [{ value: 'a', timestamp: Number.MIN_SAFE_INTEGER }, { value: 'b', timestamp: 0 }, { value: 'c', timestamp: -1 }];
  assert.deepEqual(decodeAll(encode(recs)).map((r) => r.timestamp), [Number.MIN_SAFE_INTEGER, 0, -1]);
});

test('an empty batch is rejected', () => {
  assert.throws(() => encoder.encode([], outBuf), InvalidArgumentError);
});

test('concatenated batches (encoded back to back in one buffer) scan to the right rows', () => {
  const groups: RecordInput[][] = [
    [{ value: 'a', timestamp: 10 }],
    [{ value: 'b', timestamp: 20 }, { key: 'x', value: 'c', timestamp: 15 }],
    Array.from({ length: 50 }, (_, i) => ({ value: `r${i}`, timestamp: 30 + i })),
  ];
  const buf = new WasmBuffer(k, 16);
  let at = 0;
  let offset = 100;
  const positions: number[] = [];
  for (const g of groups) {
    const size = encoder.encode(normalize(g), buf, at);
    stampBaseOffset(k, buf.ptr + at, offset);
    positions.push(at);
    at += size;
    offset += g.length;
  }
  const bytes = k.u8.slice(buf.ptr, buf.ptr + at);
  buf.free();
  const s = scan(bytes);
  assert.equal(s.stop, ScanStop.End);
  assert.equal(s.stopPosition, bytes.length);
  assert.deepEqual(s.batches.map((b) => b.position), positions);
  assert.deepEqual(s.batches.map((b) => [b.baseOffset, b.recordCount, b.lastOffsetDelta, b.firstTimestamp, b.maxTimestamp]),
    [[100, 1, 0, 10, 10], [101, 2, 1, 20, 20], [103, 50, 49, 30, 79]]);
  assert.deepEqual(decodeAll(bytes), [...expected(groups[0]!, 100), ...expected(groups[1]!, 101), ...expected(groups[2]!, 103)]);
});

// --- corruption and truncation ---------------------------------------------------

test('every single-byte corruption of a batch is detected, except in the fields the CRC does not cover', () => {
  const good = knownBatch(42);
  const bad = new Set([ScanStop.BadCrc, ScanStop.BadMagic, ScanStop.BadLength, ScanStop.Incomplete]);
  for (let pos = 0; pos < good.length; pos++) {
    for (let mask = 1; mask < 256; mask++) {
      const bytes = good.slice();
      bytes[pos] ^= mask;
      const s = scan(bytes);
      const what = `byte ${pos} ^ 0x${mask.toString(16)}`;
      if (pos < 8 || (pos >= 12 && pos < 16)) {
        // baseOffset (0..7) and partitionLeaderEpoch (12..15) sit before the
        // CRC-covered range (21..end) by design: the log rewrites them.
        assert.equal(s.stop, ScanStop.End, what);
        assert.equal(s.batches.length, 1, what);
        const dv = new DataView(bytes.buffer);
        if (pos < 8) assert.equal(s.batches[0]!.baseOffset, Number(dv.getBigInt64(0)), what);
        else assert.equal(s.batches[0]!.leaderEpoch, dv.getInt32(12), what);
        continue;
      }
      assert.equal(s.batches.length, 0, `${what} was returned as valid`);
      assert.ok(bad.has(s.stop), `${what}: stop ${ScanStop[s.stop]}`);
      assert.equal(s.stopPosition, 0, what);
      if (pos === 16) assert.equal(s.stop, ScanStop.BadMagic, what);
      if (pos >= 17) assert.equal(s.stop, ScanStop.BadCrc, what);
    }
  }
});

test('corruption in a later batch keeps the earlier ones and stops at the bad one', () => {
  const a = encode([{ value: 'first', timestamp: 1 }], 0);
  const b = encode([{ value: 'second', timestamp: 2 }, { value: 'third', timestamp: 3 }], 1);
  for (let pos = 0; pos < b.length; pos++) {
    if (pos < 8 || (pos >= 12 && pos < 16)) continue;
    const bb = b.slice();
    bb[pos] ^= 0x40;
    const s = scan(concat([a, bb, a]));
    assert.equal(s.batches.length, 1, `byte ${pos}`);
    assert.equal(s.stopPosition, a.length, `byte ${pos}`);
    assert.notEqual(s.stop, ScanStop.End);
  }
});

test('with verifyCrc false the CRC is not checked, framing still is', () => {
  const bytes = knownBatch(0);
  bytes[70] ^= 1;
  assert.equal(scan(bytes).stop, ScanStop.BadCrc);
  const s = scan(bytes, { verifyCrc: false });
  assert.equal(s.stop, ScanStop.End);
  assert.equal(s.batches.length, 1);
  bytes[16] = 1;
  assert.equal(scan(bytes, { verifyCrc: false }).stop, ScanStop.BadMagic);
});

test('every truncation of a multi-batch buffer stops with Incomplete at the torn batch', () => {
  const batches = [
    encode([{ value: 'a', timestamp: 1 }], 0),
    knownBatch(1),
    encode(Array.from({ length: 9 }, (_, i) => ({ key: `k${i}`, value: 'v'.repeat(i * 3), timestamp: i })), 3),
  ];
  const all = concat(batches);
  const ends: number[] = [];
  let at = 0;
  for (const b of batches) { at += b.length; ends.push(at); }
  for (let len = 0; len <= all.length; len++) {
    const s = scanner.scan(load(all), len);
    const complete = ends.filter((e) => e <= len).length;
    const torn = complete === 0 ? 0 : ends[complete - 1]!;
    assert.equal(s.batches.length, complete, `len ${len}`);
    assert.equal(s.stopPosition, torn, `len ${len}`);
    assert.equal(s.stop, len === torn ? ScanStop.End : ScanStop.Incomplete, `len ${len}`);
  }
});

test('lengths out of bounds: too small, negative, over maxBatchBytes', () => {
  const good = knownBatch(0);
  for (const len of [0, 1, 48, -1, -0x80000000]) {
    const bytes = good.slice();
    new DataView(bytes.buffer).setInt32(8, len);
    assert.equal(scan(bytes).stop, ScanStop.BadLength, `batchLength ${len}`);
  }
  assert.equal(scan(good, { maxBatchBytes: good.length }).stop, ScanStop.End);
  const s = scan(good, { maxBatchBytes: good.length - 1 });
  assert.equal(s.stop, ScanStop.BadLength);
  assert.equal(s.batches.length, 0);
  // Zero padding after a valid batch (a preallocated file) is not a batch.
  const padded = concat([good, new Uint8Array(100)]);
  const p = scan(padded);
  assert.equal(p.batches.length, 1);
  assert.equal(p.stop, ScanStop.BadLength);
  assert.equal(p.stopPosition, good.length);
});

test('inconsistent counts with a valid CRC stop with BadHeader', () => {
  for (const [lastOffsetDelta, count] of [[0, 2], [-1, 0], [3, -1]] as const) {
    const bytes = knownBatch(0);
    const dv = new DataView(bytes.buffer);
    dv.setInt32(23, lastOffsetDelta);
    dv.setInt32(57, count);
    refFixCrc(bytes);
    assert.equal(scan(bytes).stop, ScanStop.BadHeader, `lastOffsetDelta ${lastOffsetDelta} count ${count}`);
  }
});

test('a small row table stops with TableFull and resumes from stopPosition', () => {
  const small = new BatchScanner(k, 2);
  try {
    const batches = Array.from({ length: 5 }, (_, i) => encode([{ value: `b${i}`, timestamp: i }], i));
    const all = concat(batches);
    const p = load(all);
    const seen: number[] = [];
    let pos = 0;
    let calls = 0;
    for (;;) {
      const s = small.scan(p + pos, all.length - pos, { positionBase: pos });
      calls++;
      assert.ok(s.batches.length <= 2);
      for (const b of s.batches) seen.push(b.baseOffset);
      if (s.stop === ScanStop.End) break;
      assert.equal(s.stop, ScanStop.TableFull);
      assert.equal(s.batches.length, 2);
      assert.equal(s.batches[1]!.position + s.batches[1]!.size, pos + s.stopPosition, 'positions include positionBase');
      pos += s.stopPosition;
    }
    assert.deepEqual(seen, [0, 1, 2, 3, 4]);
    assert.equal(calls, 3);
  } finally {
    small.free();
  }
});

// --- malformed record sections (valid CRC, so only the decoder can tell) ---------

function rawBatch(section: number[] | Uint8Array, count: number, attributes = 0): Uint8Array {
  return refBatch({ attributes, lastOffsetDelta: Math.max(count - 1, 0), baseTimestamp: 0n, maxTimestamp: 0n, recordCount: count },
    Uint8Array.from(section));
}

function decodeRaw(bytes: Uint8Array): StoredRecord[] {
  const p = load(bytes);
  const s = scanner.scan(p, bytes.length);
  assert.equal(s.stop, ScanStop.End, 'the batch frame itself is valid');
  const out: StoredRecord[] = [];
  decoder.decode(p, s.batches[0]!, out);
  return out;
}

/** A record body with fields given as raw numbers (varints) and byte runs. */
function rec(fields: (number | bigint | number[])[]): number[] {
  const body: number[] = [0];
  fields.forEach((f, i) => {
    if (Array.isArray(f)) body.push(...f);
    else if (typeof f === 'bigint' || i === 0) pushVarlong(body, BigInt(f));
    else pushVarint(body, f);
  });
  const out: number[] = [];
  pushVarint(out, body.length);
  out.push(...body);
  return out;
}

function withLen(body: number[]): number[] {
  const out: number[] = [];
  pushVarint(out, body.length);
  return [...out, ...body];
}

test('the rec() helper builds what the encoder builds', () => {
  const section = [...rec([0n, 0, -1, 2, [0x68, 0x69], 0]), ...rec([5n, 1, 1, [0x6b], 2, [0x76, 0x32], 1, 1, [0x68], 1, [0x78]])];
  assert.deepEqual(section, KNOWN_SECTION);
  assert.equal(decodeRaw(rawBatch(section, 2)).length, 2);
});

test('malformed record sections give CorruptionError, never garbage or a trap', () => {
  const ok = rec([0n, 0, -1, 1, [0x61], 0]);
  const ok1 = rec([0n, 1, -1, 1, [0x61], 0]);
  const ok2 = rec([0n, 2, -1, 1, [0x61], 0]);
  const long = rec([0n, 0, -1, 30, Array(30).fill(0x62), 0]);
  const long1 = rec([0n, 1, -1, 30, Array(30).fill(0x62), 0]);
  const cases: [string, number[], number][] = [
    ['record length varint longer than 5 bytes', [0x80, 0x80, 0x80, 0x80, 0x80, 0x01, ...ok.slice(1)], 1],
    ['record length past the end', [0x7e, ...ok.slice(1)], 1],
    ['record length 0', [0x00, 0, 0, 0, 1, 2, 0x61, 0], 1],
    ['negative record length', [0x01, ...ok.slice(1)], 1],
    ['truncated record length varint', [...ok, 0x80], 2],
    ['truncated header count varint', [...ok.slice(0, -1), 0x80], 1],
    ['key length -2', rec([0n, 0, -2, 1, [0x61], 0]), 1],
    ['key longer than the record', rec([0n, 0, 50, [1, 2, 3], 0]), 1],
    ['value longer than the record', rec([0n, 0, -1, 40, [1, 2], 0]), 1],
    ['value length -5', rec([0n, 0, -1, -5, 0]), 1],
    ['negative header count', rec([0n, 0, -1, 1, [0x61], -1]), 1],
    ['header count far beyond the section', rec([0n, 0, -1, 1, [0x61], 1_000_000_000]), 1],
    ['header name length -1 (null names are not allowed)', rec([0n, 0, -1, 1, [0x61], 1, -1, 1, [0x78]]), 1],
    ['header name past the record', rec([0n, 0, -1, 1, [0x61], 1, 9, [0x68]]), 1],
    ['header value past the record', rec([0n, 0, -1, 1, [0x61], 1, 1, [0x68], 9, [0x78]]), 1],
    ['timestamp varlong longer than 10 bytes', withLen([0, ...Array(10).fill(0x80), 0x01, 0, 1, 2, 0x61, 0]), 1],
    ['offset delta varint longer than 5 bytes', withLen([0, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 1, 2, 0x61, 0]), 1],
    ['trailing bytes inside a record', rec([0n, 0, -1, 1, [0x61], 0, [0xee]]), 1],
    ['a record length that swallows the next record', withLen([0, 0, 0, 1, 2, 0x61, 0, ...ok1]), 2],
    ['overlong 6-byte record length varint', [0x8e, 0x80, 0x80, 0x80, 0x80, 0x00, ...ok.slice(1)], 1],
    ['overlong 11-byte timestamp varlong', withLen([0, ...Array(10).fill(0x80), 0x00, 0, 1, 2, 0x61, 0]), 1],
    ['missing fields at the end of a record', rec([0n, 0, -1]), 1],
    ['fewer records than recordCount', [...ok, ...ok1], 3],
    ['fewer records than recordCount (longer records)', [...long, ...long1], 3],
    ['more records than recordCount', [...ok, ...ok1, ...ok2], 2],
    ['recordCount larger than the section could hold', ok, 1_000_000],
    ['an empty section with recordCount 1', [], 1],
    ['a section with recordCount 0', ok, 0],
    ['negative offset delta', rec([0n, -1, -1, 1, [0x61], 0]), 1],
    ['offset delta beyond lastOffsetDelta', rec([0n, 1, -1, 1, [0x61], 0]), 1],
    ['repeated offset delta', [...ok, ...ok], 2],
    ['decreasing offset deltas', [...rec([0n, 1, -1, 1, [0x61], 0]), ...ok], 2],
  ];
  for (const [what, section, count] of cases) {
    assert.throws(() => decodeRaw(rawBatch(section, count)), CorruptionError, what);
  }
  // The decoder is still usable afterwards.
  assert.deepEqual(decodeRaw(rawBatch([...ok, ...ok1], 2)).map((r) => r.value), [utf8.encode('a'), utf8.encode('a')]);
  // Gaps in offset deltas are legal (a compacted batch keeps its offsets).
  const gap = rawBatch([...ok, ...rec([0n, 5, -1, 1, [0x61], 0])], 2);
  new DataView(gap.buffer).setInt32(23, 5);
  refFixCrc(gap);
  assert.deepEqual(decodeRaw(gap).map((r) => r.offset), [0, 5]);
  // A 5-byte (overlong) varint is still a varint, as in Kafka's reader.
  assert.equal(decodeRaw(rawBatch([0x8e, 0x80, 0x80, 0x80, 0x00, ...ok.slice(1)], 1)).length, 1);
  assert.deepEqual(decodeRaw(rawBatch([], 0)), [], 'a compacted-away batch holds no records');
});

test('fuzzed record sections decode consistently or give CorruptionError', () => {
  const recs: RecordInput[] = Array.from({ length: 6 }, (_, i) => ({
    key: i % 2 ? `k${i}` : null, value: 'x'.repeat(i * 5), headers: i % 3 ? [['h', `${i}`]] : [], timestamp: 100 + i,
  }));
  const good = encode(recs);
  const section = good.subarray(BATCH_HEADER_SIZE);
  fc.assert(fc.property(
    fc.array(fc.tuple(fc.nat(section.length - 1), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }),
    fc.nat(section.length), fc.boolean(),
    (flips, cut, truncate) => {
      const mutated = Uint8Array.from(section);
      for (const [pos, mask] of flips) mutated[pos] ^= mask;
      const body = truncate ? mutated.subarray(0, cut) : mutated;
      const bytes = rawBatch(body, recs.length);
      let out: StoredRecord[];
      try {
        out = decodeRaw(bytes);
      } catch (err) {
        assert.ok(err instanceof CorruptionError, `unexpected ${(err as Error).name}: ${(err as Error).message}`);
        return;
      }
      // Accepted: then counts match, offsets increase inside the batch's
      // range, and every payload byte lies inside the section.
      assert.equal(out.length, recs.length);
      for (let i = 0; i < out.length; i++) {
        assert.ok(out[i]!.offset >= 0 && out[i]!.offset <= recs.length - 1);
        if (i > 0) assert.ok(out[i]!.offset > out[i - 1]!.offset);
      }
      let payload = 0;
      for (const r of out) {
        payload += (r.key?.length ?? 0) + (r.value?.length ?? 0);
        for (const h of r.headers) payload += h.value?.length ?? 0;
      }
      assert.ok(payload <= body.length);
    }), { numRuns: 2000 });
});

// --- codecs and timestamp types ------------------------------------------------------

test('gzip batches (codec 1) are read by decodeAsync', async () => {
  const recs: RecordInput[] = Array.from({ length: 20 }, (_, i) => ({
    key: i % 4 ? `key${i}` : null, value: `value ${i} `.repeat(i), headers: i % 2 ? { n: `${i}` } : undefined, timestamp: 1000 + i,
  }));
  const plain = encode(recs, 500);
  const bytes = refGzipBatch(plain);
  const s = scan(bytes);
  assert.equal(s.stop, ScanStop.End);
  assert.equal(s.batches[0]!.attributes & 7, 1);
  assert.throws(() => decodeAll(bytes), InvalidArgumentError, 'the sync decoder refuses gzip');
  assert.deepEqual(await decodeAllAsync(bytes), expected(recs, 500));
  // Uncompressed batches go through decodeAsync too.
  assert.deepEqual(await decodeAllAsync(plain), expected(recs, 500));
  // Garbage instead of gzip data (with a valid CRC) is corruption.
  const junk = bytes.slice();
  junk.fill(0x5a, BATCH_HEADER_SIZE + 12);
  refFixCrc(junk);
  await assert.rejects(decodeAllAsync(junk), CorruptionError);
  // Valid gzip of a malformed section is corruption too.
  const badInner = refGzipBatch(plain, plain.subarray(BATCH_HEADER_SIZE, plain.length - 3));
  await assert.rejects(decodeAllAsync(badInner), CorruptionError);
});

test('a gzip batch that inflates beyond MAX_INFLATED_BYTES is corruption, not a huge allocation', async () => {
  const plain = encode([{ key: null, value: 'x' }], 0);
  // 1 KiB of gzip that inflates to MAX_INFLATED_BYTES + 1 MiB of zeros.
  const bomb = gzipSync(new Uint8Array(MAX_INFLATED_BYTES + (1 << 20)), { level: 9 });
  assert.ok(bomb.length < 256 * 1024);
  const bytes = concat([plain.subarray(0, BATCH_HEADER_SIZE), bomb]);
  const dv = new DataView(bytes.buffer);
  dv.setInt32(8, bytes.length - 12);
  dv.setInt16(21, 1);
  refFixCrc(bytes);
  assert.equal(scan(bytes).stop, ScanStop.End);
  await assert.rejects(decodeAllAsync(bytes), (e: unknown) => e instanceof CorruptionError && /exceeds the limit/.test((e as Error).message));
});

test('snappy, lz4, zstd and unknown codecs give UnsupportedCodecError', async () => {
  for (const codec of [2, 3, 4, 5, 6, 7]) {
    const bytes = knownBatch(0);
    new DataView(bytes.buffer).setInt16(21, codec);
    refFixCrc(bytes);
    const p = load(bytes);
    const s = scanner.scan(p, bytes.length);
    assert.equal(s.stop, ScanStop.End);
    assert.throws(() => decoder.decode(p, s.batches[0]!, []), (e: unknown) => e instanceof UnsupportedCodecError && e.codec === codec);
    await assert.rejects(decoder.decodeAsync(p, s.batches[0]!, []), UnsupportedCodecError);
  }
});

test('LogAppendTime makes every record timestamp the batch maxTimestamp', () => {
  const recs: RecordInput[] = [{ value: 'a', timestamp: 50 }, { value: 'b', timestamp: 90 }, { value: 'c', timestamp: 10 }];
  const bytes = encode(recs, 0, { attributes: ATTR_LOG_APPEND_TIME });
  assert.equal(new DataView(bytes.buffer).getInt16(21), ATTR_LOG_APPEND_TIME);
  assert.deepEqual(decodeAll(bytes).map((r) => r.timestamp), [90, 90, 90]);
  // And with CreateTime each record keeps its own.
  assert.deepEqual(decodeAll(encode(recs)).map((r) => r.timestamp), [50, 90, 10]);
  // The reader honours the bit whatever wrote it: maxTimestamp from the header.
  const other = knownBatch(0);
  const dv = new DataView(other.buffer);
  dv.setInt16(21, ATTR_LOG_APPEND_TIME);
  dv.setBigInt64(35, 123456789n);
  refFixCrc(other);
  assert.deepEqual(decodeAll(other).map((r) => r.timestamp), [123456789, 123456789]);
});

// --- input validation -----------------------------------------------------------------

test('normalizeRecord rejects invalid input with InvalidArgumentError', () => {
  const bad: unknown[] = [
    null, undefined, 5, 'text', [], new Uint8Array(3),
    {},
    { key: 'k' },
    { value: 5 },
    { value: {} },
    { value: [1, 2, 3] },
    { value: new ArrayBuffer(4) },
    { value: new Uint16Array(2) },
    { key: 7, value: 'v' },
    { key: { a: 1 }, value: 'v' },
    { value: 'v', timestamp: 1.5 },
    { value: 'v', timestamp: Number.NaN },
    { value: 'v', timestamp: Infinity },
    { value: 'v', timestamp: 2 ** 53 },
    { value: 'v', timestamp: '1700000000000' },
    { value: 'v', timestamp: null },
    { value: 'v', timestamp: 10n },
    { value: 'v', headers: 5 },
    { value: 'v', headers: 'h' },
    { value: 'v', headers: [5] },
    { value: 'v', headers: [['a']] },
    { value: 'v', headers: [[1, 'x']] },
    { value: 'v', headers: [{ key: 2, value: 'x' }] },
    { value: 'v', headers: [{ key: 'a', value: 5 }] },
    { value: 'v', headers: { a: 5 } },
    { value: 'v', headers: { a: ['x'] } },
  ];
  for (const r of bad) {
    assert.throws(() => normalizeRecord(r, 3, 0), (e: unknown) => e instanceof InvalidArgumentError && e.code === 'ERR_INVALID_ARGUMENT',
      `accepted ${JSON.stringify(r, (_k, v) => typeof v === 'bigint' ? `${v}n` : v)}`);
  }
});

test('normalizeRecord accepts every documented input form', () => {
  const a = normalizeRecord({ value: null }, 0, 777);
  assert.equal(a.key, null);
  assert.equal(a.value, null);
  assert.equal(a.timestamp, 777, 'the append time is the default timestamp');
  const b = normalizeRecord({ key: 'é', value: Buffer.from([1, 2]), timestamp: -5, headers: [['x', null], { key: 'y', value: 'z' }] }, 0, 0);
  assert.deepEqual(b.key, utf8.encode('é'));
  assert.deepEqual(Array.from(b.value!), [1, 2]);
  assert.equal(b.timestamp, -5);
  assert.deepEqual(b.headerKeys, [utf8.encode('x'), utf8.encode('y')]);
  assert.deepEqual(b.headerValues, [null, utf8.encode('z')]);
  const c = normalizeRecord({ value: 'v', key: undefined, headers: { p: 'q' } }, 0, 0);
  assert.equal(c.key, null);
  assert.deepEqual(c.headerKeys, [utf8.encode('p')]);
});

test('a batch with more header rows than the decoder first holds decodes (the header table grows)', () => {
  // 3 records x 1500 headers: beyond the initial 1024-row header table, twice.
  const recs: RecordInput[] = Array.from({ length: 3 }, (_, i) => ({
    key: `k${i}`, value: `v${i}`, timestamp: 1000 + i,
    headers: Array.from({ length: 1500 }, (_, j) => [`h${j}`, j % 3 === 0 ? null : `${i}-${j}`] as [string, string | null]),
  }));
  const bytes = encode(recs, 0);
  const fresh = new RecordBatchDecoder(k);
  try {
    const p = load(bytes);
    const s = scanner.scan(p, bytes.length);
    assert.equal(s.stop, ScanStop.End);
    const out: StoredRecord[] = [];
    fresh.decode(p, s.batches[0]!, out);
    assert.deepEqual(out, expected(recs, 0));
  } finally {
    fresh.free();
  }
});

test('lastValuePositions: each record\'s value starts there in the encoded batch (null values: where they would)', () => {
  fc.assert(fc.property(
    fc.array(fc.record({
      key: fc.option(fc.uint8Array({ maxLength: 20 }), { nil: null }),
      value: fc.option(fc.uint8Array({ maxLength: 300 }), { nil: null }),
      nh: fc.integer({ min: 0, max: 3 }),
    }), { minLength: 1, maxLength: 40 }),
    (specs) => {
      const recs: RecordInput[] = specs.map((r, i) => ({ key: r.key, value: r.value, timestamp: 1000 + i,
        headers: Array.from({ length: r.nh }, (_, j) => [`h${j}`, `v${j}`] as [string, string]) }));
      const norm = recs.map((r, i) => normalizeRecord(r, i, 0));
      const size = encoder.encode(norm, outBuf, 0);
      const vp = encoder.lastValuePositions();
      assert.equal(vp.length, recs.length);
      const bytes = k.u8.slice(outBuf.ptr, outBuf.ptr + size);
      const decoded = decodeAll(bytes);
      for (let i = 0; i < recs.length; i++) {
        const v = decoded[i]!.value;
        if (v !== null) assert.deepEqual(bytes.subarray(vp[i]!, vp[i]! + v.length), v);
        // The value length varint ends right before the position: -1 (zig-zag 0x01) for null.
        if (v === null) assert.equal(bytes[vp[i]! - 1], 0x01);
      }
    }), { numRuns: 200 });
});
