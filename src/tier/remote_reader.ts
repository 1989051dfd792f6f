// Reads of archived segments: the RemoteLogReader a tiered partition uses for
// offsets below its local log start.
//
// A read finds the segment in the manifest (largest baseOffset <= offset),
// turns the offset into a byte position with the segment's .index object
// (fetched once, CRC-checked against the manifest, cached), then takes the
// .log's bytes from one of two sources:
//
//   - StreamSource, for reads that start in the object's first chunk and are
//     expected to go past it (a consumer catching up, a whole segment): one
//     streamed GET of the object (OpenDAL Reader). The bytes are handed to
//     the scanner in pieces as they arrive, so the transfer and the CRC
//     checks and decoding overlap, with one request per segment. The bytes
//     land in pooled reusable blocks and bypass the cache (a streamed read
//     passes through once). If the stream fails, the read goes on from the
//     same position with ranged reads (retried, typed errors).
//   - RangedSource, for everything else: chunkBytes ranged reads (aligned to
//     the object start) through the shared bounded ChunkCache, prefetching
//     the next chunks the read is expected to need, never more than the cache
//     can hold next to the chunk being read.
//
// While one segment is read, the next one's source is opened once every byte
// of the current one has been received (when the read is expected to go on),
// so a read crossing segments does not stall at each boundary. Each piece is
// copied into wasm memory once; batches are CRC-checked and decoded there by
// the same kernels as local reads (BatchScanner, RecordBatchDecoder.viewOf).
// A batch cut by a piece boundary is carried over and completed by the next.

import type { Reader as OpenDalReader } from 'opendal';
import { Kernels, WasmBuffer } from '../kernels.js';
import { BatchScanner, BatchInfo, RecordBatchDecoder, RecordBatchView, ViewScratch, ScanStop, SCAN_STOP_NAMES, ATTR_CONTROL } from '../record_batch.js';
import { StoredRecord } from '../record.js';
import { ReadOptions, ViewReadOptions, RemoteLogReader } from '../partition.js';
import { Crc32c } from '../crc32c.js';
import { CorruptionError } from '../errors.js';
import { ObjectStore } from './object_store.js';
import { ChunkCache } from './chunk_cache.js';
import { Manifest, ManifestSegment, ObjectKind, crcHex, findSegment } from './manifest.js';

export interface RemoteReaderOptions {
  k: Kernels;
  /** CRC-32C over wasm (shared scratch; index objects are checked with it). */
  crc: Crc32c;
  store: ObjectStore;
  cache: ChunkCache;
  /** The partition's directory in the archive ("<prefix>/<h>/<topic>-<n>/"). */
  dir: string;
  /** The current manifest, or null when the archive holds nothing (yet). */
  manifest: () => Manifest | null;
  chunkBytes: number;
  prefetchChunks: number;
  /** Largest batch accepted, bytes (the topic's maxMessageBytes plus framing). */
  maxBatchBytes: number;
  /** Stream reads that start in a segment's first chunk and go past it (default true; false: ranged reads only). */
  stream?: boolean;
}

/** Counters of remote reads. */
export interface RemoteReadStats {
  segmentsOpened: number;
  /** Chunks asked of the cache by ranged reads (hits included). */
  chunksRead: number;
  /** Streamed GETs opened. */
  streams: number;
  /** Streams that failed and were continued with ranged reads. */
  streamFallbacks: number;
  /** Segments whose source was opened before the read reached them. */
  segmentsPreopened: number;
  batches: number;
  records: number;
}

/** A streamed read hands bytes to the scanner in pieces of at least this many (except at the end). */
export const STREAM_PIECE_BYTES = 256 << 10;
/** Bytes a stream receives ahead of what the read has taken, at most. */
export const STREAM_AHEAD_BYTES = 2 << 20;

/** Consecutive bytes of one archived .log, from a start position to the object's end. */
interface LogSource {
  /** Absolute position in the object of the bytes the next next() returns. */
  readonly position: number;
  /** True once every byte up to the object's end has been received or requested. */
  readonly fetchedAll: boolean;
  /** The next bytes (never empty), or null at the object's end. Valid until the next call. */
  next(): Promise<Uint8Array | null>;
  /** Stops: nothing more is requested. */
  close(): void;
}

