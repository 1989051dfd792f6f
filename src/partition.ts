// A partition: an append-only log of segments in <store>/<topic>-<n>/.
//
// Writes: append() validates every record first (nothing is written when any
// is bad), frames batches in wasm memory, stamps offsets and writes them from
// that memory. Reads: read() is an async iterator over CRC-checked batches,
// read straight into wasm memory. Durability: flush() fdatasyncs every dirty
// segment (group commit: concurrent calls share one flush) and then records
// the recovery point. Recovery: see docs/log.md.

import * as path from 'node:path';
import { Kernels, WasmBuffer } from './kernels.js';
import { BatchIngest, MAX_APPEND_BATCHES_BYTES } from './batch_ingest.js';
import { Storage } from './storage.js';
import { LogSegment, parseSegmentFileName, segmentFileName, LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX, RecoveryResult, MAX_READ_BATCH_BYTES } from './log_segment.js';
import { RecordBatchEncoder, RecordBatchDecoder, BatchScanner, ScanStop, SCAN_STOP_NAMES, stampBaseOffset,
  BATCH_HEADER_SIZE, LOG_OVERHEAD, ATTR_CONTROL, RecordBatchView, BatchLayoutTables, ViewScratch,
  ATTR_CODEC_MASK, CODEC_NONE } from './record_batch.js';
import { RecordInput, StoredRecord, NormalizedRecord, normalizeRecord } from './record.js';
import { TopicConfig } from './topic_config.js';
import { ClosedError, CorruptionError, InvalidArgumentError, ObjectStoreError, OffsetOutOfRangeError, ReadOnlyError, RecordTooLargeError } from './errors.js';

export const CLEAN_SHUTDOWN_FILE = '.clean-shutdown';
export const RECOVERY_POINT_FILE = 'recovery-point';
/** A compacted segment being swapped in (see replaceSegment). */
export const SWAP_SUFFIX = '.swap';
const DELETED_SUFFIX = '.deleted';
/** How long a segment replaced by compaction stays open for reads already using it (Kafka's file.delete.delay.ms). */
const RETIRED_CLOSE_MS = 60_000;
/** Closed segments whose indexes stay in memory (least recently used ones are unloaded). */
export const MAX_LOADED_CLOSED_INDEXES = 16;
/** Largest number of records in one append call. */
export const MAX_RECORDS_PER_APPEND = 1_000_000;
/** Bytes read per chunk when reading a segment: the first read is small (point reads), later ones grow. */
const FIRST_READ_CHUNK = 64 * 1024;
const READ_CHUNK = 1 << 20;
/** Read contexts kept for reuse per partition. */
const READ_POOL_MAX = 4;



interface ReadContext { buf: WasmBuffer; scanner: BatchScanner; decoder: RecordBatchDecoder; scratch: ViewScratch | null; ahead: WasmBuffer | null }

/** A chunk read off the thread into a read context's second buffer (Partition.readSegmentFrom). */
interface ReadAhead { position: number; want: number; region: WasmBuffer; memory: ArrayBuffer; done: Promise<number> }

/**
 * Bytes of whole batches at the start of [ptr, ptr + got) of wasm memory (the
 * file from position), by their length fields, checked only for sanity (the
 * scan verifies everything). next: the size of the batch after them when it
 * is sane and did not fit (0 otherwise). When the first batch's header is not
 * sane, length is got, so that the scan reports the damage where it is.
 * records: the sum of those batches' record counts (unverified: only a hint
 * of whether a read ahead is worth issuing).
 */
function wholeBatches(u8: Uint8Array, ptr: number, got: number, position: number, end: number, maxBatch: number): { length: number; next: number; records: number } {
  let q = 0;
  let records = 0;
  while (q + LOG_OVERHEAD <= got) {
    const at = ptr + q + 8;
    const size = ((u8[at]! << 24) | (u8[at + 1]! << 16) | (u8[at + 2]! << 8) | u8[at + 3]!) + LOG_OVERHEAD;
    if (size < BATCH_HEADER_SIZE || size > maxBatch || position + q + size > end) return { length: q === 0 ? got : q, next: 0, records };
    if (q + size > got) return { length: q, next: size, records };
    const rc = ptr + q + BATCH_HEADER_SIZE - 4;
    records += ((u8[rc]! << 24) | (u8[rc + 1]! << 16) | (u8[rc + 2]! << 8) | u8[rc + 3]!) >>> 0;
    q += size;
  }
  return { length: q === 0 ? got : q, next: 0, records };
}

export interface AppendResult {
  /** Offset of the first record written (logEndOffset before the call when nothing was written). */
  baseOffset: number;
  /** Offset of the last record written (baseOffset - 1 when nothing was written). */
  lastOffset: number;
  /** Records written. */
  count: number;
  /** Indexes (into the input) of records dropped as duplicates (dedup topics). */
  dropped: number[];
  /** Offset of each input record, or -1 for a dropped one. */
  offsets: number[];
}

/** Result of Partition.appendBatches / appendBatchesSync. */
export interface BatchesAppendResult {
  /** Offset of the first record written (logEndOffset before the call when nothing was written). */
  baseOffset: number;
  /** Offset of the last record written (baseOffset - 1 when nothing was written). */
  lastOffset: number;
  /** Records written. */
  count: number;
  /** Records dropped as duplicates (dedup topics). */
  dropped: number;
  /** Per input batch, in order: the offsets its written records got (count 0 and lastOffset = baseOffset - 1 when dedup dropped them all). */
  batches: { baseOffset: number; lastOffset: number; count: number }[];
}

export type ReadFrom = { offset: number } | { timestamp: number };

export interface ReadOptions {
  /** Stop after this many records. */
  maxRecords?: number;
  /** Stop once this many key + value + header bytes were returned (at least one record is). */
  maxBytes?: number;
  /** Wait for new records at the end instead of finishing. */
  tail?: boolean;
  /** 'appended' (default): every complete batch; 'flushed': only up to the high watermark. */
  isolation?: 'appended' | 'flushed';
  /** Ends a tailing read. */
  signal?: AbortSignal;
}

/** Options of Partition.readViews. */
export interface ViewReadOptions extends ReadOptions {
  /**
   * Reuse one set of JS buffers for every view instead of giving each view
   * its own copy: a view then lasts only until the iterator's next step (or
   * its end). A superseded view's accessors throw ClosedError, and keys,
   * values and header values taken from it change under the holder, so copy
   * what must outlive the step. Saves an allocation (and its page faults)
   * per batch. Default false: views own their bytes.
   */
  reuseBuffers?: boolean;
}

/** Decides, before offsets are assigned, which records to keep (dedup). */
export interface AppendFilter {
  /** Returns, for each record, true to keep it. Called once per append with all its records. */
  filter(records: readonly NormalizedRecord[]): boolean[];
  /**
   * Optional: filter() for records the partition has already framed as one
   * batch at [ptr, ptr + size) of k's memory (same records, same order), so
   * the filter can read them in place; layout is the encoder's tables for
   * that batch. Returns null when every record is kept (that batch is then
   * written as it is), otherwise the keep flags.
   */
  filterEncoded?(records: readonly NormalizedRecord[], k: Kernels, ptr: number, size: number, layout?: BatchLayoutTables): boolean[] | null;
  /**
   * Optional, with filterEncoded: false when filter() (before framing) is
   * likely cheaper for the next append, e.g. because records were just
   * dropped (filterEncoded then costs a second framing of the kept ones).
   * Only a choice of path: both must decide alike.
   */
  preferEncoded?(): boolean;
  /** Called after the kept records were written, with their offsets. */
  committed?(records: readonly NormalizedRecord[], offsets: readonly number[]): void;
  /** Called when writing failed after filter(): the filter must forget what it admitted. */
  aborted?(): void;
  /** Called when the partition closes: release resources (e.g. wasm memory). */
  close?(): void;
}

