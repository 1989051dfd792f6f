// Kafka RecordBatch v2 framing: sediment's wasm encoder and scanner/decoder
// against kafkajs's RecordBatch codec and a pure-TypeScript codec, on the
// same records.

import { BenchGroup, BenchCase, Contender, usPer } from '../harness.js';
import {
  getKernelsSync, WasmBuffer, RecordBatchEncoder, BatchScanner, RecordBatchDecoder, ScanStop,
  normalizeRecord, NormalizedRecord, RecordInput, StoredRecord, RecordBatchView,
} from '../../src/index.js';
import { tsEncodeBatch, tsDecodeBatch, tsBatchMaxSize, TsRecordIn, TsRecordOut } from '../lib/record_batch_ts.js';
import { loadKafkaJsCodec, KafkaJsRecord } from '../lib/peers.js';
import { randomBytes, sizeName } from '../lib/data.js';

const RECORDS = 100;
const KEY = 16;
const BASE_TS = 1_700_000_000_000;

interface Canonical { offset: number; timestamp: number; key: string | null; value: string | null }

function hex(b: Uint8Array | null): string | null {
  return b === null ? null : Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex');
}
function fromSediment(r: StoredRecord): Canonical { return { offset: r.offset, timestamp: r.timestamp, key: hex(r.key), value: hex(r.value) }; }
function fromTs(r: TsRecordOut): Canonical { return { offset: r.offset, timestamp: r.timestamp, key: hex(r.key), value: hex(r.value) }; }
function fromKafkaJs(r: KafkaJsRecord): Canonical {
  return { offset: Number(r.offset), timestamp: Number(r.timestamp), key: hex(r.key), value: hex(r.value) };
}
function fromView(v: RecordBatchView): Canonical[] {
  const out: Canonical[] = [];
  for (let i = 0; i < v.count; i++) out.push({ offset: v.offsetAt(i), timestamp: v.timestampAt(i), key: hex(v.keyAt(i)), value: hex(v.valueAt(i)) });
  return out;
}

/**
 * What every decode contender's timed loop does with each record: take its
 * key and value as the contender hands them out and read their lengths and
 * first bytes, so lazy work cannot be skipped. One copy per contender, so
 * that no contender's loop sees another's array types (shared inline caches
 * would go polymorphic).
 */
function touchView(key: Uint8Array | null, value: Uint8Array | null): number {
  return (key === null ? 0 : key.length + (key[0] ?? 0)) + (value === null ? 0 : value.length + (value[0] ?? 0));
}
function touchCopy(key: Uint8Array | null, value: Uint8Array | null): number {
  return (key === null ? 0 : key.length + (key[0] ?? 0)) + (value === null ? 0 : value.length + (value[0] ?? 0));
}
function touchKafka(key: Uint8Array | null, value: Uint8Array | null): number {
  return (key === null ? 0 : key.length + (key[0] ?? 0)) + (value === null ? 0 : value.length + (value[0] ?? 0));
}
function touchTs(key: Uint8Array | null, value: Uint8Array | null): number {
  return (key === null ? 0 : key.length + (key[0] ?? 0)) + (value === null ? 0 : value.length + (value[0] ?? 0));
}

/** The records of one case: 16-byte keys, values of valueSize bytes, timestamps 1 ms apart, no headers. */
function makeRecords(valueSize: number): Buffer[][] {
  const bytes = randomBytes(RECORDS * (KEY + valueSize), valueSize);
  const out: Buffer[][] = [];
  for (let i = 0; i < RECORDS; i++) {
    const at = i * (KEY + valueSize);
    out.push([Buffer.from(bytes.subarray(at, at + KEY)), Buffer.from(bytes.subarray(at + KEY, at + KEY + valueSize))]);
  }
  return out;
}

