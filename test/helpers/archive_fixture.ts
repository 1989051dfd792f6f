// Builds archives for replay tests the way docs/archive-format.md describes
// them, without the tiering uploader: records are written with the real
// Store, the segments are rolled (sealed), and their files are copied to
// <root>/<prefix>/<h>/<topic>-<partition>/ with a manifest.json computed from
// the copied bytes (sizes, CRC-32C, offsets and timestamps from a scan).

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Store } from '../../src/store.js';
import { RecordInput, StoredRecord } from '../../src/record.js';
import { getKernelsSync, WasmBuffer } from '../../src/kernels.js';
import { Crc32c } from '../../src/crc32c.js';
import { XxHash64 } from '../../src/xxhash64.js';
import { BatchScanner, ScanStop } from '../../src/record_batch.js';

export interface ManifestObjectJson { key: string; size: number; crc32c: string }
export interface ManifestSegmentJson {
  baseOffset: number; lastOffset: number; nextOffset: number; firstTimestamp: number; maxTimestamp: number; records: number;
  objects: { log: ManifestObjectJson; index: ManifestObjectJson; timeindex: ManifestObjectJson };
}
export interface ManifestJson {
  format: number; topic: string; partition: number; version: number; updatedAt: number; logStartOffset: number;
  segments: ManifestSegmentJson[];
}

export interface BuiltArchive {
  /** Archive root (what `sediment serve --dir` points at). */
  root: string;
  /** Absolute directory of the partition's objects. */
  partitionDir: string;
  /** Manifest path relative to root, with '/' separators. */
  manifestRel: string;
  manifest: ManifestJson;
  /** Every record, as Node's Partition.read returns it from the local store. */
  records: StoredRecord[];
  /** The local store the archive was copied from. */
  storeDir: string;
}

export interface BuildOptions {
  root: string;
  topic?: string;
  partition?: number;
  prefix?: string;
  records: RecordInput[];
  /** Records per append call (one batch each). */
  batchSize?: number;
  segmentBytes?: number;
  indexIntervalBytes?: number;
  logStartOffset?: number;
}

/** A deterministic PRNG (xorshift32). */
export function rng(seed: number): () => number {
  let s = (seed >>> 0) || 0x9e3779b9;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s / 4294967296;
  };
}

/**
 * Varied records: null and empty keys and values, unicode, binary values,
 * headers with null values, timestamps that mostly increase but sometimes
 * step back (as producer clocks do).
 */
export function makeRecords(n: number, seed: number, opts: { maxValue?: number; t0?: number } = {}): RecordInput[] {
  const r = rng(seed);
  const maxValue = opts.maxValue ?? 300;
  let ts = opts.t0 ?? 1_763_600_000_000;
  const out: RecordInput[] = [];
  for (let i = 0; i < n; i++) {
    ts += Math.floor(r() * 50);
    const back = r() < 0.05 ? Math.floor(r() * 200) : 0;
    const kind = r();
    const key = kind < 0.1 ? null : kind < 0.15 ? '' : kind < 0.2 ? `clé-${i}-✓` : `key-${i % 97}`;
    const vlen = Math.floor(r() * maxValue);
    let value: Uint8Array | string | null;
    if (r() < 0.05) value = null;
    else if (r() < 0.5) value = `{"i":${i},"pad":"${'x'.repeat(vlen)}"}`;
    else { const b = new Uint8Array(vlen); for (let j = 0; j < vlen; j++) b[j] = Math.floor(r() * 256); value = b; }
    const headers: [string, string | null][] = [];
    const nh = r() < 0.7 ? 0 : 1 + Math.floor(r() * 3);
    for (let h = 0; h < nh; h++) headers.push([`h${h}`, r() < 0.2 ? null : `v${i}-${h}`]);
    out.push({ key, value, headers, timestamp: ts - back });
  }
  return out;
}

export function crcHex(n: number): string { return (n >>> 0).toString(16).padStart(8, '0'); }

