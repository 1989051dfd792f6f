// Kafka RecordBatch v2 on top of the wasm framing kernels: encode records
// into a batch in wasm memory, scan (validate) concatenated batches, decode a
// batch's records. Byte layout: docs/format.md.

import { Kernels, WasmBuffer } from './kernels.js';
import { ClosedError, CorruptionError, InvalidArgumentError, RecordTooLargeError, UnsupportedCodecError } from './errors.js';
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

/** RecordBatchEncoder.lastLayout(): where the last batch's layout tables are in wasm memory. */
export interface BatchLayoutTables {
  desc: number;
  pos: number;
  count: number;
}

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

  /**
   * The layout tables of the last batch encoded, in wasm memory, valid until
   * the next encode(): `desc` (per record: tsDeltaLo, tsDeltaHi, keyLen,
   * valueLen, headerCount, then nameLen and valueLen per header, as i32; -1
   * is null) and `pos` (per record: key and value positions, then each
   * header's name and value positions, relative to the batch start). Lets a
   * kernel find fields without decoding the batch (the dedup filter does).
   */
  lastLayout(): BatchLayoutTables { return { desc: this.desc.ptr, pos: this.pos.ptr, count: this.lastCount }; }

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
  /** decodeView's copy of the input batch, and its one-row scanner (made on first use). */
  private readonly viewInput: WasmBuffer;
  private viewScanner: BatchScanner | undefined;

  constructor(k: Kernels) {
    this.k = k;
    this.rows = new WasmBuffer(k, 1024 * RECORD_ROW_WORDS * 4);
    this.hdrs = new WasmBuffer(k, 1024 * HEADER_ROW_WORDS * 4);
    this.inflated = new WasmBuffer(k, 64 * 1024);
    this.viewInput = new WasmBuffer(k, 16);
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
      throw new CorruptionError(`malformed records in batch: framing, or offset deltas not increasing (decode status ${rc})`,
        { file: src?.file, position: src?.position ?? info.position, offset: info.baseOffset });
    }
    // Offset deltas must increase within [0, lastOffsetDelta] (gaps are
    // allowed: compaction keeps offsets). The kernel checked that they
    // strictly increase from 0 up: the last one bounds them all.
    if (count > 0) {
      const od = k.i32[(rowsPtr >>> 2) + (count - 1) * RECORD_ROW_WORDS]!;
      if (od > info.lastOffsetDelta) {
        throw new CorruptionError(`record ${count - 1} has offset delta ${od} (last ${info.lastOffsetDelta})`,
          { file: src?.file, position: src?.position ?? info.position, offset: info.baseOffset });
      }
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

  // --- zero-copy views ---------------------------------------------------------

  /**
   * Validates the batch at `input[opts.position ?? 0]` (length bounds, magic,
   * CRC-32C, header and every record's framing) and returns a lazy view of
   * its records whose keys, values and header values are views into `input`
   * itself: nothing is copied out, and no per-record object is built until a
   * record is asked for. The view stays valid as long as `input`'s bytes are
   * left unchanged (it never refers to wasm memory). A corrupt batch throws
   * CorruptionError and never yields a view. Uncompressed batches only: a
   * gzip batch throws InvalidArgumentError (use decodeViewAsync).
   */
  decodeView(input: Uint8Array, opts: ViewOptions = {}): RecordBatchView {
    const { ptr, info } = this.checkInput(input, opts);
    const codec = info.attributes & ATTR_CODEC_MASK;
    if (codec !== CODEC_NONE) {
      if (codec === CODEC_GZIP) throw new InvalidArgumentError('gzip batch: use decodeViewAsync');
      throw new UnsupportedCodecError(codec);
    }
    // Wasm address A of the copy maps to byte A + delta of input's buffer.
    return this.viewFromRows(ptr + BATCH_HEADER_SIZE, info.size - BATCH_HEADER_SIZE, info, input,
      input.byteOffset + info.position - ptr, opts);
  }

  /**
   * decodeView for any supported batch. A gzip batch's records are views into
   * its inflated bytes (a new buffer owned by the view), not into `input`.
   */
  async decodeViewAsync(input: Uint8Array, opts: ViewOptions = {}): Promise<RecordBatchView> {
    const { ptr, info } = this.checkInput(input, opts);
    const codec = info.attributes & ATTR_CODEC_MASK;
    if (codec === CODEC_NONE) {
      return this.viewFromRows(ptr + BATCH_HEADER_SIZE, info.size - BATCH_HEADER_SIZE, info, input,
        input.byteOffset + info.position - ptr, opts);
    }
    if (codec !== CODEC_GZIP) throw new UnsupportedCodecError(codec);
    const at = info.position;
    return this.inflatedView(input.subarray(at + BATCH_HEADER_SIZE, at + info.size), info, opts);
  }

  /**
   * A view of a batch in wasm memory at `ptr` that a scan validated (`info`).
   * The records returned (from the first with offset >= minOffset, at most
   * maxRecords of them) are copied out of wasm memory once, as one span, with
   * the row table: the view owns that copy, so it survives later decodes,
   * reuse of the wasm buffer and memory growth. Uncompressed batches only.
   */
  viewOf(ptr: number, info: BatchInfo, opts: BatchViewOptions = {}): RecordBatchView {
    const codec = info.attributes & ATTR_CODEC_MASK;
    if (codec !== CODEC_NONE) {
      if (codec === CODEC_GZIP) throw new InvalidArgumentError('gzip batch: use viewOfAsync');
      throw new UnsupportedCodecError(codec);
    }
    return this.viewFromRows(ptr + BATCH_HEADER_SIZE, info.size - BATCH_HEADER_SIZE, info, null, 0, opts);
  }

  /** viewOf for any supported batch (gzip is inflated into a buffer the view owns). */
  async viewOfAsync(ptr: number, info: BatchInfo, opts: BatchViewOptions = {}): Promise<RecordBatchView> {
    const codec = info.attributes & ATTR_CODEC_MASK;
    if (codec === CODEC_NONE) return this.viewOf(ptr, info, opts);
    if (codec !== CODEC_GZIP) throw new UnsupportedCodecError(codec);
    return this.inflatedView(this.k.u8.slice(ptr + BATCH_HEADER_SIZE, ptr + info.size), info, opts);
  }

  /** Copies the batch at input[position] into wasm memory and validates it (one batch, CRC included). */
  private checkInput(input: Uint8Array, opts: ViewOptions): { ptr: number; info: BatchInfo } {
    if (!(input instanceof Uint8Array)) throw new InvalidArgumentError('decodeView needs a Uint8Array');
    const at = opts.position ?? 0;
    if (!Number.isSafeInteger(at) || at < 0 || at > input.length) {
      throw new InvalidArgumentError(`position ${String(at)} is outside the input (${input.length} bytes)`);
    }
    const maxBatch = opts.maxBatchBytes ?? 0x7fffffff;
    const where = { file: opts.src?.file, position: opts.src?.position ?? at };
    const avail = input.length - at;
    if (avail < LOG_OVERHEAD) throw new CorruptionError(SCAN_STOP_NAMES[ScanStop.Incomplete]!, where);
    const batchLength = ((input[at + 8]! << 24) | (input[at + 9]! << 16) | (input[at + 10]! << 8) | input[at + 11]!);
    const size = batchLength + LOG_OVERHEAD;
    if (batchLength < BATCH_HEADER_SIZE - LOG_OVERHEAD || size > maxBatch) {
      throw new CorruptionError(SCAN_STOP_NAMES[ScanStop.BadLength]!, where);
    }
    // Copy at most the batch: the scan must see exactly one batch and its end.
    const len = Math.min(size, avail);
    this.viewScanner ??= new BatchScanner(this.k, 1);
    const ptr = this.viewInput.ensure(len);
    this.k.u8.set(len === input.length ? input : input.subarray(at, at + len), ptr);
    const res = this.viewScanner.scan(ptr, len, { maxBatchBytes: maxBatch, positionBase: at });
    if (res.batches.length !== 1 || res.stop !== ScanStop.End) {
      throw new CorruptionError(SCAN_STOP_NAMES[res.stop] ?? 'invalid batch', where);
    }
    return { ptr, info: res.batches[0]! };
  }

  private async inflatedView(compressed: Uint8Array, info: BatchInfo, opts: BatchViewOptions): Promise<RecordBatchView> {
    let plain: Uint8Array;
    try {
      plain = await inflateGzipBounded(compressed, MAX_INFLATED_BYTES);
    } catch (err) {
      throw new CorruptionError(`gzip data does not inflate: ${(err as Error).message}`,
        { file: opts.src?.file, position: opts.src?.position ?? info.position, offset: info.baseOffset });
    }
    // Allocate before taking any view of wasm memory.
    const p = this.inflated.ensure(plain.length);
    this.k.u8.set(plain, p);
    return this.viewFromRows(p, plain.length, info, plain, plain.byteOffset - p, opts);
  }

  /**
   * Decodes the records section [ptr, ptr+len) into the row tables and builds
   * the view of the records selected by opts. With bytes === null the span of
   * those records is copied out of wasm memory; otherwise `bytes` already
   * holds the section, wasm address A being byte A + delta of bytes.buffer.
   */
  private viewFromRows(ptr: number, len: number, info: BatchInfo, bytes: Uint8Array | null, delta: number,
    opts: BatchViewOptions): RecordBatchView {
    const minOffset = opts.minOffset ?? 0;
    const maxRecords = opts.maxRecords ?? Infinity;
    if (typeof minOffset !== 'number' || Number.isNaN(minOffset)) throw new InvalidArgumentError(`minOffset must be a number, got ${String(minOffset)}`);
    if (typeof maxRecords !== 'number' || !(maxRecords >= 0)) throw new InvalidArgumentError(`maxRecords must be >= 0, got ${String(maxRecords)}`);
    const count = info.recordCount;
    const { rows: rowsPtr, headers: hdrPtr } = this.rowsFor(ptr, len, info, opts.src);
    const k = this.k;
    const i32 = k.i32;
    const w0 = rowsPtr >>> 2;
    let i0 = 0;
    // Offsets increase (rowsFor checked): skip the records below minOffset.
    while (i0 < count && info.baseOffset + i32[w0 + i0 * RECORD_ROW_WORDS]! < minOffset) i0++;
    const i1 = Math.min(count, i0 + maxRecords);
    if (i1 <= i0) {
      opts.scratch?.renew(); // the next view made with a scratch ends the previous one, empty or not
      return RecordBatchView.empty(info);
    }
    // Header rows are in record order: the selected records' rows follow
    // those of the records before i0.
    let h0 = 0;
    let h1 = 0;
    if (k.raw.decodeHeaderCount() > 0) {
      for (let i = 0; i < i1; i++) {
        const hc = i32[w0 + i * RECORD_ROW_WORDS + 7]!;
        if (i < i0) h0 += hc;
        h1 += hc;
      }
    }
    // Every field of record i lies at or after its key position and before
    // record i + 1's: with bytes === null, copy exactly the span of the
    // records returned.
    const u32 = k.u32;
    const spanStart = bytes === null ? u32[w0 + i0 * RECORD_ROW_WORDS + 3]! : 0;
    const spanEnd = bytes === null ? (i1 < count ? u32[w0 + i1 * RECORD_ROW_WORDS + 3]! : ptr + len) : 0;
    const rowWords = (i1 - i0) * RECORD_ROW_WORDS;
    const hdrWords = (h1 - h0) * HEADER_ROW_WORDS;
    const rowsSrc = i32.subarray(w0 + i0 * RECORD_ROW_WORDS, w0 + i1 * RECORD_ROW_WORDS);
    const hdrsSrc = i32.subarray((hdrPtr >>> 2) + h0 * HEADER_ROW_WORDS, (hdrPtr >>> 2) + h1 * HEADER_ROW_WORDS);
    let rows: Int32Array;
    let hdrs: Int32Array | null;
    let backing: Uint8Array | null = bytes;
    let lease = OWNED;
    const scratch = opts.scratch;
    if (scratch) {
      // Reused JS memory: the previous view from this scratch ends here.
      lease = scratch.renew();
      rows = scratch.rowTable(rowWords);
      rows.set(rowsSrc);
      hdrs = hdrWords > 0 ? scratch.headerTable(hdrWords) : null;
      if (hdrs) hdrs.set(hdrsSrc);
      if (backing === null) { backing = scratch.byteSpan(spanEnd - spanStart); backing.set(k.u8.subarray(spanStart, spanEnd)); }
    } else {
      // One allocation holds the row tables and (when copied) the bytes.
      const tableBytes = (rowWords + hdrWords) * 4;
      const { ab, at } = ownedMemory(tableBytes + (backing === null ? spanEnd - spanStart : 0));
      rows = new Int32Array(ab, at, rowWords);
      rows.set(rowsSrc);
      hdrs = hdrWords > 0 ? new Int32Array(ab, at + rowWords * 4, hdrWords) : null;
      if (hdrs) hdrs.set(hdrsSrc);
      if (backing === null) { backing = new Uint8Array(ab, at + tableBytes, spanEnd - spanStart); backing.set(k.u8.subarray(spanStart, spanEnd)); }
    }
    if (bytes === null) delta = backing!.byteOffset - spanStart;
    return new RecordBatchView(info, i1 - i0, backing, delta, rows, 0, hdrs, null, lease);
  }

  free(): void {
    this.rows.free(); this.hdrs.free(); this.inflated.free(); this.viewInput.free();
    this.viewScanner?.free();
    this.viewScanner = undefined;
  }
}

