// How KV mutations are stored: one Kafka record per mutation in the
// namespace's compacted topic.
//
//   put(k, v)        key = k, value = v, no headers
//   delete(k)        key = k, value = null (a tombstone, as in any compacted topic)
//   disable/enable/  key = k, value = null, one header 'kv.flags' whose value is
//   forget           one byte: bit 0 disabled, bit 1 forgotten (the full flag
//                    state of the key after the mutation)
//
// A put or delete also ends the forgotten state of its key. Records of one
// batch() share one RecordBatch (one CRC), so a batch is all or nothing.
//
// This module also lays out records exactly as the RecordBatch v2 encoder
// does (to know where each value lands in the segment file without reading
// it back) and parses records straight out of wasm memory for replay and
// compaction.

import { CorruptionError } from '../errors.js';
import { BatchInfo, BATCH_HEADER_SIZE } from '../record_batch.js';

export const FLAGS_HEADER = 'kv.flags';
export const FLAGS_HEADER_BYTES = new TextEncoder().encode(FLAGS_HEADER);
/** Writes are refused; reads work. */
export const FLAG_DISABLED = 1;
/** Reads, updates and scans see the key as absent; the value stays on disk for audit. */
export const FLAG_FORGOTTEN = 2;
export const FLAG_MASK = FLAG_DISABLED | FLAG_FORGOTTEN;

export const OP_PUT = 0;
export const OP_DEL = 1;
export const OP_FLAGS = 2;
/** A record that is not a KV mutation (null key): ignored by replay, dropped by compaction. */
export const OP_NONE = 3;

/** Bytes of the zigzag varint encoding of a 32-bit integer. */
export function sizeVarint(v: number): number {
  let z = ((v << 1) ^ (v >> 31)) >>> 0;
  let n = 1;
  while (z >= 0x80) { z >>>= 7; n++; }
  return n;
}

/**
 * Accumulates the exact byte layout of a batch as RecordBatchEncoder writes
 * it when every record has the batch's timestamp (timestamp delta 0, one
 * byte). add() returns the position of the record's value relative to the
 * start of the batch.
 */
export class BatchLayout {
  size = BATCH_HEADER_SIZE;
  count = 0;

  reset(): void { this.size = BATCH_HEADER_SIZE; this.count = 0; }

  /** valueLen -1 for a null value; flags true for a record with the kv.flags header. */
  add(keyLen: number, valueLen: number, flags: boolean): number {
    const i = this.count++;
    let body = 1 + 1 + sizeVarint(i) + sizeVarint(keyLen) + keyLen + sizeVarint(valueLen) + 1;
    const beforeValue = 1 + 1 + sizeVarint(i) + sizeVarint(keyLen) + keyLen + sizeVarint(valueLen);
    if (valueLen > 0) body += valueLen;
    if (flags) body += sizeVarint(FLAGS_HEADER_BYTES.length) + FLAGS_HEADER_BYTES.length + sizeVarint(1) + 1;
    const valuePos = this.size + sizeVarint(body) + beforeValue;
    this.size += sizeVarint(body) + body;
    return valuePos;
  }
}

/**
 * Walks the records of one uncompressed batch in wasm memory. After next()
 * returns true the fields describe the current record; positions are
 * absolute file positions (batch position + offset in the batch).
 */
export class RecordCursor {
  private u8: Uint8Array = new Uint8Array(0);
  private p = 0;
  private end = 0;
  private left = 0;
  private base = 0;
  private lastDelta = 0;
  /** file position = memory address + delta */
  private delta = 0;
  private file: string | undefined;
  private batchPos = 0;

  offset = 0;
  op = OP_NONE;
  /** Flag byte of an OP_FLAGS record. */
  flags = 0;
  /** Memory address of the key bytes in the wasm view given to reset(). */
  keyPtr = 0;
  keyLen = 0;
  /** Memory address of the value bytes; valueLen -1 for null. */
  valuePtr = 0;
  valueLen = -1;
  /** Memory address of the first byte of the record and one past its last. */
  recordStart = 0;
  recordEnd = 0;