/** Reads below the local log start (tiered storage). */
export interface RemoteLogReader {
  /** First offset held remotely, or null when nothing is. */
  logStartOffset(): number | null;
  /** Records from offset up to (not including) localStart. */
  read(offset: number, localStart: number, opts: ReadOptions): AsyncIterable<StoredRecord>;
  /** The same records in chunks (one per batch): used instead of read() when present (fewer awaits). */
  readChunks?(offset: number, localStart: number, opts: ReadOptions): AsyncIterable<StoredRecord[]>;
  /** The same records as batch views (each owning its bytes): used before readChunks and read() when present. */
  readViews?(offset: number, localStart: number, opts: ReadOptions): AsyncIterable<RecordBatchView>;
  /** First offset whose record timestamp is >= ts among remote data, or null. */
  offsetForTimestamp?(ts: number): Promise<number | null>;
}

export interface PartitionOptions {
  k: Kernels;
  storage: Storage;
  dir: string;
  topic: string;
  id: number;
  config: TopicConfig;
  readOnly: boolean;
  /** Progress callback for long recoveries. */
  onRecovery?: (e: { partition: string; segment: number; result: RecoveryResult }) => void;
}

export interface PartitionStats {
  logStartOffset: number;
  logEndOffset: number;
  highWatermark: number;
  segments: number;
  sizeBytes: number;
}

export class Partition {
  readonly topic: string;
  readonly id: number;
  readonly dir: string;
  readonly readOnly: boolean;
  config: TopicConfig;
  /** Segments in offset order; the last is active. */
  segments: LogSegment[] = [];
  appendFilter: AppendFilter | null = null;
  private lastBatch: { segment: LogSegment; position: number; size: number; baseOffset: number; count: number } | null = null;
  remote: RemoteLogReader | null = null;
  /** Return false to keep a closed segment that retention would delete (e.g. not yet uploaded). */
  retentionGuard: ((seg: LogSegment) => boolean) | null = null;
  /** Called after a segment is sealed by a roll. */
  onRoll: ((seg: LogSegment) => void) | null = null;
  /** Called before every append; throws to refuse it (tiered storage backpressure). */
  appendGuard: (() => void) | null = null;
  /** What the last open's recovery found, per segment base offset. */
  readonly recoveryReport: { baseOffset: number; result: RecoveryResult }[] = [];
  private readonly k: Kernels;
  private readonly storage: Storage;
  private readonly encoder: RecordBatchEncoder;
  private readonly writeBuf: WasmBuffer;
  private ingest: BatchIngest | null = null;
  private _highWatermark = 0;
  private unflushedRecords = 0;
  private dirDirty = false;
  private queuedFlush: Promise<void> | null = null;
  private runningFlush: Promise<void> | null = null;
  private flushTimer: ReturnType<typeof setInterval> | null = null;
  private waiters: (() => void)[] = [];
  /** Scratch for reads (wasm buffer, scanner, decoder), reused across read() calls. */
  private readPool: ReadContext[] = [];
  private closed = false;
  /** close() has started: appends are refused from then on. */
  private closing = false;
  private failed: Error | null = null;
  /** The last recovery point known to be durable (-1: none). */
  private durableRecoveryPoint = -1;
  /** Closed segments whose indexes are loaded, least recently used first. */
  private readonly indexLru: LogSegment[] = [];
  /** Segments replaced by compaction, kept open for reads already using them (closed with the partition). */
  private readonly retired: { seg: LogSegment; at: number }[] = [];

  private constructor(o: PartitionOptions) {
    this.k = o.k;
    this.storage = o.storage;
    this.dir = o.dir;
    this.topic = o.topic;
    this.id = o.id;
    this.config = o.config;
    this.readOnly = o.readOnly;
    this.encoder = new RecordBatchEncoder(o.k);
    this.writeBuf = new WasmBuffer(o.k, 64 * 1024);
  }

  get name(): string { return `${this.topic}-${this.id}`; }
  get active(): LogSegment { return this.segments[this.segments.length - 1]!; }
  /** First offset held locally. */
  get localLogStartOffset(): number { return this.segments[0]!.baseOffset; }
  /** First readable offset, including remote (tiered) data. */
  get logStartOffset(): number {
    const r = this.remote?.logStartOffset();
    return r !== null && r !== undefined ? Math.min(r, this.localLogStartOffset) : this.localLogStartOffset;
  }
  /** Offset the next appended record gets. */
  get logEndOffset(): number { return this.active.nextOffset; }
  /** One past the last offset known durable (covered by a completed flush). */
  get highWatermark(): number { return this._highWatermark; }
  get sizeBytes(): number { return this.segments.reduce((n, s) => n + s.size, 0); }

  stats(): PartitionStats {
    return { logStartOffset: this.logStartOffset, logEndOffset: this.logEndOffset, highWatermark: this.highWatermark, segments: this.segments.length, sizeBytes: this.sizeBytes };
  }

  // --- open and recovery -----------------------------------------------------

  static async open(o: PartitionOptions): Promise<Partition> {
    const p = new Partition(o);
    await p.load(o.onRecovery);
    if (!p.readOnly && p.config.flushMs > 0) {
      p.flushTimer = setInterval(() => { if (p.unflushedRecords > 0 || p.dirDirty) p.flush().catch((e) => { p.failed ??= e; }); }, p.config.flushMs);
      p.flushTimer.unref?.();
    }
    return p;
  }

  private settings() {
    return {
      indexIntervalBytes: this.config.indexIntervalBytes,
      maxBatchBytes: Math.max(this.config.maxMessageBytes, 1 << 20),
      contiguousOffsets: this.config.cleanupPolicy === 'delete',
    };
  }

