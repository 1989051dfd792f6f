// Replay of an archived partition over HTTP: the manifest, then the index of
// the segment holding the start, then byte ranges of the .log, prefetched,
// scanned and decoded in wasm. See docs/replay.md.
//
// Round trips to the first record, from an offset: manifest, offset index
// (skipped when the offset is a segment's base or the index is empty), the
// first range of the log. From a timestamp the time index and offset index
// are fetched together, so it is the same three.

import { Kernels, WasmBuffer, getKernels } from '../kernels.js';
import { Crc32c } from '../crc32c.js';
import { InvalidArgumentError, OffsetOutOfRangeError } from '../errors.js';
import { BatchScanner, RecordBatchDecoder, LOG_OVERHEAD } from '../record_batch.js';
import { StoredRecord } from '../record.js';
import {
  ArchiveManifest, ArchiveSegment, ManifestLimits, DEFAULT_MAX_MANIFEST_BYTES, manifestEndOffset, parseManifest, segmentIndexFor,
  ObjectKind, ArchiveObject,
} from './manifest_reader.js';
import { HttpOptions, HttpStats, RemoteObject, newHttpStats, resolveHttpOptions } from './http_range.js';
import { ManifestError, ObjectNotFoundError, AbortedError, redact } from './errors.js';
import { RecordFilter, RemoteOffsetIndex, RemoteTimeIndex, SegmentLogReader, fetchVerified } from './segment_reader.js';

/** Where the archive is: the manifest's URL (objects resolve next to it), or explicit URLs (presigned). */
export type ArchiveSource = string | URL | ArchiveUrls;

export interface ArchiveUrls {
  /** URL of the partition's manifest.json. */
  manifest: string | URL;
  /**
   * URL of each object by key (e.g. `00000000000000000000.log`): a map, or a
   * function (e.g. one that asks your server to presign). Default: the key
   * resolved against the manifest's URL.
   */
  objects?: Record<string, string | URL> | ((key: string) => string | URL | Promise<string | URL>);
}

export interface ArchiveOptions extends HttpOptions, ManifestLimits {
  /** Kernels instance (default: the shared one, compiled asynchronously). */
  kernels?: Kernels;
  /** Largest manifest accepted (default 64 MiB). */
  maxManifestBytes?: number;
  /** Refuse a manifest of another topic or partition. */
  expect?: { topic?: string; partition?: number };
}

/** Start of a replay: an offset, or the first record whose timestamp is >= a time (ms). */
export type ReplayFrom = { offset: number } | { timestamp: number };

export interface ReplayReadOptions {
  /** Default: the archive's logStartOffset. */
  from?: ReplayFrom;
  /** Stop before this offset (exclusive). */
  endOffset?: number;
  /** Stop after this many records. */
  maxRecords?: number;
  /** Largest byte range requested from a .log (default 4 MiB; 64 KiB - 64 MiB). */
  chunkBytes?: number;
  /** First range of a replay; later ranges double up to chunkBytes (default 256 KiB). */
  firstChunkBytes?: number;
  /** Ranges requested ahead of the one being decoded (default 2; 0 - 16). */
  prefetch?: number;
  /** Largest batch accepted, in bytes with its 12-byte log overhead (default 16 MiB). */
  maxBatchBytes?: number;
  /** Largest gzip batch after inflation (default 64 MiB). */
  maxInflatedBytes?: number;
  /** Aborts the replay (next() rejects with AbortedError). */
  signal?: AbortSignal;
}

export interface ReplayOptions extends ArchiveOptions, ReplayReadOptions {}

export const DEFAULT_CHUNK_BYTES = 4 * 1024 * 1024;
export const DEFAULT_FIRST_CHUNK_BYTES = 256 * 1024;
export const DEFAULT_PREFETCH = 2;
export const DEFAULT_MAX_BATCH_BYTES = 16 * 1024 * 1024;
export const DEFAULT_MAX_INFLATED_BYTES = 64 * 1024 * 1024;
const MIN_CHUNK = 64 * 1024;
const MAX_CHUNK = 64 * 1024 * 1024;

