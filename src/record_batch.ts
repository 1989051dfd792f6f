// Kafka RecordBatch v2 on top of the wasm framing kernels: encode records
// into a batch in wasm memory, scan (validate) concatenated batches, decode a
// batch's records. Byte layout: docs/format.md.

import { Kernels, WasmBuffer } from './kernels.js';
import { CorruptionError, InvalidArgumentError, RecordTooLargeError, UnsupportedCodecError } from './errors.js';
import { NormalizedRecord, StoredRecord, RecordHeader, decodeUtf8 } from './record.js';

export const BATCH_HEADER_SIZE = 61;
export const LOG_OVERHEAD = 12;
export const SCAN_ROW_WORDS = 16;
/** Words per record row of recordsDecode (see assembly/record_batch.ts): offsetDelta, tsDeltaLo, tsDeltaHi, keyPos, keyLen, valuePos, valueLen, headerCount, recordStart. */
export const RECORD_ROW_WORDS = 9;
/** recordsDecode: the header table was too small. */
const DECODE_HEADERS_FULL = -3;

/** Words per header row: namePos, nameLen, valuePos, valueLen. */
export const HEADER_ROW_WORDS = 4;
/** Worst-case framing bytes per record beyond its payload, and per header. */
const MAX_RECORD_OVERHEAD = 36;
const MAX_HEADER_OVERHEAD = 10;
/** Smallest encoded record: length, attributes, timestamp delta, offset delta, key, value, header count. */
const MIN_RECORD_BYTES = 7;
const TWO32 = 4294967296;

export const CODEC_NONE = 0;
export const CODEC_GZIP = 1;
export const ATTR_CODEC_MASK = 0x07;
export const ATTR_LOG_APPEND_TIME = 0x08;
export const ATTR_TRANSACTIONAL = 0x10;
export const ATTR_CONTROL = 0x20;

/** Why a scan stopped. */
export enum ScanStop {
  /** Every byte was a valid batch. */
  End = 0,
  /** The buffer ends inside a batch: a torn tail, or more bytes must be read. */
  Incomplete = 1,
  BadLength = 2,
  BadMagic = 3,
  BadCrc = 4,
  BadHeader = 5,
  /** The row table filled before the end; scan again from stopPosition. */
  TableFull = 6,
}

export const SCAN_STOP_NAMES = ['end', 'incomplete batch', 'batch length out of bounds', 'bad magic byte',
  'CRC-32C mismatch', 'inconsistent batch header', 'row table full'];

/** Header facts of one valid batch. */
export interface BatchInfo {
  /** Byte position of the batch in the scanned buffer (or file). */
  position: number;
  /** Total bytes on disk (batchLength + 12). */
  size: number;
  baseOffset: number;
  lastOffsetDelta: number;
  firstTimestamp: number;
  maxTimestamp: number;
  recordCount: number;
  attributes: number;
  leaderEpoch: number;
  producerId: number;
  producerEpoch: number;
  baseSequence: number;
}

export interface ScanResult {
  batches: BatchInfo[];
  stop: ScanStop;
  /** Position (relative to the buffer) where scanning stopped. */
  stopPosition: number;
}

export interface EncodeOptions {
  attributes?: number;
  producerId?: number;
  producerEpoch?: number;
  baseSequence?: number;
}

function lo32(n: number): number { return n >>> 0; }
function hi32(n: number): number { return Math.floor(n / TWO32) | 0; }

/** Encodes normalised records into RecordBatch v2 bytes inside wasm memory. */
export class RecordBatchEncoder {
  private readonly k: Kernels;
  private readonly desc: WasmBuffer;
  private readonly pos: WasmBuffer;
  /** Value position of each record of the last batch encoded, relative to the batch start. */
  private valuePos = new Int32Array(64);
  private lastCount = 0;

  constructor(k: Kernels) {
    this.k = k;
    this.desc = new WasmBuffer(k, 4096);
    this.pos = new WasmBuffer(k, 4096);
  }

  /** Upper bound of one record's framed size in a batch (batch header not included). */
  static recordBound(r: NormalizedRecord): number {
    let n = MAX_RECORD_OVERHEAD + (r.key?.length ?? 0) + (r.value?.length ?? 0);
    for (let j = 0; j < r.headerKeys.length; j++) {
      n += MAX_HEADER_OVERHEAD + r.headerKeys[j]!.length + (r.headerValues[j]?.length ?? 0);
    }
    return n;
  }