function encodeCase(valueSize: number): BenchCase {
  return {
    name: `encode ${RECORDS} records, ${sizeName(valueSize)} values`,
    metric: usPer(1, 'batch'),
    bars: [{ label: 'codec ≥ 10× kafkajs: encode', sediment: 'sediment wasm', peers: ['kafkajs'], minRatio: 10 }],
    setup() {
      const k = getKernelsSync();
      const codec = loadKafkaJsCodec();
      const kv = makeRecords(valueSize);
      const inputs: RecordInput[] = kv.map(([key, value], i) => ({ key, value, timestamp: BASE_TS + i }));
      const tsInputs: TsRecordIn[] = kv.map(([key, value], i) => ({ key: key!, value: value!, timestamp: BASE_TS + i }));
      const enc = new RecordBatchEncoder(k);
      const out = new WasmBuffer(k, 256 * 1024);
      const norm: NormalizedRecord[] = new Array(RECORDS);
      const preNorm: NormalizedRecord[] = inputs.map((r, j) => normalizeRecord(r, j, 0));
      const tsOut = new Uint8Array(tsBatchMaxSize(tsInputs));
      const tsDv = new DataView(tsOut.buffer);
      const kafkaBatch = async (): Promise<Buffer> => {
        const records = kv.map(([key, value], i) => codec.Record({ offsetDelta: i, timestampDelta: i, key: key!, value: value! }));
        const rb = await codec.RecordBatch({
          records, firstTimestamp: BASE_TS, maxTimestamp: BASE_TS + RECORDS - 1,
          partitionLeaderEpoch: -1, lastOffsetDelta: RECORDS - 1, producerEpoch: -1, firstSequence: -1,
        });
        return rb.buffer;
      };
      const sedimentEncode = (): number => {
        const now = Date.now();
        for (let j = 0; j < RECORDS; j++) norm[j] = normalizeRecord(inputs[j], j, now);
        return enc.encode(norm, out);
      };
      const contenders: Contender[] = [
        {
          name: 'sediment wasm', role: 'sediment',
          note: 'normalizeRecord per record + RecordBatchEncoder.encode: lays out the batch and copies payloads into wasm memory, CRC in wasm; the batch stays in wasm memory (where the log writes it from)',
          run(n) { let s = 0; for (let i = 0; i < n; i++) s = sedimentEncode(); return s; },
          output: () => hex(k.u8.slice(out.ptr, out.ptr + sedimentEncode())),
        },
        {
          name: 'sediment wasm (normalized)', role: 'sediment',
          note: 'RecordBatchEncoder.encode alone, on records normalised once beforehand (isolates the framing from input validation)',
          run(n) { let s = 0; for (let i = 0; i < n; i++) s = enc.encode(preNorm, out); return s; },
          output: () => hex(k.u8.slice(out.ptr, out.ptr + enc.encode(preNorm, out))),
        },
        {
          name: 'kafkajs', role: 'peer',
          note: 'kafkajs 2.x src/protocol/recordBatch: Record v0 encoder per record + RecordBatch v0 encoder (async; pure JS, including its CRC-32C)',
          async: true,
          async run(n) { let b: Buffer | undefined; for (let i = 0; i < n; i++) b = await kafkaBatch(); return b; },
          output: async () => hex(await kafkaBatch()),
        },
        {
          name: 'pure TS', role: 'peer',
          note: 'bench/lib/record_batch_ts.ts: size-then-write varint encoder into a Uint8Array, DataView header, pure-TS CRC-32C',
          run(n) { let s = 0; for (let i = 0; i < n; i++) s = tsEncodeBatch(tsInputs, tsOut, tsDv); return s; },
          output: () => hex(tsOut.slice(0, tsEncodeBatch(tsInputs, tsOut, tsDv))),
        },
      ];
      return { contenders, teardown: () => { enc.free(); out.free(); } };
    },
  };
}

