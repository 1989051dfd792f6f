// Reading a KV namespace's log for replay and compaction: CRC-checked
// batches of one segment, read in chunks into wasm memory, and the
// compaction generation stamped in a segment's first batch.

import { Kernels, WasmBuffer } from '../kernels.js';
import { LogSegment } from '../log_segment.js';
import { BatchInfo, BatchScanner, ScanStop, SCAN_STOP_NAMES, LOG_OVERHEAD, BATCH_HEADER_SIZE, ATTR_CODEC_MASK } from '../record_batch.js';
import { CorruptionError } from '../errors.js';

const CHUNK = 1 << 20;
const TWO32 = 4294967296;

/** One valid batch: its facts and its address in wasm memory (valid until the generator resumes). */
export interface ScannedBatch { info: BatchInfo; ptr: number }

export class LogScanner {
  private readonly k: Kernels;
  private readonly buf: WasmBuffer;
  private readonly scanner: BatchScanner;
  private readonly maxBatch: number;

  constructor(k: Kernels, maxBatchBytes: number) {
    this.k = k;
    this.maxBatch = maxBatchBytes + LOG_OVERHEAD;
    this.buf = new WasmBuffer(k, CHUNK);
    this.scanner = new BatchScanner(k, 1024);
  }

  /**
   * The batches of seg in [from, end) (from: a batch boundary), every one
   * CRC-checked. Throws CorruptionError at the first invalid batch and for
   * compressed batches (a KV log is never compressed).
   */
  *batches(seg: LogSegment, from: number, end: number = seg.size): Generator<ScannedBatch, void, undefined> {
    let pos = from;
    while (pos < end) {
      const want = Math.min(this.buf.capacity, end - pos);
      const got = seg.readInto(this.buf.ptr, want, pos);
      if (got < want) throw new CorruptionError(`segment is shorter than expected (${pos + got} < ${end})`, { file: seg.logPath, position: pos + got });
      const res = this.scanner.scan(this.buf.ptr, got, { maxBatchBytes: this.maxBatch, positionBase: pos });
      for (const b of res.batches) {
        if ((b.attributes & ATTR_CODEC_MASK) !== 0) {
          throw new CorruptionError(`compressed batch (codec ${b.attributes & ATTR_CODEC_MASK}) in a KV log`, { file: seg.logPath, position: b.position, offset: b.baseOffset });
        }
        yield { info: b, ptr: this.buf.ptr + (b.position - pos) };
      }
      const stopAt = pos + res.stopPosition;
      if (res.stop === ScanStop.End || res.stop === ScanStop.TableFull) { pos = stopAt; continue; }
      if (res.stop === ScanStop.Incomplete) {
        const h = seg.peekHeader(stopAt, end);
        if (h && h.size <= this.maxBatch && stopAt + h.size <= end) {
          pos = stopAt;
          if (h.size > this.buf.capacity) this.buf.ensure(h.size);
          continue;
        }
      }
      throw new CorruptionError(SCAN_STOP_NAMES[res.stop] ?? 'invalid batch', { file: seg.logPath, position: stopAt });
    }
  }

  free(): void {
    this.buf.free();
    this.scanner.free();
  }
}

/**
 * The compaction generation of a segment: the producer id of its first
 * batch. Batches appended by the KV store carry -1; a compacted segment's
 * batches carry the generation it was rewritten with. -1 for an empty
 * segment.
 */
export function segmentGeneration(k: Kernels, seg: LogSegment, scratch: WasmBuffer): number {
  if (seg.size < BATCH_HEADER_SIZE) return -1;
  const p = scratch.ensure(BATCH_HEADER_SIZE);
  const got = seg.readInto(p, BATCH_HEADER_SIZE, 0);
  if (got < BATCH_HEADER_SIZE) return -1;
  const dv = k.dv;
  return dv.getInt32(p + 43) * TWO32 + dv.getUint32(p + 47);
}

/** Writes a producer id (the compaction generation) into a batch header at ptr. */
export function stampGeneration(k: Kernels, ptr: number, gen: number): void {
  const dv = k.dv;
  dv.setInt32(ptr + 43, Math.floor(gen / TWO32));
  dv.setUint32(ptr + 47, gen >>> 0);
}