  /** Upper bound of the encoded size of these records as one batch. */
  static maxSize(records: readonly NormalizedRecord[]): number {
    let n = BATCH_HEADER_SIZE;
    for (const r of records) n += RecordBatchEncoder.recordBound(r);
    return n;
  }

  /**
   * Frames records as one batch at out.ptr + at (growing out as needed, keeping
   * its first `at` bytes). Base offset is 0: the log stamps it on append.
   * Returns the batch size in bytes.
   */
  encode(records: readonly NormalizedRecord[], out: WasmBuffer, at = 0, opts: EncodeOptions = {}): number {
    const n = records.length;
    if (n === 0) throw new InvalidArgumentError('a batch needs at least one record');
    const bound = RecordBatchEncoder.maxSize(records);
    if (bound > 0x7fffffff - at) throw new RecordTooLargeError(bound, 0x7fffffff - at, 'batch');
    let words = 0;
    let chunks = 0;
    for (const r of records) { words += 5 + 2 * r.headerKeys.length; chunks += 2 + 2 * r.headerKeys.length; }
    // Every allocation happens before any view is taken.
    out.ensure(at + bound, at);
    const descPtr = this.desc.ensure(words * 4);
    const posPtr = this.pos.ensure(chunks * 4);
    const k = this.k;
    const i32 = k.i32;
    const firstTs = records[0]!.timestamp;
    let maxTs = firstTs;
    let w = descPtr >>> 2;
    for (const r of records) {
      const delta = r.timestamp - firstTs;
      // The delta is exact only when it is a safe integer; otherwise the
      // decoded timestamp would silently differ from the one written.
      if (!Number.isSafeInteger(delta)) {
        throw new InvalidArgumentError(`timestamps ${firstTs} and ${r.timestamp} are too far apart for one batch`);
      }
      if (r.timestamp > maxTs) maxTs = r.timestamp;
      i32[w] = lo32(delta);
      i32[w + 1] = hi32(delta);
      i32[w + 2] = r.key === null ? -1 : r.key.length;
      i32[w + 3] = r.value === null ? -1 : r.value.length;
      const hc = r.headerKeys.length;
      i32[w + 4] = hc;
      w += 5;
      for (let j = 0; j < hc; j++) {
        i32[w] = r.headerKeys[j]!.length;
        const hv = r.headerValues[j];
        i32[w + 1] = hv === null || hv === undefined ? -1 : hv.length;
        w += 2;
      }
    }
    const base = out.ptr + at;
    const size = k.raw.batchLayout(descPtr, n, base, bound, posPtr);
    if (size < 0) throw new InvalidArgumentError(`batch layout failed (${size})`);
    const u8 = k.u8;
    if (this.valuePos.length < n) this.valuePos = new Int32Array(Math.max(n, this.valuePos.length * 2));
    const vpos = this.valuePos;
    let p = posPtr >>> 2;
    for (let i = 0; i < n; i++) {
      const r = records[i]!;
      if (r.key !== null && r.key.length > 0) u8.set(r.key, base + i32[p]!);
      vpos[i] = i32[p + 1]!;
      if (r.value !== null && r.value.length > 0) u8.set(r.value, base + i32[p + 1]!);
      p += 2;
      for (let j = 0; j < r.headerKeys.length; j++) {
        const hk = r.headerKeys[j]!;
        if (hk.length > 0) u8.set(hk, base + i32[p]!);
        const hv = r.headerValues[j];
        if (hv !== null && hv !== undefined && hv.length > 0) u8.set(hv, base + i32[p + 1]!);
        p += 2;
      }
    }
    const pid = opts.producerId ?? -1;
    this.lastCount = n;
    k.raw.batchFinish(base, size, n, lo32(firstTs), hi32(firstTs), lo32(maxTs), hi32(maxTs),
      (opts.attributes ?? 0) & ~ATTR_CODEC_MASK, lo32(pid), hi32(pid), opts.producerEpoch ?? -1, opts.baseSequence ?? -1);
    return size;
  }

  /**
   * Where each record's value starts in the last batch encoded, relative to
   * the batch's first byte (for a null value: where it would start). Valid
   * until the next encode().
   */
  lastValuePositions(): Int32Array { return this.valuePos.subarray(0, this.lastCount); }