  private async load(onRecovery?: PartitionOptions['onRecovery']): Promise<void> {
    const st = this.storage;
    if (!this.readOnly && !st.isDirectory(this.dir)) {
      // A new partition: its directory entry must be durable before anything in it is.
      st.mkdirp(this.dir);
      await st.syncDir(path.dirname(this.dir));
    }
    if (!this.readOnly) this.finishSwaps();
    const names = st.list(this.dir);
    const bases: number[] = [];
    for (const n of names) {
      if (n.endsWith('.deleted') || n.endsWith('.cleaned') || n.endsWith('.tmp')) {
        if (!this.readOnly) { st.remove(path.join(this.dir, n)); this.dirDirty = true; }
        continue;
      }
      const b = parseSegmentFileName(n, LOG_SUFFIX);
      if (b !== null) bases.push(b);
    }
    bases.sort((a, b) => a - b);
    // Index files with no log are leftovers of a deletion cut short.
    if (!this.readOnly) {
      const set = new Set(bases);
      for (const n of names) {
        const b = parseSegmentFileName(n, INDEX_SUFFIX) ?? parseSegmentFileName(n, TIME_INDEX_SUFFIX);
        if (b !== null && !set.has(b)) { st.remove(path.join(this.dir, n)); this.dirDirty = true; }
      }
    }
    const cleanPath = path.join(this.dir, CLEAN_SHUTDOWN_FILE);
    const clean = st.exists(cleanPath);
    const recoveryPoint = this.readRecoveryPoint();
    // No recovery point at all: a directory adopted from Kafka (or never
    // flushed). Nothing says which data was unflushed, so damage found in a
    // closed segment is kept and reported instead of cutting the log there.
    const adopted = !st.exists(path.join(this.dir, RECOVERY_POINT_FILE));
    if (clean && !this.readOnly) {
      // From now on a crash must trigger recovery: the marker goes first, durably.
      st.remove(cleanPath);
      await st.syncDir(this.dir);
    }
    const scanner = new BatchScanner(this.k);
    const buf = new WasmBuffer(this.k, 1 << 20);
    try {
      for (let i = 0; i < bases.length; i++) {
        const base = bases[i]!;
        const seg = LogSegment.open(this.k, st, this.dir, base, this.settings(), !this.readOnly);
        const isLast = i === bases.length - 1;
        const nextBase = isLast ? undefined : bases[i + 1]!;
        // Segments wholly below the recovery point were flushed: trust them.
        const flushed = nextBase !== undefined && nextBase <= recoveryPoint;
        let needScan = !(clean || flushed);
        if (!needScan) {
          if (isLast) {
            if (!seg.loadTail()) needScan = true;
          } else {
            seg.nextOffset = nextBase!;
            seg.closed = true;
            // Indexes of closed segments load lazily; the time index's last entry gives maxTimestamp.
            seg.loadClosedSummary();
          }
        }
        if (needScan) {
          if (!isLast) seg.closed = true;
          // Damage in data below the recovery point (or anywhere in an adopted
          // directory) is stepped over when valid batches follow it.
          const result = seg.scanAndIndex(scanner, buf, adopted ? Infinity : recoveryPoint);
          if (!this.readOnly) seg.dirty = true; // the rebuilt indexes (and a crash survivor's page cache) get synced below
          // What the scan could not recover: from the first bad batch, or
          // from a gap before the next segment (data lost in a crash).
          const lostFrom = result.problem ? (result.problem.offset ?? seg.nextOffset)
            : !isLast && seg.nextOffset < nextBase! && this.config.cleanupPolicy === 'delete' ? seg.nextOffset : -1;
          // Damage in flushed data (below the recovery point) is never a
          // crash artifact: keep it and let reads report it. Damage after it
          // is an unflushed tail: cut there, and (as Kafka does) drop every
          // later segment, which can only hold unflushed data too.
          const cut = lostFrom >= 0 && !this.readOnly && (isLast || (!adopted && lostFrom >= recoveryPoint));
          if (cut) {
            seg.dropInvalidTail(result);
          } else if (result.problem && !isLast) {
            seg.keepDamaged(result);
          }
          if (!isLast) seg.seal();
          this.recoveryReport.push({ baseOffset: base, result });
          onRecovery?.({ partition: this.name, segment: base, result });
          if (!isLast && (seg.nextOffset < nextBase! || result.problem)) {
            if (cut) {
              for (let j = i + 1; j < bases.length; j++) {
                const later = LogSegment.open(this.k, st, this.dir, bases[j]!, this.settings(), true);
                later.delete();
              }
              this.dirDirty = true;
              this.segments.push(seg);
              seg.closed = false;
              break;
            }
            // Keep what follows readable; a damaged range surfaces as a CorruptionError when read.
            seg.nextOffset = Math.max(seg.nextOffset, nextBase!);
          }
        }
        if (!isLast) seg.closed = true;
        this.segments.push(seg);
      }
    } finally {
      buf.free();
      scanner.free();
    }
    if (this.segments.length === 0) {
      if (this.readOnly) throw new InvalidArgumentError(`partition ${this.dir} has no segments`);
      this.segments.push(LogSegment.create(this.k, st, this.dir, Math.max(0, recoveryPoint), this.settings()));
      this.dirDirty = true;
    }
    const act = this.active;
    act.closed = false;
    if (!this.readOnly) {
      act.index.openForWrite();
      act.timeIndex.openForWrite();
      // What recovery kept may sit only in the page cache (a process crash
      // leaves it there): make it durable before calling it flushed, and
      // move the recovery point to it (it may be past the end after a cut).
      await Promise.all(this.segments.filter((s) => s.dirty).map((s) => s.datasync().then(() => { s.dirty = false; })));
      if (this.dirDirty) { await st.syncDir(this.dir); this.dirDirty = false; }
      if (recoveryPoint !== this.logEndOffset || adopted) await this.writeRecoveryPoint(this.logEndOffset, true);
    }
    // Closed segments' indexes load again when a lookup needs them (memory stays bounded, see useIndexes).
    for (const s of this.segments) if (s.closed) { s.index.unload(); s.timeIndex.unload(); }
    this._highWatermark = this.logEndOffset;
  }

  private readRecoveryPoint(): number {
    const raw = this.storage.readFile(path.join(this.dir, RECOVERY_POINT_FILE));
    if (!raw) return 0;
    try {
      const v = JSON.parse(new TextDecoder().decode(raw)) as { offset?: unknown };
      return typeof v.offset === 'number' && Number.isSafeInteger(v.offset) && v.offset >= 0 ? v.offset : 0;
    } catch {
      return 0; // a torn checkpoint only means more recovery
    }
  }

  // --- append ------------------------------------------------------------------

  private checkWritable(): void {
    if (this.closed || this.closing) throw new ClosedError(`partition ${this.name}`);
    if (this.readOnly) throw new ReadOnlyError(`partition ${this.name}`);
    if (this.failed) throw this.failed;
  }

  /**
   * Appends records, assigning contiguous offsets. Every record is validated
   * before anything is written. Records are split into batches of at most
   * maxMessageBytes; a record that cannot fit in one batch is refused.
   */
  async append(records: readonly RecordInput[]): Promise<AppendResult> {
    const result = this.appendSync(records);
    if (this.config.flushMessages > 0 && this.unflushedRecords >= this.config.flushMessages) await this.flush();
    return result;
  }

  /** append() without the flush-policy wait (for callers that batch their own flushes). */
  appendSync(records: readonly RecordInput[]): AppendResult {
    this.checkWritable();
    this.appendGuard?.();
    if (!Array.isArray(records)) throw new InvalidArgumentError('append takes an array of records');
    if (records.length > MAX_RECORDS_PER_APPEND) throw new InvalidArgumentError(`at most ${MAX_RECORDS_PER_APPEND} records per append`);
    const now = Date.now();
    const limit = this.config.maxMessageBytes;
    const n = records.length;
    const norm: NormalizedRecord[] = new Array(n);
    // Framed-size bound of each record (without the batch header), for the limit and the split.
    const bounds: number[] = new Array(n);
    let total = 0;
    for (let i = 0; i < n; i++) {
      const r = normalizeRecord(records[i], i, now);
      // Kafka refuses negative timestamps too; the time index and retention rely on it.
      if (r.timestamp < 0) throw new InvalidArgumentError(`record ${i} timestamp ${r.timestamp} is negative`);
      const bound = RecordBatchEncoder.recordBound(r);
      if (bound + BATCH_HEADER_SIZE > limit) throw new RecordTooLargeError(bound + BATCH_HEADER_SIZE, limit, `record ${i} (framed)`);
      norm[i] = r;
      bounds[i] = bound;
      total += bound;
    }
    let keep: boolean[] | null = null;
    // Size of the batch of all of norm already framed in writeBuf, or -1.
    let framed = -1;
    const filter = this.appendFilter;
    if (filter && n > 0) {
      if (filter.filterEncoded && filter.preferEncoded?.() !== false && BATCH_HEADER_SIZE + total <= limit) {
        // Frame first so the filter reads the records in place; the kept ones are framed again only when some are dropped.
        const size = this.encoder.encode(norm, this.writeBuf, 0);
        keep = filter.filterEncoded(norm, this.k, this.writeBuf.ptr, size, this.encoder.lastLayout());
        if (keep === null) framed = size;
      } else keep = filter.filter(norm);
    }
    let kept: NormalizedRecord[] = norm;
    let keptBounds = bounds;
    const dropped: number[] = [];
    const offsets: number[] = new Array(n);
    if (keep) {
      kept = [];
      keptBounds = [];
      total = 0;
      for (let i = 0; i < n; i++) {
        if (!keep[i]) { dropped.push(i); offsets[i] = -1; } else { kept.push(norm[i]!); keptBounds.push(bounds[i]!); total += bounds[i]!; }
      }
    }
    const baseOffset = this.logEndOffset;
    if (baseOffset + kept.length > Number.MAX_SAFE_INTEGER) {
      this.appendFilter?.aborted?.();
      throw new InvalidArgumentError(`offsets would pass 2^53 - 1 (logEndOffset ${baseOffset})`);
    }
    try {
      if (framed >= 0) this.writeFramed(norm, framed);
      else if (kept.length > 0 && BATCH_HEADER_SIZE + total <= limit) this.writeBatch(kept);
      else {
        let start = 0;
        while (start < kept.length) {
          // Greedy split by the encoder's size bound.
          let end = start;
          let bound = BATCH_HEADER_SIZE;
          while (end < kept.length) {
            const b = keptBounds[end]!;
            if (end > start && bound + b > limit) break;
            bound += b;
            end++;
          }
          this.writeBatch(kept.slice(start, end));
          start = end;
        }
      }
    } catch (err) {
      this.appendFilter?.aborted?.();
      // A failed write leaves the file in an unknown state: refuse further writes until reopened (recovery fixes it).
      this.failed = err as Error;
      throw err;
    }
    let o = baseOffset;
    for (let i = 0; i < n; i++) if (offsets[i] !== -1) offsets[i] = o++;
    if (kept.length > 0 && this.appendFilter?.committed) this.appendFilter.committed(kept, offsets.filter((x) => x >= 0));
    this.unflushedRecords += kept.length;
    this.notify();
    return { baseOffset, lastOffset: baseOffset + kept.length - 1, count: kept.length, dropped, offsets };
  }