/** What a replay did so far. */
export interface ReplayStats {
  /** Records returned. */
  records: number;
  /** Batches scanned (CRC-checked). */
  batches: number;
  /** Log bytes scanned. */
  bytesScanned: number;
  /** Body bytes received over HTTP (manifest and indexes included). */
  bytesReceived: number;
  /** HTTP requests sent (manifest included when replay() opened the archive). */
  requests: number;
  /** Requests sent before the first record was returned, prefetches included (-1 until then). */
  requestsToFirstRecord: number;
  /**
   * Sequential round trips before the first record (-1 until then): the
   * manifest (when replay() opened the archive), the index fetch if one was
   * needed (time and offset index go together), and the log range(s) waited
   * for in turn.
   */
  roundTripsToFirstRecord: number;
  /** Milliseconds from the start to the first record (-1 until then). */
  firstRecordMs: number;
  /** Milliseconds from the start to now, or to the end. */
  elapsedMs: number;
  done: boolean;
}

function intOpt(v: unknown, name: string, def: number, min: number, max: number): number {
  if (v === undefined) return def;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
    throw new InvalidArgumentError(`${name} must be an integer in [${min}, ${max}], got ${String(v)}`);
  }
  return v;
}

function toUrl(u: string | URL, what: string, anyScheme: boolean): string {
  let url: URL;
  try {
    const base = (globalThis as { location?: { href?: string } }).location?.href;
    url = new URL(String(u), base);
  } catch {
    throw new InvalidArgumentError(`${what} is not a valid URL: ${redact(String(u))}`);
  }
  if (!anyScheme && url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new InvalidArgumentError(`${what} must be an http(s) URL, got ${url.protocol}`);
  }
  return url.href;
}

/** An archived partition: its validated manifest, and replays over it. */
export class Archive {
  readonly manifest: ArchiveManifest;
  readonly manifestUrl: string;
  /** Requests and bytes spent opening the archive (the manifest). */
  readonly openStats: HttpStats;
  private readonly opts: ArchiveOptions;
  private readonly objects: ArchiveUrls['objects'];
  private readonly k: Kernels;

  private constructor(manifest: ArchiveManifest, manifestUrl: string, objects: ArchiveUrls['objects'], opts: ArchiveOptions, k: Kernels, openStats: HttpStats) {
    this.manifest = manifest;
    this.manifestUrl = manifestUrl;
    this.objects = objects;
    this.opts = opts;
    this.k = k;
    this.openStats = openStats;
  }

  /** Fetches and validates the manifest. */
  static async open(source: ArchiveSource, opts: ArchiveOptions = {}): Promise<Archive> {
    const anyScheme = opts.fetch !== undefined;
    let manifestUrl: string;
    let objects: ArchiveUrls['objects'];
    if (typeof source === 'string' || source instanceof URL) manifestUrl = toUrl(source, 'manifest URL', anyScheme);
    else if (source !== null && typeof source === 'object' && 'manifest' in source) {
      manifestUrl = toUrl(source.manifest, 'manifest URL', anyScheme);
      objects = source.objects;
      if (objects !== undefined && typeof objects !== 'function' && (objects === null || typeof objects !== 'object')) {
        throw new InvalidArgumentError('objects must be a map of key to URL or a function');
      }
    } else throw new InvalidArgumentError('archive source must be a manifest URL or { manifest, objects }');
    const maxManifestBytes = intOpt(opts.maxManifestBytes, 'maxManifestBytes', DEFAULT_MAX_MANIFEST_BYTES, 1, 0x7fffffff);
    const http = resolveHttpOptions(opts);
    const kernelsP = opts.kernels ? Promise.resolve(opts.kernels) : getKernels();
    const stats = newHttpStats();
    const obj = new RemoteObject(manifestUrl, 'manifest.json', -1, http, stats);
    const bytes = await obj.readWhole(maxManifestBytes);
    if (bytes === null) throw new ManifestError('', `is larger than maxManifestBytes (${maxManifestBytes})`);
    const manifest = parseManifest(bytes, opts);
    const e = opts.expect;
    if (e?.topic !== undefined && e.topic !== manifest.topic) throw new ManifestError('topic', `is '${manifest.topic}', expected '${e.topic}'`);
    if (e?.partition !== undefined && e.partition !== manifest.partition) {
      throw new ManifestError('partition', `is ${manifest.partition}, expected ${e.partition}`);
    }
    return new Archive(manifest, manifestUrl, objects, opts, await kernelsP, stats);
  }

  /** First offset readable from the archive. */
  get logStartOffset(): number { return this.manifest.logStartOffset; }
  /** One past the last archived offset. */
  get logEndOffset(): number { return manifestEndOffset(this.manifest); }