  free(): void { this.desc.free(); this.pos.free(); }
}

/** Writes a base offset into the batch at ptr (not covered by the CRC). */
export function stampBaseOffset(k: Kernels, ptr: number, baseOffset: number): void {
  const dv = k.dv;
  dv.setUint32(ptr, hi32(baseOffset));
  dv.setUint32(ptr + 4, lo32(baseOffset));
}

/** Reads row i of a scan table. */
function readRow(i32: Int32Array, w: number, positionBase: number): BatchInfo {
  return {
    position: positionBase + i32[w]!,
    size: i32[w + 1]!,
    baseOffset: i32[w + 3]! * TWO32 + (i32[w + 2]! >>> 0),
    lastOffsetDelta: i32[w + 4]!,
    firstTimestamp: i32[w + 6]! * TWO32 + (i32[w + 5]! >>> 0),
    maxTimestamp: i32[w + 8]! * TWO32 + (i32[w + 7]! >>> 0),
    recordCount: i32[w + 9]!,
    attributes: i32[w + 10]!,
    leaderEpoch: i32[w + 11]!,
    producerId: i32[w + 13]! * TWO32 + (i32[w + 12]! >>> 0),
    producerEpoch: i32[w + 14]!,
    baseSequence: i32[w + 15]!,
  };
}

/** Validates concatenated batches in wasm memory; reusable scratch for the row table. */
export class BatchScanner {
  private readonly k: Kernels;
  private readonly rows: WasmBuffer;
  private readonly maxRows: number;

  constructor(k: Kernels, maxRows = 4096) {
    this.k = k;
    this.maxRows = maxRows;
    this.rows = new WasmBuffer(k, maxRows * SCAN_ROW_WORDS * 4);
  }

  /**
   * Scans [ptr, ptr+len). Positions in the result are positionBase + offset
   * in the buffer. Stops at the first invalid batch, at the end, or after
   * maxRows batches (stop = TableFull: call again from stopPosition).
   */
  scan(ptr: number, len: number, opts: { maxBatchBytes?: number; verifyCrc?: boolean; positionBase?: number } = {}): ScanResult {
    const raw = this.k.raw;
    const count = raw.batchScan(ptr, len, this.rows.ptr, this.maxRows, opts.maxBatchBytes ?? 0x7fffffff, opts.verifyCrc === false ? 0 : 1);
    const stop = raw.scanStopReason() as ScanStop;
    const stopPosition = raw.scanStopPosition();
    const i32 = this.k.i32;
    const base = opts.positionBase ?? 0;
    const batches: BatchInfo[] = new Array(count);
    for (let i = 0; i < count; i++) batches[i] = readRow(i32, (this.rows.ptr >>> 2) + i * SCAN_ROW_WORDS, base);
    return { batches, stop, stopPosition };
  }

  free(): void { this.rows.free(); }
}

/** Where a batch came from, for error messages. */
export interface BatchSource { file?: string; position: number }

/** Largest records section a gzip batch may inflate to (a small batch must not become a huge allocation). */
export const MAX_INFLATED_BYTES = 64 << 20;

/**
 * Inflates gzip data chunk by chunk, refusing output past `limit` bytes with
 * a RecordTooLargeError (a decompression bomb is an error, not an
 * allocation). Browser-safe (DecompressionStream).
 */
export async function inflateGzipBounded(data: Uint8Array, limit: number): Promise<Uint8Array> {
  const ds = new DecompressionStream('gzip');
  const reader = new Blob([data as Uint8Array<ArrayBuffer>]).stream().pipeThrough(ds).getReader();
  const parts: Uint8Array[] = [];
  let total = 0;
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > limit) throw new RecordTooLargeError(total, limit, 'inflated batch');
      parts.push(value);
    }
  } catch (err) {
    reader.cancel().catch(() => undefined);
    throw err;
  }
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

/** The headers of every record without headers (shared, frozen). */
const NO_HEADERS: RecordHeader[] = Object.freeze([]) as unknown as RecordHeader[];

/** Decodes the records of validated batches. Reuses its row tables. */
export class RecordBatchDecoder {
  private readonly k: Kernels;
  private readonly rows: WasmBuffer;
  private readonly hdrs: WasmBuffer;
  private readonly inflated: WasmBuffer;

