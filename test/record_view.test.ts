// RecordBatchView: lazy, zero-copy views of a batch's records
// (RecordBatchDecoder.decodeView / decodeViewAsync / viewOf). The view must
// give exactly the records of the copying decoder, never refer to wasm
// memory, and never exist for a corrupt batch.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { getKernelsSync, WasmBuffer } from '../src/kernels.js';
import {
  RecordBatchEncoder, BatchScanner, RecordBatchDecoder, RecordBatchView, ViewScratch, stampBaseOffset, ScanStop,
  ATTR_LOG_APPEND_TIME, BATCH_HEADER_SIZE, EncodeOptions,
} from '../src/record_batch.js';
import { normalizeRecord, RecordInput, StoredRecord } from '../src/record.js';
import { ClosedError, CorruptionError, InvalidArgumentError, UnsupportedCodecError } from '../src/errors.js';
import { refFixCrc, refGzipBatch } from './fixtures/reference.js';
import { randomBytes } from './helpers/random.js';

const k = getKernelsSync();
const encoder = new RecordBatchEncoder(k);
const scanner = new BatchScanner(k);
const decoder = new RecordBatchDecoder(k);
const outBuf = new WasmBuffer(k, 64 * 1024);
const inBuf = new WasmBuffer(k, 64 * 1024);

function encode(records: readonly RecordInput[], baseOffset = 0, opts: EncodeOptions = {}): Uint8Array {
  const size = encoder.encode(records.map((r, i) => normalizeRecord(r, i, 0)), outBuf, 0, opts);
  stampBaseOffset(k, outBuf.ptr, baseOffset);
  return k.u8.slice(outBuf.ptr, outBuf.ptr + size);
}

/** The copying decoder's records (the reference the views must match). */
async function copyingDecode(bytes: Uint8Array, minOffset = 0, limit = Infinity): Promise<StoredRecord[]> {
  const p = inBuf.ensure(bytes.length);
  k.u8.set(bytes, p);
  const s = scanner.scan(p, bytes.length);
  assert.equal(s.stop, ScanStop.End);
  const out: StoredRecord[] = [];
  for (const b of s.batches) await decoder.decodeAsync(p + b.position, b, out, minOffset, undefined, limit);
  return out;
}

/** What decoding must give back for records written at baseOffset (from the inputs, not from a decoder). */
function expected(records: readonly RecordInput[], baseOffset: number, appendTime = false): StoredRecord[] {
  const norm = records.map((r, i) => normalizeRecord(r, i, 0));
  const maxTs = Math.max(...norm.map((r) => r.timestamp));
  return norm.map((r, i) => ({
    offset: baseOffset + i,
    timestamp: appendTime ? maxTs : r.timestamp,
    key: r.key === null ? null : Uint8Array.from(r.key),
    value: r.value === null ? null : Uint8Array.from(r.value),
    headers: r.headerKeys.map((hk, j) => ({
      key: new TextDecoder().decode(hk),
      value: r.headerValues[j] === null || r.headerValues[j] === undefined ? null : Uint8Array.from(r.headerValues[j]!),
    })),
  }));
}

/** Every record of a view through its accessors (not through recordAt). */
function viaAccessors(v: RecordBatchView): StoredRecord[] {
  const out: StoredRecord[] = [];
  for (let i = 0; i < v.count; i++) {
    out.push({ offset: v.offsetAt(i), timestamp: v.timestampAt(i), key: v.keyAt(i), value: v.valueAt(i), headers: v.headersAt(i) });
    assert.equal(v.keyLengthAt(i), v.keyAt(i)?.length ?? -1);
    assert.equal(v.valueLengthAt(i), v.valueAt(i)?.length ?? -1);
    assert.equal(v.headerCountAt(i), v.headersAt(i).length);
  }
  return out;
}

