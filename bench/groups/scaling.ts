// Scaling curves (issue 8): how sediment's log and KV store behave as the
// work grows, next to the machine's ceiling (plain fs on the same bytes) and
// an established append-only log (hypercore 10), and, for the KV store, lmdb
// and classic-level.
//
//   append / read throughput as the value size grows, 100 B -> 1 MiB;
//   random reads and appends as the log grows, 1 -> 100 segments;
//   KV get and batched put as the store grows, 10k -> 100k keys (the 1 M
//   points are the kv group's cases, which share this file's definitions).
//
// Every case carries a chart point: bench/charts.ts draws one chart per curve
// from the results. Cases run at a fraction of the run's --time (TIME_SCALE):
// the sweep has many points, and each one only needs to be good enough to
// place it on a curve.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { BenchGroup, BenchCase, Contender, ChartPoint, Metric, gbPerSec, nsPer } from '../harness.js';
import { Store, Partition, RecordInput, getKernelsSync, RecordBatchEncoder, WasmBuffer, normalizeRecord } from '../../src/index.js';
import type { KvStore, KvOp } from '../../src/kv/kv_store.js';
import { randomBytes, sizeName, prng } from '../lib/data.js';
import { PlainFsAppender } from '../lib/plain_fs.js';
import { tsDecodeBatch, TsRecordOut } from '../lib/record_batch_ts.js';
import { openHypercore, hypercoreVersion, Hypercore } from '../lib/hypercore.js';
import {
  keyOf, hex, shuffled, openSediment, openLmdb, openLevel, LmdbDb, LevelDb, VALUE_BYTES, HOT_KEYS, PUT_BATCH,
} from './kv.js';

const KiB = 1024;
const MiB = 1 << 20;
/** Value sizes of the size sweep. */
export const SIZES = [100, KiB, 16 * KiB, 256 * KiB, MiB];
/** Segment counts of the log-growth sweep. */
export const SEGMENT_COUNTS = [1, 10, 30, 100];
/** Key counts of the KV sweep run here (the kv group measures 1 M with the same cases). */
export const KV_COUNTS = [10_000, 100_000];
/** Fraction of --time each scaling case gets (many points; a curve needs each only roughly). */
const TIME_SCALE = 0.4;
/** Disk one appending contender may use before it starts over (all contenders alike). */
const WRAP_BYTES = 128 * MiB;
const BASE_TS = 1_700_000_000_000;

/** Temporary directories not yet removed: a case whose setup throws leaves its directory here, removed at exit. */
const liveDirs = new Set<string>();
process.once('exit', () => { for (const d of liveDirs) fs.rmSync(d, { recursive: true, force: true }); });

function tmpDir(tag: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `sediment-bench-scaling-${tag}-`));
  liveDirs.add(dir);
  return dir;
}

function removeDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
  liveDirs.delete(dir);
}

/** `count` distinct values of `size` bytes (views of one buffer, as Buffers so hypercore takes them as they are). */
function makeValues(count: number, size: number, seed: number): Buffer[] {
  const bytes = randomBytes(count * size, seed);
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Array.from({ length: count }, (_, i) => buf.subarray(i * size, (i + 1) * size));
}

/** Records with no key (hypercore blocks have none either), timestamps 1 ms apart: every batch encodes to the same size. */
function asRecords(values: Buffer[]): RecordInput[] {
  return values.map((value, i) => ({ key: null, value, timestamp: BASE_TS + i }));
}

/** The exact bytes sediment writes for one append of these records (one batch). */
function encodedBytes(records: RecordInput[]): Uint8Array {
  const k = getKernelsSync();
  const enc = new RecordBatchEncoder(k);
  const norm = records.map((r, i) => normalizeRecord(r, i, 0));
  const buf = new WasmBuffer(k, RecordBatchEncoder.maxSize(norm));
  const size = enc.encode(norm, buf, 0);
  const copy = k.u8.slice(buf.ptr, buf.ptr + size);
  enc.free();
  buf.free();
  return copy;
}