  constructor(k: Kernels) {
    this.k = k;
    this.rows = new WasmBuffer(k, 1024 * RECORD_ROW_WORDS * 4);
    this.hdrs = new WasmBuffer(k, 1024 * HEADER_ROW_WORDS * 4);
    this.inflated = new WasmBuffer(k, 64 * 1024);
  }

  /** True when decode() can run synchronously (uncompressed). */
  static isSync(info: BatchInfo): boolean { return (info.attributes & ATTR_CODEC_MASK) === CODEC_NONE; }

  /**
   * Decodes an uncompressed batch at ptr (already validated by a scan) and
   * pushes its records with offset >= minOffset onto out. Throws
   * CorruptionError on malformed records, UnsupportedCodecError for codecs.
   */
  decode(ptr: number, info: BatchInfo, out: StoredRecord[], minOffset = 0, src?: BatchSource, limit = Infinity): void {
    const codec = info.attributes & ATTR_CODEC_MASK;
    if (codec !== CODEC_NONE) {
      if (codec === CODEC_GZIP) throw new InvalidArgumentError('gzip batch: use decodeAsync');
      throw new UnsupportedCodecError(codec);
    }
    this.decodeRegion(ptr + BATCH_HEADER_SIZE, info.size - BATCH_HEADER_SIZE, info, out, minOffset, src, limit);
  }

  /** Decodes any supported batch, inflating gzip (codec 1) first. */
  async decodeAsync(ptr: number, info: BatchInfo, out: StoredRecord[], minOffset = 0, src?: BatchSource, limit = Infinity): Promise<void> {
    const codec = info.attributes & ATTR_CODEC_MASK;
    if (codec === CODEC_NONE) return this.decode(ptr, info, out, minOffset, src, limit);
    if (codec !== CODEC_GZIP) throw new UnsupportedCodecError(codec);
    const compressed = this.k.u8.slice(ptr + BATCH_HEADER_SIZE, ptr + info.size);
    let plain: Uint8Array;
    try {
      plain = await inflateGzipBounded(compressed, MAX_INFLATED_BYTES);
    } catch (err) {
      throw new CorruptionError(`gzip data does not inflate: ${(err as Error).message}`,
        { file: src?.file, position: src?.position ?? info.position, offset: info.baseOffset });
    }
    const p = this.inflated.ensure(plain.length);
    this.k.u8.set(plain, p);
    this.decodeRegion(p, plain.length, info, out, minOffset, src, limit);
  }

  /**
   * Decodes an uncompressed batch's records into this decoder's row tables
   * (wasm memory, layout: RECORD_ROW_WORDS and HEADER_ROW_WORDS), validated
   * as decode() validates, without building JS objects. The tables are valid
   * until the next call on this decoder; addresses in them are absolute.
   */
  decodeRows(ptr: number, info: BatchInfo, src?: BatchSource): { rows: number; headers: number } {
    const codec = info.attributes & ATTR_CODEC_MASK;
    if (codec !== CODEC_NONE) throw new UnsupportedCodecError(codec);
    return this.rowsFor(ptr + BATCH_HEADER_SIZE, info.size - BATCH_HEADER_SIZE, info, src);
  }

  private rowsFor(ptr: number, len: number, info: BatchInfo, src?: BatchSource): { rows: number; headers: number } {
    const count = info.recordCount;
    // Every record takes at least MIN_RECORD_BYTES, so a larger count is
    // corrupt: reject it before sizing the row table from it.
    if (count < 0 || count * MIN_RECORD_BYTES > len) {
      throw new CorruptionError(`record count ${count} does not fit ${len} bytes of records`,
        { file: src?.file, position: src?.position ?? info.position, offset: info.baseOffset });
    }
    const rowsPtr = this.rows.ensure(count * RECORD_ROW_WORDS * 4);
    // The header table starts at what this decoder already holds and grows
    // when the kernel reports it full. A header row needs at least 2 bytes of
    // input, so len/2 rows always suffice (the bound, never the first guess).
    const bound = Math.max(16, len >>> 1);
    let maxHeaders = Math.min(bound, Math.max(16, Math.floor(this.hdrs.capacity / (HEADER_ROW_WORDS * 4))));
    const k = this.k;
    let hdrPtr: number;
    let rc: number;
    for (;;) {
      hdrPtr = this.hdrs.ensure(maxHeaders * HEADER_ROW_WORDS * 4);
      rc = k.raw.recordsDecode(ptr, len, count, rowsPtr, count, hdrPtr, maxHeaders);
      if (rc !== DECODE_HEADERS_FULL || maxHeaders >= bound) break;
      maxHeaders = Math.min(bound, maxHeaders * 4);
    }
    if (rc !== count) {
      throw new CorruptionError(`malformed records in batch (decode status ${rc})`,
        { file: src?.file, position: src?.position ?? info.position, offset: info.baseOffset });
    }
    // Offset deltas must increase within [0, lastOffsetDelta] (gaps are
    // allowed: compaction keeps offsets).
    const i32 = k.i32;
    for (let i = 0, w = rowsPtr >>> 2, prev = -1; i < count; i++, w += RECORD_ROW_WORDS) {
      const od = i32[w]!;
      if (od <= prev || od > info.lastOffsetDelta) {
        throw new CorruptionError(`record ${i} has offset delta ${od} (previous ${prev}, last ${info.lastOffsetDelta})`,
          { file: src?.file, position: src?.position ?? info.position, offset: info.baseOffset });
      }
      prev = od;
    }
    return { rows: rowsPtr, headers: hdrPtr };
  }

