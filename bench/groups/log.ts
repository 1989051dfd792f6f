// The partition log against the machine's ceilings: append vs a plain fs
// write of the same bytes, read + verify + decode vs a plain read of the same
// file, and random offset lookups. No fsync in either contender (page cache):
// durability costs are the disk's, measured separately by `flush`.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BenchGroup, BenchCase, Contender, gbPerSec, millionsPerSec } from '../harness.js';
import { Store, Partition, RecordInput, getKernelsSync, RecordBatchEncoder, WasmBuffer, normalizeRecord } from '../../src/index.js';
import { randomBytes } from '../lib/data.js';
import { PlainFsAppender } from '../lib/plain_fs.js';
import { AppendBounds } from '../lib/append_bounds.js';

/** Disk space one contender may use before it starts over (both contenders alike). */
const WRAP_BYTES = 256 << 20;

function tmpDir(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `sediment-bench-${tag}-`));
}

function makeRecords(count: number, valueSize: number, seed: number): RecordInput[] {
  const payload = randomBytes(count * valueSize, seed);
  const out: RecordInput[] = [];
  for (let i = 0; i < count; i++) out.push({ key: `key-${i}`, value: payload.subarray(i * valueSize, (i + 1) * valueSize), timestamp: 1_700_000_000_000 + i });
  return out;
}

/** The exact bytes sediment writes for one append of these records (one batch). */
function encodedBytes(records: RecordInput[]): Uint8Array {
  const k = getKernelsSync();
  const enc = new RecordBatchEncoder(k);
  const buf = new WasmBuffer(k, 1 << 20);
  const norm = records.map((r, i) => normalizeRecord(r, i, 0));
  const size = enc.encode(norm, buf, 0);
  const copy = k.u8.slice(buf.ptr, buf.ptr + size);
  enc.free();
  buf.free();
  return copy;
}