function digest(values: Iterable<Uint8Array>): string {
  const h = createHash('sha256');
  for (const v of values) h.update(v);
  return h.digest('hex');
}

/** The values of whole batches in buf (pure-TS decoder: checks length, magic and CRC). */
function decodeBatches(buf: Uint8Array): Uint8Array[] {
  const out: TsRecordOut[] = [];
  for (let p = 0; p < buf.length;) p += tsDecodeBatch(buf.subarray(p), out);
  return out.map((r) => r.value!);
}

async function sedimentLog(dir: string, config: Record<string, number>): Promise<{ store: Store; p: Partition }> {
  const store = await Store.open(path.join(dir, 'store'), { retentionCheckMs: -1 });
  const topic = await store.createTopic('bench', { config: { flushMs: -1, retentionMs: -1, ...config } });
  return { store, p: topic.partition(0) };
}

/** max.message.bytes for a value size: the default 1 MiB, raised to 2 MiB for 1 MiB values. */
function maxMessageBytes(valueSize: number): number {
  return valueSize >= MiB ? 2 * MiB : MiB;
}

/** Records per append (and per read window): about 256 KiB of values, 1 MiB for 1 MiB values. */
function perCall(valueSize: number): number {
  return Math.max(1, Math.floor((256 * KiB) / valueSize));
}

function point(id: string, title: string, xLabel: string, x: number, xFormat: ChartPoint['xFormat']): ChartPoint {
  return { id, title, xLabel, x, xFormat };
}

// --- throughput as the value size grows -----------------------------------------------------

function appendSizeCase(valueSize: number): BenchCase {
  const n = perCall(valueSize);
  return {
    name: `append, ${n} × ${sizeName(valueSize)} values per call`,
    metric: gbPerSec(n * valueSize),
    timeScale: TIME_SCALE,
    chart: point('append-size', 'Append throughput (value bytes, no fsync) as the value size grows', 'value size', valueSize, 'bytes'),
    async setup() {
      const values = makeValues(n, valueSize, valueSize);
      const records = asRecords(values);
      const bytes = encodedBytes(records);
      const dir = tmpDir('append');
      const { store, p } = await sedimentLog(path.join(dir), {
        segmentBytes: WRAP_BYTES / 4, retentionBytes: WRAP_BYTES / 2, maxMessageBytes: maxMessageBytes(valueSize),
      });
      const plain = new PlainFsAppender(path.join(dir, 'plain.log'), WRAP_BYTES);
      let hcDir = path.join(dir, 'hypercore-0');
      let hcGen = 0;
      let core: Hypercore = await openHypercore(hcDir);

      // Read-back check before timing: each contender stores exactly these values.
      const want = digest(values);
      const r0 = p.appendSync(records);
      const back: Uint8Array[] = [];
      for await (const r of p.read({ offset: r0.baseOffset }, { maxRecords: n })) back.push(r.value!);
      const fsBack = plain.roundTrip(bytes);
      await core.append(values);
      const hcBack: Uint8Array[] = [];
      for (let i = 0; i < n; i++) hcBack.push((await core.get(i))!);
      for (const [who, got] of [['sediment', digest(back)], ['plain fs', digest(decodeBatches(fsBack))], ['hypercore', digest(hcBack)]] as const) {
        if (got !== want) throw new Error(`scaling: ${who} did not read back the appended ${sizeName(valueSize)} values`);
      }

      const contenders: Contender[] = [
        {
          name: 'sediment appendSync', role: 'sediment',
          note: 'Partition.appendSync: validate, frame in wasm (CRC-32C), write, index; no fsync; segments roll every 32 MiB, retention keeps 64 MiB',
          run(k) {
            let last = 0;
            for (let i = 0; i < k; i++) last = p.appendSync(records).lastOffset;
            if (p.sizeBytes > WRAP_BYTES) p.enforceRetention();
            return last;
          },
        },
        plain.contender('plain fs writeSync', 'the same encoded bytes (one Kafka batch per call) appended to one file with fs.writeSync, no fsync; truncated to 0 past 128 MiB', bytes),
        {
          name: 'hypercore 10 append', role: 'peer', async: true,
          note: `hypercore ${hypercoreVersion()} core.append(values): one block per value, one Merkle tree update (BLAKE2b) and one Ed25519 signature per call, random-access-file storage, no fsync; a new core past 128 MiB`,
          async run(k) {
            let len = 0;
            for (let i = 0; i < k; i++) len = (await core.append(values)).length;
            if (core.byteLength > WRAP_BYTES) {
              await core.close();
              fs.rmSync(hcDir, { recursive: true, force: true });
              hcDir = path.join(dir, `hypercore-${++hcGen}`);
              core = await openHypercore(hcDir);
            }
            return len;
          },
        },
      ];
      return {
        contenders,
        async teardown() {
          plain.close();
          await core.close();
          await store.close();
          removeDir(dir);
        },
      };
    },
  };
}

