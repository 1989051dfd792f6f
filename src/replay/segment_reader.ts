// Reading archived segments: the small index objects (fetched whole, CRC-32C
// checked against the manifest, validated entry by entry, searched in wasm),
// and the .log object as a stream of byte ranges scanned into CRC-checked
// batches in wasm memory and decoded into records.
//
// Memory: the log is never held whole. A SegmentLogReader keeps one wasm
// buffer of at most chunk + maxBatchBytes (the bytes of an incomplete batch
// carried over plus the next range); the caller's prefetch adds its ranges.
// Every length that sizes an allocation is either the caller's (chunk size)
// or checked against maxBatchBytes / maxInflatedBytes first.

import { Kernels, WasmBuffer } from '../kernels.js';
import { Crc32c } from '../crc32c.js';
import { CorruptionError, RecordTooLargeError } from '../errors.js';
import {
  BatchInfo, BatchScanner, RecordBatchDecoder, ScanStop, SCAN_STOP_NAMES, BATCH_HEADER_SIZE, LOG_OVERHEAD,
  ATTR_CODEC_MASK, ATTR_CONTROL, CODEC_GZIP, CODEC_NONE, inflateGzipBounded,
} from '../record_batch.js';
import { UnsupportedCodecError } from '../errors.js';
import { StoredRecord } from '../record.js';
import { offsetIndexLookup, timeIndexLookup, OFFSET_INDEX_ENTRY, TIME_INDEX_ENTRY } from '../index_search.js';
import { ArchiveSegment } from './manifest_reader.js';
import { RemoteObject } from './http_range.js';

const TWO32 = 4294967296;

function hex8(n: number): string { return (n >>> 0).toString(16).padStart(8, '0'); }

/** Fetches a small object whole and checks its size and CRC-32C against the manifest. */
export async function fetchVerified(obj: RemoteObject, expectedCrc: number, crc: Crc32c, file: string): Promise<Uint8Array> {
  if (obj.size === 0) return new Uint8Array(0);
  const bytes = await obj.readWhole(obj.size);
  if (bytes === null) throw new CorruptionError(`object is longer than the ${obj.size} bytes the manifest says`, { file, position: obj.size });
  const got = crc.of(bytes);
  if (got !== expectedCrc >>> 0) {
    throw new CorruptionError(`CRC-32C ${hex8(got)} does not match the manifest's ${hex8(expectedCrc)}`, { file, position: 0 });
  }
  return bytes;
}

/**
 * An offset index held in wasm memory for lookups. Entries are validated:
 * offsets strictly increase within the segment, positions strictly increase
 * and stay inside the .log object.
 */
export class RemoteOffsetIndex {
  private readonly buf: WasmBuffer | null;
  readonly entries: number;

  constructor(private readonly k: Kernels, bytes: Uint8Array, seg: ArchiveSegment, file: string) {
    this.entries = bytes.length / OFFSET_INDEX_ENTRY;
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let prevRel = -1;
    let prevPos = -1;
    const maxRel = seg.lastOffset - seg.baseOffset;
    for (let i = 0; i < this.entries; i++) {
      const rel = dv.getUint32(i * 8);
      const pos = dv.getUint32(i * 8 + 4);
      if (rel <= prevRel || rel > maxRel || pos <= prevPos || pos + BATCH_HEADER_SIZE > seg.objects.log.size) {
        throw new CorruptionError(`offset index entry ${i} (${seg.baseOffset + rel}, position ${pos}) is out of order or outside the segment`,
          { file, position: i * 8 });
      }
      prevRel = rel;
      prevPos = pos;
    }
    if (this.entries === 0) { this.buf = null; return; }
    this.buf = new WasmBuffer(k, bytes.length);
    k.u8.set(bytes, this.buf.ptr);
  }

  /** Position of the batch to start scanning from for target (0 when no entry is <= target). */
  positionFor(baseOffset: number, target: number): number {
    if (!this.buf) return 0;
    const slot = offsetIndexLookup(this.k, this.buf.ptr, this.entries, target - baseOffset);
    return slot < 0 ? 0 : this.k.dv.getUint32(this.buf.ptr + slot * OFFSET_INDEX_ENTRY + 4);
  }

  free(): void { this.buf?.free(); }
}

/**
 * A time index in wasm memory. Entries (t, o) say: every offset <= o has a
 * timestamp <= t. Timestamps strictly increase, offsets never decrease and
 * stay inside the segment.
 */
export class RemoteTimeIndex {
  private readonly buf: WasmBuffer | null;
  readonly entries: number;