/**
 * Views' own memory: pieces up to SLAB_PIECE_MAX bytes are cut from shared
 * SLAB_BYTES slabs (an ArrayBuffer allocation costs about a microsecond, as
 * much as decoding 50 small records: 1.1 vs 0.66 µs for a 3.6 KB table in one
 * run); larger ones get their own ArrayBuffer. Slabs stay below glibc's mmap
 * threshold (128 KiB), so they do not take fresh pages. A slab lives while
 * any view cut from it does, so a small view can keep up to SLAB_BYTES alive.
 * Pieces are never reused: a view's bytes never change.
 */
const SLAB_BYTES = 64 * 1024;
const SLAB_PIECE_MAX = 8 * 1024;
let slab: ArrayBuffer | null = null;
let slabUsed = 0;

function ownedMemory(n: number): { ab: ArrayBuffer; at: number } {
  if (n > SLAB_PIECE_MAX) return { ab: new ArrayBuffer(n), at: 0 };
  const size = (n + 7) & ~7; // keeps Int32Array pieces aligned
  if (slab === null || slabUsed + size > SLAB_BYTES) { slab = new ArrayBuffer(SLAB_BYTES); slabUsed = 0; }
  const at = slabUsed;
  slabUsed += size;
  return { ab: slab, at };
}