  private writeBatch(batch: NormalizedRecord[]): void {
    this.writeFramed(batch, this.encoder.encode(batch, this.writeBuf, 0));
  }

  /** Writes the batch of these records that the encoder just framed in writeBuf (size bytes). */
  private writeFramed(batch: NormalizedRecord[], size: number): void {
    let maxTs = batch[0]!.timestamp;
    for (let i = 1; i < batch.length; i++) if (batch[i]!.timestamp > maxTs) maxTs = batch[i]!.timestamp;
    this.lastBatch = this.writeFramedAt(this.writeBuf.ptr, size, batch.length, maxTs);
  }

  /**
   * Writes one framed, validated batch of `count` contiguous records at
   * [ptr, ptr + size) of wasm memory: rolls when due, stamps its base offset
   * (outside the CRC) and appends it to the active segment with its index
   * entries. Shared by appendSync and appendBatchesSync.
   */
  private writeFramedAt(ptr: number, size: number, count: number, maxTs: number): { segment: LogSegment; position: number; size: number; baseOffset: number; count: number } {
    let seg = this.active;
    if (this.shouldRoll(seg, size, maxTs, count)) seg = this.roll();
    const baseOffset = seg.nextOffset;
    stampBaseOffset(this.k, ptr, baseOffset);
    // Like Kafka's time index, the offset recorded with a max timestamp is the
    // last offset of its batch (what a rebuild from batch headers gives too).
    const lastOffset = baseOffset + count - 1;
    const position = seg.size;
    seg.append(ptr, { size, baseOffset, lastOffset, maxTimestamp: maxTs, offsetOfMaxTimestamp: lastOffset });
    return { segment: seg, position, size, baseOffset, count };
  }

  // --- append of pre-framed batches (the Kafka produce path) --------------------

  /**
   * Appends RecordBatch v2 batches that are already framed (the Kafka produce
   * path): `bytes` holds one or more concatenated batches, as a Kafka client
   * sends them, as RecordBatchEncoder makes them, or as read from another
   * partition or a Kafka `.log` file. Nothing is re-encoded: the bytes are
   * copied into wasm memory once, every batch is validated, each gets its
   * base offset stamped in place (bytes 0..7, outside the CRC) and is written
   * as it is through the same roll, index and flush machinery as appendSync.
   *
   * Validation, all before anything is written (all-or-nothing for the call):
   * length bounds, magic 2, CRC-32C, a header consistent with its records
   * (lastOffsetDelta = recordCount - 1, offset deltas 0..count-1, maxTimestamp
   * = the largest record timestamp unless the batch uses log-append time),
   * every record's framing, timestamps >= 0, size <= maxMessageBytes, and no
   * trailing bytes. Refused with typed errors: CorruptionError (damaged,
   * truncated or inconsistent bytes, trailing garbage, gzip data that does not
   * inflate), RecordTooLargeError (a batch over maxMessageBytes, or the call
   * over MAX_APPEND_BATCHES_BYTES), UnsupportedCodecError (snappy, lz4, zstd),
   * InvalidArgumentError (transactional or control batches, unknown attribute
   * bits, negative timestamps). gzip batches are inflated to check their
   * records and stored compressed, as sent. The base offsets in the input are
   * ignored (overwritten); producer id, epoch, sequence and the leader epoch
   * are kept as sent and not checked (no idempotent-producer dedup). The
   * caller's `bytes` are never modified.
   *
   * Dedup topics: every batch's records go through the topic's dedup before
   * offsets are assigned; a batch that loses records is re-encoded from the
   * kept ones (uncompressed, without producer id), one that keeps all is
   * written as sent. After this call lastBatchLayout() returns null.
   */
  appendBatchesSync(bytes: Uint8Array): BatchesAppendResult {
    this.checkWritable();
    this.appendGuard?.();
    if (!(bytes instanceof Uint8Array)) throw new InvalidArgumentError('appendBatches takes a Uint8Array of concatenated RecordBatch v2 batches');
    if (bytes.length > MAX_APPEND_BATCHES_BYTES) throw new RecordTooLargeError(bytes.length, MAX_APPEND_BATCHES_BYTES, 'appendBatches input');
    const startOffset = this.logEndOffset;
    if (bytes.length === 0) return { baseOffset: startOffset, lastOffset: startOffset - 1, count: 0, dropped: 0, batches: [] };
    const k = this.k;
    const ing = this.ingest ??= new BatchIngest(k);
    try {
      const filter = this.appendFilter;
      // With a dedup filter: each batch's records too.
      const { ptr, infos, records } = ing.validate(bytes, this.config.maxMessageBytes, filter !== null);
      let total = 0;
      for (const info of infos) total += info.recordCount;
      if (startOffset + total > Number.MAX_SAFE_INTEGER) throw new InvalidArgumentError(`offsets would pass 2^53 - 1 (logEndOffset ${startOffset})`);
      // Dedup decisions, once every batch is known valid: null keeps a batch whole.
      const kept: (NormalizedRecord[] | null)[] = new Array(infos.length).fill(null);
      let dropped = 0;
      if (filter && records) {
        let b = 0;
        try {
          for (; b < infos.length; b++) {
            const info = infos[b]!;
            const recs = records[b]!;
            const keep = filter.filterEncoded && (info.attributes & ATTR_CODEC_MASK) === CODEC_NONE
              ? filter.filterEncoded(recs, k, ptr + info.position, info.size)
              : filter.filter(recs);
            if (keep === null || keep.every((x) => x)) continue;
            const list: NormalizedRecord[] = [];
            for (let i = 0; i < recs.length; i++) if (keep[i]) list.push(recs[i]!);
            dropped += recs.length - list.length;
            kept[b] = list;
          }
        } catch (err) {
          // Batches filtered before the failure are in the window but will never be written.
          if (b > 0) filter.aborted?.();
          throw err;
        }
      }
      const batches: { baseOffset: number; lastOffset: number; count: number }[] = new Array(infos.length);
      try {
        for (let b = 0; b < infos.length; b++) {
          const info = infos[b]!;
          const list = kept[b];
          const first = this.logEndOffset;
          if (list === null) this.writeFramedAt(ptr + info.position, info.size, info.recordCount, info.maxTimestamp);
          else this.writeRecords(list);
          const n = this.logEndOffset - first;
          batches[b] = { baseOffset: first, lastOffset: first + n - 1, count: n };
        }
      } catch (err) {
        filter?.aborted?.();
        // A failed write leaves the file in an unknown state: refuse further writes until reopened (recovery fixes it).
        this.failed = err as Error;
        throw err;
      } finally {
        this.lastBatch = null;
      }
      const count = this.logEndOffset - startOffset;
      if (filter?.committed && records) {
        const all: NormalizedRecord[] = [];
        const offsets: number[] = [];
        for (let b = 0; b < infos.length; b++) {
          const list = kept[b] ?? records[b]!;
          for (let i = 0; i < list.length; i++) { all.push(list[i]!); offsets.push(batches[b]!.baseOffset + i); }
        }
        if (all.length > 0) filter.committed(all, offsets);
      }
      this.unflushedRecords += count;
      if (count > 0) this.notify();
      return { baseOffset: startOffset, lastOffset: startOffset + count - 1, count, dropped, batches };
    } finally {
      if (ing.trim()) this.ingest = null;
    }
  }