  constructor(private readonly k: Kernels, bytes: Uint8Array, seg: ArchiveSegment, file: string) {
    this.entries = bytes.length / TIME_INDEX_ENTRY;
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let prevTs = -Infinity;
    let prevRel = -1;
    const maxRel = seg.lastOffset - seg.baseOffset;
    for (let i = 0; i < this.entries; i++) {
      const ts = dv.getInt32(i * 12) * TWO32 + dv.getUint32(i * 12 + 4);
      const rel = dv.getUint32(i * 12 + 8);
      if (!(ts > prevTs) || rel < prevRel || rel > maxRel) {
        throw new CorruptionError(`time index entry ${i} (${ts}, offset ${seg.baseOffset + rel}) is out of order or outside the segment`,
          { file, position: i * 12 });
      }
      prevTs = ts;
      prevRel = rel;
    }
    if (this.entries === 0) { this.buf = null; return; }
    this.buf = new WasmBuffer(k, bytes.length);
    k.u8.set(bytes, this.buf.ptr);
  }

  /** The largest offset o such that every offset <= o has a timestamp < ts, or -1. */
  lastOffsetBefore(baseOffset: number, ts: number): number {
    if (!this.buf) return -1;
    const slot = timeIndexLookup(this.k, this.buf.ptr, this.entries, ts - 1);
    return slot < 0 ? -1 : baseOffset + this.k.dv.getUint32(this.buf.ptr + slot * TIME_INDEX_ENTRY + 8);
  }

  free(): void { this.buf?.free(); }
}

/** What to keep while decoding. */
export interface RecordFilter {
  /** Records with a lower offset are skipped. */
  minOffset: number;
  /** Records at or past this offset end the read (exclusive). */
  endOffset: number;
  /**
   * Skip records until the first one with timestamp >= this; then keep
   * everything (replay "from a time"). null: no timestamp filter.
   */
  fromTimestamp: number | null;
}

export interface SegmentReadLimits {
  /** Largest batch (bytes on disk, with the 12-byte log overhead). */
  maxBatchBytes: number;
  /** Largest records section after gzip inflation. */
  maxInflatedBytes: number;
}

/**
 * Scans one segment's .log from a batch position, fed range by range
 * (push), producing records. Checks every batch: CRC-32C (in the scan
 * kernel), size cap, offsets inside the segment and strictly increasing,
 * and at the end that the last batch ends at the manifest's lastOffset.
 */
export class SegmentLogReader {
  private readonly buf: WasmBuffer;
  /** Log position of buf[0]. */
  private bufPos: number;
  /** Bytes held in buf (a batch prefix carried over, then appended ranges). */
  private bufLen = 0;
  /** Last offset of the previous batch (seg.baseOffset - 1 before the first). */
  private prevLast: number;
  /** Next byte position expected from push(). */
  private expectPos: number;
  batches = 0;
  bytesScanned = 0;
  /** Set when the filter's endOffset was reached: nothing more is wanted. */
  finished = false;

  constructor(
    private readonly k: Kernels,
    private readonly scanner: BatchScanner,
    private readonly decoder: RecordBatchDecoder,
    private readonly inflated: WasmBuffer,
    readonly seg: ArchiveSegment,
    readonly file: string,
    startPosition: number,
    private readonly filter: RecordFilter,
    private readonly limits: SegmentReadLimits,
    initialCapacity: number,
  ) {
    this.bufPos = startPosition;
    this.expectPos = startPosition;
    this.prevLast = seg.baseOffset - 1;
    this.buf = new WasmBuffer(k, initialCapacity);
  }

  get position(): number { return this.expectPos; }

  /**
   * Appends log bytes [pos, pos+bytes.length) (pos must follow the previous
   * push), scans every complete batch and decodes the wanted records into out.
   */
  async push(pos: number, bytes: Uint8Array, out: StoredRecord[]): Promise<void> {
    if (pos !== this.expectPos) throw new Error(`internal: range at ${pos}, expected ${this.expectPos}`);
    const need = this.bufLen + bytes.length;
    if (need > this.limits.maxBatchBytes + bytes.length + LOG_OVERHEAD) {
      throw new Error('internal: carried bytes exceed the batch cap');
    }
    this.buf.ensure(need, this.bufLen);
    this.k.u8.set(bytes, this.buf.ptr + this.bufLen);
    this.bufLen = need;
    this.expectPos += bytes.length;
    await this.scan(out);
  }

  private corrupt(reason: string, position: number, offset?: number): CorruptionError {
    return new CorruptionError(reason, { file: this.file, position, offset });
  }