  /** The URL of an object key (resolved, mapped or asked for). */
  async urlOf(key: string): Promise<string> {
    const o = this.objects;
    const anyScheme = this.opts.fetch !== undefined;
    if (o === undefined) return toUrl(new URL(key, this.manifestUrl), `URL of ${key}`, anyScheme);
    if (typeof o === 'function') return toUrl(await o(key), `URL of ${key}`, anyScheme);
    const u = Object.prototype.hasOwnProperty.call(o, key) ? o[key] : undefined;
    if (u === undefined) throw new ObjectNotFoundError(key, 'no URL was given for this key');
    return toUrl(u, `URL of ${key}`, anyScheme);
  }

  /** Records from an offset or a time, as an async iterator (see Replay). */
  records(opts: ReplayReadOptions = {}): Replay {
    return new Replay(Promise.resolve(this), { ...opts }, null);
  }

  /** The first offset whose record timestamp is >= ts, or null when no archived record is that late. */
  async offsetForTimestamp(ts: number, opts: Omit<ReplayReadOptions, 'from' | 'maxRecords'> = {}): Promise<number | null> {
    const r = this.records({ ...opts, from: { timestamp: ts }, maxRecords: 1 });
    try {
      const first = await r.next();
      return first.done ? null : first.value.offset;
    } finally {
      await r.return();
    }
  }

  /** @internal Everything a replay needs from the archive. */
  get internals(): { k: Kernels; opts: ArchiveOptions } { return { k: this.k, opts: this.opts }; }
}

/** Where reading starts. */
interface Start { segIdx: number; position: number; filter: RecordFilter; indexRoundTrips: number }

/** One planned byte range of a segment's .log. */
interface RangeItem { segIdx: number; pos: number; len: number; last: boolean; bytes: Promise<Uint8Array>; wave: number }

/**
 * A replay: an async iterator of records (`for await (const r of replay)`),
 * or of arrays of records with chunks(). Stats are live in `stats`. Breaking
 * out of the loop (or return()) cancels requests in flight and frees wasm memory.
 */
export class Replay implements AsyncIterableIterator<StoredRecord> {
  readonly stats: ReplayStats = {
    records: 0, batches: 0, bytesScanned: 0, bytesReceived: 0, requests: 0,
    requestsToFirstRecord: -1, roundTripsToFirstRecord: -1, firstRecordMs: -1, elapsedMs: 0, done: false,
  };
  private readonly archiveP: Promise<Archive>;
  private readonly opts: ReplayReadOptions;
  private readonly http: HttpStats = newHttpStats();
  private readonly ctrl = new AbortController();
  private readonly t0: number;
  private gen: AsyncGenerator<StoredRecord[], void, undefined> | null = null;
  private buffered: StoredRecord[] = [];
  private at = 0;
  private openStats: HttpStats | null;
  private onUserAbort: (() => void) | null = null;

  /** @internal Use replay() or Archive.records(). */
  constructor(archive: Promise<Archive>, opts: ReplayReadOptions, openStats: HttpStats | null) {
    this.archiveP = archive;
    this.opts = opts;
    this.openStats = openStats;
    this.t0 = now();
    // Rejections surface from next(); never unhandled.
    archive.catch(() => undefined);
    const sig = opts.signal;
    if (sig) {
      this.onUserAbort = () => this.ctrl.abort(sig.reason);
      if (sig.aborted) this.ctrl.abort(sig.reason);
      else sig.addEventListener('abort', this.onUserAbort, { once: true });
    }
  }

  [Symbol.asyncIterator](): this { return this; }

  private updateStats(): void {
    const s = this.stats;
    s.bytesReceived = this.http.bytesReceived + (this.openStats?.bytesReceived ?? 0);
    s.requests = this.http.requests + (this.openStats?.requests ?? 0);
    if (!s.done) s.elapsedMs = now() - this.t0;
  }

  /** The next batch of records (an array, never empty), or done. */
  async nextChunk(): Promise<IteratorResult<StoredRecord[], undefined>> {
    if (this.at < this.buffered.length) {
      const rest = this.buffered.slice(this.at);
      this.buffered = [];
      this.at = 0;
      return { done: false, value: rest };
    }
    if (this.stats.done) return { done: true, value: undefined };
    this.gen ??= this.run();
    let r: IteratorResult<StoredRecord[], void>;
    try {
      r = await this.gen.next();
    } catch (err) {
      this.finish();
      throw err;
    }
    if (r.done) { this.finish(); return { done: true, value: undefined }; }
    return { done: false, value: r.value };
  }

