// Strict validation of an archive manifest (docs/archive-format.md) read from
// an untrusted place. Everything replay later trusts is checked here: types,
// integer ranges, segment order, object sizes against the format's limits,
// and object keys, which must be exactly `<base20>.<kind>` so that resolving
// them against the manifest's URL can never leave its directory.

import { ManifestError } from './errors.js';

export const MANIFEST_FORMAT = 1;
/** Largest manifest accepted by default (bytes of JSON). */
export const DEFAULT_MAX_MANIFEST_BYTES = 64 * 1024 * 1024;
/** Largest number of segments accepted by default. */
export const DEFAULT_MAX_SEGMENTS = 1_000_000;
/** Largest offset or time index object accepted by default (Kafka's segment.index.bytes is 10 MiB). */
export const DEFAULT_MAX_INDEX_BYTES = 64 * 1024 * 1024;
/** Segment logs are addressed with u31 positions (see log_segment.ts). */
export const MAX_LOG_OBJECT_BYTES = 0x7fffffff;
const BATCH_HEADER_SIZE = 61;
const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,249}$/;
const CRC_HEX = /^[0-9a-f]{8}$/;

export type ObjectKind = 'log' | 'index' | 'timeindex';
export const OBJECT_KINDS: readonly ObjectKind[] = ['log', 'index', 'timeindex'];

/** One archived object, as the manifest describes it. */
export interface ArchiveObject {
  /** Object name relative to the manifest's directory, e.g. `00000000000000000000.log`. */
  readonly key: string;
  readonly size: number;
  /** CRC-32C of the whole object (unsigned 32-bit). */
  readonly crc32c: number;
}

export interface ArchiveSegment {
  readonly baseOffset: number;
  readonly lastOffset: number;
  readonly nextOffset: number;
  readonly firstTimestamp: number;
  readonly maxTimestamp: number;
  readonly records: number;
  readonly objects: { readonly log: ArchiveObject; readonly index: ArchiveObject; readonly timeindex: ArchiveObject };
}

export interface ArchiveManifest {
  readonly format: 1;
  readonly topic: string;
  readonly partition: number;
  readonly version: number;
  readonly updatedAt: number;
  readonly logStartOffset: number;
  readonly segments: readonly ArchiveSegment[];
}

export interface ManifestLimits {
  /** Largest number of segments (default 1 000 000). */
  maxSegments?: number;
  /** Largest .index or .timeindex object (default 64 MiB). */
  maxIndexBytes?: number;
}

/** `<base20>.<kind>`: the only key a segment object may have. */
export function objectKey(baseOffset: number, kind: ObjectKind): string {
  return `${String(baseOffset).padStart(20, '0')}.${kind}`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function own(o: Record<string, unknown>, k: string): unknown {
  return Object.prototype.hasOwnProperty.call(o, k) ? o[k] : undefined;
}

function kind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  if (typeof v === 'number') return String(v);
  return typeof v;
}

function int(o: Record<string, unknown>, k: string, path: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const v = own(o, k);
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
    throw new ManifestError(`${path}${k}`, `must be an integer in [${min}, ${max}], got ${kind(v)}`);
  }
  return v;
}

function parseObject(v: unknown, path: string, baseOffset: number, k: ObjectKind, maxIndexBytes: number): ArchiveObject {
  if (!isObject(v)) throw new ManifestError(path, `must be an object, got ${kind(v)}`);
  const key = own(v, 'key');
  const expected = objectKey(baseOffset, k);
  if (typeof key !== 'string' || key !== expected) {
    throw new ManifestError(`${path}.key`, `must be ${JSON.stringify(expected)}, got ${kind(key)}`);
  }
  let size: number;
  if (k === 'log') size = int(v, 'size', `${path}.`, BATCH_HEADER_SIZE, MAX_LOG_OBJECT_BYTES);
  else {
    const entry = k === 'index' ? 8 : 12;
    size = int(v, 'size', `${path}.`, 0, maxIndexBytes);
    if (size % entry !== 0) throw new ManifestError(`${path}.size`, `${size} is not a multiple of the ${entry}-byte entry size`);
  }
  const crc = own(v, 'crc32c');
  if (typeof crc !== 'string' || !CRC_HEX.test(crc)) {
    throw new ManifestError(`${path}.crc32c`, `must be 8 lowercase hex digits, got ${kind(crc)}`);
  }
  return Object.freeze({ key, size, crc32c: parseInt(crc, 16) >>> 0 });
}

function limit(v: number | undefined, name: string, def: number): number {
  if (v === undefined) return def;
  if (!Number.isSafeInteger(v) || v < 0) throw new ManifestError('', `limit ${name} must be a non-negative integer`);
  return v;
}

/**
 * Parses and validates a manifest: JSON text, its UTF-8 bytes, or an
 * already-parsed value. Throws ManifestError naming the first bad field.
 * Unknown fields are ignored (later writers may add some); an unknown
 * `format` is refused.
 */