const TWO32 = 4294967296;

export class RemotePartitionReader implements RemoteLogReader {
  readonly stats: RemoteReadStats = { segmentsOpened: 0, chunksRead: 0, streams: 0, streamFallbacks: 0, segmentsPreopened: 0, batches: 0, records: 0 };
  private readonly o: RemoteReaderOptions;

  constructor(o: RemoteReaderOptions) {
    this.o = o;
  }

  /** Bytes per cached chunk (and per ranged read). */
  get chunkSize(): number { return this.o.chunkBytes; }
  /** @internal The object store reads go to. */
  get objectStore(): ObjectStore { return this.o.store; }
  /** @internal Key of a segment's .log object. */
  logKey(seg: ManifestSegment): string { return this.objectKey(seg, 'log'); }

  /** First offset archived, or null when nothing is. */
  logStartOffset(): number | null {
    const m = this.o.manifest();
    return m && m.segments.length > 0 ? m.segments[0]!.baseOffset : null;
  }

  /** One past the last archived offset, or null when nothing is archived. */
  endOffset(): number | null {
    const m = this.o.manifest();
    return m && m.segments.length > 0 ? m.segments[m.segments.length - 1]!.nextOffset : null;
  }

  private objectKey(seg: ManifestSegment, kind: ObjectKind): string { return this.o.dir + seg.objects[kind].key; }

  /** A whole small object (index, time index), CRC-checked against the manifest, through the cache. */
  private async smallObject(seg: ManifestSegment, kind: ObjectKind): Promise<Buffer> {
    const obj = seg.objects[kind];
    if (obj.size === 0) return Buffer.alloc(0);
    const key = this.objectKey(seg, kind);
    return this.o.cache.get(key, async () => {
      const buf = await this.o.store.read(key);
      const crc = crcHex(this.o.crc.of(buf));
      if (buf.length !== obj.size || crc !== obj.crc32c) {
        throw new CorruptionError(`archived object has ${buf.length} bytes with CRC-32C ${crc}, the manifest says ${obj.size} bytes with ${obj.crc32c}`, { file: key, position: 0 });
      }
      return buf;
    });
  }