function decodeCase(valueSize: number): BenchCase {
  return {
    name: `scan + decode ${RECORDS} records, ${sizeName(valueSize)} values`,
    metric: usPer(1, 'batch'),
    bars: [{ label: 'codec ≥ 10× kafkajs: scan + decode', sediment: 'sediment decodeView', peers: ['kafkajs'], minRatio: 10 }],
    setup() {
      const k = getKernelsSync();
      const codec = loadKafkaJsCodec();
      const kv = makeRecords(valueSize);
      const tsInputs: TsRecordIn[] = kv.map(([key, value], i) => ({ key: key!, value: value!, timestamp: BASE_TS + i }));
      const tmp = new Uint8Array(tsBatchMaxSize(tsInputs));
      const size = tsEncodeBatch(tsInputs, tmp, new DataView(tmp.buffer));
      const batch = Buffer.from(tmp.subarray(0, size)); // the batch as read from a file or socket
      const scanner = new BatchScanner(k, 16);
      const decoder = new RecordBatchDecoder(k);
      const inWasm = new WasmBuffer(k, size);
      const sedimentView = (): RecordBatchView => decoder.decodeView(batch);
      const sedimentDecode = (out: StoredRecord[]): void => {
        const p = inWasm.ensure(size);
        k.u8.set(batch, p);
        const r = scanner.scan(p, size);
        if (r.stop !== ScanStop.End || r.batches.length !== 1) throw new Error(`framing: scan stopped with ${r.stop}`);
        decoder.decode(p, r.batches[0]!, out);
      };
      const kafkaDecode = async () => (await codec.RecordBatchDecoder(new codec.Decoder(batch))).records;
      const contenders: Contender[] = [
        {
          name: 'sediment decodeView', role: 'sediment',
          note: 'RecordBatchDecoder.decodeView: copy into wasm memory, validate (length, magic, CRC-32C, header, every record\'s framing), ' +
            'copy the row table out; then keyAt/valueAt per record (a Uint8Array view into the input Buffer each), lengths and first bytes read',
          run(n) {
            let s = 0;
            for (let i = 0; i < n; i++) {
              const v = sedimentView();
              for (let j = 0; j < v.count; j++) s += touchView(v.keyAt(j), v.valueAt(j));
            }
            return s;
          },
          output: () => fromView(sedimentView()),
        },
        {
          name: 'sediment wasm', role: 'sediment',
          note: 'copy into wasm memory + BatchScanner.scan (validates length, magic, CRC-32C) + RecordBatchDecoder.decode (one record object per record; keys and values are views into one copy of the records out of wasm memory); each record\'s key and value touched',
          run(n) {
            let s = 0;
            for (let i = 0; i < n; i++) {
              const out: StoredRecord[] = [];
              sedimentDecode(out);
              for (const r of out) s += touchCopy(r.key, r.value);
            }
            return s;
          },
          output: () => { const out: StoredRecord[] = []; sedimentDecode(out); return out.map(fromSediment); },
        },
        {
          name: 'kafkajs', role: 'peer',
          note: 'kafkajs 2.x RecordBatch v0 decoder (async; does not verify the CRC; offsets and timestamps as strings via Long; keys and values are Buffer views into the input); each record\'s key and value touched',
          async: true,
          async run(n) {
            let s = 0;
            for (let i = 0; i < n; i++) for (const r of await kafkaDecode()) s += touchKafka(r.key, r.value);
            return s;
          },
          output: async () => (await kafkaDecode()).map(fromKafkaJs),
        },
        {
          name: 'pure TS', role: 'peer',
          note: 'bench/lib/record_batch_ts.ts: validates length, magic, CRC-32C (pure TS), decodes varints; keys and values copied (slice); each record\'s key and value touched',
          run(n) {
            let s = 0;
            for (let i = 0; i < n; i++) {
              const out: TsRecordOut[] = [];
              tsDecodeBatch(batch, out);
              for (const r of out) s += touchTs(r.key, r.value);
            }
            return s;
          },
          output: () => { const out: TsRecordOut[] = []; tsDecodeBatch(batch, out); return out.map(fromTs); },
        },
      ];
      return { contenders, teardown: () => { scanner.free(); decoder.free(); inWasm.free(); } };
    },
  };
}

export const framing: BenchGroup = {
  name: 'framing',
  title: 'RecordBatch v2 encode and decode',
  description: `Kafka RecordBatch v2 (magic 2) framing of ${RECORDS} uncompressed records with ${KEY}-byte keys and no headers, ` +
    'in µs per batch. Encode starts from records as JS objects holding Buffers and produces the batch bytes (all three ' +
    'produce byte-identical batches, checked). Decode starts from the batch bytes in a JS Buffer; every contender\'s ' +
    'offsets, timestamps, keys and values are checked equal, and every timed loop takes each record\'s key and value ' +
    'as the contender hands them out and reads their lengths and first bytes. The work differs: sediment verifies the ' +
    'CRC-32C and every record\'s framing (decodeView hands out views into the input on demand; decode builds record ' +
    'objects over one copy out of wasm memory), the pure-TS decoder verifies the CRC and copies, kafkajs skips the CRC ' +
    'and builds record objects holding Buffer views.',
  cases: () => [encodeCase(100), encodeCase(1024), decodeCase(100), decodeCase(1024)],
};
