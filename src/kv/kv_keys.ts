// Keys and values of the KV store: validation, limits, and the index form of
// a key.
//
// The index keeps a key as a "byte string": a JS string with one UTF-16 code
// unit per key byte (0..255, i.e. latin1). Plain JS string comparison of two
// byte strings is then exactly bytewise (memcmp, shorter-prefix-first) order,
// which is the order of range() and keys(). An ASCII string key is its own
// byte string, so string keys need no conversion on the hot path.

import { InvalidArgumentError, RecordTooLargeError } from '../errors.js';
import { describe } from '../record.js';

/** Largest key, in bytes (lmdb's default limit is 1978; LevelDB has none). */
export const MAX_KEY_BYTES = 4096;
/** Largest value, in bytes. A batch() is further bounded by the namespace's batch limit. */
export const MAX_VALUE_BYTES = 4 * 1024 * 1024;

const utf8 = new TextEncoder();
/** Node's (and Deno's) Buffer when present: native latin1 decoding of long keys. */
const NodeBuffer: typeof Buffer | undefined = (globalThis as { Buffer?: typeof Buffer }).Buffer;

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

/**
 * Index of the first lone surrogate of s, or -1. UTF-8 has no encoding for
 * one: TextEncoder writes U+FFFD instead, so two different strings would be
 * the same key.
 */
export function loneSurrogate(s: string): number {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    if (c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) { i++; continue; }
    }
    return i;
  }
  return -1;
}

const fcc = String.fromCharCode;

/**
 * The byte string of bytes[start, end). Short keys are converted 16 and 4
 * bytes per String.fromCharCode call (measured: several times faster than a
 * call per byte, and than apply() or Buffer's latin1Slice at these sizes).
 */
export function bytesToByteString(bytes: Uint8Array, start = 0, end = bytes.length): string {
  const n = end - start;
  if (n <= 256) {
    const b = bytes;
    let i = start;
    let s = '';
    for (; i + 16 <= end; i += 16) {
      s += fcc(b[i]!, b[i + 1]!, b[i + 2]!, b[i + 3]!, b[i + 4]!, b[i + 5]!, b[i + 6]!, b[i + 7]!,
        b[i + 8]!, b[i + 9]!, b[i + 10]!, b[i + 11]!, b[i + 12]!, b[i + 13]!, b[i + 14]!, b[i + 15]!);
    }
    for (; i + 4 <= end; i += 4) s += fcc(b[i]!, b[i + 1]!, b[i + 2]!, b[i + 3]!);
    for (; i < end; i++) s += fcc(b[i]!);
    return s;
  }
  if (NodeBuffer) return NodeBuffer.from(bytes.buffer, bytes.byteOffset + start, n).toString('latin1');
  let s = '';
  for (let i = start; i < end; i += 8192) {
    s += fcc.apply(null, bytes.subarray(i, Math.min(end, i + 8192)) as unknown as number[]);
  }
  return s;
}

/** The bytes of a byte string. */
export function byteStringToBytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** Types accepted as keys and values: bytes, or a string taken as UTF-8. */
export type KvBytes = Uint8Array | string;

/**
 * Validates a key and returns its byte string. Throws InvalidArgumentError
 * (not bytes or a string, empty, or a string with a lone surrogate) or
 * RecordTooLargeError (over MAX_KEY_BYTES).
 */
export function keyString(key: unknown, what = 'key'): string {
  if (typeof key === 'string') {
    if (key.length === 0) throw new InvalidArgumentError(`${what} must not be empty`);
    if (key.length <= MAX_KEY_BYTES && isAscii(key)) return key;
    const lone = loneSurrogate(key);
    if (lone >= 0) throw new InvalidArgumentError(`${what} has a lone surrogate (U+${key.charCodeAt(lone).toString(16).toUpperCase()} at index ${lone}): it is not valid UTF-8; pass bytes or a well-formed string`);
    const b = utf8.encode(key);
    if (b.length > MAX_KEY_BYTES) throw new RecordTooLargeError(b.length, MAX_KEY_BYTES, what);
    return bytesToByteString(b);
  }
  if (key instanceof Uint8Array) {
    if (key.length === 0) throw new InvalidArgumentError(`${what} must not be empty`);
    if (key.length > MAX_KEY_BYTES) throw new RecordTooLargeError(key.length, MAX_KEY_BYTES, what);
    return bytesToByteString(key);
  }
  throw new InvalidArgumentError(`${what} must be a Uint8Array or a string, got ${describe(key)}`);
}

/** A range bound or prefix: like keyString but empty is allowed. */
export function boundString(b: unknown, what: string): string {
  if (typeof b === 'string' && b.length === 0) return '';
  if (b instanceof Uint8Array && b.length === 0) return '';
  return keyString(b, what);
}

/** Validates a value and returns its bytes (strings are encoded as UTF-8). */
export function valueBytes(v: unknown, what = 'value'): Uint8Array {
  let b: Uint8Array;
  if (v instanceof Uint8Array) b = v;
  else if (typeof v === 'string') b = utf8.encode(v);
  else throw new InvalidArgumentError(`${what} must be a Uint8Array or a string, got ${describe(v)}`);
  if (b.length > MAX_VALUE_BYTES) throw new RecordTooLargeError(b.length, MAX_VALUE_BYTES, what);
  return b;
}

/** The smallest byte string greater than every string starting with `prefix`, or null (no bound). */
export function prefixEnd(prefix: string): string | null {
  let end = prefix.length;
  while (end > 0 && prefix.charCodeAt(end - 1) === 0xff) end--;
  if (end === 0) return null;
  return prefix.slice(0, end - 1) + String.fromCharCode(prefix.charCodeAt(end - 1) + 1);
}