/** Read windows per log in the size sweep: the log holds this many windows, reads cycle through them. */
const READ_WINDOWS = 8;

function readSizeCase(valueSize: number): BenchCase {
  // One window = one append: 1 MiB of values, but 1,024 values (100 KiB) for 100 B
  // values, so the per-block peer's samples stay short.
  const w = Math.min(1024, Math.max(1, Math.floor(MiB / valueSize)));
  return {
    name: `read ${w} × ${sizeName(valueSize)} values per call (page cache)`,
    metric: gbPerSec(w * valueSize),
    timeScale: TIME_SCALE,
    chart: point('read-size', 'Read throughput (value bytes, page cache) as the value size grows', 'value size', valueSize, 'bytes'),
    async setup() {
      const dir = tmpDir('read');
      const { store, p } = await sedimentLog(dir, { segmentBytes: 64 * MiB, maxMessageBytes: maxMessageBytes(valueSize) });
      const core = await openHypercore(path.join(dir, 'hypercore'));
      const windows: Buffer[][] = [];
      for (let b = 0; b < READ_WINDOWS; b++) {
        const values = makeValues(w, valueSize, 1000 + b);
        windows.push(values);
        p.appendSync(asRecords(values));
        await core.append(values);
      }
      await p.flush();
      if (p.segments.length !== 1) throw new Error('scaling: the read log should be one segment');
      const seg = p.segments[0]!;
      // Byte range of each window (one batch) in the segment file, for the plain-fs peer.
      const starts = windows.map((_, b) => seg.translateOffset(b * w));
      const ends = starts.map((s, b) => (b + 1 < starts.length ? starts[b + 1]! : seg.size));
      const fd = fs.openSync(seg.logPath, 'r');
      const chunk = Buffer.allocUnsafe(Math.max(...ends.map((e, b) => e - starts[b]!)));
      let a = 0;
      let c = 0;
      let h = 0;
      const contenders: Contender[] = [
        {
          name: 'sediment read', role: 'sediment', async: true,
          note: 'Partition.read({ offset }, { maxRecords }): offset lookup, read into wasm memory, CRC-32C check of every batch, decode every record into a JS object (value copied out)',
          async run(k) {
            let s = 0;
            for (let i = 0; i < k; i++) {
              for await (const r of p.read({ offset: a * w }, { maxRecords: w })) s += r.value!.length;
              a = (a + 1) % READ_WINDOWS;
            }
            return s;
          },
          async output() {
            const vs: Uint8Array[] = [];
            for await (const r of p.read({ offset: 3 * w }, { maxRecords: w })) vs.push(r.value!);
            return digest(vs);
          },
        },
        {
          name: 'plain fs readSync', role: 'peer',
          note: 'the same window\'s bytes of the segment file (one batch) with one fs.readSync into a Buffer; nothing checked or decoded (the output check decodes them)',
          run(k) {
            let s = 0;
            for (let i = 0; i < k; i++) {
              s += fs.readSync(fd, chunk, 0, ends[c]! - starts[c]!, starts[c]!);
              c = (c + 1) % READ_WINDOWS;
            }
            return s;
          },
          output() {
            const len = ends[3]! - starts[3]!;
            const buf = Buffer.alloc(len);
            fs.readSync(fd, buf, 0, len, starts[3]!);
            return digest(decodeBatches(buf));
          },
        },
        {
          name: 'hypercore 10 get', role: 'peer', async: true,
          note: `hypercore ${hypercoreVersion()} await core.get(i) for each value of the window (from its data file; block cache off, hypercore's default); blocks are not re-hashed on a local read`,
          async run(k) {
            let s = 0;
            for (let i = 0; i < k; i++) {
              const base = h * w;
              for (let j = 0; j < w; j++) s += (await core.get(base + j))!.length;
              h = (h + 1) % READ_WINDOWS;
            }
            return s;
          },
          async output() {
            const vs: Uint8Array[] = [];
            for (let j = 0; j < w; j++) vs.push((await core.get(3 * w + j))!);
            return digest(vs);
          },
        },
      ];
      if (digest(windows[3]!) !== (await contenders[0]!.output!())) throw new Error('scaling: read window differs from what was appended');
      return {
        contenders,
        async teardown() {
          fs.closeSync(fd);
          await core.close();
          await store.close();
          removeDir(dir);
        },
      };
    },
  };
}