// size 'max': lengths spread over the whole range (fast-check's default keeps arrays near 10 elements).
const bytesArb = (max: number) => fc.uint8Array({ maxLength: max, size: 'max' });
const recordArb: fc.Arbitrary<RecordInput> = fc.record({
  // null (Kafka's -1) and empty keys and values are distinct.
  key: fc.oneof(fc.constant(null), fc.constant(new Uint8Array(0)), bytesArb(40)),
  // Now and then a value over 8 KiB: three-byte length varints.
  value: fc.oneof(fc.constant(null), fc.constant(new Uint8Array(0)), bytesArb(300),
    { weight: 1, arbitrary: fc.integer({ min: 8192, max: 20_000 }).map((n) => randomBytes(n, n)) }),
  headers: fc.array(fc.tuple(fc.string({ maxLength: 12, unit: 'grapheme' }), fc.oneof(fc.constant(null), bytesArb(20))), { maxLength: 4 }),
  timestamp: fc.integer({ min: 0, max: 2 ** 45 }),
});

test('decodeView gives exactly the records of the copying decoder (random keys, values, headers; gzip too)', async () => {
  await fc.assert(fc.asyncProperty(
    fc.array(recordArb, { minLength: 1, maxLength: 40, size: 'max' }), fc.integer({ min: 0, max: 2 ** 40 }), fc.boolean(), fc.boolean(),
    async (records, baseOffset, gzip, appendTime) => {
      const plain = encode(records, baseOffset, { attributes: appendTime ? ATTR_LOG_APPEND_TIME : 0 });
      const bytes = gzip ? refGzipBatch(plain) : plain;
      const want = await copyingDecode(bytes);
      assert.deepEqual(want, expected(records, baseOffset, appendTime));
      const v = gzip ? await decoder.decodeViewAsync(bytes) : decoder.decodeView(bytes);
      assert.equal(v.count, records.length);
      assert.deepEqual(viaAccessors(v), want);
      assert.deepEqual(v.toRecords(), want);
      assert.deepEqual([...v], want);
      assert.equal(v.firstOffset, baseOffset);
      assert.equal(v.lastOffset, baseOffset + records.length - 1);
      if (appendTime) for (let i = 0; i < v.count; i++) assert.equal(v.timestampAt(i), v.batch!.maxTimestamp);
      // Uncompressed: keys and values are views into the input itself.
      if (!gzip) {
        for (let i = 0; i < v.count; i++) {
          const val = v.valueAt(i);
          if (val !== null) assert.equal(val.buffer, bytes.buffer);
        }
        assert.deepEqual(viaAccessors(await decoder.decodeViewAsync(bytes)), want);
      }
    },
  ), { numRuns: 150 });
});

test('viewOf (batch in wasm memory) with minOffset and maxRecords matches decode with the same limits', async () => {
  await fc.assert(fc.asyncProperty(
    fc.array(recordArb, { minLength: 1, maxLength: 30, size: 'max' }), fc.nat(40), fc.integer({ min: 0, max: 35 }), fc.boolean(), fc.boolean(),
    async (records, skip, maxRecords, gzip, useScratch) => {
      const base = 1000;
      const plain = encode(records, base);
      const bytes = gzip ? refGzipBatch(plain) : plain;
      const want = await copyingDecode(bytes, base + skip, maxRecords);
      const p = inBuf.ensure(bytes.length);
      k.u8.set(bytes, p);
      const s = scanner.scan(p, bytes.length);
      const opts = { minOffset: base + skip, maxRecords, scratch: useScratch ? new ViewScratch() : undefined };
      const v = await decoder.viewOfAsync(p + s.batches[0]!.position, s.batches[0]!, opts);
      assert.equal(v.count, want.length);
      assert.deepEqual(viaAccessors(v), want);
      // The bytes were copied out of wasm memory: overwriting the input there changes nothing.
      k.u8.fill(0xee, p, p + bytes.length);
      assert.deepEqual(v.toRecords(), want);
      if (!gzip && !useScratch) {
        assert.throws(() => decoder.viewOf(p, s.batches[0]!, opts), CorruptionError, 'the overwritten batch is malformed');
      }
    },
  ), { numRuns: 150 });
});