  async next(): Promise<IteratorResult<StoredRecord, undefined>> {
    if (this.at < this.buffered.length) return { done: false, value: this.buffered[this.at++]! };
    const c = await this.nextChunk();
    if (c.done) return c;
    this.buffered = c.value;
    this.at = 1;
    return { done: false, value: c.value[0]! };
  }

  /** Ends the replay early: cancels requests, frees memory. */
  async return(): Promise<IteratorResult<StoredRecord, undefined>> {
    this.buffered = [];
    this.at = 0;
    if (!this.stats.done) {
      this.ctrl.abort(new Error('replay closed'));
      if (this.gen) await this.gen.return(undefined).catch(() => undefined);
      this.finish();
    }
    return { done: true, value: undefined };
  }

  /** Iterates arrays of records (one per decoded range) instead of single records. */
  chunks(): AsyncIterableIterator<StoredRecord[]> {
    const self = this;
    return {
      [Symbol.asyncIterator]() { return this; },
      next: () => self.nextChunk(),
      return: async () => { await self.return(); return { done: true, value: undefined }; },
    };
  }

  private finish(): void {
    if (this.stats.done) return;
    this.updateStats();
    this.stats.done = true;
    if (this.onUserAbort) this.opts.signal?.removeEventListener('abort', this.onUserAbort);
    this.ctrl.abort(new Error('replay finished'));
  }

  private checkAborted(): void {
    const sig = this.opts.signal;
    if (sig?.aborted) throw new AbortedError(sig.reason);
  }

