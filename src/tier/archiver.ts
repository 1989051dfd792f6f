// The upload loop of one partition (docs/tiering.md).
//
// A cycle:
//   1. Load the manifest from the object store (once; until then the copy
//      cached in the partition directory serves reads and eviction checks).
//      Objects in the partition's directory that the manifest does not list
//      are leftovers: of an upload cut off by a crash (they are uploaded
//      again, same keys) or of a remote retention cut off after its manifest
//      write (they are deleted).
//   2. Upload closed segments not yet archived, oldest first (never the
//      active one; a segment not yet flushed is flushed first): .log, .index
//      and .timeindex, each checked (the .log CRC-scanned batch by batch in
//      wasm while it uploads, its CRC-32C computed) and its size confirmed by
//      a stat; then the manifest, replaced whole, listing the new segment.
//   3. Evict local copies past local retention, only once archived.
//   4. Remote retention (the topic's retention.ms / retention.bytes over the
//      whole log): the manifest first, then the objects.
// Cycles run in the background (on roll, on a timer, with capped backoff
// after failures) and never on the append path; archiveNow() runs one and
// reports its errors.

import * as path from 'node:path';
import { Kernels } from '../kernels.js';
import { Storage } from '../storage.js';
import { Partition } from '../partition.js';
import { LogSegment } from '../log_segment.js';
import { Crc32c } from '../crc32c.js';
import { BackpressureError, CorruptionError, InvalidArgumentError, ObjectStoreError, SedimentError, TierConflictError } from '../errors.js';
import { ObjectStore } from './object_store.js';
import { ChunkCache } from './chunk_cache.js';
import { ResolvedTierConfig } from './tier_config.js';
import {
  ArchiveLayout, Manifest, ManifestSegment, ObjectKind, OBJECT_KINDS, archivedUpTo, crcHex, emptyManifest, parseManifest,
  segmentObjectKey, serializeManifest, manifestBytes, MANIFEST_NAME,
} from './manifest.js';
import { SegmentChecker, SegmentFacts, archivedBatchLimit } from './segment_check.js';
import { RemotePartitionReader } from './remote_reader.js';

/** The local copy of the partition's manifest (in the partition directory). */
export const LOCAL_MANIFEST_FILE = 'tier-manifest.json';
/** Bytes read from a local segment file per step of an upload. */
const READ_STEP = 8 << 20;
/** Part size of streamed (multipart) uploads. */
const PART_BYTES = 16 << 20;

export type ArchiverState = 'starting' | 'idle' | 'uploading' | 'backoff' | 'conflict' | 'disabled' | 'stopped';

export interface PartitionTierStatus {
  topic: string;
  partition: number;
  state: ArchiverState;
  /** True once the manifest was read from the object store (not only the local copy). */
  manifestConfirmed: boolean;
  manifestVersion: number;
  /** First archived offset, or null when nothing is archived. */
  remoteLogStartOffset: number | null;
  /** One past the last archived offset. */
  archivedUpTo: number;
  archivedSegments: number;
  archivedBytes: number;
  localLogStartOffset: number;
  logEndOffset: number;
  localSegments: number;
  localBytes: number;
  /** Closed segments waiting for upload. */
  pendingSegments: number;
  pendingBytes: number;
  /** Local bytes not yet archived (pending + active segment): what backpressure limits. */
  unarchivedBytes: number;
  /** Counters of this process. */
  uploadedSegments: number;
  uploadedBytes: number;
  evictedSegments: number;
  remoteDeletedSegments: number;
  /** Leftover objects of interrupted uploads found (and redone). */
  interruptedUploads: number;
  lastUploadAt: number | null;
  consecutiveFailures: number;
  lastError: { code: string; message: string; at: number } | null;
}

/** Progress of uploads, in bytes of segment files. */
export type UploadProgress = (e: { topic: string; partition: number; baseOffset: number; bytes: number }) => void;

/** At most n tasks at a time. */
export class Limiter {
  private active = 0;
  private readonly queue: (() => void)[] = [];
  constructor(readonly n: number) {}
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.n) await new Promise<void>((resolve) => this.queue.push(resolve));
    this.active++;
    try { return await fn(); } finally {
      this.active--;
      this.queue.shift()?.();
    }
  }
}