  /** appendBatchesSync() under append()'s flush policy (resolves after the flush when flushMessages is reached). */
  async appendBatches(bytes: Uint8Array): Promise<BatchesAppendResult> {
    const result = this.appendBatchesSync(bytes);
    if (this.config.flushMessages > 0 && this.unflushedRecords >= this.config.flushMessages) await this.flush();
    return result;
  }

  /** Writes records (already validated and filtered) in batches of at most maxMessageBytes. */
  private writeRecords(list: NormalizedRecord[]): void {
    const limit = this.config.maxMessageBytes;
    let start = 0;
    while (start < list.length) {
      let end = start;
      let bound = BATCH_HEADER_SIZE;
      while (end < list.length) {
        const b = RecordBatchEncoder.recordBound(list[end]!);
        if (end > start && bound + b > limit) break;
        bound += b;
        end++;
      }
      this.writeBatch(list.slice(start, end));
      start = end;
    }
  }

  /**
   * Where the last batch appendSync wrote lies: its segment, file position,
   * size and base offset, and each record's value position relative to the
   * batch start (from the encoder). For callers that index values by file
   * position (the KV store). Valid until the next append; null before one.
   */
  lastBatchLayout(): { segment: LogSegment; position: number; size: number; baseOffset: number; count: number; valuePositions: Int32Array } | null {
    const b = this.lastBatch;
    return b ? { ...b, valuePositions: this.encoder.lastValuePositions() } : null;
  }

  private shouldRoll(seg: LogSegment, size: number, maxTs: number, n: number): boolean {
    if (seg.size === 0) return false;
    if (seg.size + size > this.config.segmentBytes) return true;
    if (seg.rollTimestamp >= 0 && maxTs - seg.rollTimestamp > this.config.segmentMs) return true;
    if (seg.nextOffset + n - seg.baseOffset > 0xffffffff) return true;
    return false;
  }

  /** Seals the active segment and starts a new one at logEndOffset. */
  roll(): LogSegment {
    const old = this.active;
    old.seal();
    const seg = LogSegment.create(this.k, this.storage, this.dir, old.nextOffset, this.settings());
    this.segments.push(seg);
    this.dirDirty = true;
    this.useIndexes(old);
    this.onRoll?.(old);
    return seg;
  }

  private notify(): void {
    const w = this.waiters;
    if (w.length === 0) return;
    this.waiters = [];
    for (const f of w) f();
  }

  private waitForChange(signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal?.aborted) return resolve();
      const done = () => { signal?.removeEventListener('abort', done); resolve(); };
      this.waiters.push(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  // --- durability --------------------------------------------------------------

  /**
   * Makes every record appended before the call durable: fdatasync of each
   * dirty segment's log and indexes, then the partition directory when
   * segments were created. Concurrent calls share flushes (group commit).
   */
  flush(): Promise<void> {
    if (this.readOnly || this.closed) return Promise.resolve();
    // After a failed write or fsync nothing more can be promised durable (until reopened).
    if (this.failed) return Promise.reject(this.failed);
    if (this.queuedFlush) return this.queuedFlush;
    const prev = this.runningFlush ?? Promise.resolve();
    const p: Promise<void> = prev.catch(() => undefined).then(async () => {
      this.queuedFlush = null;
      this.runningFlush = p;
      await this.doFlush();
    }).finally(() => { if (this.runningFlush === p) this.runningFlush = null; });
    this.queuedFlush = p;
    return p;
  }

  private async doFlush(): Promise<void> {
    const end = this.logEndOffset;
    const dirty = this.segments.filter((s) => s.dirty && !s.deleted);
    for (const s of dirty) s.dirty = false;
    const dirDirty = this.dirDirty;
    this.dirDirty = false;
    const flushedRecords = this.unflushedRecords;
    try {
      // A segment deleted by retention meanwhile needs no sync (its handles are closed under the call).
      await Promise.all(dirty.map((s) => s.datasync().catch((e) => { if (!s.deleted) throw e; })));
      if (dirDirty) await this.storage.syncDir(this.dir);
      if (end > this._highWatermark) {
        // Closed segments below a durable recovery point are not rescanned
        // after a crash, so damage found in them is known not to be a torn
        // tail; the point is made durable whenever it passes a new segment.
        await this.writeRecoveryPoint(end, this.active.baseOffset > this.durableRecoveryPoint);
      }
    } catch (err) {
      // fsync failures are not retried (the kernel may have dropped the
      // dirty pages): the partition refuses writes until reopened, and the
      // reopen's recovery scan decides what survived.
      for (const s of dirty) s.dirty = true;
      this.dirDirty ||= dirDirty;
      this.failed ??= err as Error;
      throw err;
    }
    this.unflushedRecords = Math.max(0, this.unflushedRecords - flushedRecords);
    for (const s of dirty) if (s.closed && !s.deleted) { s.index.closeFile(); s.timeIndex.closeFile(); }
    if (end > this._highWatermark) {
      this._highWatermark = end;
      this.notify();
    }
  }

  /**
   * Recovery point: segments that end at or below it were flushed and need
   * no scan after a crash. Written after the data it covers is durable;
   * `durable` also fsyncs it (else losing it only means more recovery).
   */
  private async writeRecoveryPoint(offset: number, durable: boolean): Promise<void> {
    const p = path.join(this.dir, RECOVERY_POINT_FILE);
    const data = new TextEncoder().encode(JSON.stringify({ offset }) + '\n');
    if (durable) {
      await this.storage.writeFileAtomic(p, data);
      this.durableRecoveryPoint = offset;
      return;
    }
    const tmp = `${p}.tmp`;
    const h = this.storage.open(tmp, 'write');
    try { h.truncate(0); h.write(data, 0, data.length, 0); } finally { h.close(); }
    this.storage.rename(tmp, p);
  }

  // --- retention ---------------------------------------------------------------

  /**
   * Deletes closed segments from the start of the log while they are past
   * retention.ms (by their largest record timestamp) or retention.bytes.
   * Never the active segment. Returns the number deleted.
   */
  enforceRetention(now = Date.now()): number {
    if (this.readOnly || this.closed || this.config.cleanupPolicy !== 'delete') return 0;
    let deleted = 0;
    let total = this.sizeBytes;
    while (this.segments.length > 1) {
      const seg = this.segments[0]!;
      const byTime = this.config.retentionMs >= 0 && seg.maxTimestamp >= 0 && seg.maxTimestamp < now - this.config.retentionMs;
      const emptyOld = this.config.retentionMs >= 0 && seg.size === 0;
      const bySize = this.config.retentionBytes >= 0 && total - seg.size >= this.config.retentionBytes;
      if (!(byTime || bySize || emptyOld)) break;
      if (this.retentionGuard && !this.retentionGuard(seg)) break;
      this.deleteOldestSegment();
      total -= seg.size;
      deleted++;
    }
    return deleted;
  }

  // --- compaction: segment replacement -------------------------------------------

  /**
   * Replaces a closed segment with a rewritten copy (log compaction), or
   * removes it when `cleaned` is null. The copy must hold the segment's
   * batches, or a subset of their records, with offsets unchanged; it must be
   * durable (datasync'd) in this partition's directory. Crash-safe, in
   * Kafka's manner: the copy is renamed to <base>.log.swap (directory synced),
   * the old indexes are removed and the swap is renamed over <base>.log;
   * load() finishes a swap that a crash cut short. Indexes of the new segment
   * are rebuilt from its batch headers. `onSwapped` runs synchronously at the
   * moment the new segment (or its absence) becomes visible to readers. The
   * replaced segment object stays open, so reads already using it finish on
   * the old bytes; it is closed with the partition.
   */
  async replaceSegment(seg: LogSegment, cleaned: string | null, onSwapped?: (replacement: LogSegment | null) => void): Promise<LogSegment | null> {
    this.checkWritable();
    const check = () => {
      const i = this.segments.indexOf(seg);
      if (i < 0 || i === this.segments.length - 1 || !seg.closed) {
        throw new InvalidArgumentError(`segment ${seg.baseOffset} of ${this.name} is not a closed segment of the partition`);
      }
      return i;
    };
    check();
    const st = this.storage;
    if (cleaned === null) {
      const i = check();
      // A crash after this rename leaves a .deleted file (and orphan indexes), which load() removes.
      st.rename(seg.logPath, `${seg.logPath}${DELETED_SUFFIX}`);
      this.segments.splice(i, 1);
      if (i > 0) this.segments[i - 1]!.nextOffset = seg.nextOffset;
      this.retire(seg);
      onSwapped?.(null);
      st.remove(seg.index.path);
      st.remove(seg.timeIndex.path);
      st.remove(`${seg.logPath}${DELETED_SUFFIX}`);
      await st.syncDir(this.dir);
      return null;
    }
    if (path.dirname(path.resolve(cleaned)) !== path.resolve(this.dir)) throw new InvalidArgumentError(`${cleaned} is not in ${this.dir}`);
    const swap = `${seg.logPath}${SWAP_SUFFIX}`;
    st.rename(cleaned, swap);
    await st.syncDir(this.dir);
    let i: number;
    try {
      if (this.closed) throw new ClosedError(`partition ${this.name}`);
      i = check();
    } catch (err) {
      st.remove(swap);
      throw err;
    }
    st.remove(seg.index.path);
    st.remove(seg.timeIndex.path);
    st.rename(swap, seg.logPath);
    const next = LogSegment.open(this.k, st, this.dir, seg.baseOffset, this.settings(), true);
    next.closed = true;
    next.rebuildIndexes();
    next.nextOffset = seg.nextOffset;
    this.segments[i] = next;
    this.retire(seg);
    onSwapped?.(next);
    await st.syncDir(this.dir);
    return next;
  }

  /** Keeps a replaced segment open for RETIRED_CLOSE_MS (reads in flight), closing older ones. */
  private retire(seg: LogSegment): void {
    const now = Date.now();
    while (this.retired.length > 0 && now - this.retired[0]!.at > RETIRED_CLOSE_MS) this.retired.shift()!.seg.close();
    this.retired.push({ seg, at: now });
  }

  /** Completes compaction swaps cut short by a crash (see replaceSegment). */
  private finishSwaps(): void {
    const st = this.storage;
    for (const n of st.list(this.dir)) {
      if (!n.endsWith(LOG_SUFFIX + SWAP_SUFFIX)) continue;
      const base = parseSegmentFileName(n.slice(0, -SWAP_SUFFIX.length), LOG_SUFFIX);
      if (base === null) continue;
      // The swap is complete and durable; the old indexes may not match it.
      st.remove(path.join(this.dir, segmentFileName(base, INDEX_SUFFIX)));
      st.remove(path.join(this.dir, segmentFileName(base, TIME_INDEX_SUFFIX)));
      st.rename(path.join(this.dir, n), path.join(this.dir, segmentFileName(base, LOG_SUFFIX)));
      this.dirDirty = true;
    }
  }

  /** Removes the first (closed) segment; logStartOffset moves to the next one. */
  deleteOldestSegment(): LogSegment {
    if (this.segments.length < 2) throw new InvalidArgumentError('cannot delete the active segment');
    const seg = this.segments.shift()!;
    seg.delete();
    this.dirDirty = true;
    return seg;
  }

  // --- reads -------------------------------------------------------------------

  /**
   * Notes a lookup in seg's indexes: closed segments keep their indexes in
   * wasm memory only while among the MAX_LOADED_CLOSED_INDEXES most recently
   * used (a 1 GiB segment's indexes take about 5 MiB at the default interval).
   */
  private useIndexes(seg: LogSegment): void {
    if (!seg.closed) return;
    const lru = this.indexLru;
    const i = lru.indexOf(seg);
    if (i >= 0) lru.splice(i, 1);
    lru.push(seg);
    while (lru.length > MAX_LOADED_CLOSED_INDEXES) {
      const old = lru.shift()!;
      if (old.closed && !old.deleted) { old.index.unload(); old.timeIndex.unload(); }
    }
  }

  /** The segment holding offset, or undefined. */
  segmentFor(offset: number): LogSegment | undefined {
    const segs = this.segments;
    let lo = 0;
    let hi = segs.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (segs[mid]!.baseOffset <= offset) lo = mid; else hi = mid - 1;
    }
    const s = segs[lo];
    return s && s.baseOffset <= offset ? s : undefined;
  }

