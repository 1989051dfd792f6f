// One segment of a partition's log: <base>.log (RecordBatch v2 back to back),
// <base>.index and <base>.timeindex, named by the 20-digit base offset, as in
// Kafka. The active (last) segment takes appends; closed segments are
// read-only. Recovery rebuilds both indexes from a CRC-checked scan and
// truncates the log at the first invalid batch.

import * as path from 'node:path';
import { Kernels, WasmBuffer } from './kernels.js';
import { Storage, FileHandle } from './storage.js';
import { OffsetIndex, OFFSET_INDEX_ENTRY_SIZE } from './offset_index.js';
import { TimeIndex, TIME_INDEX_ENTRY_SIZE } from './time_index.js';
import { MAX_INDEX_FILE_BYTES } from './index_file.js';
import { BatchScanner, ScanStop, SCAN_STOP_NAMES, BATCH_HEADER_SIZE, LOG_OVERHEAD } from './record_batch.js';
import { CorruptionError } from './errors.js';

export const LOG_SUFFIX = '.log';
export const INDEX_SUFFIX = '.index';
export const TIME_INDEX_SUFFIX = '.timeindex';
/** Largest segment: positions are u32 in Kafka's index, and we keep them below 2^31. */
export const MAX_SEGMENT_BYTES = 0x7fffffff;
/**
 * Largest batch (with its 12-byte log overhead) that recovery and reads
 * accept, whatever max.message.bytes says: the format bound, so data written
 * under a larger limit (or by a Kafka broker configured so) stays readable.
 */
export const MAX_READ_BATCH_BYTES = 64 * 1024 * 1024 + LOG_OVERHEAD;
const TWO32 = 4294967296;

/**
 * prevLast value meaning "do not check that the batch follows a previous one".
 * (-1 cannot serve: it is baseOffset - 1 of the segment at offset 0, where the
 * chain check is wanted.)
 */
const NO_CHAIN = Number.NEGATIVE_INFINITY;

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
  /**
   * Batches follow each other with no offset gap (every 'delete' topic).
   * Reads and lookups then treat a gap as corruption, which catches damage
   * to a batch's baseOffset (a field the CRC does not cover). Compacted
   * logs have gaps: only increasing offsets are required there.
   */
  contiguousOffsets?: boolean;
}

/** What a recovery scan found. */
export interface RecoveryResult {
  validBytes: number;
  truncatedBytes: number;
  batches: number;
  /** Bytes in the file when the scan started. */
  fileBytes?: number;
  /** Why the scan stopped before the end of the file, if it did; offset: the first offset not recovered. */
  problem?: { position: number; reason: string; offset?: number };
  /** Damaged batches stepped over and kept (data known flushed): reads report them as CorruptionError. */
  damaged?: { position: number; reason: string; offset: number }[];
}