export interface ArchiverDeps {
  k: Kernels;
  crc: Crc32c;
  storage: Storage;
  store: ObjectStore;
  cache: ChunkCache;
  layout: ArchiveLayout;
  config: ResolvedTierConfig;
  limiter: Limiter;
  readOnly: boolean;
  /** Called before each cycle's uploads (the store catalog). */
  beforeUpload?: () => Promise<void>;
}

function errorInfo(err: unknown): { code: string; message: string; at: number } {
  return { code: err instanceof SedimentError ? err.code : 'ERR_UNKNOWN', message: String((err as Error)?.message ?? err), at: Date.now() };
}

export class PartitionArchiver {
  readonly p: Partition;
  readonly reader: RemotePartitionReader;
  readonly dir: string;
  private readonly d: ArchiverDeps;
  private manifest: Manifest;
  private confirmed = false;
  private state: ArchiverState = 'starting';
  private chain: Promise<void> = Promise.resolve();
  private localWrite: Promise<void> = Promise.resolve();
  private timer: ReturnType<typeof setTimeout> | null = null;
  private running = false;
  private again = false;
  private stopped = false;
  private failures = 0;
  private lastError: PartitionTierStatus['lastError'] = null;
  private conflict: string | null = null;
  /** Bytes of closed, non-empty local segments not yet archived (kept current for the append guard). */
  private pendingClosedBytes = 0;
  private readonly counters = { uploadedSegments: 0, uploadedBytes: 0, evictedSegments: 0, remoteDeletedSegments: 0, interruptedUploads: 0, lastUploadAt: null as number | null };
  private readonly previousOnRoll: ((seg: LogSegment) => void) | null;
  private readonly maxBatchBytes: number;
  private progress: UploadProgress | null = null;

  constructor(p: Partition, d: ArchiverDeps) {
    this.p = p;
    this.d = d;
    this.dir = d.layout.partitionDir(p.topic, p.id);
    this.manifest = this.loadLocalManifest() ?? emptyManifest(p.topic, p.id);
    this.maxBatchBytes = archivedBatchLimit(p.config.maxMessageBytes);
    this.reader = new RemotePartitionReader({
      k: d.k, crc: d.crc, store: d.store, cache: d.cache, dir: this.dir, manifest: () => this.manifest,
      chunkBytes: d.config.chunkBytes, prefetchChunks: d.config.prefetchChunks, maxBatchBytes: this.maxBatchBytes,
    });
    this.previousOnRoll = p.onRoll;
    p.remote = this.reader;
    if (d.readOnly) { this.state = 'disabled'; return; }
    if (p.config.cleanupPolicy === 'compact') {
      // Compaction rewrites closed segments: like Kafka, compacted topics are not tiered.
      this.state = 'disabled';
      return;
    }
    p.retentionGuard = (seg) => this.isArchived(seg);
    p.onRoll = (seg) => {
      this.previousOnRoll?.(seg);
      if (seg.size > 0) this.pendingClosedBytes += seg.size;
      this.kick(0);
    };
    if (d.config.backpressureBytes >= 0) {
      const limit = d.config.backpressureBytes;
      p.appendGuard = () => {
        const bytes = this.pendingClosedBytes + p.active.size;
        if (bytes > limit) throw new BackpressureError(p.name, bytes, limit);
      };
    }
    this.recountPending();
  }

  /** True when tiering runs for this partition (not read-only, not compacted). */
  get enabled(): boolean { return this.state !== 'disabled'; }

  /** The current manifest (the local copy until the object store answered). */
  currentManifest(): Manifest { return this.manifest; }

  // --- local manifest copy ---------------------------------------------------

  private loadLocalManifest(): Manifest | null {
    const file = path.join(this.p.dir, LOCAL_MANIFEST_FILE);
    const raw = this.d.storage.readFile(file);
    if (!raw) return null;
    try {
      return parseManifest(raw, file, { topic: this.p.topic, partition: this.p.id });
    } catch {
      return null; // a damaged copy only means waiting for the object store
    }
  }