  /** The first offset whose record timestamp is >= ts (logEndOffset when none). */
  async offsetForTimestamp(ts: number): Promise<number> {
    if (typeof ts !== 'number' || !Number.isSafeInteger(ts)) throw new InvalidArgumentError(`timestamp must be an integer, got ${ts}`);
    if (this.remote?.offsetForTimestamp) {
      const r = await this.remote.offsetForTimestamp(ts);
      if (r !== null && r < this.localLogStartOffset) return r;
    }
    for (const seg of this.segments) {
      if (seg.maxTimestamp < ts) continue;
      this.useIndexes(seg);
      const loc = seg.locateTimestamp(ts);
      if (!loc) continue;
      const found = await this.firstAtOrAfter(seg, loc.position, loc.prevLastOffset, ts);
      if (found !== null) return found;
    }
    return this.logEndOffset;
  }

  private async firstAtOrAfter(seg: LogSegment, position: number, prevLast: number, ts: number): Promise<number | null> {
    for await (const view of this.readSegmentFrom(seg, position, 0, seg.size, Infinity, prevLast)) {
      for (let i = 0; i < view.count; i++) if (view.timestampAt(i) >= ts) return view.offsetAt(i);
    }
    return null;
  }

  /**
   * Reads records from an offset (or the first record at or after a
   * timestamp). Every batch is CRC-checked; corruption throws CorruptionError
   * naming the file and position, after the valid records before it.
   * One record per iteration; readBatches() gives the same records an array
   * at a time, readViews() a view per batch. The iterator steps through each
   * batch view without a generator step per record (records are built as
   * they are asked for); return() (a `break`) closes the read.
   */
  read(from: ReadFrom, opts: ReadOptions = {}): AsyncGenerator<StoredRecord, void, undefined> {
    return new RecordIterator(this.readViews(from, opts));
  }

  /**
   * The records read() returns, in arrays (at most one stored batch each, in
   * order, never empty), with the same options and errors: for consumers that
   * process records in bulk, without an await per record.
   */
  async *readBatches(from: ReadFrom, opts: ReadOptions = {}): AsyncGenerator<StoredRecord[], void, undefined> {
    for await (const view of this.readViews(from, opts)) yield view.toRecords();
  }