// --- throughput as the log grows (segments) -------------------------------------------------

/** Segment size of the log-growth sweep: 100 segments are 50 MiB on disk. */
const SEG_BYTES = 512 * KiB;
/** Records per append in the log-growth sweep (1 KiB values: a 16 KiB batch). */
const SEG_BATCH = 16;
const SEG_VALUE = KiB;
/** Random single-record reads per operation. */
const RANDOM_READS = 64;

const kReadsPerSec: Metric = { unit: 'k reads/s', itemsPerOp: RANDOM_READS, higherIsBetter: true, scale: 1e-3 };

/** One log (and one hypercore with the same values) grown from case to case of the read sweep. */
interface GrowingLog {
  dir: string;
  store: Store;
  p: Partition;
  core: Hypercore;
  /** Batches appended so far (batch j holds offsets j*SEG_BATCH ...). */
  batches: number;
  batchesPerSegment: number;
  fds: Map<string, number>;
}

let growing: Promise<GrowingLog> | null = null;

function segValues(batch: number): Buffer[] {
  return makeValues(SEG_BATCH, SEG_VALUE, 5000 + (batch % 64));
}

async function growTo(segments: number): Promise<GrowingLog> {
  growing ??= (async () => {
    const dir = tmpDir('segments');
    const { store, p } = await sedimentLog(dir, { segmentBytes: SEG_BYTES });
    const core = await openHypercore(path.join(dir, 'hypercore'));
    // Batches per segment: every batch has the same size, so segments are identical.
    const batchBytes = encodedBytes(asRecords(segValues(0))).length;
    return { dir, store, p, core, batches: 0, batchesPerSegment: Math.floor(SEG_BYTES / batchBytes), fds: new Map() };
  })();
  const g = await growing;
  const target = segments * g.batchesPerSegment;
  for (; g.batches < target; g.batches++) {
    const values = segValues(g.batches);
    g.p.appendSync(asRecords(values));
    await g.core.append(values);
  }
  await g.p.flush();
  if (g.p.segments.length !== segments) throw new Error(`scaling: expected ${segments} segments, the log has ${g.p.segments.length}`);
  return g;
}

