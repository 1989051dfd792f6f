// A pure-TypeScript Kafka RecordBatch v2 (magic 2) encoder and decoder: the
// baseline the wasm framing kernels are measured against. Same byte layout
// as src/record_batch.ts (docs/format.md): 61-byte header, CRC-32C over
// bytes 21..end, records as zigzag varints. Uncompressed batches only.
// Written for speed: one pass to size each record, one pass to write it,
// header fields through a DataView, CRC-32C with the fastest pure-TS
// implementation (bench/lib/crc32c_ts.ts). Decoded keys and values are
// copies (slice), like sediment's decoder, so the two do the same work.

import { crc32cMulti } from './crc32c_ts.js';

export const TS_BATCH_HEADER = 61;
const CRC_START = 21;
const TWO32 = 4294967296;

export interface TsHeader { key: Uint8Array; value: Uint8Array | null }
export interface TsRecordIn { key: Uint8Array | null; value: Uint8Array | null; timestamp: number; headers?: TsHeader[] }
export interface TsRecordOut { offset: number; timestamp: number; key: Uint8Array | null; value: Uint8Array | null; headers: TsHeader[] }

function zigzag32(n: number): number { return ((n << 1) ^ (n >> 31)) >>> 0; }

function sizeUVarint(z: number): number {
  let s = 1;
  while (z >= 128) { z = Math.floor(z / 128); s++; }
  return s;
}
function sizeVarint(n: number): number {
  const z = zigzag32(n);
  return z < 0x80 ? 1 : z < 0x4000 ? 2 : z < 0x200000 ? 3 : z < 0x10000000 ? 4 : 5;
}
/** Zigzag of a safe integer (up to 2^53) as a non-negative number. */
function zigzagLong(n: number): number { return n >= 0 ? 2 * n : -2 * n - 1; }

function writeUVarint(b: Uint8Array, p: number, z: number): number {
  while (z >= 128) { b[p++] = (z & 0x7f) | 0x80; z = Math.floor(z / 128); }
  b[p++] = z;
  return p;
}
function writeVarint(b: Uint8Array, p: number, n: number): number {
  let z = zigzag32(n);
  while (z >= 128) { b[p++] = (z & 0x7f) | 0x80; z >>>= 7; }
  b[p++] = z;
  return p;
}

/** Upper bound of the encoded size. */
export function tsBatchMaxSize(records: readonly TsRecordIn[]): number {
  let n = TS_BATCH_HEADER;
  for (const r of records) {
    n += 32 + (r.key?.length ?? 0) + (r.value?.length ?? 0);
    for (const h of r.headers ?? []) n += 10 + h.key.length + (h.value?.length ?? 0);
  }
  return n;
}

/**
 * Encodes records as one batch (base offset 0, leader epoch -1, no producer)
 * into out at 0; returns the batch size. out must hold tsBatchMaxSize bytes.
 */
export function tsEncodeBatch(records: readonly TsRecordIn[], out: Uint8Array, dv: DataView): number {
  const n = records.length;
  const first = records[0]!.timestamp;
  let maxTs = first;
  let p = TS_BATCH_HEADER;
  for (let i = 0; i < n; i++) {
    const r = records[i]!;
    const key = r.key, value = r.value, headers = r.headers;
    const tsZ = zigzagLong(r.timestamp - first);
    if (r.timestamp > maxTs) maxTs = r.timestamp;
    const hc = headers === undefined ? 0 : headers.length;
    let body = 1 + sizeUVarint(tsZ) + sizeVarint(i)
      + (key === null ? 1 : sizeVarint(key.length) + key.length)
      + (value === null ? 1 : sizeVarint(value.length) + value.length)
      + sizeVarint(hc);
    for (let j = 0; j < hc; j++) {
      const h = headers![j]!;
      body += sizeVarint(h.key.length) + h.key.length + (h.value === null ? 1 : sizeVarint(h.value.length) + h.value.length);
    }
    p = writeVarint(out, p, body);
    out[p++] = 0; // record attributes
    p = writeUVarint(out, p, tsZ);
    p = writeVarint(out, p, i);
    if (key === null) out[p++] = 1; // zigzag(-1)
    else { p = writeVarint(out, p, key.length); out.set(key, p); p += key.length; }
    if (value === null) out[p++] = 1;
    else { p = writeVarint(out, p, value.length); out.set(value, p); p += value.length; }
    p = writeVarint(out, p, hc);
    for (let j = 0; j < hc; j++) {
      const h = headers![j]!;
      p = writeVarint(out, p, h.key.length); out.set(h.key, p); p += h.key.length;
      if (h.value === null) out[p++] = 1;
      else { p = writeVarint(out, p, h.value.length); out.set(h.value, p); p += h.value.length; }
    }
  }
  dv.setUint32(0, 0); dv.setUint32(4, 0);              // base offset
  dv.setInt32(8, p - 12);                              // batch length
  dv.setInt32(12, -1);                                 // partition leader epoch
  out[16] = 2;                                         // magic
  dv.setInt16(21, 0);                                  // attributes
  dv.setInt32(23, n - 1);                              // last offset delta
  dv.setInt32(27, Math.floor(first / TWO32)); dv.setUint32(31, first >>> 0);
  dv.setInt32(35, Math.floor(maxTs / TWO32)); dv.setUint32(39, maxTs >>> 0);
  dv.setInt32(43, -1); dv.setInt32(47, -1);            // producer id
  dv.setInt16(51, -1);                                 // producer epoch
  dv.setInt32(53, -1);                                 // base sequence
  dv.setInt32(57, n);                                  // record count
  dv.setUint32(17, crc32cMulti(out.subarray(CRC_START, p)));
  return p;
}

