// A key-value namespace on a compacted topic (see docs/kv.md).
//
// Every mutation is a record in the namespace's topic (kv_record.ts); the
// log is the source of truth. In memory: an ordered index of keys to the
// position of their latest value in the log (kv_index.ts), and a bounded
// cache of hot values (kv_cache.ts). A checkpoint of the index
// (kv_checkpoint.ts) keeps reopening fast; compaction (kv_compactor.ts)
// rewrites closed segments in the background.
//
// Writes are synchronous up to the page cache (one append per call, one
// RecordBatch per call, so a batch() is atomic across a crash); flush() makes
// everything written before it durable. Reads are synchronous: the cache, or
// one positioned read of the value bytes, checked against the value's CRC-32C.
// Values returned are always fresh copies.

import * as path from 'node:path';
import type { Store } from '../store.js';
import { Kernels, WasmBuffer } from '../kernels.js';
import { Storage } from '../storage.js';
import { Partition, MAX_RECORDS_PER_APPEND } from '../partition.js';
import { LogSegment } from '../log_segment.js';
import { RecordInput, NormalizedRecord } from '../record.js';
import { RecordBatchEncoder, BATCH_HEADER_SIZE } from '../record_batch.js';
import { Crc32c } from '../crc32c.js';
import { ClosedError, CorruptionError, InvalidArgumentError, ReadOnlyError, RecordTooLargeError, SedimentError } from '../errors.js';
import { validateTopicName } from '../topic_config.js';
import { KvIndex, IndexKey } from './kv_index.js';
import { ValueCache } from './kv_cache.js';
import { RecordCursor, FLAG_DISABLED, FLAG_FORGOTTEN, FLAG_MASK, FLAGS_HEADER, FLAGS_HEADER_BYTES, OP_PUT, OP_DEL, OP_FLAGS } from './kv_record.js';
import { KvBytes, keyString, boundString, valueBytes, byteStringToBytes, bytesToByteString, prefixEnd } from './kv_keys.js';
import { LogScanner, segmentGeneration } from './kv_log.js';
import { CHECKPOINT_FILE, CHECKPOINTS_SUPPORTED, decodeCheckpoint, encodeCheckpoint, LoadedCheckpoint } from './kv_checkpoint.js';
import { KvCompactor, CompactionStats } from './kv_compactor.js';
import { clusterPass, ClusterStats } from './kv_cluster.js';
import { KeyDisabledError, KeyNotFoundError } from './kv_errors.js';

/** Topic of namespace `name`: `__kv.<name>`. */
export const KV_TOPIC_PREFIX = '__kv.';
export const DEFAULT_KV_SEGMENT_BYTES = 64 * 1024 * 1024;
/** Default limit of one batch() (and of the namespace topic's maxMessageBytes). */
export const DEFAULT_KV_BATCH_BYTES = 16 * 1024 * 1024;
export const DEFAULT_KV_CACHE_BYTES = 64 * 1024 * 1024;
export const DEFAULT_KV_CHECKPOINT_BYTES = 64 * 1024 * 1024;
export const DEFAULT_KV_MIN_DIRTY_RATIO = 0.5;
export const DEFAULT_KV_CLUSTER_RATIO = 0.25;
/** Clustering waits for at least this many values out of key order. */
const CLUSTER_MIN_VALUES = 4096;
/** Clustering waits for this long without writes (unless twice clusterRatio of the values are out of order). */
const CLUSTER_IDLE_MS = 1000;
/** Namespace names: what Kafka allows in a topic name, at most 200 characters. */
const NAME = /^[a-zA-Z0-9._-]{1,200}$/;
/** Entries fetched from the index per range() refill (the first refill is smaller). */
const RANGE_CHUNK = 512;
/** Cold values closer than this on disk are read with one read call (range scans). */
const COALESCE_GAP = 16 * 1024;
const COALESCE_MAX = 1024 * 1024;

export interface KvOptions {
  /** Bytes of values kept in memory for hot reads (default 64 MiB; 0 disables the cache). */
  cacheBytes?: number;
  /** Segment size of the namespace topic, used when the namespace is created (default 64 MiB). */
  segmentBytes?: number;
  /** Largest batch() in encoded bytes, used when the namespace is created (default 16 MiB). */
  maxBatchBytes?: number;
  /** Compact in the background when at least this share of the log is dead (default 0.5; -1: only compact()). */
  minDirtyRatio?: number;
  /** Write a checkpoint in the background after this many bytes were appended (default 64 MiB; -1: only checkpoint() and close()). */
  checkpointBytes?: number;
  /** Background flush period of the namespace topic in ms, when created (default 1000; -1: only flush()). */
  flushMs?: number;
  /** Cluster values by key in the background once this share of them is not in key order (default 0.25; -1: only cluster()). */
  clusterRatio?: number;
}

/** One operation of batch(). */
export type KvOp = { type: 'put'; key: KvBytes; value: KvBytes } | { type: 'del'; key: KvBytes };

export interface KvEntry { key: Uint8Array; value: Uint8Array }

/** Bounds of range(), keys() and count(): any mix of gt/gte, lt/lte and prefix; all bytewise. */
export interface RangeOptions {
  gt?: KvBytes;
  gte?: KvBytes;
  lt?: KvBytes;
  lte?: KvBytes;
  /** Only keys starting with these bytes. */
  prefix?: KvBytes;
  /** Descending order. */
  reverse?: boolean;
  /** At most this many entries. */
  limit?: number;
}

export interface UpdateResult {
  /** The value before (undefined: absent). */
  old: Uint8Array | undefined;
  /** The value after (undefined: absent). */
  value: Uint8Array | undefined;
}

export interface KvLoadReport {
  /** A valid checkpoint was used. */
  fromCheckpoint: boolean;
  /** Why a checkpoint file was not used, if one existed. */
  checkpointProblem?: string;
  /** Records replayed from the log. */
  replayedRecords: number;
  /** Segments scanned to fix value positions (compacted after the checkpoint). */
  rescannedSegments: number;
  ms: number;
}

export interface KvStats {
  /** Visible keys (what count() returns). */
  keys: number;
  /** Keys with a value or a flag, visible or not. */
  indexedKeys: number;
  /** Bytes of keys and values of every key with a value. */
  liveBytes: number;
  logBytes: number;
  segments: number;
  logEndOffset: number;
  /** Offset covered by the last durable checkpoint. */
  checkpointOffset: number;
  cacheEntries: number;
  cacheHits: number;
  cacheMisses: number;
  compactionPasses: number;
  lastCompaction: CompactionStats | null;
  /** Values with a value (visible or forgotten), and how many of them are in key-ordered runs. */
  values: number;
  clusteredValues: number;
  clusterPasses: number;
  lastCluster: ClusterStats | null;
  /** The last background (compaction or checkpoint) failure, if any. */
  maintenanceError: string | null;
  load: KvLoadReport;
}

interface ResolvedOptions {
  cacheBytes: number;
  segmentBytes: number;
  maxBatchBytes: number;
  flushMs: number;
  minDirtyRatio: number;
  clusterRatio: number;
  checkpointBytes: number;
}

interface Bounds { lo: string | null; loInc: boolean; hi: string | null; hiInc: boolean; reverse: boolean; limit: number }

/** Validates a namespace name. */
export function validateKvName(name: unknown): string {
  if (typeof name !== 'string' || !NAME.test(name) || name === '.' || name === '..') {
    throw new InvalidArgumentError(`invalid KV namespace name ${JSON.stringify(name)}: use 1-200 characters of [a-zA-Z0-9._-]`);
  }
  return name;
}