/** Whether views sharing reused memory may still be read. */
interface ViewLease { live: boolean }
/** The lease of views that own their memory (never ends). */
const OWNED: ViewLease = Object.freeze({ live: true });

/**
 * Reusable JS memory for views that only need to last until the next view:
 * a view made with a scratch (BatchViewOptions.scratch) copies its records
 * and row tables into this memory instead of allocating, and making the next
 * view with the same scratch (or release()) ends it: its accessors then
 * throw ClosedError, and the keys, values and header values it handed out
 * see the next view's bytes. Growing only, up to the largest batch seen.
 */
export class ViewScratch {
  private bytes = new Uint8Array(0);
  private rows = new Int32Array(0);
  private hdrs = new Int32Array(0);
  private lease: ViewLease = { live: true };

  /** Ends the views made with this scratch so far. */
  release(): void { this.lease.live = false; }

  /** Bytes held (for pooling decisions). */
  get capacity(): number { return this.bytes.length + 4 * (this.rows.length + this.hdrs.length); }

  /** @internal Ends the current views and starts a new lease. */
  renew(): ViewLease { this.lease.live = false; this.lease = { live: true }; return this.lease; }

  /** @internal */
  byteSpan(n: number): Uint8Array {
    if (this.bytes.length < n) this.bytes = new Uint8Array(grownSize(this.bytes.length, n));
    return this.bytes;
  }