async function closeGrowing(): Promise<void> {
  if (!growing) return;
  const g = await growing;
  growing = null;
  for (const fd of g.fds.values()) fs.closeSync(fd);
  await g.core.close();
  await g.store.close();
  removeDir(g.dir);
}

function randomReadCase(segments: number, last: boolean): BenchCase {
  return {
    name: `random single-record reads, log of ${segments} segment${segments === 1 ? '' : 's'} of 512 KiB (1 KiB values)`,
    metric: kReadsPerSec,
    timeScale: TIME_SCALE,
    chart: point('read-segments', 'Random single-record reads as the log grows (1 KiB values, page cache)', 'segments in the log', segments, 'count'),
    async setup() {
      const g = await growTo(segments);
      const records = g.batches * SEG_BATCH;
      const next = prng(17 + segments);
      const targets = Array.from({ length: 1024 }, () => next() % records);
      // Where each target's batch is, for the plain-fs peer (found once here, not timed).
      const where = targets.map((t) => {
        const seg = g.p.segmentFor(t)!;
        let fd = g.fds.get(seg.logPath);
        if (fd === undefined) { fd = fs.openSync(seg.logPath, 'r'); g.fds.set(seg.logPath, fd); }
        const pos = seg.translateOffset(t);
        return { fd, pos, index: t % SEG_BATCH };
      });
      const batchBytes = encodedBytes(asRecords(segValues(0))).length;
      const buf = Buffer.allocUnsafe(batchBytes);
      let a = 0;
      let b = 0;
      let c = 0;
      const contenders: Contender[] = [
        {
          name: 'sediment read 1 record', role: 'sediment', async: true,
          note: 'Partition.read({ offset }, { maxRecords: 1 }): segment (binary search), offset index, read the batch into wasm memory, CRC-32C check, decode the one record',
          async run(k) {
            let s = 0;
            for (let i = 0; i < k; i++) {
              for (let j = 0; j < RANDOM_READS; j++) {
                for await (const r of g.p.read({ offset: targets[a]! }, { maxRecords: 1 })) s += r.value!.length;
                a = (a + 1) & 1023;
              }
            }
            return s;
          },
          async output() {
            const vs: Uint8Array[] = [];
            for (const t of targets.slice(0, 16)) for await (const r of g.p.read({ offset: t }, { maxRecords: 1 })) vs.push(r.value!);
            return digest(vs);
          },
        },
        {
          name: 'plain fs readSync of its batch', role: 'peer',
          note: 'one fs.readSync of the batch holding the record, file and position known in advance (no lookup, no check): the ceiling',
          run(k) {
            let s = 0;
            for (let i = 0; i < k; i++) {
              for (let j = 0; j < RANDOM_READS; j++) {
                const x = where[b]!;
                s += fs.readSync(x.fd, buf, 0, batchBytes, x.pos);
                b = (b + 1) & 1023;
              }
            }
            return s;
          },
          output() {
            return digest(where.slice(0, 16).map((x) => {
              const one = Buffer.alloc(batchBytes);
              fs.readSync(x.fd, one, 0, batchBytes, x.pos);
              return decodeBatches(one)[x.index]!;
            }));
          },
        },
        {
          name: 'hypercore 10 get', role: 'peer', async: true,
          note: `hypercore ${hypercoreVersion()} await core.get(i) on a core holding the same values, one block per record`,
          async run(k) {
            let s = 0;
            for (let i = 0; i < k; i++) {
              for (let j = 0; j < RANDOM_READS; j++) {
                s += (await g.core.get(targets[c]!))!.length;
                c = (c + 1) & 1023;
              }
            }
            return s;
          },
          async output() {
            const vs: Uint8Array[] = [];
            for (const t of targets.slice(0, 16)) vs.push((await g.core.get(t))!);
            return digest(vs);
          },
        },
      ];
      return { contenders, ...(last ? { teardown: closeGrowing } : {}) };
    },
  };
}

