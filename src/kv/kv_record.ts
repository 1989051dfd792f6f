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
// This module also walks decoded records in wasm memory for replay and
// compaction. Where each written value lands in the segment file comes from
// the encoder (Partition.lastBatchLayout), never from a second layout.

import { Kernels } from '../kernels.js';
import { BatchInfo, RecordBatchDecoder, RECORD_ROW_WORDS, HEADER_ROW_WORDS } from '../record_batch.js';

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

/**
 * Walks the records of one uncompressed batch in wasm memory, from the row
 * tables of the wasm record decoder (the one parser of the record format,
 * bounds-checked; RecordBatchDecoder.decodeRows). After next() returns true
 * the fields describe the current record; addresses are wasm memory
 * addresses, filePosition() turns one into a position in the segment file.
 * Owns wasm buffers: free() when done.
 */
export class RecordCursor {
  private readonly k: Kernels;
  private readonly decoder: RecordBatchDecoder;
  private i32: Int32Array = new Int32Array(0);
  private u32: Uint32Array = new Uint32Array(0);
  private view: Uint8Array = new Uint8Array(0);
  private row = 0;
  private hdr = 0;
  private i = 0;
  private count = 0;
  private base = 0;
  private end = 0;
  /** file position = memory address + delta */
  private delta = 0;

  offset = 0;
  op = OP_NONE;
  /** Flag byte of an OP_FLAGS record. */
  flags = 0;
  /** Memory address of the key bytes. */
  keyPtr = 0;
  keyLen = 0;
  /** Memory address of the value bytes; valueLen -1 for null. */
  valuePtr = 0;
  valueLen = -1;
  /** Memory address of the first byte of the record and one past its last. */
  recordStart = 0;
  recordEnd = 0;

  constructor(k: Kernels) {
    this.k = k;
    this.decoder = new RecordBatchDecoder(k);
  }

  /**
   * Starts on the batch at memory address ptr described by info (CRC already
   * checked). Decoding may grow wasm memory: read the view from `u8` after.
   * Throws CorruptionError for malformed records.
   */
  reset(ptr: number, info: BatchInfo, file?: string): void {
    const { rows, headers } = this.decoder.decodeRows(ptr, info, { file, position: info.position });
    this.i32 = this.k.i32;
    this.u32 = this.k.u32;
    this.view = this.k.u8;
    this.row = rows >>> 2;
    this.hdr = headers >>> 2;
    this.i = 0;
    this.count = info.recordCount;
    this.base = info.baseOffset;
    this.end = ptr + info.size;
    this.delta = info.position - ptr;
  }

  /** The wasm memory view the addresses refer to (valid until the next allocation). */
  get u8(): Uint8Array { return this.view; }

  /** File position of a memory address inside the current batch. */
  filePosition(addr: number): number { return addr + this.delta; }

  next(): boolean {
    if (this.i === this.count) return false;
    // Lengths are signed (-1: null); addresses unsigned (memory may pass 2 GiB).
    const i32 = this.i32;
    const u32 = this.u32;
    const w = this.row + this.i * RECORD_ROW_WORDS;
    this.offset = this.base + i32[w]!;
    this.keyPtr = u32[w + 3]!;
    this.keyLen = i32[w + 4]!;
    this.valuePtr = u32[w + 5]!;
    this.valueLen = i32[w + 6]!;
    const hc = i32[w + 7]!;
    this.recordStart = u32[w + 8]!;
    this.recordEnd = this.i + 1 < this.count ? u32[w + RECORD_ROW_WORDS + 8]! : this.end;
    let flags = -1;
    for (let j = 0; j < hc; j++, this.hdr += HEADER_ROW_WORDS) {
      const h = this.hdr;
      if (i32[h + 1] === FLAGS_HEADER_BYTES.length && i32[h + 3] === 1 && this.isFlagsHeader(u32[h]!)) flags = this.view[u32[h + 2]!]!;
    }
    this.i++;
    if (this.keyLen < 0) this.op = OP_NONE;
    else if (flags >= 0) { this.op = OP_FLAGS; this.flags = flags & FLAG_MASK; }
    else this.op = this.valueLen < 0 ? OP_DEL : OP_PUT;
    return true;
  }

  private isFlagsHeader(at: number): boolean {
    const u8 = this.view;
    for (let i = 0; i < FLAGS_HEADER_BYTES.length; i++) if (u8[at + i] !== FLAGS_HEADER_BYTES[i]) return false;
    return true;
  }

  free(): void { this.decoder.free(); }
}