  /** Byte position in the segment's .log to scan from for offset (index lookup). */
  private async positionFor(seg: ManifestSegment, offset: number): Promise<number> {
    if (offset <= seg.baseOffset) return 0;
    const idx = await this.smallObject(seg, 'index');
    const n = Math.floor(idx.length / 8);
    const rel = Math.min(offset - seg.baseOffset, 0xffffffff);
    // Largest entry with relative offset <= rel (entries increase).
    let lo = 0;
    let hi = n - 1;
    let pos = 0;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (idx.readUInt32BE(mid * 8) <= rel) { pos = idx.readUInt32BE(mid * 8 + 4); lo = mid + 1; } else hi = mid - 1;
    }
    return pos < seg.objects.log.size ? pos : 0;
  }

  /** Position to scan from for the first record with timestamp >= ts (time index, then offset index). */
  private async positionForTimestamp(seg: ManifestSegment, ts: number): Promise<number> {
    const tix = await this.smallObject(seg, 'timeindex');
    const n = Math.floor(tix.length / 12);
    let lo = 0;
    let hi = n - 1;
    let below = -1;
    // Largest entry with timestamp <= ts - 1: everything up to its offset is older than ts.
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const t = tix.readInt32BE(mid * 12) * TWO32 + tix.readUInt32BE(mid * 12 + 4);
      if (t <= ts - 1) { below = mid; lo = mid + 1; } else hi = mid - 1;
    }
    if (below < 0) return 0;
    return this.positionFor(seg, seg.baseOffset + tix.readUInt32BE(below * 12 + 8));
  }

  private chunkKey(seg: ManifestSegment, ci: number): string { return `${this.objectKey(seg, 'log')}#${this.o.chunkBytes}:${ci}`; }

  /** Chunk ci of a segment's .log (through the cache). */
  chunk(seg: ManifestSegment, ci: number): Promise<Buffer> {
    const key = this.objectKey(seg, 'log');
    const C = this.o.chunkBytes;
    const offset = ci * C;
    const len = Math.min(C, seg.objects.log.size - offset);
    this.stats.chunksRead++;
    // An object shorter than the manifest says is CorruptionError (readRangeOf).
    return this.o.cache.get(this.chunkKey(seg, ci), () => this.o.store.readRangeOf(key, { offset, size: len }, seg.objects.log.size));
  }

  /**
   * Chunks a ranged read may have in flight ahead of the one it reads: the
   * configured prefetch, bounded so that they and the chunk being read fit
   * the cache together (a prefetched chunk the cache cannot keep would be
   * fetched twice).
   */
  prefetchDepth(): number {
    const fit = Math.floor(this.o.cache.maxBytes / this.o.chunkBytes) - 1;
    return Math.max(0, Math.min(this.o.prefetchChunks, fit));
  }

  /**
   * The source of a segment's bytes from position for a read expected to
   * need about `want` bytes (Infinity: to the end of the segment).
   */
  private openSource(seg: ManifestSegment, position: number, want: number): LogSource {
    const C = this.o.chunkBytes;
    const size = seg.objects.log.size;
    if (this.o.stream !== false && position < C && position + want > C && size > C && !this.o.cache.has(this.chunkKey(seg, 0))) {
      this.stats.streams++;
      return new StreamSource(this, seg, position);
    }
    return new RangedSource(this, seg, position, want);
  }

  /** Bytes of a segment from position a read needs, estimated from its limits (records and payload bytes left). */
  private wantBytes(seg: ManifestSegment, position: number, recordsLeft: number, bytesLeft: number): number {
    const rest = seg.objects.log.size - position;
    const count = Math.max(1, seg.nextOffset - seg.baseOffset);
    const perRecord = seg.objects.log.size / count;
    // Batch framing adds to the payload: a quarter more, plus one batch header, covers the usual case.
    const byRecords = recordsLeft === Infinity ? Infinity : Math.ceil(recordsLeft * perRecord * 1.25) + 4096;
    const byBytes = bytesLeft === Infinity ? Infinity : Math.ceil(bytesLeft * 1.25) + 4096;
    return Math.min(rest, byRecords, byBytes);
  }

  /**
   * CRC-checked batches of one archived segment, from the source's position.
   * Each yielded batch lies in wasm memory at ptr until the next iteration.
   */
  private async *batchesFrom(seg: ManifestSegment, src: LogSource): AsyncGenerator<{ info: BatchInfo; ptr: number }, void, undefined> {
    const k = this.o.k;
    const file = this.objectKey(seg, 'log');
    const win = new WasmBuffer(k, Math.min(this.o.chunkBytes, seg.objects.log.size - src.position) + 4096);
    const scanner = new BatchScanner(k, 1024);
    this.stats.segmentsOpened++;
    let carry = 0; // bytes held at win.ptr, starting at absolute position winPos
    let winPos = src.position;
    let ended = false;
    try {
      for (;;) {
        if (!ended) {
          // Invariant: the source continues exactly where the window ends.
          if (src.position !== winPos + carry) throw new Error(`remote read out of step: source at ${src.position}, window ends at ${winPos + carry}`);
          const piece = await src.next();
          if (piece === null) ended = true;
          else {
            win.ensure(carry + piece.length, carry);
            k.u8.set(piece, win.ptr + carry);
            carry += piece.length;
          }
        }
        if (ended && carry === 0) return;
        let used = 0;
        for (;;) {
          const res = scanner.scan(win.ptr + used, carry - used, { maxBatchBytes: this.o.maxBatchBytes, positionBase: winPos + used });
          for (const b of res.batches) {
            this.stats.batches++;
            yield { info: b, ptr: win.ptr + (b.position - winPos) };
          }
          used += res.stopPosition;
          if (res.stop === ScanStop.TableFull) continue;
          if (res.stop === ScanStop.End) break;
          if (res.stop === ScanStop.Incomplete && !ended) break;
          const reason = res.stop === ScanStop.Incomplete ? 'archived segment ends inside a batch' : SCAN_STOP_NAMES[res.stop] ?? 'invalid batch';
          throw new CorruptionError(reason, { file, position: winPos + used });
        }
        if (used > 0) {
          if (used < carry) k.u8.copyWithin(win.ptr, win.ptr + used, win.ptr + carry);
          carry -= used;
          winPos += used;
        }
      }
    } finally {
      scanner.free();
      win.free();
    }
  }

  /**
   * Records of archived segments from offset up to (not including)
   * localStart, as batch views (what Partition.readViews consumes). Each
   * view owns its bytes, unless opts.reuseBuffers: then the views share one
   * reused buffer and each lasts until the next step. opts.maxRecords /
   * maxBytes only size the fetches (prefetch and streaming); the caller
   * applies them.
   */
  async *readViews(offset: number, localStart: number, opts: ViewReadOptions = {}): AsyncGenerator<RecordBatchView, void, undefined> {
    const m = this.o.manifest();
    if (!m || m.segments.length === 0) return;
    const limit = (v: unknown) => (typeof v === 'number' && v > 0 ? v : Infinity);
    let recordsLeft = limit(opts.maxRecords);
    let bytesLeft = limit(opts.maxBytes);
    const scratch = opts.reuseBuffers === true ? new ViewScratch() : undefined;
    const decoder = new RecordBatchDecoder(this.o.k);
    // The next segment's source, opened before the read gets there.
    let ahead: { index: number; src: LogSource } | null = null;
    try {
      let next = offset;
      for (let i = Math.max(0, findSegment(m, next)); i < m.segments.length; i++) {
        const seg = m.segments[i]!;
        if (seg.baseOffset >= localStart) return;
        if (seg.nextOffset <= next) continue;
        const from = Math.max(next, seg.baseOffset);
        const file = this.objectKey(seg, 'log');
        let src: LogSource;
        if (ahead && ahead.index === i && from === seg.baseOffset) src = ahead.src;
        else {
          ahead?.src.close();
          const position = await this.positionFor(seg, from);
          src = this.openSource(seg, position, this.wantBytes(seg, position, recordsLeft, bytesLeft));
        }
        ahead = null;
        let expectedMin = -1;
        try {
          for await (const { info, ptr } of this.batchesFrom(seg, src)) {
            const last = info.baseOffset + info.lastOffsetDelta;
            // Offsets are outside the batch CRC: check they move forward inside the segment.
            if (info.baseOffset <= expectedMin || info.baseOffset < seg.baseOffset || last >= seg.nextOffset) {
              throw new CorruptionError(`batch offsets ${info.baseOffset}..${last} out of sequence`, { file, position: info.position, offset: info.baseOffset });
            }
            expectedMin = last;
            if (last < from || (info.attributes & ATTR_CONTROL) !== 0) continue;
            const vopts = { minOffset: from, maxRecords: recordsLeft, src: { file, position: info.position }, scratch };
            let view = RecordBatchDecoder.isSync(info) ? decoder.viewOf(ptr, info, vopts) : await decoder.viewOfAsync(ptr, info, vopts);
            const keep = view.indexOfOffset(localStart);
            if (keep < view.count) view = view.slice(0, keep);
            if (view.count > 0) {
              this.stats.records += view.count;
              recordsLeft -= view.count;
              bytesLeft -= info.size;
              yield view;
            }
            if (last >= localStart - 1 || recordsLeft <= 0) return;
            // Every byte of this segment is received or requested, and the read's limits say it will go on
            // past this segment (more records left than offsets left here, more payload bytes left than log
            // bytes left here): open the next segment's source now.
            const following = m.segments[i + 1];
            if (ahead === null && src.fetchedAll && following && following.baseOffset < localStart &&
                recordsLeft > seg.nextOffset - 1 - last && bytesLeft > seg.objects.log.size - (info.position + info.size)) {
              const toSkip = seg.nextOffset - 1 - last;
              ahead = { index: i + 1, src: this.openSource(following, 0, this.wantBytes(following, 0, recordsLeft - toSkip, bytesLeft - (seg.objects.log.size - (info.position + info.size)))) };
              this.stats.segmentsPreopened++;
            }
          }
        } finally {
          src.close();
        }
        next = seg.nextOffset;
      }
    } finally {
      ahead?.src.close();
      scratch?.release();
      decoder.free();
    }
  }

  /** Records of archived segments from offset up to (not including) localStart. */
  async *read(offset: number, localStart: number, opts: ReadOptions = {}): AsyncGenerator<StoredRecord, void, undefined> {
    for await (const view of this.readViews(offset, localStart, opts)) for (let i = 0; i < view.count; i++) yield view.recordAt(i);
  }

  /** The records of read(), one array per batch. */
  async *readChunks(offset: number, localStart: number, opts: ReadOptions = {}): AsyncGenerator<StoredRecord[], void, undefined> {
    for await (const view of this.readViews(offset, localStart, opts)) yield view.toRecords();
  }

  /**
   * @internal The bytes of the .log of the archive's segment number segIndex
   * (in the current manifest) from position to its end, as the sources
   * deliver them to the scanner, each piece with its absolute position
   * (tests of the sources). want is the read's expected extent, as for reads.
   */
  async *logBytes(segIndex: number, position: number, want = Infinity): AsyncGenerator<{ position: number; bytes: Uint8Array }, void, undefined> {
    const seg = this.o.manifest()?.segments[segIndex];
    if (!seg) throw new RangeError(`no archived segment ${segIndex}`);
    const src = this.openSource(seg, position, want);
    try {
      for (;;) {
        const at = src.position;
        const bytes = await src.next();
        if (bytes === null) return;
        yield { position: at, bytes };
      }
    } finally {
      src.close();
    }
  }

  /** First archived offset whose record timestamp is >= ts, or null. */
  async offsetForTimestamp(ts: number): Promise<number | null> {
    const m = this.o.manifest();
    if (!m) return null;
    const decoder = new RecordBatchDecoder(this.o.k);
    try {
      for (const seg of m.segments) {
        if (seg.maxTimestamp < ts) continue;
        const file = this.objectKey(seg, 'log');
        // A search usually ends in its first chunk: ranged reads, no read-ahead past what it reaches.
        const src = new RangedSource(this, seg, await this.positionForTimestamp(seg, ts), 0);
        try {
          for await (const { info, ptr } of this.batchesFrom(seg, src)) {
            if (info.maxTimestamp < ts || (info.attributes & ATTR_CONTROL) !== 0) continue;
            const vopts = { src: { file, position: info.position } };
            const view = RecordBatchDecoder.isSync(info) ? decoder.viewOf(ptr, info, vopts) : await decoder.viewOfAsync(ptr, info, vopts);
            for (let i = 0; i < view.count; i++) if (view.timestampAt(i) >= ts) return view.offsetAt(i);
          }
        } finally {
          src.close();
        }
      }
      return null;
    } finally {
      decoder.free();
    }
  }

  /**
   * CRC-checks every batch of the archived range [offset, endOffset) without
   * decoding records (verification, benchmarks). Returns batches, records
   * and log bytes covered.
   */
  async verifyRange(offset: number, endOffset: number): Promise<{ batches: number; records: number; bytes: number }> {
    const m = this.o.manifest();
    const r = { batches: 0, records: 0, bytes: 0 };
    if (!m) return r;
    for (let i = Math.max(0, findSegment(m, offset)); i < m.segments.length; i++) {
      const seg = m.segments[i]!;
      if (seg.baseOffset >= endOffset) break;
      if (seg.nextOffset <= offset) continue;
      const position = await this.positionFor(seg, Math.max(offset, seg.baseOffset));
      const src = this.openSource(seg, position, endOffset >= seg.nextOffset ? Infinity : this.wantBytes(seg, position, endOffset - Math.max(offset, seg.baseOffset), Infinity));
      try {
        for await (const { info } of this.batchesFrom(seg, src)) {
          if (info.baseOffset >= endOffset) break;
          r.batches++;
          r.records += info.recordCount;
          r.bytes += info.size;
        }
      } finally {
        src.close();
      }
    }
    return r;
  }
}