test('null and empty keys and values stay distinct in views', () => {
  const bytes = encode([
    { key: null, value: null }, { key: '', value: '' }, { key: 'k', value: null }, { value: new Uint8Array(0) },
  ], 7);
  const v = decoder.decodeView(bytes);
  assert.equal(v.keyAt(0), null);
  assert.equal(v.valueAt(0), null);
  assert.deepEqual(v.keyAt(1), new Uint8Array(0));
  assert.deepEqual(v.valueAt(1), new Uint8Array(0));
  assert.deepEqual(v.keyAt(2), new TextEncoder().encode('k'));
  assert.equal(v.valueAt(2), null);
  assert.equal(v.keyAt(3), null);
  assert.deepEqual(v.valueAt(3), new Uint8Array(0));
  assert.deepEqual([0, 1, 2, 3].map((i) => [v.keyLengthAt(i), v.valueLengthAt(i)]), [[-1, -1], [0, 0], [1, -1], [-1, 0]]);
  assert.deepEqual([0, 1, 2, 3].map((i) => v.offsetAt(i)), [7, 8, 9, 10]);
});

test('headers: names decoded, null and empty values distinct, payloadBytesAt counts UTF-8 bytes', () => {
  const bytes = encode([
    { key: 'a', value: 'xyz', headers: [['é', 'v1'], ['', null], ['n', '']] },
    { key: null, value: 'q' },
    { key: 'b', value: null, headers: { h: 'w' } },
  ]);
  const v = decoder.decodeView(bytes);
  const h = v.headersAt(0);
  assert.deepEqual(h.map((x) => x.key), ['é', '', 'n']);
  assert.deepEqual(h[0]!.value, new TextEncoder().encode('v1'));
  assert.equal(h[1]!.value, null);
  assert.deepEqual(h[2]!.value, new Uint8Array(0));
  assert.deepEqual(v.headersAt(1), []);
  assert.deepEqual(v.headersAt(2).map((x) => x.key), ['h']);
  // 1 + 3 + (2 + 2) + (0 + 0) + (1 + 0): 'é' is 2 bytes of UTF-8.
  assert.equal(v.payloadBytesAt(0), 9);
  assert.equal(v.payloadBytesAt(1), 1);
  assert.equal(v.payloadBytesAt(2), 1 + 1 + 1);
  // A slice finds its records' headers (rows after the first).
  const tail = v.slice(2);
  assert.equal(tail.count, 1);
  assert.deepEqual(tail.headersAt(0).map((x) => x.key), ['h']);
  assert.equal(tail.offsetAt(0), 2);
});

test('views survive wasm memory growth and later decodes', async () => {
  const records = Array.from({ length: 50 }, (_, i) => ({ key: `key-${i}`, value: randomBytes(200 + i, i + 1) }));
  const bytes = encode(records, 100);
  const gz = refGzipBatch(bytes);
  const want = await copyingDecode(bytes);
  const fromInput = decoder.decodeView(bytes);
  const fromGzip = await decoder.decodeViewAsync(gz);
  const p = inBuf.ensure(bytes.length);
  k.u8.set(bytes, p);
  const s = scanner.scan(p, bytes.length);
  const fromWasm = decoder.viewOf(p, s.batches[0]!);
  const keysBefore = [fromInput.keyAt(3)!, fromWasm.keyAt(3)!, fromGzip.keyAt(3)!];
  const memoryBefore = k.raw.memory.buffer;
  for (const v of [fromInput, fromWasm, fromGzip]) {
    for (let i = 0; i < v.count; i++) assert.notEqual(v.valueAt(i)!.buffer, memoryBefore, 'no view refers to wasm memory');
  }
  // Grow wasm memory (detaches every view of the old buffer) and reuse the decoder's tables.
  const big = new WasmBuffer(k, k.memoryBytes + (16 << 20));
  try {
    assert.notEqual(k.raw.memory.buffer, memoryBefore, 'memory grew');
    assert.equal(memoryBefore.byteLength, 0, 'the old memory buffer is detached');
    k.u8.fill(0xab, big.ptr, big.ptr + big.capacity);
    decoder.decodeView(encode([{ key: 'other', value: 'bytes' }], 5));
    for (const v of [fromInput, fromWasm, fromGzip]) assert.deepEqual(viaAccessors(v), want);
    for (const key of keysBefore) assert.deepEqual(key, want[3]!.key);
  } finally {
    big.free();
  }
});