  /**
   * The records read() returns as lazy batch views (RecordBatchView: at most
   * one stored batch each, in order, never empty), with the same options and
   * errors. Every batch is CRC-checked and its records' framing validated
   * before its view is yielded; no object is built per record unless the
   * consumer asks (recordAt, iteration, toRecords). Keys and values
   * (keyAt/valueAt) are views into one copy of the batch's records that the
   * view owns: they stay valid after the iteration moves on, after wasm
   * memory grows and after the partition closes (unless opts.reuseBuffers).
   */
  async *readViews(from: ReadFrom, opts: ViewReadOptions = {}): AsyncGenerator<RecordBatchView, void, undefined> {
    if (this.closed) throw new ClosedError(`partition ${this.name}`);
    const maxRecords = opts.maxRecords ?? Infinity;
    const maxBytes = opts.maxBytes ?? Infinity;
    for (const [name, v] of [['maxRecords', maxRecords], ['maxBytes', maxBytes]] as const) {
      if (typeof v !== 'number' || !(v > 0) || (v !== Infinity && !Number.isSafeInteger(v))) {
        throw new InvalidArgumentError(`${name} must be a positive integer, got ${String(v)}`);
      }
    }
    let next: number;
    if (from && typeof from === 'object' && 'timestamp' in from) next = await this.offsetForTimestamp(from.timestamp);
    else if (from && typeof from === 'object' && 'offset' in from) {
      next = from.offset;
      if (typeof next !== 'number' || !Number.isSafeInteger(next) || next < 0) {
        throw new InvalidArgumentError(`offset must be a non-negative integer, got ${String(next)}`);
      }
    } else throw new InvalidArgumentError('read needs { offset } or { timestamp }');
    if (next < this.logStartOffset || next > this.logEndOffset) throw new OffsetOutOfRangeError(next, this.logStartOffset, this.logEndOffset);
    let records = 0;
    let bytes = 0;
    while (true) {
      if (this.closed || opts.signal?.aborted) return;
      const limit = opts.isolation === 'flushed' ? this.highWatermark : this.logEndOffset;
      if (next >= limit) {
        if (!opts.tail || opts.signal?.aborted) return;
        await this.waitForChange(opts.signal);
        continue;
      }
      let source: AsyncIterable<RecordBatchView>;
      const fromLocal = next >= this.localLogStartOffset;
      if (next < this.localLogStartOffset) {
        if (!this.remote) throw new OffsetOutOfRangeError(next, this.logStartOffset, this.logEndOffset);
        if (this.remote.readViews) source = this.remote.readViews(next, this.localLogStartOffset, opts);
        else source = viewsOf(this.remote.readChunks ? this.remote.readChunks(next, this.localLogStartOffset, opts) : chunked(this.remote.read(next, this.localLogStartOffset, opts)));
      } else {
        const seg = this.segmentFor(next);
        if (!seg) throw new OffsetOutOfRangeError(next, this.logStartOffset, this.logEndOffset);
        const end = seg.size;
        this.useIndexes(seg);
        const loc = seg.locateOffset(next, end);
        if (!loc) {
          // next is past this segment's data: continue in the following segment.
          const i = this.segments.indexOf(seg);
          const following = this.segments[i + 1];
          if (!following) { if (!opts.tail) return; await this.waitForChange(opts.signal); continue; }
          next = Math.max(next, following.baseOffset);
          continue;
        }
        source = this.readSegmentFrom(seg, loc.position, next, end, maxRecords - records, loc.prevLastOffset, opts.reuseBuffers === true);
      }
      let progressed = false;
      let stop = false;
      try {
        for await (const view of source) {
          // Offsets increase within a view: [s, e) are the records at or after
          // next and below limit, cut by maxRecords and then by maxBytes (the
          // first record is always returned).
          const s = view.indexOfOffset(next);
          let e = view.indexOfOffset(limit);
          let done = false;
          if (e < view.count) stop = true;
          if (e - s >= maxRecords - records) { e = s + (maxRecords - records); done = true; }
          if (maxBytes !== Infinity) {
            for (let i = s; i < e; i++) {
              const size = view.payloadBytesAt(i);
              if ((records > 0 || i > s) && bytes + size > maxBytes) { e = i; done = true; break; }
              bytes += size;
              if (bytes >= maxBytes) { e = i + 1; done = true; break; }
            }
          }
          if (e > s) {
            progressed = true;
            records += e - s;
            next = view.offsetAt(e - 1) + 1;
            yield view.slice(s, e);
          }
          if (done || opts.signal?.aborted) return;
          if (stop) break;
        }
      } catch (err) {
        // Remote retention moved the log start past `next` under the read
        // (manifest first, then the objects): the same error as for a local
        // read below the log start, not the missing object behind it.
        if (!fromLocal && err instanceof ObjectStoreError && err.kind === 'NotFound' && next < this.logStartOffset) {
          throw new OffsetOutOfRangeError(next, this.logStartOffset, this.logEndOffset);
        }
        throw err;
      }
      // A local segment evicted to the object store under the read: read on from the archive.
      if (fromLocal && next < this.localLogStartOffset && this.remote && !stop) continue;
      if (!progressed) {
        // [next, limit) held no visible records before the end of this source
        // (control batches, compaction gaps): move past them, never past limit.
        const seg = next >= this.localLogStartOffset ? this.segmentFor(next) : undefined;
        let target: number;
        if (next < this.localLogStartOffset) target = this.localLogStartOffset;
        else if (seg && next < seg.nextOffset) target = seg.nextOffset;
        else {
          const following = seg ? this.segments[this.segments.indexOf(seg) + 1] : undefined;
          target = following ? following.baseOffset : next;
        }
        target = Math.min(target, limit);
        if (target > next) next = target;
        else if (!opts.tail) return;
        else await this.waitForChange(opts.signal);
      }
    }
  }

  /**
   * Records of one segment from a batch position, CRC-checked, up to `end`
   * bytes (the segment's size when the read started: only complete batches),
   * yielded one batch at a time. At most `limit` records are decoded.
   * prevLast is the last offset before the batch at position (from
   * LogSegment.locateOffset): batch offsets must continue from it, exactly
   * in a 'delete' topic, which catches damage to a batch's baseOffset (the
   * CRC does not cover it).
   *
   * The file is read in chunks of whole batches (their length fields give
   * the chunk's end; the next read starts there, so a batch is never split
   * between reads) into one of two wasm buffers. While one chunk is
   * CRC-checked, decoded and handed out, the next is read ahead into the
   * other buffer off the thread when the storage can (FileHandle.readAsync):
   * a read ahead whose wasm memory grew before it was used is read again
   * (docs/wasm-boundary.md, "Read-ahead").
   */
  private async *readSegmentFrom(seg: LogSegment, position: number, minOffset: number, end: number, limit: number, prevLast: number,
    reuse = false): AsyncGenerator<RecordBatchView, void, undefined> {
    const ctx = this.takeReadContext();
    const { scanner, decoder } = ctx;
    const scratch = reuse ? (ctx.scratch ??= new ViewScratch()) : undefined;
    const maxBatch = Math.max(Math.max(this.config.maxMessageBytes, 1 << 20) + LOG_OVERHEAD, MAX_READ_BATCH_BYTES);
    const contiguous = this.config.cleanupPolicy === 'delete';
    const readAhead = seg.canReadAhead;
    const regions = readAhead ? [ctx.buf, ctx.ahead ??= new WasmBuffer(this.k, FIRST_READ_CHUNK)] : [ctx.buf];
    let expectedMin = prevLast;
    let left = limit;
    let chunk = FIRST_READ_CHUNK;
    let pending: ReadAhead | null = null;
    try {
      let pos = position;
      // Size of a batch that did not fit the last read, and the bytes of it
      // that read already holds at carryRegion.ptr (the rest is read after them).
      let need = 0;
      let carry = 0;
      let carryRegion = regions[0]!;
      while (pos < end && left > 0) {
        if (seg.deleted) {
          // Evicted to the object store under the read (tiered storage): read() goes on from there.
          if ((this.remote?.logStartOffset() ?? Infinity) <= expectedMin + 1) return;
          throw new OffsetOutOfRangeError(minOffset, this.logStartOffset, this.logEndOffset);
        }
        let region: WasmBuffer;
        let want: number;
        let got: number;
        if (pending !== null && pending.position === pos && need === 0) {
          const p: ReadAhead = pending;
          pending = null;
          region = p.region;
          want = p.want;
          got = await p.done;
          // Wasm memory grew while the read was in flight: its bytes are not
          // trusted (they landed in the memory only if it grew in place).
          if (this.k.raw.memory.buffer !== p.memory) got = seg.readInto(region.ptr, want, pos);
        } else {
          if (pending !== null) { await pending.done.catch(() => 0); pending = null; }
          region = carry > 0 ? carryRegion : regions[0]!;
          want = Math.min(Math.max(chunk, need), end - pos);
          region.ensure(want, carry);
          got = carry + seg.readInto(region.ptr + carry, want - carry, pos + carry);
          carry = 0;
        }
        if (got < want) throw new CorruptionError(`segment is shorter than expected (${pos + got} < ${end})`, { file: seg.logPath, position: pos + got, offset: expectedMin + 1 });
        chunk = Math.min(chunk * 2, READ_CHUNK);
        const { length, next, records } = wholeBatches(this.k.u8, region.ptr, got, pos, end, maxBatch);
        need = length === 0 ? next : 0;
        if (need > 0) {
          // The first batch is longer than this read: read the rest of it.
          carry = got;
          carryRegion = region;
          continue;
        }
        // Read ahead only from the second chunk on (the consumer asked for
        // more than the first) and when this chunk cannot end the read by
        // itself: point reads and reads stopped early must not pay for a read
        // they do not use.
        if (readAhead && pos > position && pos + length < end && left > records) {
          const other = regions[0] === region ? regions[1]! : regions[0]!;
          const aw = Math.min(Math.max(chunk, next), end - pos - length);
          other.ensure(aw); // allocates (may grow memory) before the read takes its view
          const done = seg.readIntoAsync(other.ptr, aw, pos + length);
          done.catch(() => 0); // awaited when used, or in finally
          pending = { position: pos + length, want: aw, region: other, memory: this.k.raw.memory.buffer, done };
          // The region of this chunk is the one a sync read would use next.
          if (regions[0] !== region) { regions[1] = regions[0]!; regions[0] = region; }
        }
        const ptr = region.ptr;
        let at = 0;
        for (;;) {
          const res = scanner.scan(ptr + at, length - at, { maxBatchBytes: maxBatch, positionBase: pos + at });
          for (const b of res.batches) {
            const last = b.baseOffset + b.lastOffsetDelta;
            // Offsets are outside the CRC: check they follow the previous batch.
            if ((contiguous ? b.baseOffset !== expectedMin + 1 : b.baseOffset <= expectedMin) || b.baseOffset < seg.baseOffset || last >= seg.nextOffset) {
              throw new CorruptionError(`batch offsets ${b.baseOffset}..${last} do not follow offset ${expectedMin}`, { file: seg.logPath, position: b.position, offset: expectedMin + 1 });
            }
            expectedMin = last;
            if (last < minOffset || (b.attributes & ATTR_CONTROL) !== 0) continue;
            const bptr = ptr + (b.position - pos);
            const vopts = { minOffset, maxRecords: left, src: { file: seg.logPath, position: b.position }, scratch };
            const view = RecordBatchDecoder.isSync(b) ? decoder.viewOf(bptr, b, vopts) : await decoder.viewOfAsync(bptr, b, vopts);
            if (view.count > 0) {
              left -= view.count;
              yield view;
              if (left <= 0) return;
            }
          }
          at += res.stopPosition;
          if (res.stop === ScanStop.TableFull) continue;
          if (res.stop === ScanStop.End) break;
          throw new CorruptionError(SCAN_STOP_NAMES[res.stop] ?? 'invalid batch', { file: seg.logPath, position: pos + at, offset: expectedMin + 1 });
        }
        pos += length;
      }
    } finally {
      // A read still in flight (the consumer stopped early) writes into a
      // region of this context: the context goes back to the pool, or is
      // freed, only once it settles. The views end now.
      if (pending !== null) {
        ctx.scratch?.release();
        const release = (): void => this.releaseReadContext(ctx);
        pending.done.then(release, release);
      } else {
        this.releaseReadContext(ctx);
      }
    }
  }