/**
 * Chunks of the object through the cache, from position, prefetching the
 * chunks up to about position + want (bounded by prefetchDepth()).
 */
class RangedSource implements LogSource {
  position: number;
  private readonly r: RemotePartitionReader;
  private readonly seg: ManifestSegment;
  private readonly size: number;
  private readonly C: number;
  /** Last chunk the read is expected to need. */
  private readonly lastWanted: number;
  /** Highest chunk index requested so far. */
  private requested = -1;
  /**
   * The chunks this source requested and has not read yet (at most
   * prefetchDepth() + 1): held here too, so a chunk the cache cannot keep
   * (or evicts) is not fetched twice.
   */
  private readonly pending = new Map<number, Promise<Buffer>>();
  private closed = false;

  constructor(r: RemotePartitionReader, seg: ManifestSegment, position: number, want: number) {
    this.r = r;
    this.seg = seg;
    this.position = position;
    this.size = seg.objects.log.size;
    this.C = r.chunkSize;
    // Chunk of the last byte the read is expected to need (at least the first one).
    const end = Math.min(this.size, position + Math.max(1, want));
    this.lastWanted = Math.floor(Math.max(position, end - 1) / this.C);
    // Start the first fetch (and its prefetch) now: a source opened ahead of the read is already under way.
    if (position < this.size) this.prefetchFrom(Math.floor(position / this.C), true);
  }