  /** Starts on the batch at memory address ptr described by info (CRC already checked). */
  reset(u8: Uint8Array, ptr: number, info: BatchInfo, file?: string): void {
    this.u8 = u8;
    this.p = ptr + BATCH_HEADER_SIZE;
    this.end = ptr + info.size;
    this.left = info.recordCount;
    this.base = info.baseOffset;
    this.lastDelta = info.lastOffsetDelta;
    this.delta = info.position - ptr;
    this.file = file;
    this.batchPos = info.position;
  }

  /** File position of a memory address inside the current batch. */
  filePosition(addr: number): number { return addr + this.delta; }

  private bad(reason: string): CorruptionError {
    return new CorruptionError(`KV record: ${reason}`, { file: this.file, position: this.batchPos, offset: this.base });
  }

  private varint(): number {
    const u8 = this.u8;
    let p = this.p;
    let result = 0;
    let shift = 0;
    for (;;) {
      if (p >= this.end) throw this.bad('varint runs past the end of the batch');
      const b = u8[p++]!;
      if (shift === 28) {
        if (b > 0x0f) throw this.bad('varint too long');
        result |= b << 28;
        break;
      }
      result |= (b & 0x7f) << shift;
      if (b < 0x80) break;
      shift += 7;
    }
    this.p = p;
    return (result >>> 1) ^ -(result & 1);
  }

  private skipVarlong(): void {
    const u8 = this.u8;
    for (let i = 0; i < 10; i++) {
      if (this.p >= this.end) throw this.bad('varlong runs past the end of the batch');
      if (u8[this.p++]! < 0x80) return;
    }
    throw this.bad('varlong too long');
  }

  next(): boolean {
    if (this.left === 0) {
      if (this.p !== this.end) throw this.bad(`${this.end - this.p} bytes after the last record`);
      return false;
    }
    this.left--;
    this.recordStart = this.p;
    const len = this.varint();
    const bodyStart = this.p;
    if (len < 0 || bodyStart + len > this.end) throw this.bad(`record length ${len} out of bounds`);
    const saveEnd = this.end;
    this.end = bodyStart + len;
    this.p++; // attributes
    this.skipVarlong(); // timestamp delta
    const od = this.varint();
    if (od < 0 || od > this.lastDelta) throw this.bad(`offset delta ${od} out of range`);
    this.offset = this.base + od;
    const kl = this.varint();
    if (kl < -1 || this.p + Math.max(kl, 0) > this.end) throw this.bad(`key length ${kl} out of bounds`);
    this.keyPtr = this.p;
    this.keyLen = kl;
    this.p += Math.max(kl, 0);
    const vl = this.varint();
    if (vl < -1 || this.p + Math.max(vl, 0) > this.end) throw this.bad(`value length ${vl} out of bounds`);
    this.valuePtr = this.p;
    this.valueLen = vl;
    this.p += Math.max(vl, 0);
    const hc = this.varint();
    if (hc < 0) throw this.bad(`header count ${hc}`);
    let flags = -1;
    for (let j = 0; j < hc; j++) {
      const hkl = this.varint();
      if (hkl < 0 || this.p + hkl > this.end) throw this.bad('header key out of bounds');
      const hk = this.p;
      this.p += hkl;
      const hvl = this.varint();
      if (hvl < -1 || this.p + Math.max(hvl, 0) > this.end) throw this.bad('header value out of bounds');
      if (hkl === FLAGS_HEADER_BYTES.length && hvl === 1 && this.isFlagsHeader(hk)) flags = this.u8[this.p]!;
      this.p += Math.max(hvl, 0);
    }
    if (this.p !== this.end) throw this.bad('record length does not match its fields');
    this.end = saveEnd;
    this.recordEnd = this.p;
    if (kl < 0) this.op = OP_NONE;
    else if (flags >= 0) { this.op = OP_FLAGS; this.flags = flags & FLAG_MASK; }
    else this.op = vl < 0 ? OP_DEL : OP_PUT;
    return true;
  }

  private isFlagsHeader(at: number): boolean {
    const u8 = this.u8;
    for (let i = 0; i < FLAGS_HEADER_BYTES.length; i++) if (u8[at + i] !== FLAGS_HEADER_BYTES[i]) return false;
    return true;
  }
}