/** `<h>`: low 32 bits of xxHash64 (seed 0) of "<topic>-<partition>", 8 hex digits. */
export function partitionHash(topic: string, partition: number): string {
  const x = new XxHash64(getKernelsSync());
  try {
    return (x.hash(new TextEncoder().encode(`${topic}-${partition}`)) & 0xffffffffn).toString(16).padStart(8, '0');
  } finally { x.free(); }
}

/** Facts of a segment's .log bytes from a CRC-checked scan. */
function scanLog(bytes: Uint8Array): { lastOffset: number; firstTimestamp: number; maxTimestamp: number; records: number } {
  const k = getKernelsSync();
  const buf = new WasmBuffer(k, bytes.length);
  const scanner = new BatchScanner(k, 1 << 16);
  try {
    k.u8.set(bytes, buf.ptr);
    const res = scanner.scan(buf.ptr, bytes.length, {});
    if (res.stop !== ScanStop.End) throw new Error(`segment does not scan cleanly (stop ${res.stop})`);
    const first = res.batches[0]!;
    const last = res.batches[res.batches.length - 1]!;
    return {
      lastOffset: last.baseOffset + last.lastOffsetDelta,
      firstTimestamp: first.firstTimestamp,
      maxTimestamp: Math.max(...res.batches.map((b) => b.maxTimestamp)),
      records: res.batches.reduce((n, b) => n + b.recordCount, 0),
    };
  } finally {
    scanner.free();
    buf.free();
  }
}

export function writeManifest(partitionDir: string, m: ManifestJson): void {
  fs.writeFileSync(path.join(partitionDir, 'manifest.json'), JSON.stringify(m, null, 2) + '\n');
}

/** Recomputes size and CRC of one object after a test edited its file. */
export function refreshObject(a: BuiltArchive, seg: number, kind: 'log' | 'index' | 'timeindex'): void {
  const o = a.manifest.segments[seg]!.objects[kind];
  const bytes = fs.readFileSync(path.join(a.partitionDir, o.key));
  o.size = bytes.length;
  o.crc32c = crcHex(new Crc32c(getKernelsSync()).of(bytes));
  writeManifest(a.partitionDir, a.manifest);
}

/** Writes records with a real Store, seals its segments and lays them out as an archive. */
export async function buildArchive(o: BuildOptions): Promise<BuiltArchive> {
  const topic = o.topic ?? 'events';
  const partition = o.partition ?? 0;
  const storeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sediment-replay-store-'));
  const store = await Store.open(storeDir, { retentionCheckMs: -1 });
  let records: StoredRecord[] = [];
  try {
    await store.createTopic(topic, {
      partitions: partition + 1,
      config: { flushMs: -1, segmentBytes: o.segmentBytes ?? 64 * 1024, indexIntervalBytes: o.indexIntervalBytes ?? 1024, retentionMs: -1, maxMessageBytes: 4 << 20 },
    });
    const p = store.partition(topic, partition);
    const per = o.batchSize ?? 20;
    for (let i = 0; i < o.records.length; i += per) await p.append(o.records.slice(i, i + per));
    p.roll();
    await p.flush();
    for await (const r of p.read({ offset: 0 })) records.push(r);
  } finally {
    await store.close();
  }
  const h = partitionHash(topic, partition);
  const rel = [o.prefix ?? '', h, `${topic}-${partition}`].filter((s) => s.length > 0);
  const partitionDir = path.join(o.root, ...rel);
  fs.mkdirSync(partitionDir, { recursive: true });
  const src = path.join(storeDir, `${topic}-${partition}`);
  const crc = new Crc32c(getKernelsSync());
  const segments: ManifestSegmentJson[] = [];
  const logs = fs.readdirSync(src).filter((n) => /^\d{20}\.log$/.test(n)).sort();
  for (const name of logs) {
    const base = Number(name.slice(0, 20));
    const log = fs.readFileSync(path.join(src, name));
    if (log.length === 0) continue;
    const obj = (suffix: string): ManifestObjectJson => {
      const key = `${name.slice(0, 20)}.${suffix}`;
      const file = path.join(src, key);
      const bytes = fs.existsSync(file) ? fs.readFileSync(file) : new Uint8Array(0);
      fs.writeFileSync(path.join(partitionDir, key), bytes);
      return { key, size: bytes.length, crc32c: crcHex(crc.of(bytes)) };
    };
    const facts = scanLog(log);
    segments.push({
      baseOffset: base, lastOffset: facts.lastOffset, nextOffset: facts.lastOffset + 1,
      firstTimestamp: facts.firstTimestamp, maxTimestamp: facts.maxTimestamp, records: facts.records,
      objects: { log: obj('log'), index: obj('index'), timeindex: obj('timeindex') },
    });
  }
  const logStartOffset = o.logStartOffset ?? 0;
  if (logStartOffset > 0) records = records.filter((r) => r.offset >= logStartOffset);
  const manifest: ManifestJson = {
    format: 1, topic, partition, version: segments.length, updatedAt: 1_763_700_000_000, logStartOffset, segments,
  };
  writeManifest(partitionDir, manifest);
  return { root: o.root, partitionDir, manifestRel: [...rel, 'manifest.json'].join('/'), manifest, records, storeDir };
}

