// Kafka's time index: 12-byte big-endian entries (i64 timestamp, u32 offset
// relative to the segment's base). An entry (t, o) says: the largest
// timestamp among offsets <= o is t. Timestamps strictly increase across
// entries; an entry is added only when the segment's max timestamp grows.

import { Kernels } from './kernels.js';
import { Storage } from './storage.js';
import { IndexFile } from './index_file.js';

export const TIME_INDEX_ENTRY_SIZE = 12;
const TWO32 = 4294967296;

export interface TimestampOffset { timestamp: number; offset: number }

export class TimeIndex extends IndexFile {
  readonly baseOffset: number;

  constructor(k: Kernels, storage: Storage, path: string, baseOffset: number) {
    super(k, storage, path, TIME_INDEX_ENTRY_SIZE);
    this.baseOffset = baseOffset;
  }

  entry(slot: number): TimestampOffset {
    const dv = this.k.dv;
    const p = this.ptr + slot * TIME_INDEX_ENTRY_SIZE;
    return { timestamp: dv.getInt32(p) * TWO32 + dv.getUint32(p + 4), offset: this.baseOffset + dv.getUint32(p + 8) };
  }

  get lastEntry(): TimestampOffset | null { return this.entries > 0 ? this.entry(this.entries - 1) : null; }

  /** Appends (timestamp, offset) if timestamp exceeds the last entry's. Returns whether it did. */
  maybeAppend(timestamp: number, offset: number): boolean {
    const last = this.lastEntry;
    if (last && (timestamp <= last.timestamp || offset < last.offset)) return false;
    const rel = offset - this.baseOffset;
    if (rel < 0 || rel > 0xffffffff) return false;
    this.appendRaw((dv, at) => {
      dv.setInt32(at, Math.floor(timestamp / TWO32));
      dv.setUint32(at + 4, timestamp >>> 0);
      dv.setUint32(at + 8, rel);
    });
    return true;
  }

  /** The largest entry with timestamp <= target, or null. */
  lookup(target: number): TimestampOffset | null {
    if (this.entries === 0) return null;
    const slot = this.k.raw.timeIndexLookup(this.ptr, this.entries, target);
    return slot < 0 ? null : this.entry(slot);
  }

  /** Number of leading entries with increasing timestamps and offsets inside [base, nextOffset). */
  validPrefix(nextOffset: number): number {
    let prevTs = -Infinity;
    let prevOff = -1;
    for (let i = 0; i < this.entries; i++) {
      const e = this.entry(i);
      if (e.timestamp <= prevTs || e.offset < prevOff || e.offset >= nextOffset) return i;
      prevTs = e.timestamp;
      prevOff = e.offset;
    }
    return this.entries;
  }
}