test('a corrupted batch never yields a view: every byte the CRC or framing covers is checked', async () => {
  const records = Array.from({ length: 6 }, (_, i) => ({ key: i % 2 ? `k${i}` : null, value: `value ${i}`, headers: i === 3 ? { h: 'x' } : undefined }));
  const bytes = encode(records, 42);
  const want = await copyingDecode(bytes);
  for (let at = 0; at < bytes.length; at++) {
    for (const mask of [0x01, 0x80]) {
      const bad = bytes.slice();
      bad[at]! ^= mask;
      let view: RecordBatchView | null = null;
      try { view = decoder.decodeView(bad); } catch (e) {
        assert.ok(e instanceof CorruptionError, `byte ${at}: ${String(e)}`);
        continue;
      }
      // Only baseOffset (0-7) and the partition leader epoch (12-15) lie
      // outside the CRC, as in Kafka; the log checks offsets against its index.
      assert.ok(at < 8 || (at >= 12 && at < 16), `a flip at byte ${at} yielded a view`);
      if (at >= 12) assert.deepEqual(view.toRecords(), want);
    }
  }
  // Every truncation is refused.
  for (let len = 0; len < bytes.length; len++) assert.throws(() => decoder.decodeView(bytes.subarray(0, len)), CorruptionError);
  // Trailing bytes after the batch are ignored; position selects the batch.
  const two = new Uint8Array(bytes.length * 2 + 3);
  two.set(bytes, 3);
  two.set(encode(records, 48), 3 + bytes.length);
  assert.equal(decoder.decodeView(two, { position: 3 }).firstOffset, 42);
  assert.equal(decoder.decodeView(two, { position: 3 + bytes.length }).firstOffset, 48);
  assert.throws(() => decoder.decodeView(two, { position: -1 }), InvalidArgumentError);
  assert.throws(() => decoder.decodeView(two, { position: two.length + 1 }), InvalidArgumentError);
  assert.throws(() => decoder.decodeView(bytes, { maxBatchBytes: bytes.length - 1 }), CorruptionError);
});

test('framing damage under a valid CRC: decodeView and the copying decoder agree (both refuse, or the same records)', async () => {
  const records = Array.from({ length: 5 }, (_, i) => ({ key: `key${i}`, value: 'v'.repeat(i * 3), headers: i % 2 ? [['h', 'x']] as [string, string][] : undefined }));
  const bytes = encode(records, 9);
  await fc.assert(fc.asyncProperty(
    fc.array(fc.tuple(fc.integer({ min: BATCH_HEADER_SIZE - 4, max: bytes.length - 1 }), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 3 }),
    async (flips) => {
      const bad = bytes.slice();
      for (const [at, x] of flips) bad[at]! ^= x;
      refFixCrc(bad);
      let want: StoredRecord[] | Error;
      try { want = await copyingDecode(bad); } catch (e) { want = e as Error; }
      let got: StoredRecord[] | Error;
      try { got = decoder.decodeView(bad).toRecords(); } catch (e) { got = e as Error; }
      if (want instanceof Error) {
        assert.ok(got instanceof CorruptionError, `decode refused (${want.message}) but decodeView gave ${String(got)}`);
      } else {
        assert.deepEqual(got, want);
      }
    },
  ), { numRuns: 300 });
});

test('gzip: the sync decodeView refuses it; other codecs are UnsupportedCodecError; garbage gzip is corruption', async () => {
  const plain = encode([{ key: 'a', value: 'b' }]);
  const gz = refGzipBatch(plain);
  assert.throws(() => decoder.decodeView(gz), InvalidArgumentError);
  for (const codec of [2, 3, 4]) {
    const b = plain.slice();
    new DataView(b.buffer).setInt16(21, codec);
    refFixCrc(b);
    assert.throws(() => decoder.decodeView(b), UnsupportedCodecError);
    await assert.rejects(decoder.decodeViewAsync(b), UnsupportedCodecError);
  }
  const junk = gz.slice();
  junk.fill(0x5a, BATCH_HEADER_SIZE + 10);
  refFixCrc(junk);
  await assert.rejects(decoder.decodeViewAsync(junk), CorruptionError);
});