function appendSegmentsCase(segments: number): BenchCase {
  const values = segValues(0);
  const records = asRecords(values);
  return {
    name: `append ${SEG_BATCH} × 1 KiB values per call, log held at ${segments} segment${segments === 1 ? '' : 's'} of 512 KiB`,
    metric: gbPerSec(SEG_BATCH * SEG_VALUE),
    timeScale: TIME_SCALE,
    chart: point('append-segments', 'Appends (16 × 1 KiB values per call, no fsync) as the log grows', 'segments in the log', segments, 'count'),
    async setup() {
      const dir = tmpDir('append-segments');
      const bytes = encodedBytes(records);
      // A full segment holds whole batches; retention.bytes of (segments - 1) full segments deletes the
      // oldest as soon as a roll makes one more, so the log holds `segments` segments.
      const fullSegment = Math.floor(SEG_BYTES / bytes.length) * bytes.length;
      const { store, p } = await sedimentLog(dir, { segmentBytes: SEG_BYTES, retentionBytes: (segments - 1) * fullSegment });
      while (p.segments.length < segments || p.active.size + bytes.length <= SEG_BYTES) p.appendSync(records);
      const plain = new PlainFsAppender(path.join(dir, 'plain.log'), WRAP_BYTES);
      const segmentsSeen = { min: Infinity, max: 0 };
      const contenders: Contender[] = [
        {
          name: 'sediment appendSync, rolling', role: 'sediment',
          note: 'Partition.appendSync (no fsync); the log rolls a new segment (log, offset and time index files) every 512 KiB and retention deletes the oldest to hold the count',
          run(k) {
            let last = 0;
            for (let i = 0; i < k; i++) {
              last = p.appendSync(records).lastOffset;
              if (p.segments.length > segments) p.enforceRetention();
            }
            const n = p.segments.length;
            if (n < segmentsSeen.min) segmentsSeen.min = n;
            if (n > segmentsSeen.max) segmentsSeen.max = n;
            return last;
          },
        },
        plain.contender('plain fs writeSync', 'the same encoded bytes appended to one file with fs.writeSync, no fsync (truncated to 0 past 128 MiB): the ceiling', bytes),
      ];
      return {
        contenders,
        async teardown() {
          plain.close();
          await store.close();
          removeDir(dir);
          if (segmentsSeen.max > segments || segmentsSeen.min < segments) {
            throw new Error(`scaling: the log held ${segmentsSeen.min}..${segmentsSeen.max} segments, not ${segments}`);
          }
        },
      };
    },
  };
}

// --- KV as the store grows (the kv group's get and put cases, at 10k and 100k keys) --------

interface KvData {
  dir: string;
  keys: Uint8Array[];
  value(i: number): Uint8Array;
  store: Store;
  kv: KvStore;
  lmdb: LmdbDb;
  level: LevelDb;
}

const kvData = new Map<number, Promise<KvData>>();

/** Loads `count` keys in random order into all three stores, as the kv group does for 1 M. */
function kvDataset(count: number): Promise<KvData> {
  let d = kvData.get(count);
  if (!d) {
    d = (async () => {
      const dir = tmpDir(`kv-${count}`);
      const keys = Array.from({ length: count }, (_, i) => keyOf(i));
      const values = randomBytes(count * VALUE_BYTES, 7);
      const value = (i: number) => values.subarray(i * VALUE_BYTES, (i + 1) * VALUE_BYTES);
      const order = shuffled(count, 11);
      const chunk = 10_000;
      const { store, kv } = await openSediment(dir);
      const lmdb = openLmdb(dir);
      const level = await openLevel(dir);
      for (let b = 0; b < count; b += chunk) {
        const pairs: [Uint8Array, Uint8Array][] = [];
        for (let i = b; i < Math.min(count, b + chunk); i++) pairs.push([keys[order[i]!]!, value(order[i]!)]);
        kv.batchSync(pairs.map(([key, v]): KvOp => ({ type: 'put', key, value: v })));
        lmdb.transactionSync(() => { for (const [key, v] of pairs) lmdb.put(key, v); });
        await level.batch(pairs.map(([key, v]) => ({ type: 'put' as const, key, value: v })));
      }
      await kv.flush();
      // As the kv group does before its cases: both log-structured engines finish their background work
      // (sediment: due compaction, clustering and checkpoint; LevelDB: a full compaction).
      await kv.maintain();
      await (level as LevelDb & { compactRange(a: Uint8Array, b: Uint8Array): Promise<void> }).compactRange(keys[0]!, keys[count - 1]!);
      return { dir, keys, value, store, kv, lmdb, level };
    })();
    kvData.set(count, d);
  }
  return d;
}