  private async saveLocalManifest(): Promise<void> {
    const write = async () => {
      if (this.p.isClosed) return;
      // A cache of the remote manifest: replaced atomically (temp file, rename) but not fsynced;
      // losing it to a crash only means waiting for the object store on the next open.
      const file = path.join(this.p.dir, LOCAL_MANIFEST_FILE);
      const data = serializeManifest(this.manifest);
      const h = this.d.storage.open(file + '.tmp', 'write');
      try { h.truncate(0); h.write(data, 0, data.length, 0); } finally { h.close(); }
      this.d.storage.rename(file + '.tmp', file);
    };
    // Writes share one temporary file: one at a time.
    const p = this.localWrite.catch(() => undefined).then(write);
    this.localWrite = p;
    await p;
  }

  // --- bookkeeping ---------------------------------------------------------------

  private entryFor(seg: LogSegment): ManifestSegment | undefined {
    const segs = this.manifest.segments;
    let lo = 0;
    let hi = segs.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const b = segs[mid]!.baseOffset;
      if (b === seg.baseOffset) return segs[mid];
      if (b < seg.baseOffset) lo = mid + 1; else hi = mid - 1;
    }
    return undefined;
  }

  /** True when the segment's data is safe in the archive (or past it: removed by remote retention). */
  isArchived(seg: LogSegment): boolean {
    if (this.conflict) return false;
    const e = this.entryFor(seg);
    // Same base and same bytes (a reopened log's closed segment ends at the next base, so nextOffset may exceed the entry's).
    if (e) return e.objects.log.size === seg.size && seg.nextOffset >= e.nextOffset;
    const upTo = archivedUpTo(this.manifest);
    if (seg.size === 0) return seg.baseOffset < upTo;
    // Below the archive's start: remote retention already dropped it, so the log's retention did too.
    return this.manifest.version > 0 && seg.nextOffset <= this.manifest.logStartOffset;
  }

  private pendingSegments(): LogSegment[] {
    const segs = this.p.segments;
    const upTo = archivedUpTo(this.manifest);
    const out: LogSegment[] = [];
    for (let i = 0; i < segs.length - 1; i++) {
      const s = segs[i]!;
      if (s.size > 0 && s.baseOffset >= upTo && !s.deleted) out.push(s);
    }
    return out;
  }

  private recountPending(): void {
    this.pendingClosedBytes = this.pendingSegments().reduce((n, s) => n + s.size, 0);
  }

  // --- scheduling ----------------------------------------------------------------

  /** Schedules a background cycle after delayMs (sooner requests win). */
  kick(delayMs = 0): void {
    if (this.stopped || !this.enabled || !this.d.config.autoArchive) return;
    if (this.running) { this.again = true; return; }
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => { this.timer = null; void this.background(); }, delayMs);
    this.timer.unref?.();
  }

  private async background(): Promise<void> {
    if (this.stopped) return;
    this.running = true;
    try {
      await this.runOnce();
    } catch {
      // Recorded in status by runOnce; retry with capped exponential backoff.
      this.running = false;
      if (this.state !== 'conflict') this.state = 'backoff';
      const base = Math.min(this.d.config.maxBackoffMs, 250 * 2 ** Math.min(this.failures - 1, 20));
      this.kick(Math.round(base * (0.5 + Math.random() * 0.5)));
      return;
    }
    this.running = false;
    if (this.again) { this.again = false; this.kick(0); }
  }

  /** Runs one cycle (after any running one); rejects with its error. */
  runOnce(progress?: UploadProgress): Promise<void> {
    const run = async () => {
      if (this.stopped || !this.enabled || this.p.isClosed) return;
      this.progress = progress ?? null;
      try {
        await this.cycle();
        this.failures = 0;
        this.lastError = null;
        if (this.state !== 'conflict') this.state = 'idle';
      } catch (err) {
        this.failures++;
        this.lastError = errorInfo(err);
        if (this.state !== 'conflict') this.state = 'backoff';
        throw err;
      } finally {
        this.progress = null;
        this.recountPending();
      }
    };
    const p = this.chain.catch(() => undefined).then(run);
    this.chain = p;
    return p;
  }

  /** Stops background work and waits for a running cycle (bounded by the object store's retry limits). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.chain.catch(() => undefined);
    if (this.state !== 'disabled') this.state = 'stopped';
    if (this.p.remote === this.reader) this.p.remote = null;
    if (this.p.appendGuard) this.p.appendGuard = null;
  }

  // --- the cycle -----------------------------------------------------------------

  private async cycle(): Promise<void> {
    if (!this.confirmed) await this.loadRemoteManifest();
    if (this.conflict) throw new TierConflictError(this.conflict);
    await this.d.beforeUpload?.();
    await this.uploadPending();
    await this.evictLocal(Date.now());
    await this.remoteRetention(Date.now());
  }

  /**
   * Reloads the manifest from the object store (after any running cycle, so
   * it never races an upload's manifest write). Returns it.
   */
  refresh(): Promise<Manifest> {
    const run = async () => (this.p.isClosed ? this.manifest : this.loadRemoteManifest());
    const p = this.chain.catch(() => undefined).then(run);
    this.chain = p.then(() => undefined, () => undefined);
    return p;
  }

  /** Reads the manifest from the object store and reconciles the partition directory's objects with it. */
  private async loadRemoteManifest(): Promise<Manifest> {
    const key = this.dir + MANIFEST_NAME;
    let m: Manifest;
    try {
      m = parseManifest(await this.d.store.read(key), key, { topic: this.p.topic, partition: this.p.id });
    } catch (err) {
      if (!(err instanceof ObjectStoreError && err.kind === 'NotFound')) throw err;
      m = emptyManifest(this.p.topic, this.p.id);
    }
    if (this.stopped) return m;
    if (this.confirmed && m.version < this.manifest.version) {
      throw new TierConflictError(`the archive's manifest went back from version ${this.manifest.version} to ${m.version}: another writer or a restored bucket? (${key})`);
    }
    this.manifest = m;
    this.confirmed = true;
    this.checkConflict();
    if (!this.d.readOnly && this.enabled) {
      await this.reconcileObjects();
      await this.saveLocalManifest();
    }
    this.recountPending();
    return m;
  }

  /** The local log must continue the archive: same segments where both hold them, and no rewind. */
  private checkConflict(): void {
    const m = this.manifest;
    const upTo = archivedUpTo(m);
    let problem: string | null = null;
    if (m.version > 0 && this.p.logEndOffset < upTo) {
      problem = `the local log ends at ${this.p.logEndOffset} but the archive holds offsets up to ${upTo - 1}: restore the partition (sediment tier restore) instead of reusing the archive`;
    }
    for (const seg of this.p.segments) {
      if (problem) break;
      const e = this.entryFor(seg);
      if (e && (seg.nextOffset < e.nextOffset || e.objects.log.size !== seg.size) && seg !== this.p.active) {
        problem = `local segment ${seg.baseOffset} (${seg.size} bytes, next offset ${seg.nextOffset}) differs from the archived one (${e.objects.log.size} bytes, next offset ${e.nextOffset})`;
      }
    }
    this.conflict = problem;
    if (problem) {
      this.state = 'conflict';
      this.lastError = { code: 'ERR_TIER_CONFLICT', message: problem, at: Date.now() };
    }
  }

  /** Deals with objects the manifest does not list (interrupted uploads or retention). */
  private async reconcileObjects(): Promise<void> {
    const m = this.manifest;
    const listed = new Set<string>([MANIFEST_NAME]);
    for (const s of m.segments) for (const kind of OBJECT_KINDS) listed.add(s.objects[kind].key);
    const upTo = archivedUpTo(m);
    const interrupted = new Set<number>();
    for (const key of await this.d.store.list(this.dir)) {
      const name = key.slice(this.dir.length);
      if (listed.has(name) || name.endsWith('/')) continue;
      const base = /^(\d{20})\.(log|index|timeindex)$/.exec(name);
      if (!base) continue; // not ours: leave it alone
      const b = Number(base[1]);
      if (b >= upTo) interrupted.add(b); // redone by the next upload, same key
      else await this.d.store.delete(key); // dropped from the manifest by retention, delete cut short
    }
    this.counters.interruptedUploads += interrupted.size;
  }

  private async uploadPending(): Promise<void> {
    for (;;) {
      if (this.stopped || this.p.isClosed) return;
      const seg = this.pendingSegments()[0];
      if (!seg) return;
      if (seg.nextOffset > this.p.highWatermark) {
        // Only durable data is archived: an unflushed segment could still be cut by recovery.
        await this.p.flush();
        if (seg.nextOffset > this.p.highWatermark) return;
      }
      this.state = 'uploading';
      await this.d.limiter.run(() => this.upload(seg));
      this.recountPending();
    }
  }

  /** Reads a local file range into a new Buffer (in steps, yielding to the event loop between them). */
  private async readLocal(file: string, size: number, onChunk: (chunk: Buffer) => Promise<void> | void, step = READ_STEP): Promise<void> {
    const h = this.d.storage.open(file, 'read');
    try {
      for (let pos = 0; pos < size; pos += step) {
        const n = Math.min(step, size - pos);
        const buf = Buffer.allocUnsafe(n);
        const got = h.read(buf, 0, n, pos);
        if (got < n) throw new CorruptionError(`segment file is shorter than expected (${pos + got} < ${size})`, { file, position: pos + got });
        await onChunk(buf);
      }
    } finally {
      h.close();
    }
  }

  /**
   * Uploads one closed segment now and lists it in the manifest: its three
   * objects, checked and verified, then the manifest. A segment already
   * archived is uploaded again (same keys, same bytes) and its entry
   * replaced (benchmarks, repairs). Runs after any running cycle. Returns
   * the manifest entry.
   */
  uploadSegment(seg: LogSegment): Promise<ManifestSegment> {
    const run = async () => {
      if (!this.confirmed) await this.loadRemoteManifest();
      if (this.conflict) throw new TierConflictError(this.conflict);
      return this.d.limiter.run(() => this.upload(seg));
    };
    const p = this.chain.catch(() => undefined).then(run);
    this.chain = p.then(() => undefined, () => undefined);
    return p;
  }

  private async upload(seg: LogSegment): Promise<ManifestSegment> {
    if (!seg.closed || seg === this.p.active) throw new InvalidArgumentError(`segment ${seg.baseOffset} of ${this.p.name} is active: only closed segments are archived`);
    if (seg.size === 0) throw new InvalidArgumentError(`segment ${seg.baseOffset} of ${this.p.name} is empty`);
    const cfg = this.d.config;
    const st = this.d.store;
    const size = seg.size;
    const keys: Record<ObjectKind, string> = {
      log: segmentObjectKey(seg.baseOffset, 'log'),
      index: segmentObjectKey(seg.baseOffset, 'index'),
      timeindex: segmentObjectKey(seg.baseOffset, 'timeindex'),
    };
    // The indexes from memory (rebuilt there if the files were damaged).
    const wasLoaded = seg.index.loaded && seg.timeIndex.loaded;
    seg.loadIndexes();
    const index = Buffer.from(seg.index.bytes());
    const timeindex = Buffer.from(seg.timeIndex.bytes());
    if (!wasLoaded && seg.closed && !seg.deleted) { seg.index.unload(); seg.timeIndex.unload(); }

    const checker = new SegmentChecker(this.d.k, this.d.crc, {
      baseOffset: seg.baseOffset, nextOffset: seg.nextOffset, maxBatchBytes: this.maxBatchBytes, file: seg.logPath, verifyBatchCrcs: cfg.verifyBatchesOnUpload,
    });
    const objects: ManifestSegment['objects'] = {
      log: { key: keys.log, size, crc32c: '' },
      index: { key: keys.index, size: index.length, crc32c: crcHex(this.d.crc.of(index)) },
      timeindex: { key: keys.timeindex, size: timeindex.length, crc32c: crcHex(this.d.crc.of(timeindex)) },
    };
    // The small objects go up, and are verified, while the log uploads. allSettled
    // handles rejections at once: no unhandled rejection whatever fails first.
    const small = Promise.allSettled([
      st.write(this.dir + keys.index, index).then(() => this.verifyObject(objects.index)),
      st.write(this.dir + keys.timeindex, timeindex).then(() => this.verifyObject(objects.timeindex)),
    ]);
    let facts: SegmentFacts;
    try {
      if (size <= cfg.multipartThresholdBytes) {
        // One PUT: read the file, start the upload, check the bytes while it runs.
        let whole: Buffer | null = null;
        await this.readLocal(seg.logPath, size, (c) => { whole = c; }, Math.max(size, 1));
        const put = st.write(this.dir + keys.log, whole!).then(() => null, (e: unknown) => e ?? new Error('upload failed'));
        let checkErr: unknown = null;
        try {
          checker.update(whole!);
        } catch (e) {
          checkErr = e;
        }
        const putErr = await put;
        if (checkErr) throw checkErr;
        if (putErr) throw putErr;
        facts = checker.finish();
        this.progress?.({ topic: this.p.topic, partition: this.p.id, baseOffset: seg.baseOffset, bytes: size });
      } else {
        // Streamed (multipart) upload, checked part by part.
        const w = await st.writer(this.dir + keys.log, PART_BYTES);
        await this.readLocal(seg.logPath, size, async (c) => {
          const sent = w.write(c).then(() => null, (e: unknown) => e ?? new Error('upload failed'));
          let checkErr: unknown = null;
          try { checker.update(c); } catch (e) { checkErr = e; }
          const sendErr = await sent;
          if (checkErr) throw checkErr;
          if (sendErr) throw sendErr;
          this.progress?.({ topic: this.p.topic, partition: this.p.id, baseOffset: seg.baseOffset, bytes: c.length });
        }, PART_BYTES);
        await w.close();
        facts = checker.finish();
      }
    } finally {
      checker.free();
    }
    if (facts.size !== size) throw new CorruptionError(`segment read ${facts.size} bytes, expected ${size}`, { file: seg.logPath, position: facts.size });
    objects.log.crc32c = crcHex(facts.crc32c);
    await this.verifyObject(objects.log);
    for (const r of await small) if (r.status === 'rejected') throw r.reason;

    const entry: ManifestSegment = {
      baseOffset: seg.baseOffset,
      lastOffset: Math.max(seg.baseOffset, Math.min(facts.lastOffset, seg.nextOffset - 1)),
      nextOffset: seg.nextOffset,
      firstTimestamp: facts.firstTimestamp,
      maxTimestamp: facts.maxTimestamp,
      records: facts.records,
      objects,
    };
    const m = this.manifest;
    const segments = m.segments.filter((s) => s.baseOffset !== entry.baseOffset);
    segments.push(entry);
    segments.sort((a, b) => a.baseOffset - b.baseOffset);
    await this.writeManifest({ ...m, segments, logStartOffset: segments[0]!.baseOffset });
    this.counters.uploadedSegments++;
    this.counters.uploadedBytes += size + index.length + timeindex.length;
    this.counters.lastUploadAt = Date.now();
    return entry;
  }

  /** The object must be in the store with the expected size (and, optionally, its CRC-32C read back). */
  private async verifyObject(o: { key: string; size: number; crc32c: string }): Promise<void> {
    const key = this.dir + o.key;
    const st = await this.d.store.stat(key);
    if (!st) throw new ObjectStoreError('verify', key, 'NotFound', 'uploaded object is missing');
    if (st.size !== o.size) throw new ObjectStoreError('verify', key, 'Unexpected', `uploaded object has ${st.size} bytes, expected ${o.size}`);
    if (this.d.config.verifyReadBack && o.size > 0) {
      const back = await this.d.store.read(key);
      const crc = crcHex(this.d.crc.of(back));
      if (crc !== o.crc32c) throw new ObjectStoreError('verify', key, 'Unexpected', `uploaded object reads back with CRC-32C ${crc}, expected ${o.crc32c}`);
    }
  }

  private async writeManifest(next: Omit<Manifest, 'version' | 'updatedAt'>): Promise<void> {
    const m: Manifest = { ...next, version: this.manifest.version + 1, updatedAt: Date.now() };
    await this.d.store.write(this.dir + MANIFEST_NAME, serializeManifest(m));
    this.manifest = m;
    await this.saveLocalManifest();
  }

  /** Deletes archived local segments past local retention (never the active one). */
  private async evictLocal(now: number): Promise<void> {
    const cfg = this.d.config;
    if (cfg.localRetentionBytes < 0 && cfg.localRetentionMs < 0) return;
    const p = this.p;
    let total = p.sizeBytes;
    while (p.segments.length > 1 && !p.isClosed) {
      const seg = p.segments[0]!;
      if (!this.isArchived(seg)) break;
      const e = this.entryFor(seg);
      const maxTs = e ? e.maxTimestamp : seg.maxTimestamp;
      const bySize = cfg.localRetentionBytes >= 0 && total - seg.size >= cfg.localRetentionBytes;
      const byTime = cfg.localRetentionMs >= 0 && maxTs >= 0 && maxTs < now - cfg.localRetentionMs;
      if (!bySize && !byTime && seg.size > 0) break;
      p.deleteOldestSegment();
      total -= seg.size;
      this.counters.evictedSegments++;
    }
  }

  /** Applies the topic's retention to the archive: manifest first, then the objects. */
  private async remoteRetention(now: number): Promise<void> {
    const c = this.p.config;
    if (c.cleanupPolicy !== 'delete' || (c.retentionMs < 0 && c.retentionBytes < 0)) return;
    const m = this.manifest;
    if (m.segments.length === 0) return;
    const local = this.p.localLogStartOffset;
    // Total log size: archived bytes not held locally plus the local log.
    let total = this.p.sizeBytes;
    for (const s of m.segments) if (s.baseOffset < local) total += s.objects.log.size;
    let drop = 0;
    for (const s of m.segments) {
      const byTime = c.retentionMs >= 0 && s.maxTimestamp >= 0 && s.maxTimestamp < now - c.retentionMs;
      const bySize = c.retentionBytes >= 0 && total - s.objects.log.size >= c.retentionBytes;
      if (!byTime && !bySize) break;
      if (s.baseOffset < local) total -= s.objects.log.size;
      drop++;
    }
    if (drop === 0) return;
    const gone = m.segments.slice(0, drop);
    const rest = m.segments.slice(drop);
    await this.writeManifest({ ...m, segments: rest, logStartOffset: rest[0]?.baseOffset ?? archivedUpTo(m) });
    for (const s of gone) {
      for (const kind of OBJECT_KINDS) {
        const key = this.dir + s.objects[kind].key;
        this.d.cache.invalidatePrefix(key);
        // A failure leaves an orphan, deleted when the manifest is next loaded.
        await this.d.store.delete(key).catch(() => undefined);
      }
      this.counters.remoteDeletedSegments++;
    }
  }

  // --- status --------------------------------------------------------------------

  status(): PartitionTierStatus {
    const m = this.manifest;
    const p = this.p;
    const pending = p.isClosed ? [] : this.pendingSegments();
    const pendingBytes = pending.reduce((n, s) => n + s.size, 0);
    return {
      topic: p.topic,
      partition: p.id,
      state: this.state,
      manifestConfirmed: this.confirmed,
      manifestVersion: m.version,
      remoteLogStartOffset: m.segments.length > 0 ? m.segments[0]!.baseOffset : null,
      archivedUpTo: archivedUpTo(m),
      archivedSegments: m.segments.length,
      archivedBytes: manifestBytes(m),
      localLogStartOffset: p.isClosed ? -1 : p.localLogStartOffset,
      logEndOffset: p.isClosed ? -1 : p.logEndOffset,
      localSegments: p.segments.length,
      localBytes: p.isClosed ? 0 : p.sizeBytes,
      pendingSegments: pending.length,
      pendingBytes,
      unarchivedBytes: p.isClosed ? 0 : pendingBytes + p.active.size,
      ...this.counters,
      consecutiveFailures: this.failures,
      lastError: this.lastError,
    };
  }
}