  /** @internal */
  rowTable(words: number): Int32Array {
    if (this.rows.length < words) this.rows = new Int32Array(grownSize(this.rows.length, words));
    return this.rows;
  }

  /** @internal */
  headerTable(words: number): Int32Array {
    if (this.hdrs.length < words) this.hdrs = new Int32Array(grownSize(this.hdrs.length, words));
    return this.hdrs;
  }
}

function grownSize(have: number, need: number): number {
  let n = Math.max(1024, have);
  while (n < need) n *= 2;
  return n;
}

/** Options of RecordBatchDecoder.viewOf. */
export interface BatchViewOptions {
  /** Records with a lower offset are left out of the view. */
  minOffset?: number;
  /** At most this many records (from the first at or after minOffset). */
  maxRecords?: number;
  /** Where the batch came from, for error messages. */
  src?: BatchSource;
  /**
   * Copy into this reused memory instead of allocating: the view lasts only
   * until the next view made with the same scratch (see ViewScratch).
   */
  scratch?: ViewScratch;
}

/** Options of RecordBatchDecoder.decodeView. */
export interface ViewOptions extends BatchViewOptions {
  /** Byte position of the batch in the input (default 0). Bytes after the batch are ignored. */
  position?: number;
  /** Largest batch accepted, in bytes (default: any that fits the input). */
  maxBatchBytes?: number;
}

