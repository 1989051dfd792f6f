// One segment of a partition's log: <base>.log (RecordBatch v2 back to back),
// <base>.index and <base>.timeindex, named by the 20-digit base offset, as in
// Kafka. The active (last) segment takes appends; closed segments are
// read-only. Recovery rebuilds both indexes from a CRC-checked scan and
// truncates the log at the first invalid batch.

import * as path from 'node:path';
import { Kernels, WasmBuffer } from './kernels.js';
import { Storage, FileHandle } from './storage.js';
import { OffsetIndex } from './offset_index.js';
import { TimeIndex } from './time_index.js';
import { BatchScanner, ScanStop, SCAN_STOP_NAMES, BATCH_HEADER_SIZE, LOG_OVERHEAD } from './record_batch.js';
import { CorruptionError } from './errors.js';

export const LOG_SUFFIX = '.log';
export const INDEX_SUFFIX = '.index';
export const TIME_INDEX_SUFFIX = '.timeindex';
/** Largest segment: positions are u32 in Kafka's index, and we keep them below 2^31. */
export const MAX_SEGMENT_BYTES = 0x7fffffff;
const TWO32 = 4294967296;

export function segmentFileName(baseOffset: number, suffix: string): string {
  return String(baseOffset).padStart(20, '0') + suffix;
}

/** Parses "00000000000000000042.log" to 42, or null. */
export function parseSegmentFileName(name: string, suffix: string): number | null {
  if (!name.endsWith(suffix)) return null;
  const stem = name.slice(0, -suffix.length);
  if (!/^\d{20}$/.test(stem)) return null;
  const n = Number(stem);
  return Number.isSafeInteger(n) ? n : null;
}

export interface SegmentSettings {
  indexIntervalBytes: number;
  maxBatchBytes: number;
}

/** What a recovery scan found. */
export interface RecoveryResult {
  validBytes: number;
  truncatedBytes: number;
  batches: number;
  /** Why the scan stopped before the end of the file, if it did. */
  problem?: { position: number; reason: string };
}

/** A batch header read from a file (no CRC check). */
interface HeaderPeek { baseOffset: number; lastOffset: number; size: number; maxTimestamp: number; magic: number }

export class LogSegment {
  readonly baseOffset: number;
  readonly dir: string;
  readonly logPath: string;
  readonly index: OffsetIndex;
  readonly timeIndex: TimeIndex;
  private readonly k: Kernels;
  private readonly storage: Storage;
  private readonly settings: SegmentSettings;
  private log: FileHandle | null;
  private readonly header = new Uint8Array(BATCH_HEADER_SIZE);
  private readonly headerView = new DataView(this.header.buffer);

  /** Bytes of complete batches (the visible end of the log file). */
  size = 0;
  /** One past the last offset in the segment (baseOffset when empty). */
  nextOffset: number;
  /** Largest record timestamp (batch maxTimestamp) seen, -1 when empty. */
  maxTimestamp = -1;
  offsetOfMaxTimestamp = -1;
  /** maxTimestamp of the first batch, the reference for segment.ms (-1 when empty). */
  rollTimestamp = -1;
  bytesSinceLastIndexEntry = 0;
  /** Read-only once rolled. */
  closed = false;
  /** Has writes not yet made durable. */
  dirty = false;
  deleted = false;

  private constructor(k: Kernels, storage: Storage, dir: string, baseOffset: number, settings: SegmentSettings, log: FileHandle) {
    this.k = k;
    this.storage = storage;
    this.dir = dir;
    this.baseOffset = baseOffset;
    this.nextOffset = baseOffset;
    this.settings = settings;
    this.logPath = path.join(dir, segmentFileName(baseOffset, LOG_SUFFIX));
    this.index = new OffsetIndex(k, storage, path.join(dir, segmentFileName(baseOffset, INDEX_SUFFIX)), baseOffset);
    this.timeIndex = new TimeIndex(k, storage, path.join(dir, segmentFileName(baseOffset, TIME_INDEX_SUFFIX)), baseOffset);
    this.log = log;
  }

  /** Creates a new, empty active segment. */
  static create(k: Kernels, storage: Storage, dir: string, baseOffset: number, settings: SegmentSettings): LogSegment {
    const log = storage.open(path.join(dir, segmentFileName(baseOffset, LOG_SUFFIX)), 'write');
    log.truncate(0);
    const seg = new LogSegment(k, storage, dir, baseOffset, settings, log);
    seg.index.reset();
    seg.timeIndex.reset();
    seg.dirty = true;
    return seg;
  }

