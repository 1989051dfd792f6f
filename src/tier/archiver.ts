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
//      and .timeindex of a segment at the same time, each checked (the .log
//      scanned batch by batch in wasm and its CRC-32C computed while it
//      uploads, from the one read of the file) and its size confirmed by a
//      stat; then the manifest, replaced whole, listing the new segments.
//      Up to uploadTuning.pipelineSegments (pipelineSegmentsFiles on fs) segments send bytes at once
//      (the next one is read, checked and sent while the previous one
//      completes and is verified);
//      the manifest lists only a run of verified segments from the oldest
//      up, so no reader sees an entry whose objects are missing and no gap
//      is ever listed, and one manifest write covers every segment verified
//      while the previous manifest write was in flight.
//   3. Evict local copies past local retention, only once archived.
//   4. Remote retention (the topic's retention.ms / retention.bytes over the
//      whole log): the manifest first, then the objects.
// Cycles run in the background (on roll, on a timer, with capped backoff
// after failures) and never on the append path; archiveNow() runs one and
// reports its errors.

import * as path from 'node:path';
import { Kernels } from '../kernels.js';
import { Storage, FileHandle } from '../storage.js';
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
/** Stats of an uploaded object before a missing or wrong-sized object fails the upload, and the first wait between them (doubling). */
const VERIFY_ATTEMPTS = 5;
const VERIFY_DELAY_MS = 20;

/** The wait before look number attempt + 1 at something a store may show late (objects, manifests): 20, 40, 80, 160 ms. */
function lookAgainAfter(attempt: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, VERIFY_DELAY_MS * 2 ** (attempt - 1)));
}
/** Largest log uploaded in one PUT from memory, whatever the multipart threshold (larger ones are streamed). */
const MAX_ONE_PUT_BYTES = 1 << 30;
/** Part size of multipart uploads (segments above the multipart threshold). */
const PART_BYTES = 16 << 20;

/**
 * Tuning of the upload path, shared by every archiver of the process.
 * Changing it affects uploads started afterwards.
 */
export const uploadTuning = {
  /**
   * Bytes read from a segment file, checked and handed to the object store
   * per step of a streamed upload (services that stream natively, and
   * multipart uploads). Two such buffers are in use per streamed upload.
   */
  streamChunkBytes: 4 << 20,
  /**
   * Stream segments at or below the multipart threshold too, where the
   * service takes streamed writes natively (fs): two chunk buffers per
   * upload instead of the whole segment, but a request per chunk. Off by
   * default: one PUT, with the check running while it is in flight,
   * measured 5-10% faster on fs on a loaded 2-core machine.
   */
  streamSmallSegments: false,
  /**
   * Segments of one partition sending bytes at once on object stores (1..64;
   * 1 sends one after the other). A segment whose bytes are all handed over,
   * being completed and verified, no longer counts; at most twice this many
   * are started and not yet listed. 4 uploaded a backlog of four 16 MiB
   * segments to s3rver 4-11% faster than 2 in three A/B runs (3: between
   * them; 6: no faster than 2), on a machine that was not loaded; the
   * uploadConcurrency slots (4 by default) bound it across partitions.
   */
  pipelineSegments: 4,
  /**
   * The same on services that write files (fs, ...: streamed writes go
   * straight to the object), where every object ends with a flush to disk
   * that more segments in flight overlap: 4 measured 15-25% faster than 2 on
   * fs for a backlog of 16 MiB segments.
   */
  pipelineSegmentsFiles: 4,
  /**
   * A segment uploaded in one PUT is read from its file in pieces of this
   * many bytes, up to 8 at once off the event loop (where the storage reads
   * asynchronously): a 16 MiB segment in the page cache was read in 1.6 ms
   * instead of 4.4 ms in one read, on a 2-core machine. Segments this size
   * or smaller are read in one call.
   */
  readPieceBytes: 2 << 20,
};

/** Largest value accepted for uploadTuning.streamChunkBytes. */
const MAX_STREAM_CHUNK = 256 << 20;