function optInt(v: unknown, name: string, min: number, dflt: number, allowMinusOne = false): number {
  if (v === undefined) return dflt;
  if (allowMinusOne && v === -1) return -1;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min}${allowMinusOne ? ' or -1' : ''}, got ${JSON.stringify(v)}`);
  return v;
}

export class KvStore {
  /** Namespace name. */
  readonly name: string;
  /** The compacted topic holding the namespace. */
  readonly topic: string;
  readonly partition: Partition;
  readonly readOnly: boolean;
  readonly k: Kernels;
  readonly storage: Storage;
  private ix: KvIndex = new KvIndex();
  private readonly cache: ValueCache;
  private readonly crc: Crc32c;
  private readonly scratch: WasmBuffer;
  private readonly opts: Required<Pick<KvOptions, 'minDirtyRatio' | 'checkpointBytes' | 'clusterRatio'>>;
  private readonly gens = new WeakMap<LogSegment, number>();
  private lastGen = 0;
  private cpOffset = 0;
  private mutationCount = 0;
  private bytesSinceCheckpoint = 0;
  /** Size of the last checkpoint file written or loaded. */
  private checkpointFileBytes = 0;
  private bytesSinceCompaction = 0;
  private bytesSinceCheck = 0;
  private compactor: KvCompactor | null = null;
  private lock: Promise<unknown> = Promise.resolve();
  private maintenanceScheduled = false;
  private maintenanceError: Error | null = null;
  private passes = 0;
  private lastCompaction: CompactionStats | null = null;
  private bytesSinceCluster = 0;
  private lastWriteAt = 0;
  private idleTimer: ReturnType<typeof setTimeout> | null = null;
  private clusterPasses = 0;
  private lastCluster: ClusterStats | null = null;
  private closing = false;
  private closed = false;
  private closePromise: Promise<void> | null = null;
  private loadReport: KvLoadReport = { fromCheckpoint: false, replayedRecords: 0, rescannedSegments: 0, ms: 0 };

  private constructor(name: string, topic: string, partition: Partition, store: Store, o: ResolvedOptions) {
    this.name = name;
    this.topic = topic;
    this.partition = partition;
    this.readOnly = store.readOnly;
    this.k = store.k;
    this.storage = store.storage;
    this.cache = new ValueCache(o.cacheBytes);
    this.crc = new Crc32c(store.k);
    this.scratch = new WasmBuffer(store.k, 64 * 1024);
    this.opts = { clusterRatio: o.clusterRatio, minDirtyRatio: o.minDirtyRatio, checkpointBytes: o.checkpointBytes };
  }

  /** Validates every option (before anything is created). */
  private static resolve(opts: KvOptions): ResolvedOptions {
    if (opts === null || typeof opts !== 'object') throw new InvalidArgumentError('KV options must be an object');
    const ratio = (v: unknown, name: string, dflt: number): number => {
      if (v === undefined) return dflt;
      if (typeof v !== 'number' || !(v === -1 || (v >= 0 && v <= 1))) throw new InvalidArgumentError(`${name} must be in [0, 1] or -1, got ${JSON.stringify(v)}`);
      return v;
    };
    return {
      cacheBytes: optInt(opts.cacheBytes, 'cacheBytes', 0, DEFAULT_KV_CACHE_BYTES),
      segmentBytes: optInt(opts.segmentBytes, 'segmentBytes', 1024, DEFAULT_KV_SEGMENT_BYTES),
      maxBatchBytes: optInt(opts.maxBatchBytes, 'maxBatchBytes', 4096, DEFAULT_KV_BATCH_BYTES),
      flushMs: optInt(opts.flushMs, 'flushMs', 1, 1000, true),
      minDirtyRatio: ratio(opts.minDirtyRatio, 'minDirtyRatio', DEFAULT_KV_MIN_DIRTY_RATIO),
      clusterRatio: ratio(opts.clusterRatio, 'clusterRatio', DEFAULT_KV_CLUSTER_RATIO),
      checkpointBytes: optInt(opts.checkpointBytes, 'checkpointBytes', 1, DEFAULT_KV_CHECKPOINT_BYTES, true),
    };
  }

  /**
   * Opens namespace `name` of a store, creating its topic when missing
   * (unless the store is read-only: then KeyNotFoundError). Use store.kv().
   */
  static async open(store: Store, name: string, opts: KvOptions = {}, topic?: string): Promise<KvStore> {
    validateKvName(name);
    const t = topic ?? `${KV_TOPIC_PREFIX}${name}`;
    validateTopicName(t);
    const o = KvStore.resolve(opts);
    if (!store.hasTopic(t)) {
      if (store.readOnly) throw new KeyNotFoundError(`KV namespace '${name}' does not exist (topic ${t})`);
      await store.createTopic(t, {
        partitions: 1,
        config: {
          cleanupPolicy: 'compact',
          retentionMs: -1,
          retentionBytes: -1,
          segmentBytes: o.segmentBytes,
          maxMessageBytes: o.maxBatchBytes,
          flushMs: o.flushMs,
          // The KV store flushes on its own terms (flush(), flushMs): no per-count flush from the store's defaults.
          flushMessages: -1,
        },
      });
    }
    const p = store.partition(t, 0);
    if (p.config.cleanupPolicy !== 'compact') throw new InvalidArgumentError(`topic ${t} is not a compacted topic; it cannot hold a KV namespace`);
    // Deduplication would drop mutations (e.g. a second put of the same value after a different one).
    if (p.config.dedup !== undefined || p.appendFilter !== null) {
      throw new InvalidArgumentError(`topic ${t} deduplicates appends (dedup config, e.g. from the store's defaultTopicConfig); it cannot hold a KV namespace`);
    }
    const kv = new KvStore(name, t, p, store, o);
    try {
      kv.load();
    } catch (err) {
      kv.release();
      throw err;
    }
    if (!kv.readOnly) kv.compactor = new KvCompactor(kv.compactionHost());
    return kv;
  }

  // --- load: checkpoint, replay, position fixes ---------------------------------

  private get checkpointPath(): string { return path.join(this.partition.dir, CHECKPOINT_FILE); }

  private gen(seg: LogSegment): number {
    let g = this.gens.get(seg);
    if (g === undefined) {
      g = segmentGeneration(this.k, seg, this.scratch);
      this.gens.set(seg, g);
    }
    return g;
  }

  private load(): void {
    const t0 = performance.now();
    const p = this.partition;
    let cp: LoadedCheckpoint | null = null;
    const raw = CHECKPOINTS_SUPPORTED ? this.storage.readFile(this.checkpointPath) : null;
    if (raw) {
      try {
        cp = decodeCheckpoint(raw, this.crc, this.checkpointPath);
        if (cp.covered > p.logEndOffset) {
          this.loadReport.checkpointProblem = `checkpoint covers offset ${cp.covered}, past the end of the log (${p.logEndOffset})`;
          cp = null;
        }
      } catch (err) {
        if (!(err instanceof CorruptionError)) throw err;
        this.loadReport.checkpointProblem = err.message;
      }
      if (!cp && !this.readOnly) this.storage.remove(this.checkpointPath);
    }
    let from = p.localLogStartOffset;
    if (cp) {
      this.ix = cp.index;
      this.cpOffset = cp.covered;
      this.checkpointFileBytes = raw?.length ?? 0;
      this.loadReport.fromCheckpoint = true;
      from = Math.max(from, cp.covered);
    }
    const scanner = new LogScanner(this.k, Math.max(p.config.maxMessageBytes, 1 << 20));
    try {
      this.loadReport.replayedRecords = this.replay(scanner, from);
      if (cp) this.fixPositions(scanner, cp);
    } finally {
      scanner.free();
    }
    for (const s of p.segments) this.lastGen = Math.max(this.lastGen, this.gen(s));
    this.loadReport.ms = performance.now() - t0;
  }

  /** Applies every record at or after `from`; returns how many. */
  private replay(scanner: LogScanner, from: number): number {
    const p = this.partition;
    const cur = new RecordCursor(this.k);
    let n = 0;
    try {
      for (const seg of p.segments) {
        if (seg.nextOffset <= from || seg.size === 0) continue;
        const pos = seg.baseOffset >= from ? 0 : seg.translateOffset(from);
        if (pos < 0) continue;
        for (const { info, ptr } of scanner.batches(seg, pos, seg.size)) {
          if (info.baseOffset + info.lastOffsetDelta < from) continue;
          cur.reset(ptr, info, seg.logPath);
          const u8 = cur.u8;
          while (cur.next()) {
            if (cur.offset < from) continue;
            this.applyRecord(cur, u8);
            n++;
          }
        }
      }
    } finally {
      cur.free();
    }
    return n;
  }

  private applyRecord(cur: RecordCursor, u8: Uint8Array): void {
    const ix = this.ix;
    if (cur.op === OP_PUT) {
      const ks = bytesToByteString(u8, cur.keyPtr, cur.keyPtr + cur.keyLen);
      const crc = this.k.raw.crc32c(cur.valuePtr, cur.valueLen, 0) >>> 0;
      ix.put(ks, ix.slot(ks), cur.offset, cur.filePosition(cur.valuePtr), cur.valueLen, crc);
    } else if (cur.op === OP_DEL) {
      ix.del(bytesToByteString(u8, cur.keyPtr, cur.keyPtr + cur.keyLen), undefined);
    } else if (cur.op === OP_FLAGS) {
      ix.setFlags(bytesToByteString(u8, cur.keyPtr, cur.keyPtr + cur.keyLen), undefined, cur.offset, cur.flags);
    }
  }

  /**
   * Entries taken from the checkpoint (offset below its covered offset) whose
   * segment was compacted or removed since: find their records again.
   */
  private fixPositions(scanner: LogScanner, cp: LoadedCheckpoint): void {
    const p = this.partition;
    let stale = false;
    for (const [base, gen] of cp.segments) {
      const seg = p.segments.find((s) => s.baseOffset === base);
      if (!seg || this.gen(seg) !== gen) { stale = true; break; }
    }
    if (!stale) return;
    const cpBases = [...cp.segments.keys()].sort((a, b) => a - b);
    const cpBaseOf = (off: number): number => {
      let lo = 0; let hi = cpBases.length - 1; let best = -1;
      while (lo <= hi) { const m = (lo + hi) >> 1; if (cpBases[m]! <= off) { best = cpBases[m]!; lo = m + 1; } else hi = m - 1; }
      return best;
    };
    const ix = this.ix;
    const need = new Map<LogSegment | null, Map<number, number>>();
    for (let s = 0; s < ix.used; s++) {
      if (ix.valLen[s]! < 0) continue;
      const off = ix.valOff[s]!;
      if (off >= cp.covered) continue; // from replay: fresh
      const seg = p.segmentFor(off) ?? null;
      const b = cpBaseOf(off);
      if (seg && seg.baseOffset === b && this.gen(seg) === cp.segments.get(b)) continue;
      let m = need.get(seg);
      if (!m) { m = new Map(); need.set(seg, m); }
      m.set(off, s);
    }
    const cur = new RecordCursor(this.k);
    try {
      for (const [seg, m] of need) {
        if (seg) {
          this.loadReport.rescannedSegments++;
          for (const { info, ptr } of scanner.batches(seg, 0, seg.size)) {
            cur.reset(ptr, info, seg.logPath);
            while (cur.next()) {
              if (cur.op !== OP_PUT) continue;
              const s = m.get(cur.offset);
              if (s === undefined) continue;
              const crc = this.k.raw.crc32c(cur.valuePtr, cur.valueLen, 0) >>> 0;
              if (crc !== ix.valCrc[s] || cur.valueLen !== ix.valLen[s]) {
                throw new CorruptionError(`value at offset ${cur.offset} does not match the KV checkpoint`, { file: seg.logPath, position: info.position, offset: cur.offset });
              }
              ix.valPos[s] = cur.filePosition(cur.valuePtr);
              m.delete(cur.offset);
            }
          }
        }
        if (m.size > 0) {
          const off = m.keys().next().value as number;
          throw new CorruptionError(`the KV checkpoint names a value at offset ${off} that the log no longer holds`, { file: this.checkpointPath, position: 0, offset: off });
        }
      }
    } finally {
      cur.free();
    }
  }

  // --- common checks --------------------------------------------------------------

  private checkOpen(): void {
    if (this.closed) throw new ClosedError(`KV namespace '${this.name}'`);
  }

  private checkWritable(): void {
    if (this.closed || this.closing) throw new ClosedError(`KV namespace '${this.name}'`);
    if (this.readOnly) throw new ReadOnlyError(`KV namespace '${this.name}'`);
  }

  private disabledError(key: unknown, ks: string): KeyDisabledError {
    return new KeyDisabledError(key instanceof Uint8Array ? new Uint8Array(key) : byteStringToBytes(ks), this.name);
  }

  // --- reads ---------------------------------------------------------------------

  /** The value's bytes read from the log and checked against its CRC (fresh array). */
  private readSlot(s: number): Uint8Array {
    const ix = this.ix;
    const off = ix.valOff[s]!;
    const pos = ix.valPos[s]!;
    const len = ix.valLen[s]!;
    const seg = this.partition.segmentFor(off);
    if (!seg) throw new CorruptionError(`no segment holds offset ${off} of the KV index`, { position: pos, offset: off });
    if (len === 0) return new Uint8Array(0);
    const ptr = this.scratch.ensure(len);
    const got = seg.readInto(ptr, len, pos);
    if (got < len) throw new CorruptionError(`value of ${len} bytes at offset ${off} runs past the end of the segment`, { file: seg.logPath, position: pos, offset: off });
    const crc = this.k.raw.crc32c(ptr, len, 0) >>> 0;
    if (crc !== ix.valCrc[s]) {
      throw new CorruptionError(`value CRC-32C mismatch (stored ${ix.valCrc[s]}, read ${crc})`, { file: seg.logPath, position: pos, offset: off });
    }
    return this.k.u8.slice(ptr, ptr + len);
  }

  /** The value of a visible slot, through the cache; shared with the cache (do not hand out). */
  private valueOf(ks: string, s: number): Uint8Array {
    let v = this.cache.get(ks);
    if (v === undefined) {
      v = this.readSlot(s);
      this.cache.set(ks, v);
    }
    return v;
  }

  /** The value of a key (a fresh copy), or undefined when absent or forgotten. Synchronous. */
  getSync(key: KvBytes): Uint8Array | undefined {
    this.checkOpen();
    const ks = keyString(key);
    const c = this.cache.get(ks);
    if (c !== undefined) return c.slice();
    const s = this.ix.tree.get(ks);
    if (s === undefined || !this.ix.isVisible(s)) return undefined;
    const v = this.readSlot(s);
    this.cache.set(ks, v);
    return v.slice();
  }

  /** The value of a key, or undefined when absent or forgotten. */
  async get(key: KvBytes): Promise<Uint8Array | undefined> { return this.getSync(key); }

  /** Values of several keys, in order (undefined for each absent one). */
  getManySync(keys: readonly KvBytes[]): (Uint8Array | undefined)[] {
    if (!Array.isArray(keys)) throw new InvalidArgumentError('getMany takes an array of keys');
    const out = new Array<Uint8Array | undefined>(keys.length);
    for (let i = 0; i < keys.length; i++) out[i] = this.getSync(keys[i]!);
    return out;
  }

  async getMany(keys: readonly KvBytes[]): Promise<(Uint8Array | undefined)[]> { return this.getManySync(keys); }

  /** Whether the key has a visible value. */
  hasSync(key: KvBytes): boolean {
    this.checkOpen();
    const ks = keyString(key);
    const s = this.ix.tree.get(ks);
    return s !== undefined && this.ix.isVisible(s);
  }

  async has(key: KvBytes): Promise<boolean> { return this.hasSync(key); }

  /** Whether writes to the key are refused (see disable()). */
  isDisabled(key: KvBytes): boolean {
    this.checkOpen();
    return this.ix.isDisabled(this.ix.tree.get(keyString(key)));
  }

  /** Visible keys: all of them (O(1)), or those within range bounds. */
  count(opts?: RangeOptions): number {
    this.checkOpen();
    if (opts === undefined) return this.ix.visible;
    let n = 0;
    for (const _ of this.scanBounds(this.bounds(opts))) n++;
    return n;
  }

  // --- writes --------------------------------------------------------------------

  /**
   * Appends records as one batch; returns its base offset, its file position
   * and where each record's value starts relative to it (from the encoder).
   */
  private write(records: RecordInput[]): { base: number; batchPos: number; valuePos: Int32Array } {
    const p = this.partition;
    const r = p.appendSync(records);
    const lb = p.lastBatchLayout();
    if (r.count !== records.length || lb === null || lb.count !== records.length || lb.baseOffset !== r.baseOffset) {
      // One KV call is one batch (its size is checked first); anything else is a bug, and the index must not guess.
      throw new SedimentError('ERR_INTERNAL', `KV write of ${records.length} records was not one batch (${r.count} written, last batch ${lb?.count})`);
    }
    const bytes = lb.size;
    this.lastWriteAt = performance.now();
    this.mutationCount += records.length;
    this.bytesSinceCheckpoint += bytes;
    this.bytesSinceCompaction += bytes;
    this.bytesSinceCluster += bytes;
    this.bytesSinceCheck += bytes;
    if (this.bytesSinceCheck >= 1 << 20) { this.bytesSinceCheck = 0; this.scheduleMaintenance(); }
    return { base: r.baseOffset, batchPos: lb.position, valuePos: lb.valuePositions };
  }

  /** Sets a key's value. Synchronous; durable after the next flush(). */
  putSync(key: KvBytes, value: KvBytes): void {
    this.checkWritable();
    const ks = keyString(key);
    const vb = valueBytes(value);
    const ix = this.ix;
    const s = ix.tree.get(ks);
    if (s !== undefined && (ix.flags[s]! & FLAG_DISABLED) !== 0) throw this.disabledError(key, ks);
    const kb = key instanceof Uint8Array ? key : byteStringToBytes(ks);
    const crc = this.crc.of(vb);
    const w = this.write([{ key: kb, value: vb }]);
    ix.put(ks, s, w.base, w.batchPos + w.valuePos[0]!, vb.length, crc);
    this.cache.delete(ks);
  }

  async put(key: KvBytes, value: KvBytes): Promise<void> { this.putSync(key, value); }

  /**
   * Removes a key. Returns whether a visible value was removed. A forgotten
   * key's hidden value is removed too (and it is no longer forgotten).
   * Nothing is written for an absent key.
   */
  deleteSync(key: KvBytes): boolean {
    this.checkWritable();
    const ks = keyString(key);
    const ix = this.ix;
    const s = ix.tree.get(ks);
    if (s === undefined) return false;
    if ((ix.flags[s]! & FLAG_DISABLED) !== 0) throw this.disabledError(key, ks);
    if (ix.valLen[s]! < 0) return false;
    const wasVisible = ix.isVisible(s);
    const kb = key instanceof Uint8Array ? key : byteStringToBytes(ks);
    this.write([{ key: kb, value: null }]);
    ix.del(ks, s);
    this.cache.delete(ks);
    return wasVisible;
  }

  async delete(key: KvBytes): Promise<boolean> { return this.deleteSync(key); }

  /**
   * Atomic read-modify-write. fn gets the current value (undefined when
   * absent or forgotten) and returns the new value, null to delete the key,
   * or undefined to leave it unchanged. fn must be synchronous: nothing else
   * runs between the read and the write.
   */
  updateSync(key: KvBytes, fn: (old: Uint8Array | undefined) => KvBytes | null | undefined): UpdateResult {
    this.checkWritable();
    if (typeof fn !== 'function') throw new InvalidArgumentError('update needs a function');
    const ks = keyString(key);
    let s = this.ix.tree.get(ks);
    if (this.ix.isDisabled(s)) throw this.disabledError(key, ks);
    const old = s !== undefined && this.ix.isVisible(s) ? this.valueOf(ks, s).slice() : undefined;
    const res = fn(old === undefined ? undefined : old.slice());
    if (res !== null && res !== undefined && typeof (res as { then?: unknown }).then === 'function') {
      throw new InvalidArgumentError('update fn must be synchronous (it returned a promise); nothing was written');
    }
    if (res === undefined) return { old, value: old };
    // fn may have written (re-entrantly): look again.
    s = this.ix.tree.get(ks);
    if (this.ix.isDisabled(s)) throw this.disabledError(key, ks);
    if (res === null) {
      if (s !== undefined && this.ix.valLen[s]! >= 0) this.deleteSync(key);
      return { old, value: undefined };
    }
    const vb = valueBytes(res);
    this.putSync(key, vb);
    return { old, value: vb.slice() };
  }

  async update(key: KvBytes, fn: (old: Uint8Array | undefined) => KvBytes | null | undefined): Promise<UpdateResult> {
    return this.updateSync(key, fn);
  }

  /**
   * Applies puts and deletes atomically: one record batch, so after a crash
   * either all of them are there or none. Everything is validated first
   * (types, limits, disabled keys); on any error nothing is written. The
   * encoded batch must fit the namespace's batch limit (maxBatchBytes).
   */
  batchSync(ops: readonly KvOp[]): void {
    this.checkWritable();
    if (!Array.isArray(ops)) throw new InvalidArgumentError('batch takes an array of operations');
    if (ops.length === 0) return;
    if (ops.length > MAX_RECORDS_PER_APPEND) throw new InvalidArgumentError(`at most ${MAX_RECORDS_PER_APPEND} operations per batch`);
    const ix = this.ix;
    const n = ops.length;
    const kss = new Array<string>(n);
    const records = new Array<RecordInput>(n);
    const norm = new Array<NormalizedRecord>(n);
    const crcs = new Array<number>(n);
    const slots = new Array<number | undefined>(n);
    // Slots found while validating stay valid for the writes unless the batch deletes or repeats a key.
    let relookup = false;
    const seen = n > 1 ? new Set<string>() : null;
    for (let i = 0; i < n; i++) {
      const op = ops[i] as KvOp | undefined;
      if (op === null || typeof op !== 'object') throw new InvalidArgumentError(`batch operation ${i} must be an object`);
      const ks = keyString(op.key, `batch operation ${i} key`);
      const s = ix.tree.get(ks);
      if (s !== undefined && (ix.flags[s]! & FLAG_DISABLED) !== 0) throw this.disabledError(op.key, ks);
      const kb = op.key instanceof Uint8Array ? op.key : byteStringToBytes(ks);
      let vb: Uint8Array | null;
      if (op.type === 'put') vb = valueBytes(op.value, `batch operation ${i} value`);
      else if (op.type === 'del') vb = null;
      else throw new InvalidArgumentError(`batch operation ${i} has type ${JSON.stringify((op as { type?: unknown }).type)}; use 'put' or 'del'`);
      kss[i] = ks;
      slots[i] = s;
      if (vb === null) relookup = true;
      if (seen !== null) { if (seen.has(ks)) relookup = true; else seen.add(ks); }
      records[i] = { key: kb, value: vb };
      norm[i] = { key: kb, value: vb, headerKeys: [], headerValues: [], timestamp: 0 };
      crcs[i] = vb === null ? 0 : -1;
    }
    const limit = this.partition.config.maxMessageBytes;
    const bound = RecordBatchEncoder.maxSize(norm);
    if (bound > limit) throw new RecordTooLargeError(bound, limit, `batch of ${n} operations (framed)`);
    for (let i = 0; i < n; i++) if (crcs[i] === -1) crcs[i] = this.crc.of(records[i]!.value as Uint8Array);
    const w = this.write(records);
    for (let i = 0; i < n; i++) {
      const ks = kss[i]!;
      const v = records[i]!.value as Uint8Array | null;
      if (v === null) ix.del(ks, undefined);
      else ix.put(ks, relookup ? ix.tree.get(ks) : slots[i], w.base + i, w.batchPos + w.valuePos[i]!, v.length, crcs[i]!);
      this.cache.delete(ks);
    }
  }

  async batch(ops: readonly KvOp[]): Promise<void> { this.batchSync(ops); }

  /** Writes a flags record for a key (disable / enable / forget). */
  private writeFlags(key: KvBytes, ks: string, flags: number): void {
    flags &= FLAG_MASK;
    const kb = key instanceof Uint8Array ? key : byteStringToBytes(ks);
    const w = this.write([{ key: kb, value: null, headers: [[FLAGS_HEADER, new Uint8Array([flags])]] }]);
    this.ix.setFlags(ks, undefined, w.base, flags);
  }

  /**
   * Refuses every later write to the key (put, update, delete, batch,
   * forget) with KeyDisabledError until enable(). Reads work as before. An
   * absent key can be disabled too. Returns false when it already was.
   */
  disableSync(key: KvBytes): boolean {
    this.checkWritable();
    const ks = keyString(key);
    const s = this.ix.tree.get(ks);
    const f = s === undefined ? 0 : this.ix.flags[s]!;
    if ((f & FLAG_DISABLED) !== 0) return false;
    this.writeFlags(key, ks, f | FLAG_DISABLED);
    return true;
  }

  async disable(key: KvBytes): Promise<boolean> { return this.disableSync(key); }

  /** Allows writes to a disabled key again. Returns false when it was not disabled. */
  enableSync(key: KvBytes): boolean {
    this.checkWritable();
    const ks = keyString(key);
    const s = this.ix.tree.get(ks);
    if (s === undefined || (this.ix.flags[s]! & FLAG_DISABLED) === 0) return false;
    this.writeFlags(key, ks, this.ix.flags[s]! & ~FLAG_DISABLED);
    return true;
  }

  async enable(key: KvBytes): Promise<boolean> { return this.enableSync(key); }

  /**
   * Hides a key: get, has, update, range, keys and count behave as if it
   * were absent, but its value stays in the log (compaction keeps it) and
   * listForgotten() / readForgotten() still see it. The next put, update,
   * batch or delete of the key ends the forgotten state and releases the
   * hidden value. Returns false (nothing written) when the key has no
   * visible value. A disabled key cannot be forgotten (KeyDisabledError).
   */
  forgetSync(key: KvBytes): boolean {
    this.checkWritable();
    const ks = keyString(key);
    const s = this.ix.tree.get(ks);
    if (this.ix.isDisabled(s)) throw this.disabledError(key, ks);
    if (s === undefined || !this.ix.isVisible(s)) return false;
    this.writeFlags(key, ks, this.ix.flags[s]! | FLAG_FORGOTTEN);
    this.cache.delete(ks);
    return true;
  }

  async forget(key: KvBytes): Promise<boolean> { return this.forgetSync(key); }

  /** Audit: every forgotten key, in byte order. */
  listForgotten(): Uint8Array[] {
    this.checkOpen();
    const ix = this.ix;
    const out: Uint8Array[] = [];
    ix.tree.forEach((s, k) => { if (ix.valLen[s]! >= 0 && (ix.flags[s]! & FLAG_FORGOTTEN) !== 0) out.push(ix.keyBytes(k)); });
    return out;
  }

  /** Audit: the hidden value of a forgotten key (read from the log), or undefined when the key is not forgotten. */
  readForgotten(key: KvBytes): Uint8Array | undefined {
    this.checkOpen();
    const s = this.ix.tree.get(keyString(key));
    if (s === undefined || this.ix.valLen[s]! < 0 || (this.ix.flags[s]! & FLAG_FORGOTTEN) === 0) return undefined;
    return this.readSlot(s);
  }

  /** Makes every mutation made before the call durable (fdatasync of the log). */
  async flush(): Promise<void> {
    this.checkOpen();
    if (this.readOnly) return;
    await this.partition.flush();
  }

  // --- ranges ----------------------------------------------------------------------

  private bounds(opts: RangeOptions | undefined): Bounds {
    const o = opts ?? {};
    if (o === null || typeof o !== 'object') throw new InvalidArgumentError('range options must be an object');
    let lo: string | null = null; let loInc = true; let hi: string | null = null; let hiInc = true;
    if (o.gt !== undefined && o.gte !== undefined) throw new InvalidArgumentError('use gt or gte, not both');
    if (o.lt !== undefined && o.lte !== undefined) throw new InvalidArgumentError('use lt or lte, not both');
    if (o.gte !== undefined) { lo = boundString(o.gte, 'gte'); loInc = true; }
    if (o.gt !== undefined) { lo = boundString(o.gt, 'gt'); loInc = false; }
    if (o.lte !== undefined) { hi = boundString(o.lte, 'lte'); hiInc = true; }
    if (o.lt !== undefined) { hi = boundString(o.lt, 'lt'); hiInc = false; }
    if (o.prefix !== undefined) {
      const pre = boundString(o.prefix, 'prefix');
      if (lo === null || pre > lo) { lo = pre; loInc = true; }
      const end = prefixEnd(pre);
      if (end !== null && (hi === null || end <= hi)) { hi = end; hiInc = false; }
    }
    const limit = o.limit ?? Infinity;
    if (limit !== Infinity && (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 0)) throw new InvalidArgumentError(`limit must be a non-negative integer, got ${limit}`);
    if (o.reverse !== undefined && typeof o.reverse !== 'boolean') throw new InvalidArgumentError('reverse must be a boolean');
    return { lo, loInc, hi, hiInc, reverse: o.reverse === true, limit };
  }

  /**
   * Visible keys (and slots) within bounds, in order, in chunks fetched
   * synchronously from the index: each chunk is consistent; keys written
   * between chunks may or may not be seen, none twice.
   */
  private *scanBounds(b: Bounds): Generator<[IndexKey, number], void, undefined> {
    const keys: IndexKey[] = [];
    const slots: number[] = [];
    let last: IndexKey | null = null;
    let left = b.limit;
    let chunk = 64;
    while (left > 0) {
      this.checkOpen();
      keys.length = 0;
      slots.length = 0;
      const more = this.fetchChunk(b, last, Math.min(chunk, left), keys, slots);
      for (let i = 0; i < keys.length; i++) yield [keys[i]!, slots[i]!];
      left -= keys.length;
      if (!more || keys.length === 0) return;
      last = keys[keys.length - 1]!;
      chunk = RANGE_CHUNK;
    }
  }

  /** Fills up to n visible keys after `last` (exclusive) within b. Returns false when the range is exhausted. */
  private fetchChunk(b: Bounds, last: IndexKey | null, n: number, keys: IndexKey[], slots: number[]): boolean {
    const ix = this.ix;
    const tree = ix.tree;
    const cmp = ix.compare;
    if (!b.reverse) {
      const start = last ?? b.lo ?? undefined;
      const skipEq = last !== null ? last : (b.lo !== null && !b.loInc ? b.lo : null);
      for (const [ks, s] of tree.entries(start)) {
        if (skipEq !== null && cmp(ks, skipEq) === 0) continue;
        if (b.hi !== null) { const c = cmp(ks, b.hi); if (c > 0 || (c === 0 && !b.hiInc)) return false; }
        if (!ix.isVisible(s)) continue;
        keys.push(ks);
        slots.push(s);
        if (keys.length >= n) return true;
      }
      return false;
    }
    const start = last ?? b.hi ?? undefined;
    const skip = last !== null || (b.hi !== null && !b.hiInc);
    for (const [ks, s] of tree.entriesReversed(start, undefined, skip)) {
      if (b.lo !== null) { const c = cmp(ks, b.lo); if (c < 0 || (c === 0 && !b.loInc)) return false; }
      if (!ix.isVisible(s)) continue;
      keys.push(ks);
      slots.push(s);
      if (keys.length >= n) return true;
    }
    return false;
  }

  /**
   * Values of visible slots for a range chunk: cached ones copied, the rest
   * read from the log with nearby values coalesced into one read. Range
   * reads do not fill the cache (a scan would evict the hot set).
   */
  private valuesOf(keys: IndexKey[], slots: number[], out: Uint8Array[]): void {
    const ix = this.ix;
    const n = keys.length;
    let misses: number[] | null = null;
    const cache = this.cache;
    for (let i = 0; i < n; i++) {
      const k = keys[i]!;
      const c = cache.size === 0 ? undefined : cache.get(typeof k === 'string' ? k : ix.keyString(k));
      if (c !== undefined) out[i] = c.slice();
      else (misses ??= []).push(i);
    }
    if (misses !== null) this.readSlots(slots, misses, out);
  }

  /**
   * Reads from the log the values of slots[misses[q]] into out[misses[q]],
   * CRC-checked, in file order, with values near each other read together.
   */
  private readSlots(slots: readonly number[], misses: readonly number[], out: Uint8Array[]): void {
    const ix = this.ix;
    const p = this.partition;
    const segs = p.segments;
    const m = misses.length;
    // Sort the misses by (segment, position) with a native numeric sort: each key packs
    // the segment's index, the value's position and the miss's index.
    const segOf = new Array<LogSegment | undefined>(m);
    const sortKeys = new Float64Array(m);
    let mult = 1;
    while (mult < m) mult *= 2;
    // Keys stay below 2^53.
    let packable = (segs.length + 1) * 2147483648 * mult * 2 < 2 ** 53;
    for (let q = 0; q < m; q++) {
      const sl = slots[misses[q]!]!;
      const si = segmentIndex(segs, ix.valOff[sl]!);
      segOf[q] = si < 0 ? undefined : segs[si];
      sortKeys[q] = ((si + 1) * 2147483648 + ix.valPos[sl]!) * mult + q;
      if (si < 0) packable = false;
    }
    let order: ArrayLike<number>;
    if (packable) {
      sortKeys.sort();
      const o = new Int32Array(m);
      for (let q = 0; q < m; q++) o[q] = sortKeys[q]! % mult;
      order = o;
    } else {
      const o = Array.from({ length: m }, (_, q) => q);
      o.sort((a, b) => {
        const sa = segOf[a]?.baseOffset ?? -1; const sb = segOf[b]?.baseOffset ?? -1;
        return sa !== sb ? sa - sb : ix.valPos[slots[misses![a]!]!]! - ix.valPos[slots[misses![b]!]!]!;
      });
      order = o;
    }
    let j = 0;
    while (j < order.length) {
      const first = order[j]!;
      const seg = segOf[first];
      if (!seg) throw new CorruptionError(`no segment holds offset ${ix.valOff[slots[misses[first]!]!]} of the KV index`, { position: 0 });
      const start = ix.valPos[slots[misses[first]!]!]!;
      let end = start + Math.max(0, ix.valLen[slots[misses[first]!]!]!);
      let g = j + 1;
      while (g < order.length) {
        const m = order[g]!;
        const sl = slots[misses[m]!]!;
        const pos = ix.valPos[sl]!;
        const e = pos + ix.valLen[sl]!;
        if (segOf[m] !== seg || pos - end > COALESCE_GAP || e - start > COALESCE_MAX) break;
        if (e > end) end = e;
        g++;
      }
      const len = end - start;
      const ptr = this.scratch.ensure(Math.max(len, 1));
      if (len > 0) {
        const got = seg.readInto(ptr, len, start);
        if (got < len) throw new CorruptionError(`values run past the end of the segment`, { file: seg.logPath, position: start });
      }
      const u8 = this.k.u8;
      for (let q = j; q < g; q++) {
        const i = misses[order[q]!]!;
        const sl = slots[i]!;
        const vl = ix.valLen[sl]!;
        const at = ptr + (ix.valPos[sl]! - start);
        const crc = vl === 0 ? 0 : this.k.raw.crc32c(at, vl, 0) >>> 0;
        if (crc !== ix.valCrc[sl]) {
          throw new CorruptionError(`value CRC-32C mismatch (stored ${ix.valCrc[sl]}, read ${crc})`, { file: seg.logPath, position: ix.valPos[sl]!, offset: ix.valOff[sl] });
        }
        out[i] = u8.slice(at, at + vl);
      }
      j = g;
    }
  }

  /** Refills `out` with the next chunk of a range; returns false once the range is exhausted. */
  private rangeFiller<T>(b: Bounds, withValues: boolean, make: (key: Uint8Array, value: Uint8Array | undefined) => T): (out: T[]) => boolean {
    const keys: IndexKey[] = [];
    const slots: number[] = [];
    const vals: Uint8Array[] = [];
    let last: IndexKey | null = null;
    let left = b.limit;
    let chunk = 64;
    const ix = this.ix;
    return (out) => {
      if (left <= 0) return false;
      this.checkOpen();
      keys.length = 0;
      slots.length = 0;
      const more = this.fetchChunk(b, last, Math.min(chunk, left), keys, slots) && keys.length > 0;
      if (withValues) {
        vals.length = keys.length;
        this.valuesOf(keys, slots, vals);
      }
      for (let i = 0; i < keys.length; i++) out.push(make(ix.keyBytes(keys[i]!), withValues ? vals[i]! : undefined));
      left -= keys.length;
      if (more) last = keys[keys.length - 1]!;
      chunk = RANGE_CHUNK;
      return more && left > 0;
    };
  }

  /** Key-value pairs within bounds, in byte order of keys (synchronous iterator). */
  rangeSync(opts?: RangeOptions): IterableIterator<KvEntry> {
    this.checkOpen();
    return new SyncCursor(new Chunks(this.rangeFiller(this.bounds(opts), true, (key, value): KvEntry => ({ key, value: value! }))));
  }

  /** Key-value pairs within bounds, in byte order of keys (async iterator; see rangeSync). */
  range(opts?: RangeOptions): AsyncIterableIterator<KvEntry> {
    this.checkOpen();
    return new AsyncCursor(new Chunks(this.rangeFiller(this.bounds(opts), true, (key, value): KvEntry => ({ key, value: value! }))));
  }

  /** Keys within bounds, in byte order (synchronous iterator). */
  keysSync(opts?: RangeOptions): IterableIterator<Uint8Array> {
    this.checkOpen();
    return new SyncCursor(new Chunks(this.rangeFiller(this.bounds(opts), false, (key) => key)));
  }

  /** Keys within bounds, in byte order (async iterator). */
  keys(opts?: RangeOptions): AsyncIterableIterator<Uint8Array> {
    this.checkOpen();
    return new AsyncCursor(new Chunks(this.rangeFiller(this.bounds(opts), false, (key) => key)));
  }

  // --- maintenance: checkpoints and compaction ------------------------------------------

  private compactionHost() {
    const kv = this;
    return {
      k: kv.k,
      storage: kv.storage,
      partition: kv.partition,
      get index() { return kv.ix; },
      checkpointOffset: () => kv.cpOffset,
      nextGeneration: () => { kv.lastGen = Math.max(Date.now(), kv.lastGen + 1); return kv.lastGen; },
      stopping: () => kv.closing || kv.closed,
      mutations: () => kv.mutationCount,
      onSegmentSwapped: (seg: LogSegment | null, gen: number) => { if (seg) kv.gens.set(seg, gen); },
    };
  }

  /** Runs fn after every maintenance task queued before it (one at a time). */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn, fn);
    this.lock = run.catch(() => undefined);
    return run;
  }

  private compactionDue(): boolean {
    const r = this.opts.minDirtyRatio;
    if (r < 0 || this.compactor === null) return false;
    const p = this.partition;
    const segs = p.segments;
    if (segs.length < 2) return false;
    if (this.bytesSinceCompaction < Math.max(1 << 20, Math.min(p.config.segmentBytes, 64 << 20) / 4)) return false;
    const logBytes = p.sizeBytes;
    const live = this.ix.liveBytes + this.ix.size * 16;
    return logBytes > 0 && 1 - live / logBytes >= r;
  }

  /**
   * Clustering is due once clusterRatio of the values are out of key order,
   * and either writes paused for CLUSTER_IDLE_MS (values still being
   * overwritten would be copied for nothing) or twice that share is. With
   * `anyTime`, the pause is not required (maintain()).
   */
  private clusterDue(anyTime = false): boolean {
    const r = this.opts.clusterRatio;
    if (r < 0 || this.compactor === null) return false;
    const p = this.partition;
    if (p.segments.length < 2) return false;
    const ix = this.ix;
    const loose = ix.values - ix.clustered;
    if (loose < CLUSTER_MIN_VALUES || loose < ix.values * r) return false;
    if (this.bytesSinceCluster < Math.max(64 << 10, Math.min(p.config.segmentBytes, 64 << 20) / 4)) return false;
    return anyTime || performance.now() - this.lastWriteAt >= CLUSTER_IDLE_MS || loose >= ix.values * Math.min(1, 2 * r);
  }

  private async runCluster(): Promise<ClusterStats> {
    this.bytesSinceCluster = 0;
    const kv = this;
    const st = await clusterPass({
      partition: kv.partition,
      get index() { return kv.ix; },
      maxBatchBytes: kv.partition.config.maxMessageBytes,
      stopping: () => kv.closing || kv.closed,
      readValues: (slots, out) => kv.readSlots(slots, slots.map((_, i) => i), out),
      appendCopies: (keys, slots, values) => kv.appendCopies(keys, slots, values),
    });
    this.clusterPasses++;
    this.lastCluster = st;
    return st;
  }

  /**
   * Appends clustering copies of values and points the index at them. Each
   * write is one record batch within the namespace's batch limit (a key's put
   * and its flags record always share one): the keys are split into as many
   * batches as needed, and a key whose copy cannot fit in one batch on its own
   * is not copied (it stays where it is). Returns how many values were copied.
   */
  private appendCopies(keys: readonly IndexKey[], slots: readonly number[], values: readonly Uint8Array[]): number {
    this.checkWritable();
    const ix = this.ix;
    const limit = this.partition.config.maxMessageBytes;
    const flagsHeaderKeys = [FLAGS_HEADER_BYTES];
    let copied = 0;
    let i = 0;
    while (i < keys.length) {
      const records: RecordInput[] = [];
      const which: number[] = [];
      const putAt: number[] = [];
      const flagsAt: number[] = [];
      let bound = BATCH_HEADER_SIZE;
      for (; i < keys.length; i++) {
        const kb = ix.keyBytes(keys[i]!);
        const v = values[i]!;
        const f = ix.flags[slots[i]!]! & FLAG_MASK;
        const forgotten = (f & FLAG_FORGOTTEN) !== 0;
        const fb = new Uint8Array([f]);
        // The encoder's size bound, by which the partition would split an append (see batchSync).
        let need = RecordBatchEncoder.recordBound({ key: kb, value: v, headerKeys: [], headerValues: [], timestamp: 0 });
        if (forgotten) need += RecordBatchEncoder.recordBound({ key: kb, value: null, headerKeys: flagsHeaderKeys, headerValues: [fb], timestamp: 0 });
        if (bound + need > limit) {
          if (which.length > 0) break;
          // Does not fit in a batch even alone (a forgotten key's value near the limit): left where it is.
          continue;
        }
        bound += need;
        which.push(i);
        putAt.push(records.length);
        records.push({ key: kb, value: v });
        if (forgotten) {
          // The put would end the forgotten state on replay: its flags record goes in the same batch.
          flagsAt.push(records.length);
          records.push({ key: kb, value: null, headers: [[FLAGS_HEADER, fb]] });
        } else {
          flagsAt.push(-1);
        }
      }
      if (records.length === 0) continue;
      const w = this.write(records);
      for (let j = 0; j < which.length; j++) {
        ix.moved(slots[which[j]!]!, w.base + putAt[j]!, w.batchPos + w.valuePos[putAt[j]!]!, flagsAt[j]! >= 0 ? w.base + flagsAt[j]! : -1);
      }
      copied += which.length;
    }
    return copied;
  }

  /**
   * Clusters now: copies the values in closed segments that are not in key
   * order, in key order, to the end of the log (see docs/kv.md); resolves
   * with what it did. Reads and writes go on meanwhile.
   */
  async cluster(): Promise<ClusterStats> {
    this.checkWritable();
    return this.exclusive(() => this.runCluster());
  }

  /** Runs whatever background maintenance is due (compaction, clustering, checkpoint) and waits for it. */
  async maintain(): Promise<void> {
    this.checkWritable();
    await this.exclusive(async () => {
      if (this.compactionDue()) await this.runCompaction();
      if (this.clusterDue(true)) await this.runCluster();
      if (this.compactionDue()) await this.runCompaction();
      if (this.checkpointDue()) await this.writeCheckpoint();
    });
  }

  private checkpointDue(): boolean {
    // At least checkpointBytes, and at least the checkpoint's own size: writing one never costs more than replaying what it saves.
    return this.opts.checkpointBytes > 0 && this.bytesSinceCheckpoint >= Math.max(this.opts.checkpointBytes, this.checkpointFileBytes);
  }

  private scheduleMaintenance(): void {
    if (this.maintenanceScheduled || this.closing || this.closed || this.readOnly) return;
    if (!this.compactionDue() && !this.clusterDue() && !this.checkpointDue()) {
      // Clustering waits for writes to pause: look again then.
      if (this.idleTimer === null && this.clusterDue(true)) {
        this.idleTimer = setTimeout(() => { this.idleTimer = null; this.scheduleMaintenance(); }, CLUSTER_IDLE_MS);
        this.idleTimer.unref?.();
      }
      return;
    }
    this.maintenanceScheduled = true;
    setImmediate(() => {
      this.maintenanceScheduled = false;
      if (this.closing || this.closed) return;
      this.exclusive(async () => {
        if (this.compactionDue()) await this.runCompaction();
        else if (this.clusterDue()) await this.runCluster();
        else if (this.checkpointDue()) await this.writeCheckpoint();
      }).then(() => { this.maintenanceError = null; }, (err: Error) => { this.maintenanceError = err; });
    });
  }

  private async runCompaction(): Promise<CompactionStats> {
    this.bytesSinceCompaction = 0;
    const st = await this.compactor!.pass();
    this.passes++;
    this.lastCompaction = st;
    // Positions moved: a fresh checkpoint spares the next open a rescan.
    if ((st.rewritten > 0 || st.removed > 0) && !this.closing) await this.writeCheckpoint();
    return st;
  }

  /**
   * Runs a compaction pass now over every closed segment (the active one is
   * never compacted); resolves with what it did. Reads and writes go on
   * during the pass.
   */
  async compact(): Promise<CompactionStats> {
    this.checkWritable();
    return this.exclusive(() => this.runCompaction());
  }

  /** Writes a checkpoint of the index now (after flushing the log it covers). */
  async checkpoint(): Promise<void> {
    this.checkWritable();
    await this.exclusive(() => this.writeCheckpoint());
  }

  private async writeCheckpoint(): Promise<void> {
    if (!CHECKPOINTS_SUPPORTED || this.readOnly) return;
    const p = this.partition;
    const covered = p.logEndOffset;
    const ix = this.ix;
    // Snapshot: the tree is copy-on-write after clone(); the slot table is copied.
    const tree = ix.tree.clone();
    const used = ix.used;
    const snap = {
      covered,
      segments: p.segments.map((s) => ({ base: s.baseOffset, gen: this.gen(s) })),
      keys: [] as IndexKey[],
      slots: [] as number[],
      keyLength: (k: IndexKey) => ix.keyLength(k),
      writeKey: (k: IndexKey, out: Uint8Array, at: number) => ix.writeKey(k, out, at),
      valOff: ix.valOff.slice(0, used),
      flagOff: ix.flagOff.slice(0, used),
      valPos: ix.valPos.slice(0, used),
      valLen: ix.valLen.slice(0, used),
      valCrc: ix.valCrc.slice(0, used),
      flags: ix.flags.slice(0, used),
    };
    const bytesAtSnapshot = this.bytesSinceCheckpoint;
    // Everything the checkpoint refers to must be durable before it is.
    await p.flush();
    const pause = () => new Promise<void>((r) => setImmediate(r));
    // forEach hands out keys without allocating a pair per entry (a million keys take tens of ms).
    const keys = snap.keys;
    const slots = snap.slots;
    tree.forEach((s, ks) => { keys.push(ks); slots.push(s); });
    await pause();
    const bytes = await encodeCheckpoint(snap, this.crc, pause);
    await this.storage.writeFileAtomic(this.checkpointPath, bytes);
    this.checkpointFileBytes = bytes.length;
    this.cpOffset = covered;
    this.bytesSinceCheckpoint = Math.max(0, this.bytesSinceCheckpoint - bytesAtSnapshot);
  }

  // --- lifecycle and stats -----------------------------------------------------------

  stats(): KvStats {
    const p = this.partition;
    return {
      keys: this.ix.visible,
      indexedKeys: this.ix.size,
      liveBytes: this.ix.liveBytes,
      logBytes: p.sizeBytes,
      segments: p.segments.length,
      logEndOffset: p.logEndOffset,
      checkpointOffset: this.cpOffset,
      cacheEntries: this.cache.size,
      cacheHits: this.cache.hits,
      cacheMisses: this.cache.misses,
      compactionPasses: this.passes,
      lastCompaction: this.lastCompaction,
      values: this.ix.values,
      clusteredValues: this.ix.clustered,
      clusterPasses: this.clusterPasses,
      lastCluster: this.lastCluster,
      maintenanceError: this.maintenanceError ? this.maintenanceError.message : null,
      load: { ...this.loadReport },
    };
  }

  get isClosed(): boolean { return this.closed; }
  /** close() has begun and not finished. */
  get isClosing(): boolean { return this.closing && !this.closed; }

  private release(): void {
    this.compactor?.free();
    this.compactor = null;
    this.scratch.free();
    this.cache.clear();
  }

  /**
   * Stops background work, flushes, writes a checkpoint when the log moved
   * since the last one, and releases memory. The store closes the partition.
   */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    // A second caller (e.g. store.close() during a kv.close()) waits for the close in progress.
    this.closePromise ??= this.closeNow();
    return this.closePromise;
  }

  private async closeNow(): Promise<void> {
    this.closing = true;
    if (this.idleTimer !== null) { clearTimeout(this.idleTimer); this.idleTimer = null; }
    try {
      await this.lock;
      if (!this.readOnly && !this.partition.isClosed) {
        await this.partition.flush();
        if (this.partition.logEndOffset !== this.cpOffset || !this.storage.exists(this.checkpointPath)) await this.writeCheckpoint();
      }
    } finally {
      this.closed = true;
      this.release();
    }
  }
}