  /** Opens an existing segment (indexes not yet loaded or checked). */
  static open(k: Kernels, storage: Storage, dir: string, baseOffset: number, settings: SegmentSettings, writable: boolean): LogSegment {
    const log = storage.open(path.join(dir, segmentFileName(baseOffset, LOG_SUFFIX)), writable ? 'write' : 'read');
    const seg = new LogSegment(k, storage, dir, baseOffset, settings, log);
    seg.size = log.size();
    seg.index.memoryOnly = !writable;
    seg.timeIndex.memoryOnly = !writable;
    return seg;
  }

  get fileSize(): number { return this.logHandle().size(); }

  private logHandle(): FileHandle {
    if (!this.log) throw new CorruptionError('segment was deleted', { file: this.logPath, position: 0 });
    return this.log;
  }

  // --- writing ----------------------------------------------------------------

  /**
   * Appends one encoded batch (base offset already stamped) from wasm memory.
   * Indexes it the way Kafka does: an entry when more than
   * indexIntervalBytes were appended since the last entry.
   */
  append(ptr: number, info: { size: number; baseOffset: number; lastOffset: number; maxTimestamp: number; offsetOfMaxTimestamp: number }): void {
    const position = this.size;
    this.logHandle().write(this.k.u8, ptr, info.size, position);
    this.size = position + info.size;
    this.afterBatch(position, info);
    this.dirty = true;
  }

  private afterBatch(position: number, b: { size: number; baseOffset: number; lastOffset: number; maxTimestamp: number; offsetOfMaxTimestamp: number }): void {
    if (this.rollTimestamp < 0) this.rollTimestamp = b.maxTimestamp;
    if (b.maxTimestamp > this.maxTimestamp) {
      this.maxTimestamp = b.maxTimestamp;
      this.offsetOfMaxTimestamp = b.offsetOfMaxTimestamp;
    }
    if (this.bytesSinceLastIndexEntry > this.settings.indexIntervalBytes) {
      this.index.append(b.lastOffset, position);
      this.timeIndex.maybeAppend(this.maxTimestamp, this.offsetOfMaxTimestamp);
      this.bytesSinceLastIndexEntry = 0;
    }
    this.bytesSinceLastIndexEntry += b.size;
    this.nextOffset = b.lastOffset + 1;
  }

  /** Marks the segment read-only: the final time index entry, as Kafka writes on roll. */
  seal(): void {
    if (this.maxTimestamp >= 0) this.timeIndex.maybeAppend(this.maxTimestamp, this.offsetOfMaxTimestamp);
    this.closed = true;
  }

  /** Makes the log and both indexes durable. */
  async datasync(): Promise<void> {
    if (!this.log) return;
    await Promise.all([this.log.datasync(), this.index.datasync(), this.timeIndex.datasync()]);
  }

  // --- reading ----------------------------------------------------------------

  /** Reads up to length bytes at position straight into wasm memory at ptr. */
  readInto(ptr: number, length: number, position: number): number {
    return this.logHandle().read(this.k.u8, ptr, length, position);
  }

  /** Reads a batch header at position (no CRC check), or null past the end. */
  peekHeader(position: number, limit = this.size): HeaderPeek | null {
    if (position + BATCH_HEADER_SIZE > limit) return null;
    const n = this.logHandle().read(this.header, 0, BATCH_HEADER_SIZE, position);
    if (n < BATCH_HEADER_SIZE) return null;
    const dv = this.headerView;
    const batchLength = dv.getInt32(8);
    return {
      baseOffset: dv.getInt32(0) * TWO32 + dv.getUint32(4),
      lastOffset: dv.getInt32(0) * TWO32 + dv.getUint32(4) + dv.getInt32(23),
      size: batchLength + LOG_OVERHEAD,
      maxTimestamp: dv.getInt32(35) * TWO32 + dv.getUint32(39),
      magic: dv.getInt8(16),
    };
  }

  private badHeader(position: number, reason: string, offset?: number): CorruptionError {
    return new CorruptionError(reason, { file: this.logPath, position, offset });
  }

  private checkedHeader(position: number, limit: number): HeaderPeek {
    const h = this.peekHeader(position, limit);
    if (!h) throw this.badHeader(position, 'batch header extends past the end of the segment');
    if (h.magic !== 2) throw this.badHeader(position, `bad magic byte ${h.magic}`);
    if (h.size < BATCH_HEADER_SIZE || position + h.size > limit) throw this.badHeader(position, `batch length ${h.size - LOG_OVERHEAD} out of bounds`);
    if (h.lastOffset < h.baseOffset || h.baseOffset < this.baseOffset) throw this.badHeader(position, `batch offsets ${h.baseOffset}..${h.lastOffset} do not belong to segment ${this.baseOffset}`);
    return h;
  }