/** UTF-8 length of a string, without encoding it. */
function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c < 0xdc00 && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) { n += 4; i++; }
    else n += 3;
  }
  return n;
}

/**
 * The records of one batch, decoded lazily: offsets and timestamps come from a
 * row table, and keyAt / valueAt / headersAt return views into the bytes the
 * view was made from, created on each call. No record object exists until
 * recordAt, the iterator or toRecords asks for one.
 *
 * Lifetime: a view never refers to wasm memory, so wasm memory growth and
 * later decodes leave it intact. A view from decodeView refers to the
 * caller's input and is valid while those bytes are unchanged; views from
 * viewOf, decodeViewAsync of a gzip batch and Partition.readViews own their
 * bytes. Keys and values handed out share memory with the view: writing to
 * them changes what the view (and other readers of that input) see.
 *
 * Indexes run from 0 to count - 1; any other index throws
 * InvalidArgumentError.
 */
export class RecordBatchView implements Iterable<StoredRecord> {
  /** Header facts of the batch, or null for a view made from records (fromRecords). */
  readonly batch: BatchInfo | null;
  /** Number of records in the view. */
  readonly count: number;
  private readonly buffer: ArrayBufferLike | null;
  /** Row address A (as stored) is byte A + delta of buffer. */
  private readonly delta: number;
  private readonly rows: Int32Array | null;
  /** Row index (in rows) of record 0. */
  private readonly first: number;
  private readonly hdrs: Int32Array | null;
  /** Header row index of each row of `rows` (and one past the last), built on first use. */
  private hdrIndex: Int32Array | null = null;
  private readonly records: readonly StoredRecord[] | null;
  private readonly bytesRef: Uint8Array | null;
  private readonly lease: ViewLease;

  /** @internal Use RecordBatchDecoder.decodeView / viewOf or RecordBatchView.fromRecords. */
  constructor(batch: BatchInfo | null, count: number, bytes: Uint8Array | null, delta: number, rows: Int32Array | null,
    first: number, hdrs: Int32Array | null, records: readonly StoredRecord[] | null, lease: ViewLease = OWNED) {
    this.lease = lease;
    this.batch = batch;
    this.count = count;
    this.bytesRef = bytes;
    this.buffer = bytes === null ? null : bytes.buffer;
    this.delta = delta;
    this.rows = rows;
    this.first = first;
    this.hdrs = hdrs;
    this.records = records;
  }