test('indexes outside 0..count-1 are InvalidArgumentError; slices check their bounds', () => {
  const v = decoder.decodeView(encode([{ value: 'a' }, { value: 'b' }, { value: 'c' }], 10));
  for (const bad of [-1, 3, 1.5, NaN, 2 ** 32]) {
    assert.throws(() => v.keyAt(bad), InvalidArgumentError);
    assert.throws(() => v.offsetAt(bad), InvalidArgumentError);
    assert.throws(() => v.headersAt(bad), InvalidArgumentError);
  }
  assert.throws(() => v.slice(2, 1), InvalidArgumentError);
  assert.throws(() => v.slice(0, 4), InvalidArgumentError);
  assert.equal(v.slice(1, 1).count, 0);
  assert.equal(v.slice(0, 3), v);
  assert.equal(v.indexOfOffset(0), 0);
  assert.equal(v.indexOfOffset(11), 1);
  assert.equal(v.indexOfOffset(13), 3);
  const e = RecordBatchView.empty(null);
  assert.equal(e.count, 0);
  assert.equal(e.firstOffset, undefined);
  assert.deepEqual(e.toRecords(), []);
});

test('ViewScratch: a view made with a scratch ends when the next one is made; the next one is right', () => {
  const scratch = new ViewScratch();
  const a = encode([{ key: 'a', value: 'first' }], 1);
  const b = encode([{ key: 'bb', value: 'second value' }, { key: null, value: 'x' }], 2);
  const va = decoder.decodeView(a, { scratch });
  assert.equal(va.valid, true);
  assert.equal(new TextDecoder().decode(va.valueAt(0)!), 'first');
  const vb = decoder.decodeView(b, { scratch });
  assert.equal(va.valid, false);
  assert.throws(() => va.valueAt(0), ClosedError);
  assert.throws(() => va.slice(0, 1), ClosedError);
  assert.deepEqual(vb.toRecords().map((r) => r.value && new TextDecoder().decode(r.value)), ['second value', 'x']);
  scratch.release();
  assert.throws(() => vb.offsetAt(0), ClosedError);
  // Views without a scratch own their memory and never end.
  const owned = decoder.decodeView(a);
  decoder.decodeView(b, { scratch });
  assert.equal(owned.valid, true);
});

test('fromRecords: the same accessors over decoded records', async () => {
  const recs = await copyingDecode(encode([{ key: 'k', value: 'v', headers: { 'ü': 'x' } }, { key: null, value: null }], 3));
  const v = RecordBatchView.fromRecords(recs);
  assert.equal(v.batch, null);
  assert.deepEqual(viaAccessors(v), recs);
  assert.equal(v.payloadBytesAt(0), 1 + 1 + 2 + 1);
  assert.deepEqual(v.slice(1).toRecords(), recs.slice(1));
  assert.equal(v.indexOfOffset(4), 1);
});

test('owned views never change: hundreds of small views decoded in a row all keep their records', async () => {
  const views: { view: RecordBatchView; want: StoredRecord[] }[] = [];
  for (let b = 0; b < 300; b++) {
    const records = Array.from({ length: 1 + (b % 13) }, (_, i) => ({
      key: i % 3 === 0 ? null : `k${b}.${i}`, value: randomBytes((b * 7 + i) % 50, b * 100 + i + 1), headers: i % 4 === 1 ? { h: `${b}` } : undefined,
    }));
    const bytes = encode(records, b * 20);
    const want = await copyingDecode(bytes);
    // Both kinds: views into the input (tables owned) and views that copy their bytes out of wasm memory.
    views.push({ view: decoder.decodeView(bytes), want });
    const p = inBuf.ensure(bytes.length);
    k.u8.set(bytes, p);
    views.push({ view: decoder.viewOf(p, scanner.scan(p, bytes.length).batches[0]!), want });
  }
  for (const { view, want } of views) assert.deepEqual(viaAccessors(view), want);
});
