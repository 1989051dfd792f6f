// The archive format (docs/archive-format.md): object keys, the per-partition
// manifest and the store catalog. Pure functions, no I/O: the archiver
// writes what these build, the remote reader and restore read what these
// parse. Manifests are validated strictly on read: a reader must never act
// on an entry that does not make sense.

import { CorruptionError, InvalidArgumentError } from '../errors.js';
import { XxHash64 } from '../xxhash64.js';
import { Kernels } from '../kernels.js';
import { segmentFileName, LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX } from '../log_segment.js';
import { TopicConfig } from '../topic_config.js';

export const MANIFEST_FORMAT = 1;
export const MANIFEST_NAME = 'manifest.json';
export const CATALOG_FORMAT = 1;
export const CATALOG_NAME = 'topics.json';
/** Largest manifest accepted when reading (a guard against garbage, ~100k segments). */
export const MAX_MANIFEST_BYTES = 64 << 20;

export type ObjectKind = 'log' | 'index' | 'timeindex';
export const OBJECT_KINDS: readonly ObjectKind[] = ['log', 'index', 'timeindex'];
const SUFFIX: Record<ObjectKind, string> = { log: LOG_SUFFIX, index: INDEX_SUFFIX, timeindex: TIME_INDEX_SUFFIX };

export interface ManifestObject {
  /** Key relative to the manifest's directory. */
  key: string;
  size: number;
  /** CRC-32C of the whole object, 8 lowercase hex digits. */
  crc32c: string;
}

export interface ManifestSegment {
  baseOffset: number;
  lastOffset: number;
  nextOffset: number;
  firstTimestamp: number;
  maxTimestamp: number;
  records: number;
  objects: Record<ObjectKind, ManifestObject>;
}

export interface Manifest {
  format: number;
  topic: string;
  partition: number;
  version: number;
  updatedAt: number;
  logStartOffset: number;
  segments: ManifestSegment[];
}

/** The store catalog: which topics (and partition counts and configs) the archive holds; used by restore. */
export interface Catalog {
  format: number;
  updatedAt: number;
  topics: Record<string, { partitions: number; config: Partial<TopicConfig> }>;
}

/** CRC-32C as 8 lowercase hex digits. */
export function crcHex(crc: number): string { return (crc >>> 0).toString(16).padStart(8, '0'); }

/** The 8-hex-digit key prefix of a partition: low 32 bits of xxHash64 (seed 0) of "<topic>-<partition>". */
export function partitionHash(xxh: XxHash64, topic: string, partition: number): string {
  const h = xxh.hash(new TextEncoder().encode(`${topic}-${partition}`));
  return (h & 0xffffffffn).toString(16).padStart(8, '0');
}

/** Joins key parts with '/', skipping empty ones (an empty prefix). */
export function joinKey(...parts: string[]): string {
  return parts.filter((p) => p.length > 0).join('/');
}

/** Computes object keys of one store's archive. */
export class ArchiveLayout {
  readonly prefix: string;
  private readonly xxh: XxHash64;

  constructor(k: Kernels, prefix: string) {
    this.prefix = prefix;
    this.xxh = new XxHash64(k);
  }

  /** "<prefix>/<h>/<topic>-<partition>/" (always ends with '/'). */
  partitionDir(topic: string, partition: number): string {
    return joinKey(this.prefix, partitionHash(this.xxh, topic, partition), `${topic}-${partition}`) + '/';
  }

  manifestKey(topic: string, partition: number): string { return this.partitionDir(topic, partition) + MANIFEST_NAME; }

  catalogKey(): string { return joinKey(this.prefix, CATALOG_NAME); }

  /** "<prefix>/" or '' : where partition directories live. */
  rootDir(): string { return this.prefix ? this.prefix + '/' : ''; }

  free(): void { this.xxh.free(); }
}

/** Key (relative to the partition directory) of a segment's object. */
export function segmentObjectKey(baseOffset: number, kind: ObjectKind): string {
  return segmentFileName(baseOffset, SUFFIX[kind]);
}

/** A new, empty manifest (version 0: never written). */
export function emptyManifest(topic: string, partition: number, logStartOffset = 0): Manifest {
  return { format: MANIFEST_FORMAT, topic, partition, version: 0, updatedAt: 0, logStartOffset, segments: [] };
}

/** One past the last offset the archive ever covered (segments removed by remote retention included). */
export function archivedUpTo(m: Manifest): number {
  const last = m.segments[m.segments.length - 1];
  return last ? Math.max(last.nextOffset, m.logStartOffset) : m.logStartOffset;
}

/** Bytes of every object the manifest lists. */
export function manifestBytes(m: Manifest): number {
  let n = 0;
  for (const s of m.segments) for (const k of OBJECT_KINDS) n += s.objects[k].size;
  return n;
}

/** Index of the segment holding offset (largest baseOffset <= offset), or -1. */
export function findSegment(m: Manifest, offset: number): number {
  const segs = m.segments;
  let lo = 0;
  let hi = segs.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (segs[mid]!.baseOffset <= offset) { found = mid; lo = mid + 1; } else hi = mid - 1;
  }
  return found;
}

/** Serialises a manifest (compact JSON and a newline). */
export function serializeManifest(m: Manifest): Buffer {
  validateManifest(m, 'manifest to write');
  return Buffer.from(JSON.stringify(m) + '\n', 'utf8');
}