  /** An empty view of a batch (every record filtered out). */
  static empty(batch: BatchInfo | null): RecordBatchView {
    return new RecordBatchView(batch, 0, null, 0, null, 0, null, []);
  }

  /**
   * A view over records already decoded (e.g. read from tiered storage), with
   * the same accessors. The array is used as it is, not copied. Records must
   * be in increasing offset order.
   */
  static fromRecords(records: readonly StoredRecord[]): RecordBatchView {
    return new RecordBatchView(null, records.length, null, 0, null, 0, null, records);
  }

  private row(i: number): number {
    if ((i >>> 0) !== i || i >= this.count) throw new InvalidArgumentError(`record index ${String(i)} is outside 0..${this.count - 1}`);
    if (!this.lease.live) throw new ClosedError('record batch view (its reused buffers hold a later batch now)');
    return (this.first + i) * RECORD_ROW_WORDS;
  }

  /** False once a view made with a ViewScratch was superseded; views that own their memory stay valid. */
  get valid(): boolean { return this.lease.live; }

  /** Offset of the view's first record (undefined when empty). */
  get firstOffset(): number | undefined { return this.count === 0 ? undefined : this.offsetAt(0); }
  /** Offset of the view's last record (undefined when empty). */
  get lastOffset(): number | undefined { return this.count === 0 ? undefined : this.offsetAt(this.count - 1); }

  offsetAt(i: number): number {
    const w = this.row(i);
    const rows = this.rows;
    if (rows === null) return this.records![i]!.offset;
    return this.batch!.baseOffset + rows[w]!;
  }

  timestampAt(i: number): number {
    const w = this.row(i);
    const rows = this.rows;
    if (rows === null) return this.records![i]!.timestamp;
    const b = this.batch!;
    if ((b.attributes & ATTR_LOG_APPEND_TIME) !== 0) return b.maxTimestamp;
    return b.firstTimestamp + (rows[w + 2]! * TWO32 + (rows[w + 1]! >>> 0));
  }

  /** The key (a view, created per call), or null for Kafka's null key. */
  keyAt(i: number): Uint8Array | null {
    const w = this.row(i);
    const rows = this.rows;
    if (rows === null) return this.records![i]!.key;
    const len = rows[w + 4]!;
    return len < 0 ? null : new Uint8Array(this.buffer!, (rows[w + 3]! >>> 0) + this.delta, len);
  }

  /** The value (a view, created per call), or null. */
  valueAt(i: number): Uint8Array | null {
    const w = this.row(i);
    const rows = this.rows;
    if (rows === null) return this.records![i]!.value;
    const len = rows[w + 6]!;
    return len < 0 ? null : new Uint8Array(this.buffer!, (rows[w + 5]! >>> 0) + this.delta, len);
  }

  /** Key length in bytes, -1 for a null key (no view created). */
  keyLengthAt(i: number): number {
    const w = this.row(i);
    if (this.rows === null) { const k = this.records![i]!.key; return k === null ? -1 : k.length; }
    return this.rows[w + 4]!;
  }

  /** Value length in bytes, -1 for a null value (no view created). */
  valueLengthAt(i: number): number {
    const w = this.row(i);
    if (this.rows === null) { const v = this.records![i]!.value; return v === null ? -1 : v.length; }
    return this.rows[w + 6]!;
  }

  headerCountAt(i: number): number {
    const w = this.row(i);
    if (this.rows === null) return this.records![i]!.headers.length;
    return this.rows[w + 7]!;
  }

  /** Header row (index into hdrs) of the first header of row r of `rows`. */
  private headerRow(r: number): number {
    let idx = this.hdrIndex;
    if (idx === null) {
      const rows = this.rows!;
      // Rows past first + count may be stale (reused tables): never read them.
      const n = this.first + this.count;
      idx = new Int32Array(n + 1);
      let h = 0;
      for (let j = 0; j < n; j++) { idx[j] = h; h += rows[j * RECORD_ROW_WORDS + 7]!; }
      idx[n] = h;
      this.hdrIndex = idx;
    }
    return idx[r]!;
  }

