// Reads of archived segments: the RemoteLogReader a tiered partition uses for
// offsets below its local log start.
//
// A read finds the segment in the manifest (largest baseOffset <= offset),
// turns the offset into a byte position with the segment's .index object
// (fetched once, CRC-checked against the manifest, cached), then range-reads
// the .log in fixed chunks (chunkBytes, aligned to the object start) through
// the shared bounded ChunkCache, prefetching the next chunks of a
// sequential read. Each chunk is copied into wasm memory once; batches are
// CRC-checked and decoded there by the same kernels as local reads
// (BatchScanner, RecordBatchDecoder). A batch cut by a chunk boundary is
// carried over and completed by the next chunk.

import { Kernels, WasmBuffer } from '../kernels.js';
import { BatchScanner, BatchInfo, RecordBatchDecoder, ScanStop, SCAN_STOP_NAMES, ATTR_CONTROL } from '../record_batch.js';
import { StoredRecord } from '../record.js';
import { ReadOptions, RemoteLogReader } from '../partition.js';
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
}

/** Counters of remote reads. */
export interface RemoteReadStats {
  segmentsOpened: number;
  chunksRead: number;
  batches: number;
  records: number;
}

const TWO32 = 4294967296;

export class RemotePartitionReader implements RemoteLogReader {
  readonly stats: RemoteReadStats = { segmentsOpened: 0, chunksRead: 0, batches: 0, records: 0 };
  private readonly o: RemoteReaderOptions;

  constructor(o: RemoteReaderOptions) {
    this.o = o;
  }

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

  /** Chunk ci of a segment's .log (through the cache). */
  private chunk(seg: ManifestSegment, ci: number): Promise<Buffer> {
    const key = this.objectKey(seg, 'log');
    const size = seg.objects.log.size;
    const C = this.o.chunkBytes;
    const offset = ci * C;
    const len = Math.min(C, size - offset);
    this.stats.chunksRead++;
    return this.o.cache.get(`${key}#${C}:${ci}`, () => this.o.store.read(key, { offset, size: len }));
  }

  private prefetch(seg: ManifestSegment, ci: number): void {
    const key = this.objectKey(seg, 'log');
    const size = seg.objects.log.size;
    const C = this.o.chunkBytes;
    for (let j = ci + 1; j <= ci + this.o.prefetchChunks && j * C < size; j++) {
      const offset = j * C;
      const len = Math.min(C, size - offset);
      this.o.cache.prefetch(`${key}#${C}:${j}`, () => this.o.store.read(key, { offset, size: len }));
    }
  }

  /**
   * CRC-checked batches of one archived segment from a byte position. Each
   * yielded batch lies in wasm memory at ptr until the next iteration.
   */
  private async *batchesFrom(seg: ManifestSegment, position: number): AsyncGenerator<{ info: BatchInfo; ptr: number }, void, undefined> {
    const k = this.o.k;
    const C = this.o.chunkBytes;
    const size = seg.objects.log.size;
    const file = this.objectKey(seg, 'log');
    const win = new WasmBuffer(k, Math.min(C, size - position) + 4096);
    const scanner = new BatchScanner(k, 1024);
    this.stats.segmentsOpened++;
    let carry = 0; // bytes held at win.ptr, starting at absolute position winPos
    let winPos = position;
    let fetchPos = position;
    try {
      for (;;) {
        if (fetchPos < size) {
          const ci = Math.floor(fetchPos / C);
          const chunkP = this.chunk(seg, ci);
          this.prefetch(seg, ci);
          const chunk = await chunkP;
          const from = fetchPos - ci * C;
          const n = chunk.length - from;
          win.ensure(carry + n, carry);
          k.u8.set(from === 0 ? chunk : chunk.subarray(from), win.ptr + carry);
          carry += n;
          fetchPos += n;
        } else if (carry === 0) {
          return;
        }
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
          if (res.stop === ScanStop.Incomplete && fetchPos < size) break;
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

  /** Records of archived segments from offset up to (not including) localStart. */
  async *read(offset: number, localStart: number, opts: ReadOptions = {}): AsyncGenerator<StoredRecord, void, undefined> {
    for await (const chunk of this.readChunks(offset, localStart, opts)) for (const r of chunk) yield r;
  }

  /**
   * The records of read(), one array per batch (what Partition.read
   * consumes: one await per batch rather than per record).
   */
  async *readChunks(offset: number, localStart: number, _opts: ReadOptions = {}): AsyncGenerator<StoredRecord[], void, undefined> {
    const m = this.o.manifest();
    if (!m || m.segments.length === 0) return;
    const decoder = new RecordBatchDecoder(this.o.k);
    try {
      let next = offset;
      for (let i = Math.max(0, findSegment(m, next)); i < m.segments.length; i++) {
        const seg = m.segments[i]!;
        if (seg.baseOffset >= localStart) return;
        if (seg.nextOffset <= next) continue;
        const from = Math.max(next, seg.baseOffset);
        const file = this.objectKey(seg, 'log');
        let expectedMin = -1;
        for await (const { info, ptr } of this.batchesFrom(seg, await this.positionFor(seg, from))) {
          const last = info.baseOffset + info.lastOffsetDelta;
          // Offsets are outside the batch CRC: check they move forward inside the segment.
          if (info.baseOffset <= expectedMin || info.baseOffset < seg.baseOffset || last >= seg.nextOffset) {
            throw new CorruptionError(`batch offsets ${info.baseOffset}..${last} out of sequence`, { file, position: info.position, offset: info.baseOffset });
          }
          expectedMin = last;
          if (last < from || (info.attributes & ATTR_CONTROL) !== 0) continue;
          const out: StoredRecord[] = [];
          if (RecordBatchDecoder.isSync(info)) decoder.decode(ptr, info, out, from, { file, position: info.position });
          else await decoder.decodeAsync(ptr, info, out, from, { file, position: info.position });
          let n = out.length;
          while (n > 0 && out[n - 1]!.offset >= localStart) n--;
          if (n < out.length) out.length = n;
          this.stats.records += n;
          if (n > 0) yield out;
          if (last >= localStart - 1) return;
        }
        next = seg.nextOffset;
      }
    } finally {
      decoder.free();
    }
  }

  /** First archived offset whose record timestamp is >= ts, or null. */
  async offsetForTimestamp(ts: number): Promise<number | null> {
    const m = this.o.manifest();
    if (!m) return null;
    const decoder = new RecordBatchDecoder(this.o.k);
    const out: StoredRecord[] = [];
    try {
      for (const seg of m.segments) {
        if (seg.maxTimestamp < ts) continue;
        const file = this.objectKey(seg, 'log');
        for await (const { info, ptr } of this.batchesFrom(seg, await this.positionForTimestamp(seg, ts))) {
          if (info.maxTimestamp < ts || (info.attributes & ATTR_CONTROL) !== 0) continue;
          out.length = 0;
          if (RecordBatchDecoder.isSync(info)) decoder.decode(ptr, info, out, 0, { file, position: info.position });
          else await decoder.decodeAsync(ptr, info, out, 0, { file, position: info.position });
          for (const r of out) if (r.timestamp >= ts) return r.offset;
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
      for await (const { info } of this.batchesFrom(seg, await this.positionFor(seg, Math.max(offset, seg.baseOffset)))) {
        if (info.baseOffset >= endOffset) break;
        r.batches++;
        r.records += info.recordCount;
        r.bytes += info.size;
      }
    }
    return r;
  }
}