export function parseManifest(input: string | Uint8Array | unknown, limits: ManifestLimits = {}): ArchiveManifest {
  const maxSegments = limit(limits.maxSegments, 'maxSegments', DEFAULT_MAX_SEGMENTS);
  const maxIndexBytes = limit(limits.maxIndexBytes, 'maxIndexBytes', DEFAULT_MAX_INDEX_BYTES);
  let root: unknown = input;
  if (input instanceof Uint8Array || typeof input === 'string') {
    let text: string;
    try {
      text = typeof input === 'string' ? input : new TextDecoder('utf-8', { fatal: true }).decode(input);
    } catch {
      throw new ManifestError('', 'is not valid UTF-8');
    }
    try {
      root = JSON.parse(text);
    } catch (err) {
      throw new ManifestError('', `is not valid JSON (${(err as Error).message})`);
    }
  }
  if (!isObject(root)) throw new ManifestError('', `must be a JSON object, got ${kind(root)}`);
  const format = own(root, 'format');
  if (format !== MANIFEST_FORMAT) throw new ManifestError('format', `unknown format ${kind(format)} (this reader knows ${MANIFEST_FORMAT})`);
  const topic = own(root, 'topic');
  if (typeof topic !== 'string' || !TOPIC_NAME.test(topic) || topic === '.' || topic === '..') {
    throw new ManifestError('topic', `must be a topic name (1-249 of [a-zA-Z0-9._-]), got ${kind(topic)}`);
  }
  const partition = int(root, 'partition', '', 0, 0x7fffffff);
  const version = int(root, 'version', '', 0);
  const updatedAt = int(root, 'updatedAt', '', 0);
  const logStartOffset = int(root, 'logStartOffset', '', 0);
  const segs = own(root, 'segments');
  if (!Array.isArray(segs)) throw new ManifestError('segments', `must be an array, got ${kind(segs)}`);
  if (segs.length > maxSegments) throw new ManifestError('segments', `has ${segs.length} entries, over the limit of ${maxSegments}`);
  const segments: ArchiveSegment[] = [];
  let prevLast = -1;
  for (let i = 0; i < segs.length; i++) {
    const s = segs[i] as unknown;
    const p = `segments[${i}].`;
    if (!isObject(s)) throw new ManifestError(`segments[${i}]`, `must be an object, got ${kind(s)}`);
    const baseOffset = int(s, 'baseOffset', p, 0);
    if (baseOffset <= prevLast) {
      throw new ManifestError(`${p}baseOffset`, `${baseOffset} overlaps or precedes the previous segment (last offset ${prevLast}); segments must be sorted and disjoint`);
    }
    // Offsets relative to the base are u32 in the index.
    const lastOffset = int(s, 'lastOffset', p, baseOffset, Math.min(Number.MAX_SAFE_INTEGER - 1, baseOffset + 0xffffffff));
    const nextOffset = int(s, 'nextOffset', p, 0);
    if (nextOffset !== lastOffset + 1) throw new ManifestError(`${p}nextOffset`, `must be lastOffset + 1 = ${lastOffset + 1}, got ${nextOffset}`);
    const firstTimestamp = int(s, 'firstTimestamp', p, Number.MIN_SAFE_INTEGER);
    const maxTimestamp = int(s, 'maxTimestamp', p, Number.MIN_SAFE_INTEGER);
    const records = int(s, 'records', p, 0, nextOffset - baseOffset);
    const objs = own(s, 'objects');
    if (!isObject(objs)) throw new ManifestError(`${p}objects`, `must be an object, got ${kind(objs)}`);
    const objects = Object.freeze({
      log: parseObject(own(objs, 'log'), `${p}objects.log`, baseOffset, 'log', maxIndexBytes),
      index: parseObject(own(objs, 'index'), `${p}objects.index`, baseOffset, 'index', maxIndexBytes),
      timeindex: parseObject(own(objs, 'timeindex'), `${p}objects.timeindex`, baseOffset, 'timeindex', maxIndexBytes),
    });
    segments.push(Object.freeze({ baseOffset, lastOffset, nextOffset, firstTimestamp, maxTimestamp, records, objects }));
    prevLast = lastOffset;
  }
  if (segments.length > 0 && logStartOffset > segments[segments.length - 1]!.nextOffset) {
    throw new ManifestError('logStartOffset', `${logStartOffset} is past the end of the archived log (${segments[segments.length - 1]!.nextOffset})`);
  }
  return Object.freeze({ format: MANIFEST_FORMAT, topic, partition, version, updatedAt, logStartOffset, segments: Object.freeze(segments) });
}

/** Offset one past the last archived record (logStartOffset when nothing is archived). */
export function manifestEndOffset(m: ArchiveManifest): number {
  const last = m.segments[m.segments.length - 1];
  return last ? Math.max(last.nextOffset, m.logStartOffset) : m.logStartOffset;
}

/**
 * Index of the segment holding offset, or of the first segment after it when
 * offset falls in a gap; segments.length when offset is past the end.
 */
export function segmentIndexFor(m: ArchiveManifest, offset: number): number {
  const segs = m.segments;
  let lo = 0;
  let hi = segs.length;
  // First segment whose lastOffset >= offset.
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (segs[mid]!.lastOffset < offset) lo = mid + 1; else hi = mid;
  }
  return lo;
}
