// Checks a segment's .log bytes as they stream past (upload, restore): the
// CRC-32C of the whole object and a scan of every batch's framing (each
// batch's own CRC-32C checked too unless verifyBatchCrcs is false), in wasm, collecting what the manifest records about the segment (timestamps,
// record count, last offset). Bytes arrive in chunks of any size; a batch
// cut by a chunk boundary is carried over to the next.

import { Kernels, WasmBuffer } from '../kernels.js';
import { BatchScanner, ScanStop, SCAN_STOP_NAMES, ATTR_CONTROL, LOG_OVERHEAD } from '../record_batch.js';
import { Crc32c } from '../crc32c.js';
import { CorruptionError } from '../errors.js';

/** What a full pass over a segment's .log found. */
export interface SegmentFacts {
  size: number;
  crc32c: number;
  batches: number;
  /** Records in all batches (control records included). */
  records: number;
  /** First batch's first timestamp (-1 when empty). */
  firstTimestamp: number;
  /** Largest batch maxTimestamp (-1 when empty). */
  maxTimestamp: number;
  /** Last offset of the last batch (baseOffset - 1 when empty). */
  lastOffset: number;
  /** Last offset of the last data (non-control) batch, or -1. */
  lastDataOffset: number;
}

/**
 * Largest batch accepted in an archived segment: the topic's limit, but at
 * least the largest limit a topic may have (64 MiB), so lowering a topic's
 * maxMessageBytes never makes older batches unreadable or unarchivable.
 */
export function archivedBatchLimit(maxMessageBytes: number): number {
  return Math.max(maxMessageBytes, 64 << 20) + LOG_OVERHEAD;
}

/** Bytes copied into wasm memory per step. */
const STEP = 1 << 20;

export class SegmentChecker {
  private readonly k: Kernels;
  private readonly crcer: Crc32c;
  private readonly scanner: BatchScanner;
  private readonly win: WasmBuffer;
  private readonly file: string;
  private readonly baseOffset: number;
  private readonly nextOffset: number;
  private readonly maxBatchBytes: number;
  private readonly verifyCrc: boolean;
  private carry = 0;
  private winPos = 0;
  private facts: SegmentFacts;
  private freed = false;

  /**
   * baseOffset / nextOffset bound the offsets batches may hold (nextOffset
   * Infinity when unknown); file names the object in errors.
   */
  constructor(k: Kernels, crc: Crc32c, o: { baseOffset: number; nextOffset: number; maxBatchBytes: number; file: string; verifyBatchCrcs?: boolean }) {
    this.k = k;
    this.crcer = crc;
    this.file = o.file;
    this.baseOffset = o.baseOffset;
    this.nextOffset = o.nextOffset;
    this.maxBatchBytes = o.maxBatchBytes;
    this.verifyCrc = o.verifyBatchCrcs ?? true;
    this.scanner = new BatchScanner(k, 1024);
    this.win = new WasmBuffer(k, 1 << 20);
    this.facts = { size: 0, crc32c: 0, batches: 0, records: 0, firstTimestamp: -1, maxTimestamp: -1, lastOffset: o.baseOffset - 1, lastDataOffset: -1 };
  }

  /** Feeds the next bytes of the object. Throws CorruptionError at the first invalid batch. */
  update(bytes: Uint8Array): void {
    for (let off = 0; off < bytes.length; off += STEP) {
      const part = bytes.subarray(off, Math.min(bytes.length, off + STEP));
      const n = part.length;
      this.win.ensure(this.carry + n, this.carry);
      const at = this.win.ptr + this.carry;
      this.k.u8.set(part, at);
      this.facts.crc32c = this.crcer.at(at, n, this.facts.crc32c);
      this.facts.size += n;
      this.carry += n;
      this.scan(false);
    }
  }

  private scan(final: boolean): void {
    const k = this.k;
    const f = this.facts;
    const ptr = this.win.ptr;
    let used = 0;
    for (;;) {
      const res = this.scanner.scan(ptr + used, this.carry - used, { maxBatchBytes: this.maxBatchBytes, positionBase: this.winPos + used, verifyCrc: this.verifyCrc });
      for (const b of res.batches) {
        const last = b.baseOffset + b.lastOffsetDelta;
        if (b.baseOffset <= f.lastOffset || b.baseOffset < this.baseOffset || last >= this.nextOffset) {
          throw new CorruptionError(`batch offsets ${b.baseOffset}..${last} out of sequence (segment ${this.baseOffset}..${this.nextOffset - 1})`, { file: this.file, position: b.position, offset: b.baseOffset });
        }
        if (f.batches === 0) f.firstTimestamp = b.firstTimestamp;
        if (b.maxTimestamp > f.maxTimestamp) f.maxTimestamp = b.maxTimestamp;
        f.batches++;
        f.records += b.recordCount;
        f.lastOffset = last;
        if ((b.attributes & ATTR_CONTROL) === 0) f.lastDataOffset = last;
      }
      used += res.stopPosition;
      if (res.stop === ScanStop.TableFull) continue;
      if (res.stop === ScanStop.End) break;
      if (res.stop === ScanStop.Incomplete && !final) break;
      const reason = res.stop === ScanStop.Incomplete ? 'segment ends inside a batch' : SCAN_STOP_NAMES[res.stop] ?? 'invalid batch';
      throw new CorruptionError(reason, { file: this.file, position: this.winPos + used });
    }
    if (used > 0) {
      if (used < this.carry) k.u8.copyWithin(ptr, ptr + used, ptr + this.carry);
      this.carry -= used;
      this.winPos += used;
    }
  }

  /** Ends the pass: every byte must have belonged to a complete batch. */
  finish(): SegmentFacts {
    if (this.carry > 0) this.scan(true);
    return { ...this.facts };
  }

  free(): void {
    if (this.freed) return;
    this.freed = true;
    this.scanner.free();
    this.win.free();
  }
}

/** Checks a whole in-memory segment at once. */
export function checkSegmentBytes(k: Kernels, crc: Crc32c, bytes: Uint8Array, o: { baseOffset: number; nextOffset: number; maxBatchBytes: number; file: string; verifyBatchCrcs?: boolean }): SegmentFacts {
  const c = new SegmentChecker(k, crc, o);
  try {
    c.update(bytes);
    return c.finish();
  } finally {
    c.free();
  }
}