  get fetchedAll(): boolean { return this.position >= this.size || (this.requested + 1) * this.C >= this.size; }

  /**
   * Requests chunk ci (with includeFirst) and the chunks after it the read
   * is expected to need, at most prefetchDepth() ahead. Once the read has
   * gone past its estimate, it is taken as sequential: full depth.
   */
  private prefetchFrom(ci: number, includeFirst: boolean): void {
    const lastChunk = Math.ceil(this.size / this.C) - 1;
    let last = Math.min(lastChunk, ci + this.r.prefetchDepth());
    if (ci <= this.lastWanted) last = Math.min(last, this.lastWanted);
    for (let j = includeFirst ? ci : ci + 1; j <= last; j++) {
      if (j > this.requested) this.request(j);
    }
  }

  private request(ci: number): Promise<Buffer> {
    const p = this.r.chunk(this.seg, ci);
    p.catch(() => undefined); // a chunk never read (the read stopped) must not fail unhandled; next() sees the error
    this.pending.set(ci, p);
    if (ci > this.requested) this.requested = ci;
    return p;
  }

  async next(): Promise<Uint8Array | null> {
    if (this.closed || this.position >= this.size) return null;
    const ci = Math.floor(this.position / this.C);
    const p = this.pending.get(ci) ?? this.request(ci);
    this.pending.delete(ci);
    this.prefetchFrom(ci, false);
    const chunk = await p;
    const from = this.position - ci * this.C;
    if (chunk.length <= from) throw new Error(`chunk ${ci} has ${chunk.length} bytes, the read is at ${from} in it`);
    this.position = ci * this.C + chunk.length;
    return from === 0 ? chunk : chunk.subarray(from);
  }