function checkTuning(files: boolean): { chunk: number; window: number; readPiece: number } {
  const chunk = uploadTuning.streamChunkBytes;
  const readPiece = uploadTuning.readPieceBytes;
  if (!Number.isSafeInteger(readPiece) || readPiece < 1 || readPiece > MAX_STREAM_CHUNK) throw new InvalidArgumentError(`uploadTuning.readPieceBytes must be 1..${MAX_STREAM_CHUNK}, got ${readPiece}`);
  const name = files ? 'pipelineSegmentsFiles' : 'pipelineSegments';
  const window = uploadTuning[name];
  if (!Number.isSafeInteger(chunk) || chunk < 1 || chunk > MAX_STREAM_CHUNK) throw new InvalidArgumentError(`uploadTuning.streamChunkBytes must be 1..${MAX_STREAM_CHUNK}, got ${chunk}`);
  if (!Number.isSafeInteger(window) || window < 1 || window > 64) throw new InvalidArgumentError(`uploadTuning.${name} must be 1..64, got ${window}`);
  return { chunk, window, readPiece };
}

/** A buffer on loan from a BufferPool: `buf` has the length asked for. */
export interface BufferLease {
  readonly buf: Buffer;
  /** Gives the buffer back; it must no longer be in use (no write pending on it). Idempotent. */
  release(): void;
}

/**
 * Reusable read buffers of the upload path. Reading a segment file into a
 * fresh 16 MiB Buffer costs about 6× a read into memory already mapped (each
 * new page faults and is zeroed by the kernel), so buffers are kept for the
 * next upload: at most maxRetained of them and maxRetainedBytes in all, all
 * dropped after idleMs without use.
 */
export class BufferPool {
  private readonly free: Buffer[] = [];
  private retainedBytes = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  /** Buffers allocated (not reused) so far. */
  allocations = 0;

  constructor(readonly maxRetained = 4, readonly maxRetainedBytes = 256 << 20, readonly idleMs = 10_000) {}

  /** Capacity allocated for a request of n bytes: whole MiB (at least 1 MiB), so similar sizes share buffers. */
  static capacityFor(n: number): number {
    const MiB = 1 << 20;
    return Math.max(MiB, Math.ceil(n / MiB) * MiB);
  }

  take(n: number): BufferLease {
    if (!Number.isSafeInteger(n) || n < 0 || n > 0x7fffffff) throw new InvalidArgumentError(`buffer size must be 0..2^31-1, got ${n}`);
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const len = this.free[i]!.length;
      if (len >= n && (best < 0 || len < this.free[best]!.length)) best = i;
    }
    let whole: Buffer;
    if (best >= 0) {
      whole = this.free.splice(best, 1)[0]!;
      this.retainedBytes -= whole.length;
    } else {
      whole = Buffer.allocUnsafeSlow(BufferPool.capacityFor(n));
      this.allocations++;
    }
    let out = false;
    return {
      buf: whole.subarray(0, n),
      release: () => {
        if (out) return;
        out = true;
        this.give(whole);
      },
    };
  }

  private give(whole: Buffer): void {
    if (this.free.length >= this.maxRetained || this.retainedBytes + whole.length > this.maxRetainedBytes) return;
    this.free.push(whole);
    this.retainedBytes += whole.length;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.clear(), this.idleMs);
    this.timer.unref?.();
  }

  /** Drops every retained buffer. */
  clear(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.free.length = 0;
    this.retainedBytes = 0;
  }

  /** Buffers and bytes kept for reuse. */
  get retained(): { buffers: number; bytes: number } { return { buffers: this.free.length, bytes: this.retainedBytes }; }
}

/** The read buffers of every archiver in the process. */
export const uploadBuffers = new BufferPool();

/** Reads exactly buf.length bytes at pos (CorruptionError when the file ends first). */
function readExactly(h: FileHandle, buf: Buffer, pos: number, file: string): void {
  let got = 0;
  while (got < buf.length) {
    const r = h.read(buf, got, buf.length - got, pos + got);
    if (r <= 0) throw new CorruptionError(`segment file is shorter than expected (${pos + got} < ${pos + buf.length})`, { file, position: pos + got });
    got += r;
  }
}

/** Reads in flight at once in readExactlyParallel. */
const PARALLEL_READS = 8;

/**
 * readExactly, as up to PARALLEL_READS reads of `piece` bytes at once off
 * the calling thread (readAsync) where the storage has it. Returns only once
 * no read is in flight (buf may be reused then), with the first error.
 */
async function readExactlyParallel(h: FileHandle, buf: Buffer, pos: number, file: string, piece: number): Promise<void> {
  const readAsync = h.readAsync?.bind(h);
  if (!readAsync || buf.length <= piece) { readExactly(h, buf, pos, file); return; }
  let next = 0;
  let failed = false;
  const lane = async () => {
    while (!failed && next < buf.length) {
      const start = next;
      const end = Math.min(buf.length, start + piece);
      next = end;
      for (let at = start; at < end;) {
        const r = await readAsync(buf, at, end - at, pos + at).catch((e: unknown) => { failed = true; throw e; });
        if (r <= 0) {
          failed = true;
          throw new CorruptionError(`segment file is shorter than expected (${pos + at} < ${pos + buf.length})`, { file, position: pos + at });
        }
        at += r;
      }
    }
  };
  const lanes: Promise<void>[] = [];
  for (let i = 0; i < PARALLEL_READS && i * piece < buf.length; i++) lanes.push(lane());
  const settled = await Promise.allSettled(lanes);
  for (const r of settled) if (r.status === 'rejected') throw r.reason;
}