  private async scan(out: StoredRecord[]): Promise<void> {
    const seg = this.seg;
    const f = this.filter;
    let consumed = 0;
    while (!this.finished) {
      const res = this.scanner.scan(this.buf.ptr + consumed, this.bufLen - consumed,
        { maxBatchBytes: this.limits.maxBatchBytes, positionBase: this.bufPos + consumed });
      for (const b of res.batches) {
        this.batches++;
        const last = b.baseOffset + b.lastOffsetDelta;
        if (!Number.isSafeInteger(b.baseOffset) || b.baseOffset <= this.prevLast || b.baseOffset < seg.baseOffset || last > seg.lastOffset) {
          throw this.corrupt(`batch offsets ${b.baseOffset}..${last} are out of sequence (previous ${this.prevLast}, segment ${seg.baseOffset}..${seg.lastOffset})`,
            b.position, b.baseOffset);
        }
        this.prevLast = last;
        if (b.baseOffset >= f.endOffset) { this.finished = true; break; }
        if (last < f.minOffset || (b.attributes & ATTR_CONTROL) !== 0) continue;
        if (f.fromTimestamp !== null && b.maxTimestamp < f.fromTimestamp) continue;
        const rel = b.position - this.bufPos;
        const before = out.length;
        await this.decode(rel, b, out);
        this.applyFilter(out, before);
        if (this.finished) break;
      }
      if (this.finished) break;
      consumed += res.stopPosition;
      if (res.stop === ScanStop.TableFull) continue;
      if (res.stop === ScanStop.End) break;
      const at = this.bufPos + consumed;
      if (res.stop === ScanStop.Incomplete) break; // wait for more bytes (end() checks the tail)
      if (res.stop === ScanStop.BadLength) {
        // Oversized only when the rest of the header looks like a batch
        // (magic 2); otherwise this is not a batch boundary at all.
        const left = this.bufLen - consumed;
        const batchLength = left >= 12 ? this.k.dv.getInt32(this.buf.ptr + consumed + 8) : -1;
        const magicOk = left > 16 && this.k.u8[this.buf.ptr + consumed + 16] === 2;
        if (magicOk && batchLength + LOG_OVERHEAD > this.limits.maxBatchBytes) {
          throw new RecordTooLargeError(batchLength + LOG_OVERHEAD, this.limits.maxBatchBytes, `batch at byte ${at} of ${this.file}`);
        }
      }
      throw this.corrupt(SCAN_STOP_NAMES[res.stop] ?? 'invalid batch', at);
    }
    // Keep the unscanned tail (an incomplete batch) at the start of the buffer.
    const rest = this.bufLen - consumed;
    if (consumed > 0 && rest > 0) this.k.u8.copyWithin(this.buf.ptr, this.buf.ptr + consumed, this.buf.ptr + this.bufLen);
    this.bufPos += consumed;
    this.bytesScanned += consumed;
    this.bufLen = rest;
  }

  private async decode(rel: number, b: BatchInfo, out: StoredRecord[]): Promise<void> {
    const codec = b.attributes & ATTR_CODEC_MASK;
    const src = { file: this.file, position: b.position };
    const minOffset = this.filter.minOffset;
    if (codec === CODEC_NONE) {
      this.decoder.decode(this.buf.ptr + rel, b, out, minOffset, src);
      return;
    }
    if (codec !== CODEC_GZIP) throw new UnsupportedCodecError(codec);
    const start = this.buf.ptr + rel;
    const compressed = this.k.u8.slice(start + BATCH_HEADER_SIZE, start + b.size);
    let plain: Uint8Array;
    try {
      plain = await inflateGzipBounded(compressed, this.limits.maxInflatedBytes);
    } catch (err) {
      if (err instanceof RecordTooLargeError) throw err;
      throw this.corrupt(`gzip data does not inflate: ${(err as Error).message}`, b.position, b.baseOffset);
    }
    // Rebuild an uncompressed batch (header + inflated records) and decode
    // that; the CRC was checked on the stored bytes already.
    const total = BATCH_HEADER_SIZE + plain.length;
    const p = this.inflated.ensure(total);
    const u8 = this.k.u8;
    u8.copyWithin(p, this.buf.ptr + rel, this.buf.ptr + rel + BATCH_HEADER_SIZE);
    u8.set(plain, p + BATCH_HEADER_SIZE);
    this.decoder.decode(p, { ...b, size: total, attributes: b.attributes & ~ATTR_CODEC_MASK }, out, minOffset, src);
  }

  /** Drops records before the start timestamp and at or past endOffset. */
  private applyFilter(out: StoredRecord[], from: number): void {
    const f = this.filter;
    if (f.fromTimestamp !== null) {
      let i = from;
      while (i < out.length && out[i]!.timestamp < f.fromTimestamp) i++;
      if (i > from) out.splice(from, i - from);
      if (out.length > from) f.fromTimestamp = null;
    }
    if (out.length > from && out[out.length - 1]!.offset >= f.endOffset) {
      let n = out.length;
      while (n > from && out[n - 1]!.offset >= f.endOffset) n--;
      out.length = n;
      this.finished = true;
    }
  }

  /**
   * Called after the last range of the segment: there must be no partial
   * batch left, and the last batch must end at the manifest's lastOffset.
   */
  end(): void {
    if (this.finished) return;
    if (this.bufLen > 0) {
      throw this.corrupt(`the log ends inside a batch (${this.bufLen} bytes left over)`, this.bufPos);
    }
    if (this.expectPos !== this.seg.objects.log.size) throw new Error('internal: end() before the end of the log');
    if (this.prevLast !== this.seg.lastOffset) {
      throw this.corrupt(`the log ends at offset ${this.prevLast}, the manifest says ${this.seg.lastOffset}`, this.expectPos);
    }
  }

  free(): void { this.buf.free(); }
}