  close(): void {
    this.closed = true;
    this.pending.clear();
  }
}

/** Bytes of one stream buffer block. */
const STREAM_BLOCK_BYTES = 1 << 20;
/** Idle stream blocks kept for reuse, process-wide. */
const STREAM_BLOCKS_POOLED = 8;
const blockPool: Buffer[] = [];

function takeBlock(): Buffer { return blockPool.pop() ?? Buffer.allocUnsafe(STREAM_BLOCK_BYTES); }
function giveBlock(b: Buffer): void { if (blockPool.length < STREAM_BLOCKS_POOLED) blockPool.push(b); }

/** Received bytes [start, end) of a block. */
interface Piece { block: Buffer; start: number; end: number }

/**
 * One streamed GET of the whole object (OpenDAL Reader), delivering the
 * bytes from position on in pieces as they arrive. A pump reads into
 * reusable 1 MiB blocks (pooled; a block goes back to the pool once the
 * read has moved past it) and stays at most STREAM_AHEAD_BYTES ahead of the
 * consumer. Streamed bytes are not put in the chunk cache: a read that
 * streams goes through the segment once, and filling the cache with it would
 * only push out the chunks and indexes that point reads reuse. When the
 * stream fails or ends early, the rest is read by a RangedSource from the
 * same position (which retries and raises the typed errors).
 */
class StreamSource implements LogSource {
  position: number;
  private readonly r: RemotePartitionReader;
  private readonly seg: ManifestSegment;
  private readonly size: number;
  /** Received pieces not yet taken, in order, contiguous, ending at streamPos. */
  private readonly pieces: Piece[] = [];
  private queued = 0;
  private streamPos = 0;
  /** The block the pump writes into (a read may be in flight into it). */
  private fill: Buffer | null = null;
  /** The block of the piece last returned (the consumer reads it until its next call). */
  private held: Buffer | null = null;
  private ended = false;
  private error: unknown = null;
  /** True once the pump has returned: no read is in flight into any block. */
  private pumpDone = false;
  private closed = false;
  private wake: (() => void) | null = null;
  private resume: (() => void) | null = null;
  private fallback: RangedSource | null = null;