async function closeKv(count: number): Promise<void> {
  const p = kvData.get(count);
  if (!p) return;
  kvData.delete(count);
  const d = await p;
  await d.store.close();
  await d.lmdb.close();
  await d.level.close();
  removeDir(d.dir);
}

function kvGetCase(count: number): BenchCase {
  return {
    name: `KV get, ${HOT_KEYS.toLocaleString('en')}-key hot set of ${count.toLocaleString('en')} keys`,
    metric: nsPer(1, 'get'),
    timeScale: TIME_SCALE,
    chart: point('kv-get', 'KV get (hot set of 10,000 keys) as the store grows', 'keys in the store', count, 'count'),
    async setup() {
      const d = await kvDataset(count);
      const next = prng(3);
      const hot = Array.from({ length: HOT_KEYS }, () => d.keys[next() % count]!);
      const probe = hot[17]!;
      for (const k of hot) { d.kv.getSync(k); d.lmdb.get(k); }
      let i = 0;
      let j = 0;
      let q = 0;
      const contenders: Contender[] = [
        {
          name: 'sediment getSync', role: 'sediment',
          note: 'index lookup through the value cache (64 MiB); returns a fresh copy of the value',
          run(n) { let s = 0; for (let c = 0; c < n; c++) { s += d.kv.getSync(hot[i]!)!.length; i = i + 1 === HOT_KEYS ? 0 : i + 1; } return s; },
          output: () => hex(d.kv.getSync(probe)!),
        },
        {
          name: 'lmdb get', role: 'peer',
          note: 'lmdb-js get (synchronous, memory-mapped B+ tree; binary encoding returns a copy in a Buffer)',
          run(n) { let s = 0; for (let c = 0; c < n; c++) { s += d.lmdb.get(hot[j]!)!.length; j = j + 1 === HOT_KEYS ? 0 : j + 1; } return s; },
          output: () => hex(d.lmdb.get(probe)!),
        },
        {
          name: 'classic-level get', role: 'peer', async: true,
          note: 'classic-level get (asynchronous: one promise per get; LevelDB block cache 8 MiB)',
          async run(n) { let s = 0; for (let c = 0; c < n; c++) { s += (await d.level.get(hot[q]!))!.length; q = q + 1 === HOT_KEYS ? 0 : q + 1; } return s; },
          output: async () => hex((await d.level.get(probe))!),
        },
      ];
      return { contenders };
    },
  };
}