  /**
   * Position of the first batch whose last offset is >= target: index lookup,
   * then a bounded forward scan over batch headers. -1 when past the end.
   */
  translateOffset(target: number, limit = this.size): number {
    this.loadIndexes();
    const entry = this.index.lookup(target);
    let pos = entry && entry.position < limit ? entry.position : 0;
    while (pos < limit) {
      const h = this.checkedHeader(pos, limit);
      if (h.lastOffset >= target) return pos;
      pos += h.size;
    }
    return -1;
  }

  /**
   * Position of the first batch that may hold a record with timestamp >= ts
   * (its maxTimestamp >= ts), or -1. The time index gives the last point
   * known to be entirely below ts; the scan starts there.
   */
  translateTimestamp(ts: number, limit = this.size): number {
    this.loadIndexes();
    const below = this.timeIndex.lookup(ts - 1);
    let pos = 0;
    if (below) {
      const e = this.index.lookup(below.offset);
      if (e && e.position < limit) pos = e.position;
    }
    while (pos < limit) {
      const h = this.checkedHeader(pos, limit);
      if (h.maxTimestamp >= ts) return pos;
      pos += h.size;
    }
    return -1;
  }

  // --- index loading and recovery --------------------------------------------

  /** Loads both indexes, rebuilding them when missing or inconsistent. */
  loadIndexes(): void {
    if (this.index.loaded && this.timeIndex.loaded) return;
    const okI = this.index.load();
    const okT = this.timeIndex.load();
    const validI = okI ? this.index.validPrefix(this.size) : -1;
    const validT = okT ? this.timeIndex.validPrefix(this.nextOffset > this.baseOffset ? this.nextOffset : Number.MAX_SAFE_INTEGER) : -1;
    const emptyButData = this.size > 0 && this.index.entries === 0 && this.timeIndex.entries === 0 && this.size > this.settings.indexIntervalBytes * 2;
    if (validI !== this.index.entries || validT !== this.timeIndex.entries || emptyButData) {
      this.rebuildIndexes();
    }
  }

  /** Rebuilds both indexes from the log (headers only; the log was already validated). */
  rebuildIndexes(): void {
    this.index.reset();
    this.timeIndex.reset();
    this.bytesSinceLastIndexEntry = 0;
    const saved = { max: this.maxTimestamp, off: this.offsetOfMaxTimestamp };
    this.maxTimestamp = -1;
    this.offsetOfMaxTimestamp = -1;
    let pos = 0;
    while (pos < this.size) {
      const h = this.checkedHeader(pos, this.size);
      this.afterBatch(pos, { size: h.size, baseOffset: h.baseOffset, lastOffset: h.lastOffset, maxTimestamp: h.maxTimestamp, offsetOfMaxTimestamp: h.lastOffset });
      pos += h.size;
    }
    if (this.closed) this.seal();
    if (this.size === 0) { this.maxTimestamp = saved.max; this.offsetOfMaxTimestamp = saved.off; }
    this.dirty = true;
  }

  /**
   * Loads the segment's end state without a full CRC scan (after a clean
   * shutdown): indexes checked, then headers scanned from the last index
   * entry. Returns false when the tail does not parse (the caller recovers).
   */
  loadTail(): boolean {
    this.loadIndexes();
    const last = this.index.lastEntry;
    const lastT = this.timeIndex.lastEntry;
    let pos = last ? last.position : 0;
    this.nextOffset = this.baseOffset;
    if (lastT) { this.maxTimestamp = lastT.timestamp; this.offsetOfMaxTimestamp = lastT.offset; }
    this.bytesSinceLastIndexEntry = 0;
    let first = true;
    while (pos < this.size) {
      const h = this.peekHeader(pos);
      if (!h || h.magic !== 2 || h.size < BATCH_HEADER_SIZE || pos + h.size > this.size || h.lastOffset < h.baseOffset || h.baseOffset < this.nextOffset) return false;
      if (first && this.rollTimestamp < 0 && pos === 0) this.rollTimestamp = h.maxTimestamp;
      first = false;
      if (h.maxTimestamp > this.maxTimestamp) { this.maxTimestamp = h.maxTimestamp; this.offsetOfMaxTimestamp = h.lastOffset; }
      if (!(last && pos === last.position)) this.bytesSinceLastIndexEntry += h.size;
      else this.bytesSinceLastIndexEntry = h.size;
      this.nextOffset = h.lastOffset + 1;
      pos += h.size;
    }
    if (this.rollTimestamp < 0 && this.size > 0) {
      const h = this.peekHeader(0);
      if (h) this.rollTimestamp = h.maxTimestamp;
    }
    return true;
  }