  private async *run(): AsyncGenerator<StoredRecord[], void, undefined> {
    const archive = await this.archiveP;
    this.checkAborted();
    const { k, opts: aopts } = archive.internals;
    const o = this.opts;
    const chunkBytes = intOpt(o.chunkBytes, 'chunkBytes', DEFAULT_CHUNK_BYTES, MIN_CHUNK, MAX_CHUNK);
    const firstChunk = Math.min(chunkBytes, intOpt(o.firstChunkBytes, 'firstChunkBytes', DEFAULT_FIRST_CHUNK_BYTES, 4096, MAX_CHUNK));
    const prefetch = intOpt(o.prefetch, 'prefetch', DEFAULT_PREFETCH, 0, 16);
    const maxBatchBytes = intOpt(o.maxBatchBytes, 'maxBatchBytes', DEFAULT_MAX_BATCH_BYTES, 1024, 0x7ffffff0);
    const maxInflatedBytes = intOpt(o.maxInflatedBytes, 'maxInflatedBytes', DEFAULT_MAX_INFLATED_BYTES, 1024, 0x7ffffff0);
    const maxRecords = o.maxRecords === undefined ? Infinity : intOpt(o.maxRecords, 'maxRecords', 0, 1, Number.MAX_SAFE_INTEGER);
    const endOffset = o.endOffset === undefined ? Infinity : intOpt(o.endOffset, 'endOffset', 0, 0, Number.MAX_SAFE_INTEGER);
    // Every request of this replay stops when it ends or the caller aborts.
    const http = resolveHttpOptions({ ...aopts, signal: this.ctrl.signal });
    const userSignal = o.signal;
    const m = archive.manifest;
    const segs = m.segments;
    const crc = new Crc32c(k);
    const scanner = new BatchScanner(k, 1024);
    const decoder = new RecordBatchDecoder(k);
    const inflated = new WasmBuffer(k, 4096);
    const logObjects = new Map<number, Promise<RemoteObject>>();
    const objectFor = (i: number, kind: ObjectKind): Promise<RemoteObject> => {
      const s = segs[i]!;
      const ref = s.objects[kind];
      const make = async (): Promise<RemoteObject> => new RemoteObject(await archive.urlOf(ref.key), ref.key, ref.size, http, this.http);
      if (kind !== 'log') return make();
      let p = logObjects.get(i);
      if (!p) { p = make(); p.catch(() => undefined); logObjects.set(i, p); }
      return p;
    };
    const translate = (err: unknown): unknown => (userSignal?.aborted && !(err instanceof AbortedError) ? new AbortedError(userSignal.reason) : err);

    const inFlight: RangeItem[] = [];
    let reader: SegmentLogReader | null = null;
    try {
      const start = await this.locate(archive, k, crc, endOffset, objectFor).catch((e: unknown) => { throw translate(e); });
      if (start === null) return;
      // The plan: ranges of each segment from the start position, growing
      // from firstChunk to chunkBytes; stops at the segment holding endOffset.
      let planSeg = start.segIdx;
      let planPos = start.position;
      let nextLen = firstChunk;
      const lastSeg = endOffset === Infinity ? segs.length - 1 : Math.min(segs.length - 1, segmentIndexFor(m, endOffset - 1));
      // Round trips: a range issued after range j was consumed waits behind it.
      let wave = 0;
      const plan = (): void => {
        while (inFlight.length < prefetch + 1 && planSeg <= lastSeg) {
          const s = segs[planSeg]!;
          const size = s.objects.log.size;
          const len = Math.min(nextLen, size - planPos);
          const segIdx = planSeg;
          const pos = planPos;
          const bytes = objectFor(segIdx, 'log').then((obj) => obj.read(pos, len));
          bytes.catch(() => undefined);
          inFlight.push({ segIdx, pos, len, last: pos + len === size, bytes, wave: wave + 1 });
          nextLen = Math.min(chunkBytes, nextLen * 2);
          planPos += len;
          if (planPos === size) { planSeg++; planPos = 0; }
        }
      };
      let records = 0;
      while (true) {
        plan();
        const item = inFlight.shift();
        if (!item) break;
        let bytes: Uint8Array;
        try {
          bytes = await item.bytes;
        } catch (err) {
          throw translate(err);
        }
        this.checkAborted();
        wave = item.wave;
        const seg: ArchiveSegment = segs[item.segIdx]!;
        if (!reader || reader.seg !== seg) {
          reader?.free();
          const logRef: ArchiveObject = seg.objects.log;
          const obj = await objectFor(item.segIdx, 'log');
          reader = new SegmentLogReader(k, scanner, decoder, inflated, seg, redact(obj.url) || logRef.key, item.pos, start.filter,
            { maxBatchBytes, maxInflatedBytes }, Math.min(chunkBytes + LOG_OVERHEAD, Math.max(4096, logRef.size - item.pos)));
        }
        const out: StoredRecord[] = [];
        const r: SegmentLogReader = reader;
        const batchesBefore = r.batches;
        const scannedBefore = r.bytesScanned;
        // A bad batch ends the replay, but the good records decoded before
        // it in this range are returned first.
        let failure: unknown;
        let failed = false;
        try {
          await r.push(item.pos, bytes, out);
          if (item.last && !r.finished) {
            r.end();
            r.free();
            reader = null;
            (await objectFor(item.segIdx, 'log')).close();
            logObjects.delete(item.segIdx);
          }
        } catch (err) {
          failure = err;
          failed = true;
        }
        this.stats.batches += r.batches - batchesBefore;
        this.stats.bytesScanned += r.bytesScanned - scannedBefore;
        const finished = failed || r.finished;
        if (records + out.length > maxRecords) out.length = maxRecords - records;
        if (out.length > 0) {
          records += out.length;
          this.stats.records = records;
          if (this.stats.firstRecordMs < 0) {
            this.stats.firstRecordMs = now() - this.t0;
            this.stats.requestsToFirstRecord = this.http.requests + (this.openStats?.requests ?? 0);
            this.stats.roundTripsToFirstRecord = (this.openStats && this.openStats.requests > 0 ? 1 : 0) + start.indexRoundTrips + wave;
          }
          this.updateStats();
          yield out;
        } else this.updateStats();
        if (failed) throw failure;
        if (finished || records >= maxRecords) break;
      }
    } finally {
      this.ctrl.abort(new Error('replay finished'));
      for (const p of logObjects.values()) p.then((obj) => obj.close(), () => undefined);
      reader?.free();
      inflated.free();
      decoder.free();
      scanner.free();
    }
  }