  private takeReadContext(): ReadContext {
    return this.readPool.pop() ?? { buf: new WasmBuffer(this.k, FIRST_READ_CHUNK), scanner: new BatchScanner(this.k, 1024), decoder: new RecordBatchDecoder(this.k), scratch: null, ahead: null };
  }

  private releaseReadContext(c: ReadContext): void {
    // Views made with the context's scratch end with the read that made them.
    c.scratch?.release();
    if (c.scratch && c.scratch.capacity > 4 * READ_CHUNK) c.scratch = null;
    if (c.ahead && c.ahead.capacity > 4 * READ_CHUNK) { c.ahead.free(); c.ahead = null; }
    if (!this.closed && this.readPool.length < READ_POOL_MAX && c.buf.capacity <= 4 * READ_CHUNK) { this.readPool.push(c); return; }
    c.ahead?.free();
    c.buf.free();
    c.scanner.free();
    c.decoder.free();
  }

  // --- lifecycle ---------------------------------------------------------------

  /** Flushes, writes the clean-shutdown marker and closes every file. */
  async close(): Promise<void> {
    if (this.closed) return;
    // From here on appends are refused: the marker must not claim data a flush did not cover.
    this.closing = true;
    if (this.flushTimer) clearInterval(this.flushTimer);
    this.flushTimer = null;
    try {
      if (!this.readOnly && !this.failed) {
        await this.flush();
        await this.storage.writeFileAtomic(path.join(this.dir, CLEAN_SHUTDOWN_FILE), new Uint8Array(0));
      }
    } finally {
      this.closeFiles();
    }
  }

  private closeFiles(): void {
    if (this.closed) return;
    this.closed = true;
    this.notify();
    for (const s of this.segments) s.close();
    for (const r of this.retired.splice(0)) r.seg.close();
    for (const c of this.readPool.splice(0)) { c.buf.free(); c.ahead?.free(); c.scanner.free(); c.decoder.free(); }
    this.appendFilter?.close?.();
    this.encoder.free();
    this.writeBuf.free();
    this.ingest?.free();
    this.ingest = null;
  }

  /** True after close(). */
  get isClosed(): boolean { return this.closed; }
}

/** Adapts a record iterator to the chunked form read() consumes. */
async function* chunked(src: AsyncIterable<StoredRecord>): AsyncGenerator<StoredRecord[], void, undefined> {
  for await (const r of src) yield [r];
}

/**
 * The records of a stream of batch views, one per next(): the records of the
 * current view are handed out from already resolved promises, and the source
 * is only awaited for the next view. Calls are served in order (a next()
 * made while another waits for the source is chained after it), as an async
 * generator serves them.
 */
class RecordIterator implements AsyncGenerator<StoredRecord, void, undefined> {
  private readonly src: AsyncGenerator<RecordBatchView, void, undefined>;
  private view: RecordBatchView | null = null;
  private i = 0;
  private finished = false;
  /** The call waiting for the source, if any. */
  private waiting: Promise<IteratorResult<StoredRecord, void>> | null = null;

  constructor(src: AsyncGenerator<RecordBatchView, void, undefined>) {
    this.src = src;
  }

  next(): Promise<IteratorResult<StoredRecord, void>> {
    if (this.waiting !== null) return this.waiting.then(() => this.next(), () => this.next());
    const v = this.view;
    if (v !== null && this.i < v.count) return Promise.resolve({ value: v.recordAt(this.i++), done: false });
    if (this.finished) return Promise.resolve({ value: undefined, done: true });
    const p = this.pull();
    this.waiting = p;
    const clear = () => { if (this.waiting === p) this.waiting = null; };
    p.then(clear, clear);
    return p;
  }

  private async pull(): Promise<IteratorResult<StoredRecord, void>> {
    this.view = null;
    for (;;) {
      let r: IteratorResult<RecordBatchView, void>;
      try {
        r = await this.src.next();
      } catch (err) {
        this.finished = true;
        throw err;
      }
      if (r.done) { this.finished = true; return { value: undefined, done: true }; }
      if (r.value.count > 0) {
        this.view = r.value;
        this.i = 1;
        return { value: r.value.recordAt(0), done: false };
      }
    }
  }

  async return(): Promise<IteratorResult<StoredRecord, void>> {
    this.finished = true;
    this.view = null;
    await this.src.return(undefined);
    return { value: undefined, done: true };
  }

  async throw(err: unknown): Promise<IteratorResult<StoredRecord, void>> {
    this.finished = true;
    this.view = null;
    await this.src.return(undefined);
    throw err;
  }

  [Symbol.asyncIterator](): AsyncGenerator<StoredRecord, void, undefined> { return this; }
}

/** Record chunks (tiered storage) as views. */
async function* viewsOf(src: AsyncIterable<StoredRecord[]>): AsyncGenerator<RecordBatchView, void, undefined> {
  for await (const chunk of src) yield RecordBatchView.fromRecords(chunk);
}