/** Thrown by the pure-TS decoder on malformed input. */
export class TsBatchError extends Error {}

/**
 * Validates (length, magic, CRC-32C) and decodes the first batch in buf;
 * pushes its records onto out and returns the batch size.
 */
export function tsDecodeBatch(buf: Uint8Array, out: TsRecordOut[]): number {
  if (buf.length < TS_BATCH_HEADER) throw new TsBatchError('short batch');
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.length);
  const size = dv.getInt32(8) + 12;
  if (size < TS_BATCH_HEADER || size > buf.length) throw new TsBatchError('bad batch length');
  if (buf[16] !== 2) throw new TsBatchError('bad magic');
  if (crc32cMulti(buf.subarray(CRC_START, size)) !== dv.getUint32(17)) throw new TsBatchError('CRC mismatch');
  if ((dv.getInt16(21) & 7) !== 0) throw new TsBatchError('compressed batch');
  const baseOffset = dv.getInt32(0) * TWO32 + dv.getUint32(4);
  const firstTs = dv.getInt32(27) * TWO32 + dv.getUint32(31);
  const count = dv.getInt32(57);
  let p = TS_BATCH_HEADER;
  // Varint readers inline a fast path for one byte.
  const readVarint = (): number => {
    let z = 0, shift = 0, b: number;
    do {
      if (p >= size || shift > 28) throw new TsBatchError('bad varint');
      b = buf[p++]!;
      z |= (b & 0x7f) << shift;
      shift += 7;
    } while (b & 0x80);
    return (z >>> 1) ^ -(z & 1);
  };
  const readVarlong = (): number => {
    let z = 0, mul = 1, b: number;
    do {
      if (p >= size || mul > 2 ** 49) throw new TsBatchError('bad varlong');
      b = buf[p++]!;
      z += (b & 0x7f) * mul;
      mul *= 128;
    } while (b & 0x80);
    return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
  };
  const readBytes = (): Uint8Array | null => {
    const len = readVarint();
    if (len < 0) return null;
    if (p + len > size) throw new TsBatchError('bytes past the batch');
    const v = buf.slice(p, p + len);
    p += len;
    return v;
  };
  for (let i = 0; i < count; i++) {
    const len = readVarint();
    const end = p + len;
    if (len < 1 || end > size) throw new TsBatchError('bad record length');
    p++; // attributes
    const tsDelta = readVarlong();
    const offsetDelta = readVarint();
    const key = readBytes();
    const value = readBytes();
    const hc = readVarint();
    if (hc < 0 || hc > len) throw new TsBatchError('bad header count');
    const headers: TsHeader[] = new Array(hc);
    for (let j = 0; j < hc; j++) {
      const hk = readBytes();
      if (hk === null) throw new TsBatchError('null header key');
      headers[j] = { key: hk, value: readBytes() };
    }
    if (p !== end) throw new TsBatchError('record length mismatch');
    out.push({ offset: baseOffset + offsetDelta, timestamp: firstTs + tsDelta, key, value, headers });
  }
  if (p !== size) throw new TsBatchError('trailing bytes in batch');
  return size;
}
