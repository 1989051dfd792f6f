// Validation of pre-framed RecordBatch v2 input (the Kafka produce path,
// Partition.appendBatches): the bytes are copied into wasm memory once and
// every batch is checked there before anything is written — length bounds,
// magic, CRC-32C (scan), then limits, attributes, the header against its
// records, every record's framing and timestamp. The partition then stamps
// base offsets in place and writes the batches as they are (docs/log.md,
// "The produce path").

import { gunzipSync } from 'node:zlib';
import { Kernels, WasmBuffer } from './kernels.js';
import { RecordBatchEncoder, RecordBatchDecoder, BatchScanner, BatchInfo, ScanStop, SCAN_STOP_NAMES,
  BATCH_HEADER_SIZE, ATTR_CONTROL, ATTR_CODEC_MASK, ATTR_LOG_APPEND_TIME, ATTR_TRANSACTIONAL, CODEC_NONE, CODEC_GZIP,
  MAX_INFLATED_BYTES, RECORD_ROW_WORDS, HEADER_ROW_WORDS } from './record_batch.js';
import { NormalizedRecord } from './record.js';
import { CorruptionError, InvalidArgumentError, RecordTooLargeError, UnsupportedCodecError } from './errors.js';

/** Most bytes one appendBatches call takes (Kafka's socket.request.max.bytes default). */
export const MAX_APPEND_BATCHES_BYTES = 100 * 1024 * 1024;
/** Scratch kept between calls up to this size (larger is freed after the call: trim()). */
const INGEST_KEEP_BYTES = 16 << 20;
/** Kafka's zstd codec id, the largest defined one. */
const CODEC_ZSTD = 4;
const TWO32 = 4294967296;

/** Validated input: the batches in wasm memory at ptr (positions relative to it), and their records when asked for. */
export interface ValidatedBatches {
  ptr: number;
  infos: BatchInfo[];
  /** Each batch's records (copies), when validate() was asked for them; else null. */
  records: NormalizedRecord[][] | null;
}

/** The scratch and checks of appendBatches; one per partition, made on first use. */
export class BatchIngest {
  private readonly k: Kernels;
  private readonly buf: WasmBuffer;
  private readonly scanner: BatchScanner;
  private readonly decoder: RecordBatchDecoder;
  private readonly inflated: WasmBuffer;
  private readonly checkOut: WasmBuffer;

  constructor(k: Kernels) {
    this.k = k;
    this.buf = new WasmBuffer(k, 1024);
    this.scanner = new BatchScanner(k, 1024);
    this.decoder = new RecordBatchDecoder(k);
    this.inflated = new WasmBuffer(k, 1024);
    this.checkOut = new WasmBuffer(k, 16);
  }

  /**
   * Copies `bytes` into wasm memory and validates every batch in it (all
   * before anything is written; throws the typed errors Partition.appendBatchesSync
   * documents). `maxMessageBytes` bounds each batch; with `withRecords` each
   * batch's records are returned too (for a dedup filter). The result's
   * memory is valid until the next call on this object.
   */
  validate(bytes: Uint8Array, maxMessageBytes: number, withRecords: boolean): ValidatedBatches {
    const ptr = this.buf.ensure(bytes.length);
    this.k.u8.set(bytes, ptr);
    const infos = this.scan(ptr, bytes.length);
    const records: NormalizedRecord[][] | null = withRecords ? [] : null;
    for (const info of infos) this.check(ptr, info, maxMessageBytes, records);
    return { ptr, infos, records };
  }

  /** Frees the scratch when a call grew it past INGEST_KEEP_BYTES; returns true when this object is then unusable. */
  trim(): boolean {
    if (this.buf.capacity <= INGEST_KEEP_BYTES && this.inflated.capacity <= INGEST_KEEP_BYTES) return false;
    this.free();
    return true;
  }

  free(): void {
    this.buf.free();
    this.scanner.free();
    this.decoder.free();
    this.inflated.free();
    this.checkOut.free();
  }