  /** Finds the segment and byte position to start from, fetching the indexes needed. */
  private async locate(archive: Archive, k: Kernels, crc: Crc32c, endOffset: number,
    objectFor: (i: number, kind: ObjectKind) => Promise<RemoteObject>): Promise<Start | null> {
    const m = archive.manifest;
    const segs = m.segments;
    const logStart = m.logStartOffset;
    const logEnd = manifestEndOffset(m);
    const from = this.opts.from ?? { offset: logStart };
    const loadIndex = async (i: number): Promise<RemoteOffsetIndex> => {
      const s = segs[i]!;
      const obj = await objectFor(i, 'index');
      const bytes = await fetchVerified(obj, s.objects.index.crc32c, crc, redact(obj.url));
      return new RemoteOffsetIndex(k, bytes, s, redact(obj.url));
    };
    const positionOf = async (i: number, target: number): Promise<number> => {
      const s = segs[i]!;
      if (target <= s.baseOffset || s.objects.index.size === 0) return 0;
      const idx = await loadIndex(i);
      try { return idx.positionFor(s.baseOffset, target); } finally { idx.free(); }
    };
    if (from !== null && typeof from === 'object' && 'offset' in from) {
      const off = from.offset;
      if (typeof off !== 'number' || !Number.isSafeInteger(off) || off < 0) {
        throw new InvalidArgumentError(`from.offset must be a non-negative integer, got ${String(off)}`);
      }
      if (off < logStart || off > logEnd) throw new OffsetOutOfRangeError(off, logStart, logEnd);
      const segIdx = segmentIndexFor(m, off);
      if (segIdx >= segs.length || off >= endOffset) return null;
      const needIndex = off > segs[segIdx]!.baseOffset && segs[segIdx]!.objects.index.size > 0;
      return { segIdx, position: await positionOf(segIdx, off), filter: { minOffset: off, endOffset, fromTimestamp: null }, indexRoundTrips: needIndex ? 1 : 0 };
    }
    if (from !== null && typeof from === 'object' && 'timestamp' in from) {
      const ts = from.timestamp;
      if (typeof ts !== 'number' || !Number.isSafeInteger(ts)) throw new InvalidArgumentError(`from.timestamp must be an integer (ms), got ${String(ts)}`);
      let segIdx = segmentIndexFor(m, logStart);
      while (segIdx < segs.length && segs[segIdx]!.maxTimestamp < ts) segIdx++;
      if (segIdx >= segs.length) return null;
      const s: ArchiveSegment = segs[segIdx]!;
      let before = -1;
      if (s.objects.timeindex.size > 0) {
        // Both indexes in parallel: the offset index is needed whenever the
        // time index or logStartOffset point past the segment's base.
        const tiP = objectFor(segIdx, 'timeindex').then(async (obj) => {
          const bytes = await fetchVerified(obj, s.objects.timeindex.crc32c, crc, redact(obj.url));
          return new RemoteTimeIndex(k, bytes, s, redact(obj.url));
        });
        const idxP = s.objects.index.size > 0 ? loadIndex(segIdx) : Promise.resolve(null);
        idxP.catch(() => undefined);
        tiP.catch(() => undefined);
        const [ti, idx] = await Promise.all([tiP, idxP]).catch(async (e: unknown) => {
          (await tiP.catch(() => null))?.free();
          (await idxP.catch(() => null))?.free();
          throw e;
        });
        try {
          before = ti.lastOffsetBefore(s.baseOffset, ts);
          const minOffset = Math.max(logStart, before + 1, s.baseOffset);
          const position = idx && minOffset > s.baseOffset ? idx.positionFor(s.baseOffset, minOffset) : 0;
          if (minOffset >= endOffset) return null;
          return { segIdx, position, filter: { minOffset, endOffset, fromTimestamp: ts }, indexRoundTrips: 1 };
        } finally {
          ti.free();
          idx?.free();
        }
      }
      const minOffset = Math.max(logStart, s.baseOffset);
      if (minOffset >= endOffset) return null;
      const needIndex = minOffset > s.baseOffset && s.objects.index.size > 0;
      return { segIdx, position: await positionOf(segIdx, minOffset), filter: { minOffset, endOffset, fromTimestamp: ts }, indexRoundTrips: needIndex ? 1 : 0 };
    }
    throw new InvalidArgumentError('from must be { offset } or { timestamp }');
  }
}

function now(): number {
  return typeof performance !== 'undefined' ? performance.now() : Date.now();
}

/**
 * Replays an archived partition: `for await (const rec of replay(url, { from: { offset: 42 } }))`.
 * The manifest request starts at once; errors (including a bad manifest)
 * are thrown by the first next().
 */
export function replay(source: ArchiveSource, opts: ReplayOptions = {}): Replay {
  const archiveP = Archive.open(source, opts);
  const stats = newHttpStats();
  const r = new Replay(archiveP.then((a) => { stats.requests = a.openStats.requests; stats.bytesReceived = a.openStats.bytesReceived; return a; }), opts, stats);
  return r;
}

/** Opens an archive (fetches and validates its manifest). */
export function openArchive(source: ArchiveSource, opts: ArchiveOptions = {}): Promise<Archive> {
  return Archive.open(source, opts);
}
