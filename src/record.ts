// Records as the public API sees them, and input normalisation.

import { InvalidArgumentError } from './errors.js';

/** Bytes, or a string taken as UTF-8. */
export type BytesLike = Uint8Array | string;

/** A record header on input: an object or a [key, value] pair. */
export type RecordHeaderInput = { key: string; value: BytesLike | null } | [string, BytesLike | null];

/** A record to append. An absent key (undefined or null) is Kafka's null key (-1), distinct from an empty key. */
export interface RecordInput {
  key?: BytesLike | null;
  value: BytesLike | null;
  headers?: RecordHeaderInput[] | { [key: string]: BytesLike | null };
  /** Milliseconds since the epoch; defaults to the append time. */
  timestamp?: number;
}

export interface RecordHeader {
  key: string;
  value: Uint8Array | null;
}

/** A record read back from a log. */
export interface StoredRecord {
  offset: number;
  timestamp: number;
  key: Uint8Array | null;
  value: Uint8Array | null;
  headers: RecordHeader[];
}

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: false });

/**
 * UTF-8 bytes of a string. Short ASCII strings (the common key) are copied
 * by hand: TextEncoder.encode has a high fixed cost per call on Node 20.
 */
export function encodeUtf8(s: string): Uint8Array {
  const n = s.length;
  if (n <= 256) {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) return utf8.encode(s);
      out[i] = c;
    }
    return out;
  }
  return utf8.encode(s);
}

export function decodeUtf8(bytes: Uint8Array): string {
  return utf8Decoder.decode(bytes);
}

/** Normalises a BytesLike (or null) to bytes; throws InvalidArgumentError for anything else. */
export function toBytes(v: unknown, what: string): Uint8Array | null {
  if (v === null || v === undefined) return null;
  if (v instanceof Uint8Array) return v;
  if (typeof v === 'string') return encodeUtf8(v);
  throw new InvalidArgumentError(`${what} must be a Uint8Array, a string or null, got ${describe(v)}`);
}

/** Like toBytes but null is not allowed. */
export function toBytesRequired(v: unknown, what: string): Uint8Array {
  const b = toBytes(v, what);
  if (b === null) throw new InvalidArgumentError(`${what} must be a Uint8Array or a string, got ${describe(v)}`);
  return b;
}

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (ArrayBuffer.isView(v)) return v.constructor.name;
  return typeof v;
}

/** A record after validation: everything the encoder needs, as bytes. */
export interface NormalizedRecord {
  key: Uint8Array | null;
  value: Uint8Array | null;
  headerKeys: Uint8Array[];
  headerValues: (Uint8Array | null)[];
  timestamp: number;
}

/** Shared by records without headers (never mutated). */
const NO_HEADER_KEYS: Uint8Array[] = Object.freeze([]) as unknown as Uint8Array[];
const NO_HEADER_VALUES: (Uint8Array | null)[] = Object.freeze([]) as unknown as (Uint8Array | null)[];

/** Validates and normalises one record; throws InvalidArgumentError. */
export function normalizeRecord(r: unknown, index: number, now: number): NormalizedRecord {
  if (r === null || typeof r !== 'object' || Array.isArray(r) || r instanceof Uint8Array) {
    throw new InvalidArgumentError(`record ${index} must be an object with a value, got ${describe(r)}`);
  }
  const rec = r as RecordInput;
  if (!('value' in rec)) throw new InvalidArgumentError(`record ${index} has no value (use null for a null value)`);
  const key = toBytes(rec.key, `record ${index} key`);
  const value = toBytes(rec.value, `record ${index} value`);
  let timestamp = now;
  if (rec.timestamp !== undefined) {
    if (typeof rec.timestamp !== 'number' || !Number.isSafeInteger(rec.timestamp)) {
      throw new InvalidArgumentError(`record ${index} timestamp must be an integer number of milliseconds`);
    }
    timestamp = rec.timestamp;
  }
  const h = rec.headers;
  if (h === undefined || h === null) return { key, value, headerKeys: NO_HEADER_KEYS, headerValues: NO_HEADER_VALUES, timestamp };
  const headerKeys: Uint8Array[] = [];
  const headerValues: (Uint8Array | null)[] = [];
  {
    if (Array.isArray(h)) {
      for (let j = 0; j < h.length; j++) {
        const e = h[j] as unknown;
        let k: unknown; let v: unknown;
        if (Array.isArray(e) && e.length === 2) { k = e[0]; v = e[1]; }
        else if (e !== null && typeof e === 'object' && 'key' in e) { k = (e as { key: unknown }).key; v = (e as { value?: unknown }).value; }
        else throw new InvalidArgumentError(`record ${index} header ${j} must be {key, value} or [key, value]`);
        if (typeof k !== 'string') throw new InvalidArgumentError(`record ${index} header ${j} key must be a string`);
        headerKeys.push(encodeUtf8(k));
        headerValues.push(toBytes(v, `record ${index} header '${k}' value`));
      }
    } else if (typeof h === 'object') {
      for (const k of Object.keys(h)) {
        headerKeys.push(encodeUtf8(k));
        headerValues.push(toBytes((h as Record<string, unknown>)[k], `record ${index} header '${k}' value`));
      }
    } else {
      throw new InvalidArgumentError(`record ${index} headers must be an array or an object`);
    }
  }
  return { key, value, headerKeys, headerValues, timestamp };
}

/** Encoded size of a record's payload bytes (keys, values, headers), for limits. */
export function payloadSize(r: NormalizedRecord): number {
  let n = (r.key?.length ?? 0) + (r.value?.length ?? 0);
  for (let j = 0; j < r.headerKeys.length; j++) n += r.headerKeys[j]!.length + (r.headerValues[j]?.length ?? 0);
  return n;
}