  /**
   * Full recovery: CRC-checks every batch, rebuilds both indexes, truncates
   * the log at the first invalid or incomplete batch (unless readOnly).
   */
  recover(scanner: BatchScanner, buf: WasmBuffer, readOnly: boolean): RecoveryResult {
    const fileSize = this.logHandle().size();
    this.size = 0;
    this.nextOffset = this.baseOffset;
    this.maxTimestamp = -1;
    this.offsetOfMaxTimestamp = -1;
    this.rollTimestamp = -1;
    this.bytesSinceLastIndexEntry = 0;
    this.index.reset();
    this.timeIndex.reset();
    let pos = 0;
    let batches = 0;
    let problem: RecoveryResult['problem'];
    const chunk = Math.max(1 << 20, Math.min(this.settings.maxBatchBytes + LOG_OVERHEAD, 16 << 20));
    buf.ensure(chunk);
    while (pos < fileSize) {
      const want = Math.min(buf.capacity, fileSize - pos);
      const got = this.readInto(buf.ptr, want, pos);
      const res = scanner.scan(buf.ptr, got, { maxBatchBytes: this.settings.maxBatchBytes + LOG_OVERHEAD, positionBase: pos });
      for (const b of res.batches) {
        const last = b.baseOffset + b.lastOffsetDelta;
        if (b.baseOffset < this.nextOffset || last - this.baseOffset > 0xffffffff) {
          problem = { position: b.position, reason: `batch offset ${b.baseOffset} is not after ${this.nextOffset - 1}` };
          break;
        }
        this.afterBatch(b.position, { size: b.size, baseOffset: b.baseOffset, lastOffset: last, maxTimestamp: b.maxTimestamp, offsetOfMaxTimestamp: last });
        this.size = b.position + b.size;
        batches++;
      }
      if (problem) break;
      pos = this.size;
      if (res.stop === ScanStop.End || res.stop === ScanStop.TableFull) continue;
      if (res.stop === ScanStop.Incomplete) {
        // Either the batch continues past this chunk (read again from its
        // start, with a buffer large enough) or the file ends inside it.
        const h = this.peekHeader(pos, fileSize);
        const maxSize = this.settings.maxBatchBytes + LOG_OVERHEAD;
        if (h && h.magic === 2 && h.size >= BATCH_HEADER_SIZE && h.size <= maxSize && pos + h.size <= fileSize) {
          buf.ensure(h.size);
          continue;
        }
        problem = { position: pos, reason: 'incomplete batch at the end of the log (torn write)' };
        break;
      }
      problem = { position: pos, reason: SCAN_STOP_NAMES[res.stop] ?? 'invalid batch' };
      break;
    }
    const truncatedBytes = fileSize - this.size;
    if (truncatedBytes > 0 && !readOnly) this.logHandle().truncate(this.size);
    if (!readOnly) this.dirty = true;
    return { validBytes: this.size, truncatedBytes, batches, problem };
  }

  /** Truncates to `size` bytes (a batch boundary), rebuilding indexes. */
  truncateTo(size: number): void {
    this.logHandle().truncate(size);
    this.size = size;
    this.rebuildIndexes();
  }

  close(): void {
    this.log?.close();
    this.log = null;
    this.index.unload();
    this.timeIndex.unload();
  }

  /**
   * Closes and removes the segment's files. As in Kafka, the files are first
   * renamed to *.deleted (cheap, synchronous: the segment is gone from the
   * directory's point of view), then unlinked off the event loop when the
   * storage can; leftovers are removed by the next open.
   */
  delete(): void {
    this.close();
    this.deleted = true;
    for (const p of [this.logPath, this.index.path, this.timeIndex.path]) {
      if (!this.storage.exists(p)) continue;
      if (this.storage.removeAsync) {
        const doomed = `${p}.deleted`;
        this.storage.rename(p, doomed);
        this.storage.removeAsync(doomed).catch(() => undefined);
      } else {
        this.storage.remove(p);
      }
    }
  }
}
