// Kafka's offset index: 8-byte big-endian entries (u32 offset relative to the
// segment's base, u32 byte position in the .log). Sparse: one entry per
// index.interval.bytes of log. As in Kafka, an entry names the LAST offset of
// the batch that starts at its position, so lookup(target) gives the batch to
// start a forward scan from.

import { Kernels } from './kernels.js';
import { Storage } from './storage.js';
import { IndexFile } from './index_file.js';

export const OFFSET_INDEX_ENTRY_SIZE = 8;

export interface OffsetPosition { offset: number; position: number }

export class OffsetIndex extends IndexFile {
  readonly baseOffset: number;

  constructor(k: Kernels, storage: Storage, path: string, baseOffset: number) {
    super(k, storage, path, OFFSET_INDEX_ENTRY_SIZE);
    this.baseOffset = baseOffset;
  }

  entry(slot: number): OffsetPosition {
    const dv = this.k.dv;
    const p = this.ptr + slot * OFFSET_INDEX_ENTRY_SIZE;
    return { offset: this.baseOffset + dv.getUint32(p), position: dv.getUint32(p + 4) };
  }

  get lastEntry(): OffsetPosition | null { return this.entries > 0 ? this.entry(this.entries - 1) : null; }

  append(offset: number, position: number): void {
    const rel = offset - this.baseOffset;
    if (rel < 0 || rel > 0xffffffff) throw new RangeError(`offset ${offset} does not fit the index of segment ${this.baseOffset}`);
    const last = this.lastEntry;
    if (last && (offset <= last.offset || position <= last.position)) {
      throw new RangeError(`index entries must increase: (${offset}, ${position}) after (${last.offset}, ${last.position})`);
    }
    this.appendRaw((dv, at) => { dv.setUint32(at, rel); dv.setUint32(at + 4, position); });
  }

  /** The largest entry with offset <= target, or null (scan from position 0). */
  lookup(target: number): OffsetPosition | null {
    const rel = target - this.baseOffset;
    if (rel < 0 || this.entries === 0) return null;
    const slot = this.k.raw.offsetIndexLookup(this.ptr, this.entries, Math.min(rel, 0xffffffff) >>> 0);
    return slot < 0 ? null : this.entry(slot);
  }

  /**
   * Checks the loaded entries: strictly increasing offsets and positions,
   * positions inside the log. Returns the number of leading valid entries.
   */
  validPrefix(logSize: number): number {
    let prevOff = -1;
    let prevPos = -1;
    for (let i = 0; i < this.entries; i++) {
      const e = this.entry(i);
      if (e.offset <= prevOff || e.position <= prevPos || e.position >= logSize) return i;
      prevOff = e.offset;
      prevPos = e.position;
    }
    return this.entries;
  }
}