  /**
   * Keys, values and header values of the records are views into one copy of
   * the batch's records section (one allocation per batch, not per field).
   */
  private decodeRegion(ptr: number, len: number, info: BatchInfo, out: StoredRecord[], minOffset: number, src?: BatchSource, limit = Infinity): void {
    const count = info.recordCount;
    const { rows: rowsPtr, headers: hdrPtr } = this.rowsFor(ptr, len, info, src);
    const i32 = this.k.i32;
    const u8 = this.k.u8;
    // Copy out only the span of the records returned (from the first at or
    // after minOffset, at most `limit` of them): a point read in a large batch
    // must not copy the whole batch. Every field of record i lies at or after
    // its key position, and before record i + 1's.
    let i0 = 0;
    for (let w0 = rowsPtr >>> 2; i0 < count && info.baseOffset + i32[w0]! < minOffset; i0++, w0 += RECORD_ROW_WORDS);
    if (i0 === count || limit <= 0) return;
    const i1 = Math.min(count, i0 + limit);
    // Addresses are read unsigned: wasm memory may pass 2 GiB.
    const u32 = this.k.u32;
    const spanStart = u32[(rowsPtr >>> 2) + i0 * RECORD_ROW_WORDS + 3]!;
    const spanEnd = i1 < count ? u32[(rowsPtr >>> 2) + i1 * RECORD_ROW_WORDS + 3]! : ptr + len;
    const copy = u8.slice(spanStart, spanEnd);
    const logAppendTime = (info.attributes & ATTR_LOG_APPEND_TIME) !== 0;
    let w = rowsPtr >>> 2;
    let h = hdrPtr >>> 2;
    let pushed = 0;
    for (let i = 0; i < count && pushed < limit; i++, w += RECORD_ROW_WORDS) {
      const hc = i32[w + 7]!;
      const offset = info.baseOffset + i32[w]!;
      if (offset < minOffset) { h += hc * HEADER_ROW_WORDS; continue; }
      const keyLen = i32[w + 4]!;
      const valueLen = i32[w + 6]!;
      const keyPos = u32[w + 3]! - spanStart;
      const valuePos = u32[w + 5]! - spanStart;
      const headers: RecordHeader[] = hc === 0 ? NO_HEADERS : new Array(hc);
      for (let j = 0; j < hc; j++, h += HEADER_ROW_WORDS) {
        const np = u32[h]! - spanStart; const nl = i32[h + 1]!; const vp = u32[h + 2]! - spanStart; const vl = i32[h + 3]!;
        headers[j] = { key: decodeUtf8(copy.subarray(np, np + nl)), value: vl < 0 ? null : copy.subarray(vp, vp + vl) };
      }
      out.push({
        offset,
        timestamp: logAppendTime ? info.maxTimestamp : info.firstTimestamp + (i32[w + 2]! * TWO32 + (i32[w + 1]! >>> 0)),
        key: keyLen < 0 ? null : copy.subarray(keyPos, keyPos + keyLen),
        value: valueLen < 0 ? null : copy.subarray(valuePos, valuePos + valueLen),
        headers,
      });
      pushed++;
    }
  }

  free(): void { this.rows.free(); this.hdrs.free(); this.inflated.free(); }
}