  /** Scans the whole input: every byte must belong to a valid batch (length bounds, magic, CRC). */
  private scan(ptr: number, len: number): BatchInfo[] {
    const infos: BatchInfo[] = [];
    let pos = 0;
    for (;;) {
      // No batch bound here: a batch over maxMessageBytes is reported as too large, not as corrupt.
      const r = this.scanner.scan(ptr + pos, len - pos, { positionBase: pos, maxBatchBytes: MAX_APPEND_BATCHES_BYTES });
      for (const b of r.batches) infos.push(b);
      pos += r.stopPosition;
      if (r.stop === ScanStop.End) return infos;
      if (r.stop === ScanStop.TableFull) continue;
      const why = r.stop === ScanStop.Incomplete ? 'truncated batch (the input ends inside it)' : SCAN_STOP_NAMES[r.stop] ?? `scan stop ${r.stop}`;
      throw new CorruptionError(`${why}${infos.length > 0 ? ` after ${infos.length} valid batches` : ''}`, { position: pos });
    }
  }

  /**
   * Checks one scanned batch beyond the scan: limits, attributes, header vs
   * records, every record's framing and timestamp. With `records`, pushes
   * the batch's records (for the dedup filter).
   */
  private check(ptr: number, info: BatchInfo, limit: number, records: NormalizedRecord[][] | null): void {
    const where = { position: info.position };
    const at = `batch at byte ${info.position}`;
    if (info.size > limit) throw new RecordTooLargeError(info.size, limit, at);
    const attrs = info.attributes;
    const codec = attrs & ATTR_CODEC_MASK;
    if (codec > CODEC_ZSTD) throw new CorruptionError(`unknown compression codec ${codec}`, where);
    if (codec !== CODEC_NONE && codec !== CODEC_GZIP) throw new UnsupportedCodecError(codec);
    if ((attrs & (ATTR_TRANSACTIONAL | ATTR_CONTROL)) !== 0) throw new InvalidArgumentError(`${at}: transactional and control batches are not supported`);
    if ((attrs & ~(ATTR_CODEC_MASK | ATTR_LOG_APPEND_TIME)) !== 0) throw new InvalidArgumentError(`${at}: unknown attribute bits 0x${attrs.toString(16)}`);
    if (info.lastOffsetDelta !== info.recordCount - 1) {
      throw new CorruptionError(`last offset delta ${info.lastOffsetDelta} does not match record count ${info.recordCount}`, where);
    }
    if (info.firstTimestamp < 0 || info.maxTimestamp < 0) {
      throw new InvalidArgumentError(`${at}: negative timestamp (first ${info.firstTimestamp}, max ${info.maxTimestamp})`);
    }
    // Timestamps are JS numbers everywhere else (append() refuses unsafe ones): past 2^53 - 1 they would read back
    // rounded (distinct records with one timestamp). A record's is at most maxTimestamp (checked below).
    if (info.firstTimestamp > Number.MAX_SAFE_INTEGER || info.maxTimestamp > Number.MAX_SAFE_INTEGER) {
      throw new InvalidArgumentError(`${at}: timestamp above 2^53 - 1 (first ${info.firstTimestamp}, max ${info.maxTimestamp})`);
    }
    const k = this.k;
    let batchPtr = ptr + info.position;
    let plainInfo = info;
    if (codec === CODEC_GZIP) {
      let plain: Uint8Array;
      try {
        plain = gunzipSync(k.u8.subarray(batchPtr + BATCH_HEADER_SIZE, batchPtr + info.size), { maxOutputLength: MAX_INFLATED_BYTES });
      } catch (err) {
        throw new CorruptionError(`gzip data does not inflate: ${(err as Error).message}`, where);
      }
      // The inflated records behind a stand-in header: the decoder reads records from batchPtr + BATCH_HEADER_SIZE.
      batchPtr = this.inflated.ensure(BATCH_HEADER_SIZE + plain.length);
      k.u8.set(plain, batchPtr + BATCH_HEADER_SIZE);
      plainInfo = { ...info, attributes: attrs & ~ATTR_CODEC_MASK, size: BATCH_HEADER_SIZE + plain.length };
    }
    const n = info.recordCount;
    const logAppendTime = (attrs & ATTR_LOG_APPEND_TIME) !== 0;
    if (!records) {
      // One wasm pass: every record's framing (recordsDecode's rules), offset deltas exactly 0..count-1, the
      // smallest and largest timestamp delta; no row tables.
      const out = this.checkOut.ptr;
      if (k.raw.recordsCheck(batchPtr + BATCH_HEADER_SIZE, plainInfo.size - BATCH_HEADER_SIZE, n, out) !== n) {
        throw new CorruptionError(`malformed records (framing, or offset deltas other than 0..${n - 1})`, where);
      }
      if (logAppendTime) return;
      const i32 = k.i32;
      const w = out >>> 2;
      const minTs = info.firstTimestamp + (i32[w + 1]! * TWO32 + (i32[w]! >>> 0));
      const maxTs = info.firstTimestamp + (i32[w + 3]! * TWO32 + (i32[w + 2]! >>> 0));
      if (minTs < 0) throw new InvalidArgumentError(`${at}: a record timestamp ${minTs} is negative`);
      if (maxTs !== info.maxTimestamp) throw new CorruptionError(`max timestamp ${info.maxTimestamp} in the header, but the records' largest is ${maxTs}`, where);
      return;
    }
    // With a filter the records are needed too: the decoder's row tables (same checks; offset deltas strictly
    // increasing within [0, lastOffsetDelta], so exactly 0..count-1).
    const { rows, headers } = this.decoder.decodeRows(batchPtr, plainInfo);
    const i32 = k.i32;
    if (!logAppendTime) {
      let max = -1;
      for (let i = 0, w = rows >>> 2; i < n; i++, w += RECORD_ROW_WORDS) {
        const ts = info.firstTimestamp + (i32[w + 2]! * TWO32 + (i32[w + 1]! >>> 0));
        if (ts < 0) throw new InvalidArgumentError(`${at}: record ${i} timestamp ${ts} is negative`);
        if (ts > max) max = ts;
      }
      if (max !== info.maxTimestamp) throw new CorruptionError(`max timestamp ${info.maxTimestamp} in the header, but the records' largest is ${max}`, where);
    }
    const recs = recordsFromRows(k, rows, headers, n, info, logAppendTime);
    if (codec !== CODEC_NONE) {
      // Dedup may re-encode a gzip batch's records uncompressed: each must then fit a batch on its own.
      for (let i = 0; i < n; i++) {
        const size = BATCH_HEADER_SIZE + RecordBatchEncoder.recordBound(recs[i]!);
        if (size > limit) throw new RecordTooLargeError(size, limit, `${at}: record ${i} (framed uncompressed, as dedup may re-encode it)`);
      }
    }
    records.push(recs);
  }
}