  constructor(r: RemotePartitionReader, seg: ManifestSegment, position: number) {
    if (position >= r.chunkSize) throw new RangeError(`a stream starts in the first chunk, not at ${position}`);
    this.r = r;
    this.seg = seg;
    this.position = position;
    this.size = seg.objects.log.size;
    void this.pump();
  }

  get fetchedAll(): boolean { return this.fallback ? this.fallback.fetchedAll : this.ended; }

  private async pump(): Promise<void> {
    try {
      const store = this.r.objectStore;
      store.counters.requests++;
      const rd: OpenDalReader = await store.operator.reader(this.r.logKey(this.seg));
      let filled = 0;
      while (this.streamPos < this.size && !this.closed) {
        while (this.queued >= STREAM_AHEAD_BYTES && !this.closed) await new Promise<void>((resolve) => { this.resume = resolve; });
        if (this.closed) break;
        if (this.fill === null || filled === this.fill.length) { this.fill = takeBlock(); filled = 0; }
        const block = this.fill;
        const n = Number(await rd.read(block.subarray(filled, Math.min(block.length, filled + (this.size - this.streamPos)))));
        if (!(n > 0)) throw new Error(`the object ended after ${this.streamPos} of ${this.size} bytes`);
        store.counters.bytesRead += n;
        // Bytes before the read's start position are received but not delivered.
        const skip = Math.max(0, this.position + this.queued - this.streamPos);
        if (n > skip) {
          this.pieces.push({ block, start: filled + skip, end: filled + n });
          this.queued += n - skip;
        }
        filled += n;
        this.streamPos += n;
        if (this.queued >= STREAM_PIECE_BYTES || this.streamPos >= this.size) this.signal();
      }
      if (this.streamPos >= this.size) this.ended = true;
    } catch (err) {
      this.error = err;
    } finally {
      this.pumpDone = true;
      this.signal();
    }
  }

  private signal(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  async next(): Promise<Uint8Array | null> {
    if (this.closed) return null;
    if (this.fallback) return this.takeFallback();
    for (;;) {
      if (this.queued > 0 && (this.queued >= STREAM_PIECE_BYTES || this.ended || this.error !== null)) return this.take();
      if (this.ended) return null;
      if (this.error !== null) {
        // The stream failed: go on from here with ranged reads (retried; typed errors when they fail too).
        this.r.stats.streamFallbacks++;
        this.fallback = new RangedSource(this.r, this.seg, this.position, Infinity);
        return this.takeFallback();
      }
      await new Promise<void>((resolve) => { this.wake = resolve; });
    }
  }

  private async takeFallback(): Promise<Uint8Array | null> {
    const piece = await this.fallback!.next();
    this.position = this.fallback!.position;
    return piece;
  }

  /** The queued pieces lying in the first piece's block, as one view. */
  private take(): Uint8Array {
    const first = this.pieces[0]!;
    const block = first.block;
    let n = 1;
    let end = first.end;
    while (n < this.pieces.length && this.pieces[n]!.block === block && this.pieces[n]!.start === end) end = this.pieces[n++]!.end;
    this.pieces.splice(0, n);
    const len = end - first.start;
    this.queued -= len;
    this.position += len;
    // The consumer is done with the previous piece; if it lay in an earlier block, the pump is past that block too.
    if (this.held !== null && this.held !== block) giveBlock(this.held);
    this.held = block;
    const r = this.resume;
    this.resume = null;
    r?.();
    return block.subarray(first.start, end);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.fallback?.close();
    this.pieces.length = 0;
    this.queued = 0;
    // While the pump runs, the block being filled may still receive an in-flight read: it is left to the
    // garbage collector then. Once the pump is done, it goes back to the pool too.
    if (this.held !== null && (this.held !== this.fill || this.pumpDone)) giveBlock(this.held);
    if (this.fill !== null && this.fill !== this.held && this.pumpDone) giveBlock(this.fill);
    this.held = null;
    this.fill = null;
    const r = this.resume;
    this.resume = null;
    r?.();
  }
}