/** Where a read must start for an offset: the batch position and the offset before it (-1 when unknown). */
export interface BatchLocation { position: number; prevLastOffset: number }

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
  /** The indexes were rebuilt since they were loaded (a lookup mismatch then means a damaged log, not a stale index). */
  private rebuiltSinceLoad = false;

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
    // The entry goes to the file: the next flush must sync it, or a crash
    // could leave a flushed closed segment whose time index understates its
    // largest timestamp (wrong retention and timestamp lookups).
    if (this.maxTimestamp >= 0 && this.timeIndex.maybeAppend(this.maxTimestamp, this.offsetOfMaxTimestamp)) this.dirty = true;
    this.closed = true;
  }

  /** Makes the log and both indexes durable. */
  async datasync(): Promise<void> {
    if (!this.log || this.deleted) return;
    await Promise.all([this.log.datasync(), this.index.datasync(), this.timeIndex.datasync()]);
  }

  // --- reading ----------------------------------------------------------------

  /** Reads up to length bytes at position straight into wasm memory at ptr. */
  readInto(ptr: number, length: number, position: number): number {
    return this.logHandle().read(this.k.u8, ptr, length, position);
  }

  /** True when reads can run off the calling thread (FileHandle.readAsync): read-ahead. */
  get canReadAhead(): boolean { return this.log !== null && typeof this.log.readAsync === 'function'; }

  /**
   * readInto off the calling thread (FileHandle.readAsync), into wasm memory
   * at ptr. The caller must not free or move [ptr, ptr + length) until the
   * promise settles, and must not trust the bytes if wasm memory grew
   * meanwhile (see "Read-ahead" in docs/wasm-boundary.md).
   */
  readIntoAsync(ptr: number, length: number, position: number): Promise<number> {
    const h = this.logHandle();
    if (!h.readAsync) return Promise.resolve(h.read(this.k.u8, ptr, length, position));
    return h.readAsync(this.k.u8, ptr, length, position);
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

  /**
   * Reads and checks the batch header at position (no CRC check): magic,
   * length, offsets inside the segment and after prevLast (exactly
   * prevLast + 1 when offsets are contiguous). Null when it fails.
   */
  private validHeader(position: number, limit: number, prevLast: number): HeaderPeek | null {
    const h = this.peekHeader(position, limit);
    if (!h || h.magic !== 2 || h.size < BATCH_HEADER_SIZE || position + h.size > limit) return null;
    if (h.lastOffset < h.baseOffset || h.baseOffset < this.baseOffset || h.lastOffset - this.baseOffset > 0xffffffff) return null;
    if (prevLast >= this.baseOffset - 1 && (this.settings.contiguousOffsets ? h.baseOffset !== prevLast + 1 : h.baseOffset <= prevLast)) return null;
    return h;
  }

  private checkedHeader(position: number, limit: number, prevLast = NO_CHAIN): HeaderPeek {
    const h = this.validHeader(position, limit, prevLast);
    if (h) return h;
    const expected = prevLast >= this.baseOffset - 1 ? prevLast + 1 : undefined;
    const p = this.peekHeader(position, limit);
    if (!p) throw this.badHeader(position, 'batch header extends past the end of the segment', expected);
    if (p.magic !== 2) throw this.badHeader(position, `bad magic byte ${p.magic}`, expected);
    if (p.size < BATCH_HEADER_SIZE || position + p.size > limit) throw this.badHeader(position, `batch length ${p.size - LOG_OVERHEAD} out of bounds`, expected);
    throw this.badHeader(position, `batch offsets ${p.baseOffset}..${p.lastOffset} do not follow offset ${expected ?? this.baseOffset - 1} in segment ${this.baseOffset}`, expected ?? p.baseOffset);
  }

  /**
   * Checks an offset-index entry against the log: the batch at its position
   * must end at its offset. Returns that batch's header or null.
   */
  private entryHeader(entry: { offset: number; position: number }, limit: number): HeaderPeek | null {
    const h = this.validHeader(entry.position, limit, NO_CHAIN);
    return h && h.lastOffset === entry.offset ? h : null;
  }

  /**
   * Position of the first batch whose last offset is >= target: index lookup,
   * then a bounded forward scan over batch headers. -1 when past the end.
   */
  translateOffset(target: number, limit = this.size): number {
    return this.locateOffset(target, limit)?.position ?? -1;
  }

  /**
   * Like translateOffset, with the last offset of the batch before the one
   * found (so a read can check the chain of offsets from there). An index
   * entry that does not match the log triggers a rebuild of both indexes.
   * Throws CorruptionError when a header on the way is damaged.
   */
  locateOffset(target: number, limit = this.size): BatchLocation | null {
    this.loadIndexes();
    let pos = 0;
    let prevLast = this.baseOffset - 1;
    const entry = this.index.lookup(target);
    if (entry && entry.position < limit) {
      const h = this.entryHeader(entry, limit);
      if (!h && !this.rebuiltSinceLoad) {
        this.rebuildIndexes();
        return this.locateOffset(target, limit);
      }
      if (h) {
        // The entry's batch header was just read: it starts the scan.
        if (h.lastOffset >= target) return { position: entry.position, prevLastOffset: h.baseOffset - 1 };
        pos = entry.position + h.size;
        prevLast = h.lastOffset;
      }
    }
    while (pos < limit) {
      const h = this.checkedHeader(pos, limit, prevLast);
      if (h.lastOffset >= target) return { position: pos, prevLastOffset: prevLast };
      prevLast = h.lastOffset;
      pos += h.size;
    }
    return null;
  }

  /**
   * Position of the first batch that may hold a record with timestamp >= ts
   * (its maxTimestamp >= ts), or -1. The time index gives the last point
   * known to be entirely below ts; the scan starts there.
   */
  translateTimestamp(ts: number, limit = this.size): number {
    return this.locateTimestamp(ts, limit)?.position ?? -1;
  }

  /** Like translateTimestamp, with the offset chain (see locateOffset). */
  locateTimestamp(ts: number, limit = this.size): BatchLocation | null {
    this.loadIndexes();
    const below = this.timeIndex.lookup(ts - 1);
    let pos = 0;
    let prevLast = this.baseOffset - 1;
    if (below) {
      // Everything up to below.offset has timestamps <= below.timestamp < ts.
      const e = this.index.lookup(below.offset);
      const h = e && e.position < limit ? this.entryHeader(e, limit) : null;
      if (e && e.position < limit && !h && !this.rebuiltSinceLoad) {
        this.rebuildIndexes();
        return this.locateTimestamp(ts, limit);
      }
      if (h) { pos = e!.position; prevLast = h.baseOffset - 1; }
    }
    let checkEntry = below !== null;
    while (pos < limit) {
      const h = this.checkedHeader(pos, limit, prevLast);
      if (checkEntry && h.lastOffset >= below!.offset) {
        // The batch holding the entry's offset has the entry's timestamp as
        // its max, and nothing before it is later: else the index is wrong.
        checkEntry = false;
        if (h.baseOffset > below!.offset || h.maxTimestamp !== below!.timestamp) {
          if (!this.rebuiltSinceLoad) {
            this.rebuildIndexes();
            return this.locateTimestamp(ts, limit);
          }
          // The log itself disagrees with a freshly built index: scan it all.
          return this.scanForTimestamp(ts, limit);
        }
      }
      if (h.maxTimestamp >= ts) return { position: pos, prevLastOffset: prevLast };
      prevLast = h.lastOffset;
      pos += h.size;
    }
    return null;
  }

  private scanForTimestamp(ts: number, limit: number): BatchLocation | null {
    let pos = 0;
    let prevLast = this.baseOffset - 1;
    while (pos < limit) {
      const h = this.checkedHeader(pos, limit, prevLast);
      if (h.maxTimestamp >= ts) return { position: pos, prevLastOffset: prevLast };
      prevLast = h.lastOffset;
      pos += h.size;
    }
    return null;
  }

  // --- index loading and recovery --------------------------------------------

  /**
   * Loads both indexes, rebuilding them when missing or inconsistent: a
   * length that is not a whole number of entries, entries out of order or
   * past the log, or a first/last entry that does not match the batch
   * headers (garbage, or an index left from other data). Entries in between
   * are checked when a lookup uses them (locateOffset, locateTimestamp).
   */
  loadIndexes(): void {
    if (this.index.loaded && this.timeIndex.loaded) return;
    this.rebuiltSinceLoad = false;
    const okI = this.index.load();
    const okT = this.timeIndex.load();
    let good = okI && okT;
    if (good) good = this.index.validPrefix(this.size) === this.index.entries;
    if (good) good = this.timeIndex.validPrefix(this.nextOffset > this.baseOffset ? this.nextOffset : Number.MAX_SAFE_INTEGER) === this.timeIndex.entries;
    // Kafka writes an entry every index.interval.bytes: none at all over a large log means a lost index.
    if (good) good = !(this.size > this.settings.indexIntervalBytes * 2 && this.size > 0 && this.index.entries === 0);
    // Both indexes gain entries together (the time index only when the max
    // timestamp grew, plus one on roll): far apart counts mean one was lost.
    if (good) good = !(this.index.entries > 0 && this.timeIndex.entries === 0) && this.timeIndex.entries <= this.index.entries + 1;
    if (good) good = this.indexesMatchLog();
    if (!good) this.rebuildIndexes();
  }

  /**
   * Spot checks of loaded indexes against the log: first and last entries of
   * both; no entry missing after the last one (the tail: the batches after
   * the last offset index entry); and, for a closed segment, the time
   * index's last entry (the one written on roll) not below a timestamp in
   * that tail.
   */
  private indexesMatchLog(): boolean {
    const n = this.index.entries;
    if (n > 0) {
      if (!this.entryHeader(this.index.entry(0), this.size)) return false;
      const lastH = this.entryHeader(this.index.entry(n - 1), this.size);
      if (!lastH) return false;
      // A time entry was due with the last offset entry, for a max at least this batch's.
      const lastT = this.timeIndex.lastEntry;
      if (lastH.maxTimestamp >= 0 && (!lastT || lastT.timestamp < lastH.maxTimestamp)) return false;
    }
    for (const slot of this.timeIndex.entries > 1 ? [0, this.timeIndex.entries - 1] : this.timeIndex.entries === 1 ? [0] : []) {
      const t = this.timeIndex.entry(slot);
      const h = this.batchContaining(t.offset);
      if (!h || h.maxTimestamp !== t.timestamp) return false;
    }
    // The tail after the last entry: an entry is due wherever more than
    // index.interval.bytes went by (entries were cut off the end otherwise).
    let pos = n > 0 ? this.index.entry(n - 1).position : 0;
    let since = 0;
    let tailMax = -1;
    let atEntry = n > 0;
    while (pos < this.size) {
      const h = this.validHeader(pos, this.size, NO_CHAIN);
      if (!h) return true; // damage in the log itself: reads report it
      if (atEntry) { since = h.size; atEntry = false; } else {
        if (since > this.settings.indexIntervalBytes) return false;
        since += h.size;
      }
      if (h.maxTimestamp > tailMax) tailMax = h.maxTimestamp;
      pos += h.size;
    }
    const lastT = this.timeIndex.lastEntry;
    if (this.closed && tailMax >= 0 && (!lastT || lastT.timestamp < tailMax)) return false;
    return true;
  }

  /**
   * Open-time state of a closed segment that needs no scan (flushed, or after
   * a clean shutdown) without reading its indexes into memory: maxTimestamp
   * comes from the time index's last entry once cheap checks against the log
   * pass (file lengths, the last offset entry's batch, the tail after it).
   * Anything off: the full loadIndexes() (which rebuilds), then unloaded. The
   * indexes load, with every check, at the first lookup.
   */
  loadClosedSummary(): void {
    const oi = this.readFileTail(this.index.path, OFFSET_INDEX_ENTRY_SIZE);
    const ti = this.readFileTail(this.timeIndex.path, TIME_INDEX_ENTRY_SIZE);
    let ok = oi.size % OFFSET_INDEX_ENTRY_SIZE === 0 && ti.size % TIME_INDEX_ENTRY_SIZE === 0
      && oi.size <= MAX_INDEX_FILE_BYTES && ti.size <= MAX_INDEX_FILE_BYTES;
    const lastO = ok && oi.bytes ? { offset: this.baseOffset + oi.bytes.getUint32(0), position: oi.bytes.getUint32(4) } : null;
    const lastT = ok && ti.bytes ? { timestamp: ti.bytes.getInt32(0) * TWO32 + ti.bytes.getUint32(4), offset: this.baseOffset + ti.bytes.getUint32(8) } : null;
    if (ok && !lastO && this.size > this.settings.indexIntervalBytes * 2) ok = false;
    if (ok && lastT) ok = lastT.offset >= this.baseOffset && lastT.offset < this.nextOffset;
    let pos = 0;
    if (ok && lastO) {
      const h = lastO.position < this.size ? this.entryHeader(lastO, this.size) : null;
      ok = h !== null && (h.maxTimestamp < 0 || (lastT !== null && lastT.timestamp >= h.maxTimestamp));
      pos = lastO.position;
    }
    let tailMax = -1;
    let since = 0;
    let atEntry = lastO !== null;
    while (ok && pos < this.size) {
      const h = this.validHeader(pos, this.size, NO_CHAIN);
      if (!h) break; // damage in the log: reads report it
      if (atEntry) { since = h.size; atEntry = false; } else {
        if (since > this.settings.indexIntervalBytes) ok = false;
        since += h.size;
      }
      if (h.maxTimestamp > tailMax) tailMax = h.maxTimestamp;
      pos += h.size;
    }
    if (ok && tailMax >= 0) ok = lastT !== null && lastT.timestamp >= tailMax;
    if (ok) {
      this.maxTimestamp = lastT ? lastT.timestamp : -1;
      this.offsetOfMaxTimestamp = lastT ? lastT.offset : -1;
      return;
    }
    const wasLoaded = this.index.loaded && this.timeIndex.loaded;
    this.loadIndexes();
    const t = this.timeIndex.lastEntry;
    if (t && t.timestamp > this.maxTimestamp) { this.maxTimestamp = t.timestamp; this.offsetOfMaxTimestamp = t.offset; }
    if (!wasLoaded) { this.index.closeFile(); this.timeIndex.closeFile(); }
  }

  /** Size of a file and a view of its last n bytes (null when shorter or missing). */
  private readFileTail(file: string, n: number): { size: number; bytes: DataView | null } {
    if (!this.storage.exists(file)) return { size: 0, bytes: null };
    const h = this.storage.open(file, 'read');
    try {
      const size = h.size();
      if (size < n) return { size, bytes: null };
      const buf = new Uint8Array(n);
      if (h.read(buf, 0, n, size - n) < n) return { size: -1, bytes: null };
      return { size, bytes: new DataView(buf.buffer) };
    } finally {
      h.close();
    }
  }

  /** Header of the batch holding offset, scanning from the offset index (unverified beyond headers), or null. */
  private batchContaining(offset: number): HeaderPeek | null {
    const e = this.index.lookup(offset);
    let pos = e && e.position < this.size ? e.position : 0;
    while (pos < this.size) {
      const h = this.validHeader(pos, this.size, NO_CHAIN);
      if (!h) return null;
      if (h.lastOffset >= offset) return h.baseOffset <= offset ? h : null;
      pos += h.size;
    }
    return null;
  }

  /**
   * Rebuilds both indexes from the batch headers (no CRC check: recovery or
   * a clean shutdown already vouched for the bytes). A damaged header whose
   * length field leads to a valid one is stepped over; otherwise the rebuild
   * stops there: the indexes then cover the valid prefix and a read past it
   * reports the corruption. Neither lowers nextOffset nor maxTimestamp.
   */
  rebuildIndexes(): void {
    this.rebuiltSinceLoad = true;
    this.index.reset();
    this.timeIndex.reset();
    this.bytesSinceLastIndexEntry = 0;
    const saved = { max: this.maxTimestamp, off: this.offsetOfMaxTimestamp, next: this.nextOffset };
    this.maxTimestamp = -1;
    this.offsetOfMaxTimestamp = -1;
    let pos = 0;
    let prevLast = this.baseOffset - 1;
    const maxSize = Math.max(this.settings.maxBatchBytes + LOG_OVERHEAD, MAX_READ_BATCH_BYTES);
    while (pos < this.size) {
      let h = this.validHeader(pos, this.size, prevLast);
      if (!h) {
        // A damaged header whose length field leads to a valid one (as
        // recovery's resync): index on after it, so that the batches beyond
        // stay reachable; the damaged one stays for reads to report.
        const d = this.peekHeader(pos);
        const q = d && d.size >= BATCH_HEADER_SIZE && d.size <= maxSize ? pos + d.size : -1;
        h = q > pos && q < this.size ? this.validHeader(q, this.size, NO_CHAIN) : null;
        if (!h || h.baseOffset <= prevLast) break;
        this.bytesSinceLastIndexEntry += q - pos;
        pos = q;
      }
      this.afterBatch(pos, { size: h.size, baseOffset: h.baseOffset, lastOffset: h.lastOffset, maxTimestamp: h.maxTimestamp, offsetOfMaxTimestamp: h.lastOffset });
      prevLast = h.lastOffset;
      pos += h.size;
    }
    if (pos < this.size) {
      // Stopped at damage: the batches after it are still in the file (reads
      // report the damage). The end and max timestamp known before must not
      // drop to the prefix's: an active segment's next append would reuse
      // offsets held after the damage, and timestamp lookups and retention
      // would misjudge the segment.
      this.nextOffset = Math.max(this.nextOffset, saved.next);
      if (saved.max > this.maxTimestamp) { this.maxTimestamp = saved.max; this.offsetOfMaxTimestamp = saved.off; }
    }
    if (this.closed) {
      this.nextOffset = Math.max(this.nextOffset, saved.next);
      this.seal();
    }
    if (pos === 0) { this.maxTimestamp = saved.max; this.offsetOfMaxTimestamp = saved.off; }
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
    // The scan starts at the last index entry, not at the segment's start: no
    // chain to check for its first batch (-1 would be one for base offset 0).
    let prevLast = NO_CHAIN;
    while (pos < this.size) {
      const h = this.validHeader(pos, this.size, prevLast);
      if (!h || h.baseOffset < this.nextOffset) return false;
      prevLast = h.lastOffset;
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
    const result = this.scanAndIndex(scanner, buf);
    if (!readOnly) this.dropInvalidTail(result);
    return result;
  }

  /** After scanAndIndex(): cuts the file at the end of the valid prefix. */
  dropInvalidTail(result: RecoveryResult): void {
    if (result.truncatedBytes > 0) this.logHandle().truncate(this.size);
    this.dirty = true;
  }

  /**
   * After scanAndIndex() stopped at damage that must not be dropped (flushed
   * data): the segment keeps every byte, reads go to the file's end and
   * report the damage as a CorruptionError. The indexes cover the valid prefix.
   */
  keepDamaged(result: RecoveryResult): void {
    this.size = result.fileBytes ?? this.logHandle().size();
    result.truncatedBytes = 0;
  }

  /**
   * The scan of recover(): CRC-checks every batch from the start, rebuilds
   * both indexes over the valid prefix and sets size to it. Offsets must
   * increase (gaps are accepted here: dropping data is for damage, not for
   * gaps a compacted log may have). Changes no file but the indexes.
   */
  scanAndIndex(scanner: BatchScanner, buf: WasmBuffer, resyncBelow = -1): RecoveryResult {
    const fileSize = this.logHandle().size();
    const damaged: { position: number; reason: string; offset: number }[] = [];
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
    const maxSize = Math.max(this.settings.maxBatchBytes + LOG_OVERHEAD, MAX_READ_BATCH_BYTES);
    this.rebuiltSinceLoad = true;
    buf.ensure(chunk);
    // Damage found where resyncing is allowed (data known to have been
    // flushed: a crash cannot have torn it) is stepped over when a whole
    // valid batch follows it: it stays in place for reads to report.
    const resync = (at: number, reason: string): boolean => {
      if (!(this.nextOffset < resyncBelow)) return false;
      const q = this.resyncAfter(scanner, buf, at, fileSize, maxSize);
      if (q < 0) return false;
      damaged.push({ position: at, reason, offset: this.nextOffset });
      this.bytesSinceLastIndexEntry += q - at;
      pos = q;
      buf.ensure(chunk);
      return true;
    };
    while (pos < fileSize) {
      const want = Math.min(buf.capacity, fileSize - pos);
      const got = this.readInto(buf.ptr, want, pos);
      if (got < want) {
        problem = { position: pos + got, reason: `file shrank to ${pos + got} bytes during the scan`, offset: this.nextOffset };
        break;
      }
      const res = scanner.scan(buf.ptr, got, { maxBatchBytes: maxSize, positionBase: pos });
      let skipped = false;
      for (const b of res.batches) {
        const last = b.baseOffset + b.lastOffsetDelta;
        if (b.baseOffset < this.nextOffset || last - this.baseOffset > 0xffffffff || !Number.isSafeInteger(last)) {
          const reason = `batch offset ${b.baseOffset} is not after ${this.nextOffset - 1}`;
          if (resync(b.position, reason)) { skipped = true; break; }
          problem = { position: b.position, reason, offset: this.nextOffset };
          break;
        }
        this.afterBatch(b.position, { size: b.size, baseOffset: b.baseOffset, lastOffset: last, maxTimestamp: b.maxTimestamp, offsetOfMaxTimestamp: last });
        this.size = b.position + b.size;
        batches++;
      }
      if (problem) break;
      if (skipped) continue;
      pos = this.size > pos ? this.size : pos;
      if (res.stop === ScanStop.End || res.stop === ScanStop.TableFull) continue;
      if (res.stop === ScanStop.Incomplete) {
        // Either the batch continues past this chunk (read again from its
        // start, with a buffer large enough) or the file ends inside it.
        const h = this.peekHeader(pos, fileSize);
        if (h && h.magic === 2 && h.size >= BATCH_HEADER_SIZE && h.size <= maxSize && pos + h.size <= fileSize) {
          buf.ensure(h.size);
          continue;
        }
        if (resync(pos, 'invalid batch (length, magic or CRC)')) continue;
        problem = { position: pos, reason: 'incomplete batch at the end of the log (torn write)', offset: this.nextOffset };
        break;
      }
      const reason = SCAN_STOP_NAMES[res.stop] ?? 'invalid batch';
      if (resync(pos, reason)) continue;
      problem = { position: pos, reason, offset: this.nextOffset };
      break;
    }
    if (this.closed && this.maxTimestamp >= 0) this.seal();
    const result: RecoveryResult = { validBytes: this.size, truncatedBytes: fileSize - this.size, batches, problem, fileBytes: fileSize };
    if (damaged.length > 0) result.damaged = damaged;
    return result;
  }

  /**
   * Position of the batch after a damaged one at `at`, found by its length
   * field, when a whole batch that passes its CRC with offsets after
   * nextOffset - 1 starts there; -1 otherwise (a torn tail never qualifies).
   */
  private resyncAfter(scanner: BatchScanner, buf: WasmBuffer, at: number, fileSize: number, maxSize: number): number {
    const h = this.peekHeader(at, fileSize);
    if (!h || h.size < BATCH_HEADER_SIZE || h.size > maxSize || at + h.size >= fileSize) return -1;
    const q = at + h.size;
    const n = this.peekHeader(q, fileSize);
    if (!n || n.magic !== 2 || n.size < BATCH_HEADER_SIZE || n.size > maxSize || q + n.size > fileSize) return -1;
    buf.ensure(n.size);
    if (this.readInto(buf.ptr, n.size, q) < n.size) return -1;
    const res = scanner.scan(buf.ptr, n.size, { maxBatchBytes: maxSize, positionBase: q });
    if (res.batches.length !== 1 || res.batches[0]!.baseOffset < this.nextOffset) return -1;
    return q;
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