/** Parses and validates a manifest; CorruptionError (naming `where`) when it does not hold together. */
export function parseManifest(bytes: Uint8Array, where: string, expect?: { topic: string; partition: number }): Manifest {
  if (bytes.length > MAX_MANIFEST_BYTES) throw new CorruptionError(`manifest of ${bytes.length} bytes exceeds ${MAX_MANIFEST_BYTES}`, { file: where, position: 0 });
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (err) {
    throw new CorruptionError(`manifest is not valid JSON: ${(err as Error).message}`, { file: where, position: 0 });
  }
  const m = validateManifest(v, where);
  if (expect && (m.topic !== expect.topic || m.partition !== expect.partition)) {
    throw new CorruptionError(`manifest is for ${m.topic}-${m.partition}, expected ${expect.topic}-${expect.partition}`, { file: where, position: 0 });
  }
  return m;
}

function isInt(v: unknown, min = 0): v is number { return typeof v === 'number' && Number.isSafeInteger(v) && v >= min; }
function isTs(v: unknown): v is number { return typeof v === 'number' && Number.isSafeInteger(v) && v >= -1; }

/** Checks every field and invariant of a manifest; returns it typed. */
export function validateManifest(v: unknown, where: string): Manifest {
  const bad = (reason: string): never => { throw new CorruptionError(`invalid manifest: ${reason}`, { file: where, position: 0 }); };
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return bad('not an object');
  const m = v as Manifest;
  if (m.format !== MANIFEST_FORMAT) return bad(`format ${JSON.stringify(m.format)} is not supported (this build reads ${MANIFEST_FORMAT})`);
  if (typeof m.topic !== 'string' || m.topic.length === 0) bad('topic missing');
  if (!isInt(m.partition)) bad('partition must be a non-negative integer');
  if (!isInt(m.version)) bad('version must be a non-negative integer');
  if (!isInt(m.updatedAt)) bad('updatedAt must be a non-negative integer');
  if (!isInt(m.logStartOffset)) bad('logStartOffset must be a non-negative integer');
  if (!Array.isArray(m.segments)) bad('segments must be an array');
  let prevNext = -1;
  for (let i = 0; i < m.segments.length; i++) {
    const s = m.segments[i]!;
    const at = `segments[${i}]`;
    if (s === null || typeof s !== 'object') bad(`${at} is not an object`);
    if (!isInt(s.baseOffset) || !isInt(s.nextOffset) || !isInt(s.records) || typeof s.lastOffset !== 'number' || !Number.isSafeInteger(s.lastOffset)) bad(`${at} offsets must be integers`);
    if (s.nextOffset <= s.baseOffset) bad(`${at} nextOffset ${s.nextOffset} is not after baseOffset ${s.baseOffset}`);
    if (s.lastOffset < s.baseOffset || s.lastOffset >= s.nextOffset) bad(`${at} lastOffset ${s.lastOffset} outside [${s.baseOffset}, ${s.nextOffset})`);
    if (s.baseOffset < prevNext) bad(`${at} overlaps the previous segment (baseOffset ${s.baseOffset} < ${prevNext})`);
    if (i === 0 && s.baseOffset < m.logStartOffset) bad(`${at} starts before logStartOffset`);
    if (!isTs(s.firstTimestamp) || !isTs(s.maxTimestamp)) bad(`${at} timestamps must be integers >= -1`);
    if (s.records > s.nextOffset - s.baseOffset) bad(`${at} holds more records than offsets`);
    if (s.objects === null || typeof s.objects !== 'object') bad(`${at}.objects missing`);
    for (const kind of OBJECT_KINDS) {
      const o = s.objects[kind];
      if (o === null || typeof o !== 'object') { bad(`${at}.objects.${kind} missing`); continue; }
      if (typeof o.key !== 'string' || o.key.length === 0 || o.key.includes('/') || o.key.startsWith('.')) bad(`${at}.objects.${kind}.key must be a plain name`);
      if (!isInt(o.size)) bad(`${at}.objects.${kind}.size must be a non-negative integer`);
      if (typeof o.crc32c !== 'string' || !/^[0-9a-f]{8}$/.test(o.crc32c)) bad(`${at}.objects.${kind}.crc32c must be 8 lowercase hex digits`);
    }
    if (s.objects.log.size === 0) bad(`${at} has an empty log`);
    prevNext = s.nextOffset;
  }
  return m;
}

export function serializeCatalog(c: Catalog): Buffer {
  return Buffer.from(JSON.stringify(c, null, 2) + '\n', 'utf8');
}

export function parseCatalog(bytes: Uint8Array, where: string): Catalog {
  let v: Catalog;
  try {
    v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as Catalog;
  } catch (err) {
    throw new CorruptionError(`catalog is not valid JSON: ${(err as Error).message}`, { file: where, position: 0 });
  }
  if (v === null || typeof v !== 'object' || v.format !== CATALOG_FORMAT || v.topics === null || typeof v.topics !== 'object') {
    throw new CorruptionError(`invalid catalog (format ${JSON.stringify((v as Catalog | null)?.format)}, expected ${CATALOG_FORMAT})`, { file: where, position: 0 });
  }
  for (const [name, t] of Object.entries(v.topics)) {
    if (!t || !isInt(t.partitions, 1) || t.config === null || typeof t.config !== 'object') {
      throw new CorruptionError(`invalid catalog entry for topic ${JSON.stringify(name)}`, { file: where, position: 0 });
    }
  }
  return v;
}

/** Parses "<topic>-<n>" (a partition directory name). */
export function parsePartitionDirName(name: string): { topic: string; partition: number } | null {
  const m = /^(.+)-(\d+)$/.exec(name);
  if (!m) return null;
  const partition = Number(m[2]);
  if (!Number.isSafeInteger(partition)) return null;
  return { topic: m[1]!, partition };
}

/** Throws unless offset is a non-negative safe integer. */
export function checkOffset(offset: number, what = 'offset'): void {
  if (!Number.isSafeInteger(offset) || offset < 0) throw new InvalidArgumentError(`${what} must be a non-negative integer, got ${offset}`);
}