/** A stable, comparable form of records (hex bytes), for deepEqual across runtimes. */
export interface PlainRecord { offset: number; timestamp: number; key: string | null; value: string | null; headers: [string, string | null][] }

export function hexOf(b: Uint8Array | null): string | null {
  if (b === null) return null;
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

export function plain(r: StoredRecord): PlainRecord {
  return { offset: r.offset, timestamp: r.timestamp, key: hexOf(r.key), value: hexOf(r.value), headers: r.headers.map((h) => [h.key, hexOf(h.value)]) };
}

/** The same function as source text, for page.evaluate and Deno scripts. */
export const PLAIN_SOURCE = `(r) => {
  const hex = (b) => b === null ? null : Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return { offset: r.offset, timestamp: r.timestamp, key: hex(r.key), value: hex(r.value), headers: r.headers.map((h) => [h.key, hex(h.value)]) };
}`;

/**
 * An archive of one segment made of the given batch bytes (already stamped
 * with offsets), for batches the Store does not write (gzip, control,
 * deliberately malformed). Index and time index are empty unless given.
 */
export function writeHandArchive(root: string, batches: Uint8Array[], o: {
  topic?: string; partition?: number; baseOffset?: number; lastOffset: number; firstTimestamp?: number; maxTimestamp?: number;
  index?: Uint8Array; timeindex?: Uint8Array; records?: number;
}): { partitionDir: string; manifestRel: string; manifest: ManifestJson } {
  const topic = o.topic ?? 'hand';
  const partition = o.partition ?? 0;
  const base = o.baseOffset ?? 0;
  const rel = [partitionHash(topic, partition), `${topic}-${partition}`];
  const partitionDir = path.join(root, ...rel);
  fs.mkdirSync(partitionDir, { recursive: true });
  const total = batches.reduce((n, b) => n + b.length, 0);
  const log = new Uint8Array(total);
  let at = 0;
  for (const b of batches) { log.set(b, at); at += b.length; }
  const crc = new Crc32c(getKernelsSync());
  const stem = String(base).padStart(20, '0');
  const put = (suffix: string, bytes: Uint8Array): ManifestObjectJson => {
    fs.writeFileSync(path.join(partitionDir, `${stem}.${suffix}`), bytes);
    return { key: `${stem}.${suffix}`, size: bytes.length, crc32c: crcHex(crc.of(bytes)) };
  };
  const manifest: ManifestJson = {
    format: 1, topic, partition, version: 1, updatedAt: 1_763_700_000_000, logStartOffset: base,
    segments: [{
      baseOffset: base, lastOffset: o.lastOffset, nextOffset: o.lastOffset + 1,
      firstTimestamp: o.firstTimestamp ?? 0, maxTimestamp: o.maxTimestamp ?? 0, records: o.records ?? o.lastOffset - base + 1,
      objects: { log: put('log', log), index: put('index', o.index ?? new Uint8Array(0)), timeindex: put('timeindex', o.timeindex ?? new Uint8Array(0)) },
    }],
  };
  writeManifest(partitionDir, manifest);
  return { partitionDir, manifestRel: [...rel, 'manifest.json'].join('/'), manifest };
}