  /** The record's headers, in order (names decoded as UTF-8, values are views). */
  headersAt(i: number): RecordHeader[] {
    const w = this.row(i);
    if (this.rows === null) return this.records![i]!.headers;
    const hc = this.rows[w + 7]!;
    if (hc === 0) return NO_HEADERS;
    const hdrs = this.hdrs!;
    const buf = this.buffer!;
    const out: RecordHeader[] = new Array(hc);
    for (let j = 0, h = this.headerRow(this.first + i) * HEADER_ROW_WORDS; j < hc; j++, h += HEADER_ROW_WORDS) {
      const vl = hdrs[h + 3]!;
      out[j] = {
        key: decodeUtf8(new Uint8Array(buf, (hdrs[h]! >>> 0) + this.delta, hdrs[h + 1]!)),
        value: vl < 0 ? null : new Uint8Array(buf, (hdrs[h + 2]! >>> 0) + this.delta, vl),
      };
    }
    return out;
  }

  /** Key + value + header name + header value bytes of record i (what ReadOptions.maxBytes counts). */
  payloadBytesAt(i: number): number {
    const w = this.row(i);
    const rows = this.rows;
    if (rows === null) {
      const r = this.records![i]!;
      let n = (r.key?.length ?? 0) + (r.value?.length ?? 0);
      for (const h of r.headers) n += utf8Length(h.key) + (h.value?.length ?? 0);
      return n;
    }
    let n = Math.max(rows[w + 4]!, 0) + Math.max(rows[w + 6]!, 0);
    const hc = rows[w + 7]!;
    if (hc > 0) {
      const hdrs = this.hdrs!;
      for (let j = 0, h = this.headerRow(this.first + i) * HEADER_ROW_WORDS; j < hc; j++, h += HEADER_ROW_WORDS) {
        n += hdrs[h + 1]! + Math.max(hdrs[h + 3]!, 0);
      }
    }
    return n;
  }

  /** Index of the first record with offset >= offset (count when there is none). */
  indexOfOffset(offset: number): number {
    let lo = 0;
    let hi = this.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.offsetAt(mid) < offset) lo = mid + 1; else hi = mid;
    }
    return lo;
  }

  /** Record i as an object (keys, values and header values are views, as keyAt gives them). */
  recordAt(i: number): StoredRecord {
    if (this.rows === null) { this.row(i); return this.records![i]!; }
    return { offset: this.offsetAt(i), timestamp: this.timestampAt(i), key: this.keyAt(i), value: this.valueAt(i), headers: this.headersAt(i) };
  }

  /** Records [start, end) as a view sharing this view's bytes and tables (no copy). */
  slice(start = 0, end = this.count): RecordBatchView {
    if ((start >>> 0) !== start || (end >>> 0) !== end || start > end || end > this.count) {
      throw new InvalidArgumentError(`slice ${String(start)}..${String(end)} is outside 0..${this.count}`);
    }
    if (!this.lease.live) throw new ClosedError('record batch view (its reused buffers hold a later batch now)');
    if (start === 0 && end === this.count) return this;
    if (this.rows === null) return RecordBatchView.fromRecords(this.records!.slice(start, end));
    const v = new RecordBatchView(this.batch, end - start, this.bytesRef, this.delta, this.rows, this.first + start, this.hdrs, null, this.lease);
    v.hdrIndex = this.hdrIndex;
    return v;
  }

  /** Every record as an object (what RecordBatchDecoder.decode gives). */
  toRecords(): StoredRecord[] {
    if (this.rows === null) return this.records!.slice();
    const out: StoredRecord[] = new Array(this.count);
    for (let i = 0; i < this.count; i++) out[i] = this.recordAt(i);
    return out;
  }

  *[Symbol.iterator](): Iterator<StoredRecord> {
    for (let i = 0; i < this.count; i++) yield this.recordAt(i);
  }
}