/** Index of the segment holding offset (the last with baseOffset <= offset), or -1. */
function segmentIndex(segs: readonly LogSegment[], offset: number): number {
  let lo = 0;
  let hi = segs.length - 1;
  if (hi < 0 || segs[0]!.baseOffset > offset) return -1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (segs[mid]!.baseOffset <= offset) lo = mid; else hi = mid - 1;
  }
  return lo;
}

const END: unique symbol = Symbol('end');

/** Items produced a chunk at a time by a synchronous filler. */
class Chunks<T> {
  private buf: T[] = [];
  private i = 0;
  private ended = false;
  constructor(private readonly fill: (out: T[]) => boolean) {}

  pull(): T | typeof END {
    if (this.i < this.buf.length) return this.buf[this.i++]!;
    while (!this.ended) {
      this.buf = [];
      this.i = 0;
      this.ended = !this.fill(this.buf);
      if (this.buf.length > 0) return this.buf[this.i++]!;
    }
    return END;
  }

  end(): void {
    this.ended = true;
    this.buf = [];
    this.i = 0;
  }
}

class SyncCursor<T> implements IterableIterator<T> {
  constructor(private readonly c: Chunks<T>) {}
  next(): IteratorResult<T> {
    const v = this.c.pull();
    return v === END ? { value: undefined, done: true } : { value: v, done: false };
  }
  return(): IteratorResult<T> {
    this.c.end();
    return { value: undefined, done: true };
  }
  [Symbol.iterator](): IterableIterator<T> { return this; }
}

/** The async form: every step is already computed; next() resolves at once. */
class AsyncCursor<T> implements AsyncIterableIterator<T> {
  constructor(private readonly c: Chunks<T>) {}
  next(): Promise<IteratorResult<T>> {
    try {
      const v = this.c.pull();
      return Promise.resolve(v === END ? { value: undefined, done: true } : { value: v, done: false });
    } catch (err) {
      return Promise.reject(err);
    }
  }
  return(): Promise<IteratorResult<T>> {
    this.c.end();
    return Promise.resolve({ value: undefined, done: true });
  }
  [Symbol.asyncIterator](): AsyncIterableIterator<T> { return this; }
}

export { FLAG_DISABLED, FLAG_FORGOTTEN };