function appendCase(valueSize: number, perBatch: number): BenchCase {
  const records = makeRecords(perBatch, valueSize, valueSize);
  const bytes = encodedBytes(records);
  return {
    name: `append, ${perBatch} records of ${valueSize} B per call`,
    metric: gbPerSec(bytes.length),
    bars: [
      { label: 'append ≥ 0.8× the plain-fs write of the same bytes', sediment: 'sediment Partition.appendSync', peers: ['plain fs.writeSync'], minRatio: 0.8 },
      { label: 'append of pre-framed batches (the Kafka produce path) ≥ 0.8× the plain-fs write of the same bytes', sediment: 'sediment Partition.appendBatchesSync (pre-framed)', peers: ['plain fs.writeSync'], minRatio: 0.8 },
    ],
    async setup() {
      const dir = tmpDir('append');
      const store = await Store.open(path.join(dir, 'store'), { retentionCheckMs: -1 });
      const topic = await store.createTopic('bench', { config: { segmentBytes: WRAP_BYTES / 2, retentionBytes: WRAP_BYTES / 2, flushMs: -1, retentionMs: -1 } });
      const p: Partition = topic.partition(0);
      // A second topic of the same config, so the two sediment contenders do not share segments.
      const framedTopic = await store.createTopic('bench-framed', { config: { segmentBytes: WRAP_BYTES / 2, retentionBytes: WRAP_BYTES / 2, flushMs: -1, retentionMs: -1 } });
      const pf: Partition = framedTopic.partition(0);
      const plain = new PlainFsAppender(path.join(dir, 'plain.log'), WRAP_BYTES);
      const bounds = new AppendBounds(getKernelsSync(), dir, WRAP_BYTES);
      const contenders: Contender[] = [
        {
          name: 'sediment Partition.appendSync', role: 'sediment',
          note: 'validate, frame in wasm (CRC-32C), stamp offsets, write from wasm memory, index; segments roll at 128 MiB and retention keeps 128 MiB',
          run(n) {
            let last = 0;
            for (let i = 0; i < n; i++) last = p.appendSync(records).lastOffset;
            if (p.sizeBytes > WRAP_BYTES) p.enforceRetention();
            return last;
          },
        },
        {
          name: 'sediment Partition.appendBatchesSync (pre-framed)', role: 'sediment',
          note: 'the same encoded bytes as the plain-fs peer, as a producer sends them: copied into wasm memory once, validated (length, magic, CRC-32C, ' +
            'header vs records, every record\'s framing and timestamp), base offset stamped in place, written from wasm memory, indexed; same roll and retention',
          run(n) {
            let last = 0;
            for (let i = 0; i < n; i++) last = pf.appendBatchesSync(bytes).lastOffset;
            if (pf.sizeBytes > WRAP_BYTES) pf.enforceRetention();
            return last;
          },
        },
        plain.contender('plain fs.writeSync', 'the same encoded bytes appended to one file with fs.writeSync (truncated to 0 past 256 MiB)', bytes),
        // Bounds of this design (bench/lib/append_bounds.ts): where the ratios above can go at best.
        bounds.framedSerial('bound: frame in wasm + fs.writeSync', records, bytes.length),
        bounds.framedWriteBehind('bound: frame in wasm, written behind (1 MiB async writes)', records, bytes.length),
        bounds.checkedSerial('bound: pre-framed, copy + CRC-32C + fs.writeSync', bytes),
        bounds.checkedWriteBehind('bound: pre-framed, copy + CRC-32C, written behind', bytes),
      ];
      return {
        contenders,
        async teardown() {
          await bounds.close();
          plain.close();
          await store.close();
          fs.rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  };
}

async function buildLog(dir: string, valueSize: number, totalBytes: number): Promise<{ store: Store; p: Partition; files: string[]; records: number }> {
  const store = await Store.open(path.join(dir, 'store'), { retentionCheckMs: -1 });
  const topic = await store.createTopic('bench', { config: { flushMs: -1, segmentBytes: 64 << 20 } });
  const p = topic.partition(0);
  const batch = makeRecords(Math.max(1, Math.floor((256 << 10) / valueSize)), valueSize, 3);
  while (p.sizeBytes < totalBytes) p.appendSync(batch);
  await p.flush();
  const files = p.segments.map((s) => s.logPath);
  return { store, p, files, records: p.logEndOffset };
}

function readCase(valueSize: number): BenchCase {
  const total = 32 << 20; // the log overshoots by < 1 batch (256 KiB); both contenders read the same files
  return {
    name: `read + verify + decode 32 MiB, ${valueSize} B values`,
    metric: gbPerSec(total),
    bars: [{ label: 'read + verify + decode ≥ 0.6× a plain read of the same file', sediment: 'sediment Partition.readViews (reuseBuffers)', peers: ['plain fs.readSync 1 MiB chunks'], minRatio: 0.6 }],
    async setup() {
      const dir = tmpDir('read');
      const { store, p, files } = await buildLog(dir, valueSize, total);
      const chunk = Buffer.allocUnsafe(1 << 20);
      const contenders: Contender[] = [
        {
          name: 'sediment Partition.readViews', role: 'sediment', async: true,
          note: 'reads straight into wasm memory (chunks of whole batches, the next one read ahead on the threadpool), CRC-checks every batch and validates every record\'s framing in wasm, copies each batch\'s records and row table out once; ' +
            'one RecordBatchView per stored batch, keyAt/valueAt per record (a Uint8Array view each, no record object), key and value lengths and first bytes read',
          async run(n) {
            let sum = 0;
            for (let i = 0; i < n; i++) {
              for await (const v of p.readViews({ offset: 0 })) {
                for (let j = 0; j < v.count; j++) { const key = v.keyAt(j)!; const value = v.valueAt(j)!; sum += key.length + key[0]! + value.length + value[0]!; }
              }
            }
            return sum;
          },
        },
        {
          name: 'sediment Partition.readViews (reuseBuffers)', role: 'sediment', async: true,
          note: 'the same reads, checks and per-record work, but every view\'s records and row table are copied into one reused set of JS buffers ' +
            '(a view lasts until the next step, as the plain read\'s chunk Buffer does) instead of a new allocation per batch',
          async run(n) {
            let sum = 0;
            for (let i = 0; i < n; i++) {
              for await (const v of p.readViews({ offset: 0 }, { reuseBuffers: true })) {
                for (let j = 0; j < v.count; j++) { const key = v.keyAt(j)!; const value = v.valueAt(j)!; sum += key.length + key[0]! + value.length + value[0]!; }
              }
            }
            return sum;
          },
        },
        {
          name: 'sediment Partition.read (records)', role: 'sediment', async: true,
          note: 'async iterator, one record object per iteration: the same reads and checks, records built from the views (key/value are views into the batch copy); key and value touched as above',
          async run(n) {
            let sum = 0;
            for (let i = 0; i < n; i++) for await (const r of p.read({ offset: 0 })) sum += r.key!.length + r.key![0]! + r.value!.length + r.value![0]!;
            return sum;
          },
        },
        {
          name: 'sediment Partition.readBatches', role: 'sediment', async: true,
          note: 'the same reads and checks, record objects handed over one stored batch at a time (no await per record); key and value touched as above',
          async run(n) {
            let sum = 0;
            for (let i = 0; i < n; i++) for await (const batch of p.readBatches({ offset: 0 })) for (const r of batch) sum += r.key!.length + r.key![0]! + r.value!.length + r.value![0]!;
            return sum;
          },
        },
        {
          name: 'plain fs.readSync 1 MiB chunks', role: 'peer',
          note: 'the same segment files read in 1 MiB chunks into one Buffer (page cache), nothing checked',
          run(n) {
            let sum = 0;
            for (let i = 0; i < n; i++) {
              for (const f of files) {
                const fd = fs.openSync(f, 'r');
                let pos = 0; let got: number;
                while ((got = fs.readSync(fd, chunk, 0, chunk.length, pos)) > 0) { pos += got; sum += chunk[0]!; }
                fs.closeSync(fd);
              }
            }
            return sum;
          },
        },
      ];
      return { contenders, async teardown() { await store.close(); fs.rmSync(dir, { recursive: true, force: true }); } };
    },
  };
}

function lookupCase(): BenchCase {
  const lookups = 1000;
  return {
    name: 'random offset lookups (warm), 64 MiB log of 100 B records',
    metric: millionsPerSec(lookups, 'lookups'),
    bars: [{ label: '≥ 200k random lookups/s warm', sediment: 'sediment translateOffset', figure: 0.2 }],
    async setup() {
      const dir = tmpDir('lookup');
      const { store, p, records } = await buildLog(dir, 100, 64 << 20);
      const targets = Array.from({ length: lookups }, (_, i) => Math.floor(((i * 2654435761) % 4294967296) / 4294967296 * records));
      const contenders: Contender[] = [
        {
          name: 'sediment translateOffset', role: 'sediment',
          note: 'offset -> segment (binary search) -> offset index (wasm, warm tail first) -> bounded header scan; the file position of the batch holding the offset',
          run(n) {
            let s = 0;
            for (let i = 0; i < n; i++) for (const t of targets) s += p.segmentFor(t)!.translateOffset(t);
            return s;
          },
        },
      ];
      return { contenders, async teardown() { await store.close(); fs.rmSync(dir, { recursive: true, force: true }); } };
    },
  };
}

function fetchCase(): BenchCase {
  const lookups = 200;
  return {
    name: 'random single-record reads (warm), 64 MiB log of 100 B records',
    metric: millionsPerSec(lookups, 'reads'),
    async setup() {
      const dir = tmpDir('fetch');
      const { store, p, records } = await buildLog(dir, 100, 64 << 20);
      const targets = Array.from({ length: lookups }, (_, i) => Math.floor(((i * 40503 + 7) % 65536) / 65536 * records));
      const contenders: Contender[] = [
        {
          name: 'sediment read({offset}, maxRecords 1)', role: 'sediment', async: true,
          note: 'lookup, read the batch into wasm memory, CRC-check, decode, return the one record',
          async run(n) {
            let s = 0;
            for (let i = 0; i < n; i++) for (const t of targets) for await (const r of p.read({ offset: t }, { maxRecords: 1 })) s += r.offset;
            return s;
          },
        },
      ];
      return { contenders, async teardown() { await store.close(); fs.rmSync(dir, { recursive: true, force: true }); } };
    },
  };
}

export const logGroup: BenchGroup = {
  name: 'log',
  title: 'Partition log: append, read, lookups',
  description: 'Append throughput against writing the same encoded bytes with plain `fs` (the machine\'s ceiling), ' +
    'read + CRC verify + decode against a plain read of the same segment files, and random offset lookups. ' +
    'Neither side fsyncs (page cache); segment files live in the OS temp directory.',
  cases: () => [appendCase(1024, 100), appendCase(100, 1000), readCase(1024), readCase(100), lookupCase(), fetchCase()],
};