/** Settles to the error (or null): lets a pending write be awaited later without an unhandled rejection. */
function settle(p: Promise<unknown>): Promise<unknown> {
  return p.then(() => null, (e: unknown) => e ?? new Error('upload failed'));
}

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
  /** A conflict found by checkLocalCopy or checkRemoteManifest: lasts as long as this archiver. */
  private lastingConflict: string | null = null;
  /** The manifest of the last write that failed (it may have reached the store nonetheless). */
  private attempted: Manifest | null = null;
  /** Bytes of closed, non-empty local segments not yet archived (kept current for the append guard). */
  private pendingClosedBytes = 0;
  private readonly counters = { uploadedSegments: 0, uploadedBytes: 0, evictedSegments: 0, remoteDeletedSegments: 0, interruptedUploads: 0, lastUploadAt: null as number | null };
  /**
   * Base offsets of local segments whose bytes this process knows to be the
   * archived object's (it uploaded them, or compared their CRC-32C). Any
   * other manifest entry (a manifest written before a reopen, or by another
   * writer) is checked against the local file before its local copy is
   * evicted: equal sizes and offsets do not make equal records.
   */
  private readonly matched = new Set<number>();
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

  /** Segments this partition sends at once (uploadTuning.pipelineSegments, or pipelineSegmentsFiles on services that write files). */
  get pipelineWindow(): number { return this.d.store.streamsWrites ? uploadTuning.pipelineSegmentsFiles : uploadTuning.pipelineSegments; }

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
    else if (!this.conflict) await this.checkRemoteManifest();
    if (this.conflict) throw new TierConflictError(this.conflict);
    await this.d.beforeUpload?.();
    await this.uploadPending();
    await this.evictLocal(Date.now());
    await this.remoteRetention(Date.now());
  }

  /**
   * Reloads the manifest from the object store (after any running cycle, so
   * it never races an upload's manifest write). Returns it. For a store that
   * archives, after its first load, this checks the archive still holds the
   * manifest this store wrote: TierConflictError otherwise (another writer).
   */
  refresh(): Promise<Manifest> {
    const run = async () => {
      if (this.p.isClosed) return this.manifest;
      // A store that archives is the only writer of its manifest: one that changed is another writer's (a conflict), not news.
      if (this.confirmed && !this.d.readOnly && this.enabled) {
        if (!this.conflict) await this.checkRemoteManifest();
        if (this.conflict) throw new TierConflictError(this.conflict);
        return this.manifest;
      }
      return this.loadRemoteManifest();
    };
    const p = this.chain.catch(() => undefined).then(run);
    this.chain = p.then(() => undefined, () => undefined);
    return p;
  }

  /** The partition's manifest as the object store shows it now; null when there is none. */
  private async readRemoteManifest(): Promise<Manifest | null> {
    const key = this.dir + MANIFEST_NAME;
    try {
      return parseManifest(await this.d.store.read(key), key, { topic: this.p.topic, partition: this.p.id });
    } catch (err) {
      if (err instanceof ObjectStoreError && err.kind === 'NotFound') return null;
      throw err;
    }
  }

  /** Reads the manifest from the object store and reconciles the partition directory's objects with it. */
  private async loadRemoteManifest(): Promise<Manifest> {
    const key = this.dir + MANIFEST_NAME;
    let m: Manifest;
    // Before the first load this.manifest is the local copy: the newest
    // manifest this store knows the object store took (a copy is saved only
    // after the write). A remote one older than that, which does not list
    // segments the copy lists and this partition no longer holds locally
    // (evicted), would lose them: it is looked at again (a store may show a
    // PUT late), then refused. Once confirmed, any older one is a conflict.
    const held = new Set(this.p.segments.map((s) => s.baseOffset));
    const unlisted = (remote: Manifest) => {
      const has = new Set(remote.segments.map((s) => s.baseOffset));
      return this.manifest.segments.find((s) => !has.has(s.baseOffset) && !held.has(s.baseOffset));
    };
    for (let attempt = 1; ; attempt++) {
      m = (await this.readRemoteManifest()) ?? emptyManifest(this.p.topic, this.p.id);
      if (this.stopped) return m;
      if (m.version >= this.manifest.version) break;
      const lost = this.confirmed ? undefined : unlisted(m);
      if (!this.confirmed && !lost) break;
      if (attempt >= VERIFY_ATTEMPTS) {
        if (this.confirmed) throw new TierConflictError(`the archive's manifest went back from version ${this.manifest.version} to ${m.version}: another writer or a restored bucket? (${key})`);
        throw new TierConflictError(
          `the archive's manifest went back from version ${this.manifest.version} (the copy in ${path.join(this.p.dir, LOCAL_MANIFEST_FILE)}) to ${m.version}, ` +
          `which does not list segment ${lost!.baseOffset} (offsets ${lost!.baseOffset}..${lost!.lastOffset}) that is no longer held locally: ` +
          `a bucket restored from an older copy, emptied, or another one configured? (${key}) Remove the local copy to accept the archive as it is.`,
        );
      }
      await lookAgainAfter(attempt);
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

  /**
   * Before a pass of a confirmed archiver: the archive's manifest must still
   * be the one this archiver wrote last. Another writer on the partition (a
   * restored copy started while the original runs, a second store on the
   * bucket) would otherwise have its objects overwritten under the same keys,
   * or overwrite ours, and readers would get the other log's records: the
   * partition stops with TierConflictError instead. A manifest write that
   * failed here but reached the store is recognised and adopted. (Writes of
   * two writers racing within one pass are not detected: this binding offers
   * no conditional PUT.)
   */
  private async checkRemoteManifest(): Promise<void> {
    const key = this.dir + MANIFEST_NAME;
    const mine = this.manifest;
    const same = (a: Manifest, b: Manifest) => a.version === b.version && a.updatedAt === b.updatedAt;
    let remote: Manifest | null = null;
    // A store may show an older manifest for a moment after a PUT (as verifyObject allows for objects):
    // one missing or older than ours is looked at again before it counts.
    for (let attempt = 1; ; attempt++) {
      remote = await this.readRemoteManifest();
      if (remote === null ? mine.version === 0 : same(remote, mine)) return;
      if (remote && this.attempted && same(remote, this.attempted)) {
        this.manifest = remote;
        this.attempted = null;
        await this.saveLocalManifest();
        return;
      }
      const older = remote === null || remote.version < mine.version;
      if (!older || attempt >= VERIFY_ATTEMPTS) break;
      await lookAgainAfter(attempt);
    }
    const seen = remote ? `version ${remote.version} written at ${remote.updatedAt}` : 'no manifest';
    this.lastingConflict = `the archive's manifest changed under this store (${seen}; this store wrote version ${mine.version} at ${mine.updatedAt}): another writer archives this partition (a restored copy still running, a second store on the bucket?) (${key})`;
    this.checkConflict();
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
    this.conflict = problem ?? this.lastingConflict;
    problem = this.conflict;
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

  /** The oldest closed, non-empty segment above `after` (and above what is archived) that may be uploaded now, or null. */
  private async nextPending(after: number): Promise<LogSegment | null> {
    if (this.stopped || this.p.isClosed) return null;
    const seg = this.pendingSegments().find((s) => s.baseOffset > after);
    if (!seg) return null;
    if (seg.nextOffset > this.p.highWatermark) {
      // Only durable data is archived: an unflushed segment could still be cut by recovery.
      await this.p.flush();
      if (this.stopped || this.p.isClosed || seg.deleted || seg.nextOffset > this.p.highWatermark) return null;
    }
    return seg;
  }

  private async uploadPending(): Promise<void> {
    let last = -1;
    await this.uploadRun(async () => {
      const seg = await this.nextPending(last);
      if (seg) { last = seg.baseOffset; this.state = 'uploading'; }
      return seg;
    });
  }

  /**
   * Uploads the segments `next` hands out (in offset order, null when there
   * are no more) with up to uploadTuning.pipelineSegments of them in flight,
   * and lists them in the manifest: a segment is listed once it and every
   * segment before it in the run are uploaded and verified, in as few
   * manifest writes as the uploads allow (one write in flight at a time,
   * each covering every segment verified meanwhile). After a failure no
   * segment is started, those in flight are waited for, the run of verified
   * segments before the failed one is listed, and the first error (in
   * segment order) is thrown. Returns the entries listed.
   */
  private async uploadRun(next: () => Promise<LogSegment | null>): Promise<ManifestSegment[]> {
    const { window } = checkTuning(this.d.store.streamsWrites);
    const inflight: Promise<ManifestSegment>[] = [];
    const listed: ManifestSegment[] = [];
    let ready: ManifestSegment[] = [];
    let commit: Promise<void> | null = null;
    let failure: { err: unknown } | null = null;
    let exhausted = false;
    // After a failed manifest write nothing more is listed: its group would be a gap.
    let commitFailed = false;
    let broken = false;
    const startCommit = (): void => {
      if (commit || ready.length === 0 || commitFailed) return;
      const group = ready;
      ready = [];
      commit = this.listSegments(group).then(
        () => { commit = null; listed.push(...group); startCommit(); },
        (err: unknown) => { commit = null; commitFailed = true; failure ??= { err }; },
      );
    };
    // `window` segments may be sending bytes at once (and hold read buffers);
    // segments whose bytes are all sent, being finished and verified, do not
    // count, up to `2 * window` started and not yet listed.
    const maxStarted = 2 * window;
    let sending = 0;
    let wake: (() => void) | null = null;
    // Set as soon as any started segment fails: nothing after it could be listed.
    let anyFailed = false;
    const canStart = () => !failure && !anyFailed && !exhausted && sending < window && inflight.length < maxStarted;
    for (;;) {
      while (canStart()) {
        let seg: LogSegment | null;
        try {
          seg = await next();
        } catch (err) {
          failure = { err };
          break;
        }
        if (!seg) { exhausted = true; break; }
        const s = seg;
        sending++;
        let sent = false;
        const bytesSent = () => {
          if (sent) return;
          sent = true;
          sending--;
          const w = wake;
          wake = null;
          w?.();
        };
        const up = this.d.limiter.run(() => this.sendSegment(s, bytesSent)).finally(bytesSent);
        up.catch(() => { anyFailed = true; }); // the error itself is observed in order below
        inflight.push(up);
      }
      const head = inflight[0];
      if (!head) break;
      if (!failure && !anyFailed && !exhausted && inflight.length < maxStarted) {
        // Wake up when the oldest segment is done or another one may start, whichever comes first.
        const woken = new Promise<boolean>((resolve) => { wake = () => resolve(false); });
        const headDone = await Promise.race([head.then(() => true, () => true), woken]);
        wake = null;
        if (!headDone && canStart()) continue;
      }
      inflight.shift();
      try {
        const entry = await head;
        // Segments after a failed one are not listed: that would leave a gap.
        if (!broken) ready.push(entry);
      } catch (err) {
        broken = true;
        failure ??= { err };
      }
      startCommit();
    }
    while (commit || (ready.length > 0 && !commitFailed)) {
      if (commit) await commit;
      else startCommit();
    }
    // A failed manifest write leaves verified objects unlisted: they are leftovers, redone next time.
    if (failure) throw failure.err;
    return listed;
  }

  /** Lists uploaded segments in the manifest (replacing entries with the same base offsets). */
  private async listSegments(group: ManifestSegment[]): Promise<void> {
    const bases = new Set(group.map((e) => e.baseOffset));
    const m = this.manifest;
    const segments = m.segments.filter((s) => !bases.has(s.baseOffset)).concat(group);
    segments.sort((a, b) => a.baseOffset - b.baseOffset);
    await this.writeManifest({ ...m, segments, logStartOffset: segments[0]!.baseOffset });
    for (const e of group) {
      this.matched.add(e.baseOffset);
      this.counters.uploadedSegments++;
      this.counters.uploadedBytes += e.objects.log.size + e.objects.index.size + e.objects.timeindex.size;
    }
    this.counters.lastUploadAt = Date.now();
    this.recountPending();
  }

  /**
   * Uploads one closed segment now and lists it in the manifest: its three
   * objects, checked and verified, then the manifest. A segment already
   * archived is uploaded again (same keys, same bytes) and its entry
   * replaced (benchmarks, repairs). Runs after any running cycle. Returns
   * the manifest entry.
   */
  async uploadSegment(seg: LogSegment): Promise<ManifestSegment> {
    return (await this.uploadSegments([seg]))[0]!;
  }

  /**
   * uploadSegment for several closed segments of this partition, given in
   * offset order: pipelined like the background uploads, listed in the
   * manifest as they are verified (see uploadRun). Returns their entries.
   */
  uploadSegments(segs: readonly LogSegment[]): Promise<ManifestSegment[]> {
    for (let i = 0; i < segs.length; i++) {
      const s = segs[i]!;
      if (!this.p.segments.includes(s)) throw new InvalidArgumentError(`segment ${s.baseOffset} is not a segment of ${this.p.name}`);
      if (i > 0 && s.baseOffset <= segs[i - 1]!.baseOffset) throw new InvalidArgumentError('segments must be given in increasing offset order');
    }
    const run = async () => {
      if (!this.confirmed) await this.loadRemoteManifest();
      if (this.conflict) throw new TierConflictError(this.conflict);
      let i = 0;
      return this.uploadRun(async () => (i < segs.length ? segs[i++]! : null));
    };
    const p = this.chain.catch(() => undefined).then(run);
    this.chain = p.then(() => undefined, () => undefined);
    return p;
  }

  /**
   * Puts one closed segment's three objects in the store at the same time,
   * checks the log as it goes and verifies every object (stat size); does
   * not list the segment. Returns its manifest entry.
   */
  private async sendSegment(seg: LogSegment, bytesSent: () => void = () => undefined): Promise<ManifestSegment> {
    if (!seg.closed || seg === this.p.active) throw new InvalidArgumentError(`segment ${seg.baseOffset} of ${this.p.name} is active: only closed segments are archived`);
    if (seg.size === 0) throw new InvalidArgumentError(`segment ${seg.baseOffset} of ${this.p.name} is empty`);
    if (seg.deleted) throw new InvalidArgumentError(`segment ${seg.baseOffset} of ${this.p.name} was deleted`);
    const size = seg.size;
    // The indexes from memory (rebuilt there if the files were damaged).
    const wasLoaded = seg.index.loaded && seg.timeIndex.loaded;
    seg.loadIndexes();
    const index = Buffer.from(seg.index.bytes());
    const timeindex = Buffer.from(seg.timeIndex.bytes());
    if (!wasLoaded && seg.closed && !seg.deleted) { seg.index.unload(); seg.timeIndex.unload(); }

    const objects: ManifestSegment['objects'] = {
      log: { key: segmentObjectKey(seg.baseOffset, 'log'), size, crc32c: '' },
      index: { key: segmentObjectKey(seg.baseOffset, 'index'), size: index.length, crc32c: crcHex(this.d.crc.of(index)) },
      timeindex: { key: segmentObjectKey(seg.baseOffset, 'timeindex'), size: timeindex.length, crc32c: crcHex(this.d.crc.of(timeindex)) },
    };
    // The small objects go up, and are verified, while the log uploads
    // (started once the log's first bytes are on their way). allSettled
    // handles rejections at once: no unhandled rejection whatever fails first.
    let small: Promise<PromiseSettledResult<void>[]> | null = null;
    const startSmall = () => {
      small ??= Promise.allSettled([
        this.d.store.write(this.dir + objects.index.key, index).then(() => this.verifyObject(objects.index)),
        this.d.store.write(this.dir + objects.timeindex.key, timeindex).then(() => this.verifyObject(objects.timeindex)),
      ]);
    };
    const checker = new SegmentChecker(this.d.k, this.d.crc, {
      baseOffset: seg.baseOffset, nextOffset: seg.nextOffset, maxBatchBytes: this.maxBatchBytes, file: seg.logPath, verifyBatchCrcs: this.d.config.verifyBatchesOnUpload,
    });
    let facts: SegmentFacts;
    try {
      const streamed = size > Math.min(this.d.config.multipartThresholdBytes, MAX_ONE_PUT_BYTES) || (uploadTuning.streamSmallSegments && this.d.store.streamsWrites);
      facts = streamed
        ? await this.streamLog(seg, objects.log.key, checker, startSmall, bytesSent)
        : await this.putLog(seg, objects.log.key, checker, startSmall, bytesSent);
      if (facts.size !== size) throw new CorruptionError(`segment read ${facts.size} bytes, expected ${size}`, { file: seg.logPath, position: facts.size });
      objects.log.crc32c = crcHex(facts.crc32c);
      await this.verifyObject(objects.log);
    } catch (err) {
      // Nothing of this upload keeps running once it has failed.
      if (small) await small;
      throw err;
    } finally {
      checker.free();
    }
    startSmall();
    for (const r of await small!) if (r.status === 'rejected') throw r.reason;
    return {
      baseOffset: seg.baseOffset,
      lastOffset: Math.max(seg.baseOffset, Math.min(facts.lastOffset, seg.nextOffset - 1)),
      nextOffset: seg.nextOffset,
      firstTimestamp: facts.firstTimestamp,
      maxTimestamp: facts.maxTimestamp,
      records: facts.records,
      objects,
    };
  }

  private reportProgress(seg: LogSegment, bytes: number): void {
    this.progress?.({ topic: this.p.topic, partition: this.p.id, baseOffset: seg.baseOffset, bytes });
  }

  /**
   * The log in one PUT (segments at or below the multipart threshold): the
   * file read once into a pooled buffer, the PUT started, the bytes checked
   * (CRC-32C, framing) while it runs.
   */
  private async putLog(seg: LogSegment, key: string, checker: SegmentChecker, started: () => void, sent: () => void): Promise<SegmentFacts> {
    const size = seg.size;
    const lease = uploadBuffers.take(size);
    try {
      const h = this.d.storage.open(seg.logPath, 'read');
      try { await readExactlyParallel(h, lease.buf, 0, seg.logPath, checkTuning(this.d.store.streamsWrites).readPiece); } finally { h.close(); }
      const put = settle(this.d.store.write(this.dir + key, lease.buf));
      started();
      let checkErr: unknown = null;
      try { checker.update(lease.buf); } catch (e) { checkErr = e; }
      // The buffer goes back to the pool only once the PUT no longer reads it.
      const putErr = await put;
      if (checkErr) throw checkErr;
      if (putErr) throw putErr;
      this.reportProgress(seg, size);
      return checker.finish();
    } finally {
      lease.release();
      sent();
    }
  }

  /**
   * The log streamed through a writer (segments above the multipart
   * threshold: multipart parts on object stores, plain appends where the
   * service streams natively; and small segments too with
   * uploadTuning.streamSmallSegments): the file read in chunks into two
   * pooled buffers;
   * while one chunk is being written the next is read, and each chunk is
   * checked while it is written, so the file is read once and the check
   * overlaps the upload.
   */
  private async streamLog(seg: LogSegment, key: string, checker: SegmentChecker, started: () => void, sent: () => void): Promise<SegmentFacts> {
    const size = seg.size;
    const step = Math.min(checkTuning(this.d.store.streamsWrites).chunk, size);
    // The writer opens (a request on object stores; on fs, creating or
    // truncating the file) while the first chunk is read.
    const opening = this.d.store.writer(this.dir + key, this.d.store.streamsWrites ? undefined : PART_BYTES);
    opening.catch(() => undefined); // observed below, or dropped when the read fails first
    let w: Awaited<typeof opening> | null = null;
    const bufs: BufferLease[] = [];
    let h: FileHandle | null = null;
    const closeFile = () => { const f = h; h = null; f?.close(); };
    let pending: Promise<unknown> | null = null;
    try {
      bufs.push(uploadBuffers.take(step), uploadBuffers.take(step));
      h = this.d.storage.open(seg.logPath, 'read');
      let turn = 0;
      for (let pos = 0; pos < size; pos += step) {
        const n = Math.min(step, size - pos);
        // This buffer's last write was awaited before the other buffer's write began.
        const chunk = bufs[turn++ & 1]!.buf.subarray(0, n);
        readExactly(h!, chunk, pos, seg.logPath);
        w ??= await opening;
        if (pending) {
          const e = await pending;
          pending = null;
          if (e) throw e;
        }
        pending = settle(w.write(chunk));
        if (pos === 0) started();
        checker.update(chunk);
        this.reportProgress(seg, n);
      }
      if (pending) {
        const e = await pending;
        pending = null;
        if (e) throw e;
      }
      // Every byte is handed over and the buffers are free: the next segment
      // may start while this one completes (close: the upload's completion,
      // or on fs the flush to disk).
      closeFile();
      for (const b of bufs) b.release();
      sent();
      await w!.close();
      return checker.finish();
    } finally {
      if (pending) await pending;
      // A writer opened but never written to is left for the leftovers sweep, like any cut-off upload.
      if (!w) await opening.catch(() => undefined);
      closeFile();
      for (const b of bufs) b.release();
    }
  }

  /** The object must be in the store with the expected size (and, optionally, its CRC-32C read back). */
  private async verifyObject(o: { key: string; size: number; crc32c: string }): Promise<void> {
    const key = this.dir + o.key;
    // A store may show a new object late (eventually consistent S3-compatible
    // stores; s3rver acknowledges a PUT before its file is written): a
    // missing or short object is looked at again, a few times, before the
    // upload counts as failed.
    for (let attempt = 1; ; attempt++) {
      const st = await this.d.store.stat(key);
      if (st && st.size === o.size) break;
      if (attempt >= VERIFY_ATTEMPTS) {
        if (!st) throw new ObjectStoreError('verify', key, 'NotFound', `uploaded object is missing (${attempt} looks)`);
        throw new ObjectStoreError('verify', key, 'Unexpected', `uploaded object has ${st.size} bytes, expected ${o.size} (${attempt} looks)`);
      }
      await lookAgainAfter(attempt);
    }
    if (this.d.config.verifyReadBack && o.size > 0) {
      const back = await this.d.store.read(key);
      const crc = crcHex(this.d.crc.of(back));
      if (crc !== o.crc32c) throw new ObjectStoreError('verify', key, 'Unexpected', `uploaded object reads back with CRC-32C ${crc}, expected ${o.crc32c}`);
    }
  }

  private async writeManifest(next: Omit<Manifest, 'version' | 'updatedAt'>): Promise<void> {
    const m: Manifest = { ...next, version: this.manifest.version + 1, updatedAt: Date.now() };
    // A write that fails may still reach the store: the next pass recognises it (checkRemoteManifest).
    this.attempted = m;
    // Never seen half-written, even where the service writes files in place.
    await this.d.store.writeAtomic(this.dir + MANIFEST_NAME, serializeManifest(m));
    this.manifest = m;
    this.attempted = null;
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
      if (e && seg.size > 0 && !this.matched.has(seg.baseOffset)) {
        await this.checkLocalCopy(seg, e);
        // The partition may have changed during the check: look again.
        total = p.sizeBytes;
        continue;
      }
      p.deleteOldestSegment();
      this.matched.delete(seg.baseOffset);
      total -= seg.size;
      this.counters.evictedSegments++;
    }
  }

  /**
   * Compares a local segment's bytes with its manifest entry (CRC-32C of the
   * whole file): notes it as matched when equal; otherwise the local log and
   * the archive disagree (e.g. a wiped directory written again with records
   * of the same sizes): tiering stops for the partition with
   * TierConflictError and nothing is evicted.
   */
  private async checkLocalCopy(seg: LogSegment, e: ManifestSegment): Promise<void> {
    const size = seg.size;
    const { chunk: step, readPiece: piece } = checkTuning(this.d.store.streamsWrites);
    const lease = uploadBuffers.take(Math.min(size, step));
    let crc = 0;
    try {
      const h = this.d.storage.open(seg.logPath, 'read');
      try {
        for (let pos = 0; pos < size; pos += lease.buf.length) {
          const chunk = lease.buf.subarray(0, Math.min(lease.buf.length, size - pos));
          await readExactlyParallel(h, chunk, pos, seg.logPath, piece);
          crc = this.d.crc.of(chunk, crc);
        }
      } finally {
        h.close();
      }
    } finally {
      lease.release();
    }
    if (crcHex(crc) === e.objects.log.crc32c && size === e.objects.log.size) {
      this.matched.add(seg.baseOffset);
      return;
    }
    const problem = `local segment ${seg.baseOffset} (${size} bytes, CRC-32C ${crcHex(crc)}) differs from the archived one (${e.objects.log.size} bytes, CRC-32C ${e.objects.log.crc32c}): restore the partition (sediment tier restore) instead of reusing the archive`;
    this.lastingConflict = problem;
    this.checkConflict();
    throw new TierConflictError(problem);
  }

  /** Applies the topic's retention to the archive: manifest first, then the objects. */
  private async remoteRetention(now: number): Promise<void> {
    const c = this.p.config;
    if (c.cleanupPolicy !== 'delete' || (c.retentionMs < 0 && c.retentionBytes < 0)) return;
    const m = this.manifest;
    if (m.segments.length === 0) return;
    const local = this.p.localLogStartOffset;
    // Total log size: archived bytes not held locally plus the local log from
    // the archive's start (local copies of segments an earlier pass dropped
    // from the archive are past retention already: counting them again would
    // drop more segments on every pass).
    let total = 0;
    for (const seg of this.p.segments) if (seg.baseOffset >= m.logStartOffset) total += seg.size;
    for (const s of m.segments) if (s.baseOffset < local) total += s.objects.log.size;
    let drop = 0;
    for (const s of m.segments) {
      const byTime = c.retentionMs >= 0 && s.maxTimestamp >= 0 && s.maxTimestamp < now - c.retentionMs;
      const bySize = c.retentionBytes >= 0 && total - s.objects.log.size >= c.retentionBytes;
      if (!byTime && !bySize) break;
      // Dropped from the front of the whole log, wherever its copies are: a
      // local copy goes with it (the log's retention deletes it next, the
      // segment being below the archive's start), so it no longer counts.
      total -= s.objects.log.size;
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