/** The records of a batch from the decoder's row tables (copies; for the dedup filter and re-encoding). */
function recordsFromRows(k: Kernels, rows: number, headers: number, n: number, info: BatchInfo, logAppendTime: boolean): NormalizedRecord[] {
  const i32 = k.i32;
  const u32 = k.u32;
  const u8 = k.u8;
  const out: NormalizedRecord[] = new Array(n);
  let h = headers >>> 2;
  for (let i = 0, w = rows >>> 2; i < n; i++, w += RECORD_ROW_WORDS) {
    const keyLen = i32[w + 4]!;
    const valueLen = i32[w + 6]!;
    const hc = i32[w + 7]!;
    const headerKeys: Uint8Array[] = new Array(hc);
    const headerValues: (Uint8Array | null)[] = new Array(hc);
    for (let j = 0; j < hc; j++, h += HEADER_ROW_WORDS) {
      headerKeys[j] = u8.slice(u32[h]!, u32[h]! + i32[h + 1]!);
      const vl = i32[h + 3]!;
      headerValues[j] = vl < 0 ? null : u8.slice(u32[h + 2]!, u32[h + 2]! + vl);
    }
    out[i] = {
      key: keyLen < 0 ? null : u8.slice(u32[w + 3]!, u32[w + 3]! + keyLen),
      value: valueLen < 0 ? null : u8.slice(u32[w + 5]!, u32[w + 5]! + valueLen),
      headerKeys,
      headerValues,
      timestamp: logAppendTime ? info.maxTimestamp : info.firstTimestamp + (i32[w + 2]! * TWO32 + (i32[w + 1]! >>> 0)),
    };
  }
  return out;
}