function kvPutCase(count: number): BenchCase {
  return {
    name: `KV batched put + flush, ${PUT_BATCH.toLocaleString('en')} keys per batch (overwrites in ${count.toLocaleString('en')} keys)`,
    metric: nsPer(PUT_BATCH, 'key'),
    timeScale: TIME_SCALE,
    chart: point('kv-put', 'KV batched put + flush (1,000 keys per batch) as the store grows', 'keys in the store', count, 'count'),
    async setup() {
      const d = await kvDataset(count);
      const next = prng(5);
      const batches = Array.from({ length: 64 }, () => Array.from({ length: PUT_BATCH }, () => next() % count));
      const newValue = randomBytes(VALUE_BYTES, 9);
      let a = 0;
      let b = 0;
      let c = 0;
      const contenders: Contender[] = [
        {
          name: 'sediment batch + flush', role: 'sediment', async: true,
          note: 'batchSync (one atomic record batch) then flush() (fdatasync)',
          async run(n) {
            for (let r = 0; r < n; r++) {
              const ks = batches[a]!;
              a = (a + 1) % batches.length;
              d.kv.batchSync(ks.map((k) => ({ type: 'put' as const, key: d.keys[k]!, value: newValue })));
              await d.kv.flush();
            }
            return a;
          },
        },
        {
          name: 'lmdb transactionSync', role: 'peer',
          note: 'the same puts in one lmdb transactionSync (synchronous commit, flushed to disk before it returns)',
          run(n) {
            for (let r = 0; r < n; r++) {
              const ks = batches[b]!;
              b = (b + 1) % batches.length;
              d.lmdb.transactionSync(() => { for (const k of ks) d.lmdb.put(d.keys[k]!, newValue); });
            }
            return b;
          },
        },
        {
          name: 'classic-level batch (sync)', role: 'peer', async: true,
          note: 'the same puts as one classic-level batch with sync: true',
          async run(n) {
            for (let r = 0; r < n; r++) {
              const ks = batches[c]!;
              c = (c + 1) % batches.length;
              await d.level.batch(ks.map((k) => ({ type: 'put' as const, key: d.keys[k]!, value: newValue })), { sync: true });
            }
            return c;
          },
        },
      ];
      return { contenders, teardown: () => closeKv(count) };
    },
  };
}

export const scaling: BenchGroup = {
  name: 'scaling',
  title: 'Scaling curves: value size, log length, key count',
  description:
    'How throughput changes as the work grows, drawn as charts (bench/charts/). **Value size** (100 B → 1 MiB): ' +
    'append (no fsync) and read (page cache) of the same values by sediment (records with no key, one Kafka batch ' +
    'per append of about 256 KiB of values, 1 MiB for 1 MiB values, max.message.bytes raised to 2 MiB there; ' +
    'a read takes 1 MiB of values, 1,024 values for 100 B, CRC-checks and decodes every record), plain `fs` on the same encoded bytes (the ceiling: no framing, ' +
    'no checks), and hypercore 10 (one block per value: a Merkle tree update and a signature per append call; ' +
    'reads by `get(i)` per block). Figures count value bytes only. **Log length** (1 → 100 segments of 512 KiB): ' +
    'random single-record reads across the whole log (one log grown from case to case; hypercore holds the same ' +
    'values) and appends while retention holds the segment count. A partition keeps the offset and time indexes of the ' +
    '16 most recently used closed segments in memory (MAX_LOADED_CLOSED_INDEXES), so random reads over more segments than that ' +
    'reload an index from its file now and then: the read curve shows that cost. Small segments make rolls (three new files) ' +
    'and retention deletes frequent, which the append curve includes. hypercore reads every block through asynchronous file ' +
    'reads (libuv thread pool), so its figures suffer more than the synchronous contenders\' when the machine is loaded. **Key count** (10k → 1 M): the kv group\'s get ' +
    'and batched put + flush cases on stores of 10k and 100k keys; the 1 M points come from the kv group itself. ' +
    `Every case gets ${TIME_SCALE * 100}% of the run's measured time per contender; all reads are from the page cache.`,
  cases: () => [
    ...SIZES.map(appendSizeCase),
    ...SIZES.map(readSizeCase),
    ...SEGMENT_COUNTS.map((s, i) => randomReadCase(s, i === SEGMENT_COUNTS.length - 1)),
    ...SEGMENT_COUNTS.map(appendSegmentsCase),
    ...KV_COUNTS.flatMap((n) => [kvGetCase(n), kvPutCase(n)]),
  ],
};
