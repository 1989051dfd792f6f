// Compaction of a KV namespace's log: each closed segment is rewritten with
// only the records still needed, in the background, and swapped in
// crash-safely (Partition.replaceSegment). Offsets never change (a compacted
// log has gaps), batch boundaries are kept (empty batches are dropped), and
// the surviving records are copied byte for byte; each rewritten batch gets a
// new length, record count, CRC and the pass's generation in its producer id.
//
// What a record at offset o for key k needs, given the index and the offset C
// of the last durable checkpoint (replay after a crash starts at C):
//   put      kept iff it holds k's current value (visible or forgotten)
//   delete   kept iff at or above C
//   flags    k's latest flags record: kept if it sets a flag or is at or
//            above C; any other flags record: kept iff at or above C
//   no key   dropped
// (Records at or above C that are overtaken are kept: always safe, and
// dropped once a later checkpoint passes them.) Which records are current
// comes from the slot table (offset -> slot), so a pass does no key
// lookups.
// Every record that overtakes a dropped one is flushed before the swap. Passes
// visit segments in offset order, so a delete is dropped only after every
// older record of its key is gone: replaying the whole log, without the
// checkpoint, still gives the same state.
//
// The work is done in slices that yield to the event loop; reads and writes
// go on meanwhile. Decisions use the index at the moment a batch is looked
// at; the index only moves forward, so a decision to drop stays right.

import { Kernels, WasmBuffer } from '../kernels.js';
import { Storage, FileHandle } from '../storage.js';
import { Partition } from '../partition.js';
import { LogSegment } from '../log_segment.js';
import { BATCH_HEADER_SIZE, LOG_OVERHEAD } from '../record_batch.js';
import { KvIndex } from './kv_index.js';
import { RecordCursor, OP_PUT, OP_DEL, OP_FLAGS } from './kv_record.js';
import { LogScanner, stampGeneration } from './kv_log.js';

export const CLEANED_SUFFIX = '.cleaned';
/** Output buffer kept between passes (a larger one, grown for large batches, is freed after the pass). */
const OUT_KEEP_BYTES = 64 * 1024;
/** Input bytes processed between yields to the event loop. */
const SLICE_BYTES = 256 * 1024;

export interface CompactionStats {
  /** Closed segments looked at. */
  segments: number;
  /** Segments replaced by a smaller copy. */
  rewritten: number;
  /** Segments removed because nothing in them was needed. */
  removed: number;
  bytesBefore: number;
  bytesAfter: number;
  recordsKept: number;
  recordsDropped: number;
}

/** What the compactor needs from the KV store. */
export interface CompactionHost {
  readonly k: Kernels;
  readonly storage: Storage;
  readonly partition: Partition;
  readonly index: KvIndex;
  /** Covered offset of the last durable checkpoint (0 when there is none). */
  checkpointOffset(): number;
  /** A generation number, larger than every one handed out before. */
  nextGeneration(): number;
  /** True when the pass must stop (the store is closing). */
  stopping(): boolean;
  /** Index mutations since open (to skip segments nothing could have changed for). */
  mutations(): number;
  /** Runs after a segment was swapped (e.g. to note its generation). */
  onSegmentSwapped?(seg: LogSegment | null, gen: number): void;
}

export class KvCompactor {
  private readonly host: CompactionHost;
  private readonly scanner: LogScanner;
  private readonly cursor: RecordCursor;
  private out: WasmBuffer;
  private readonly maxBatch: number;
  /** Mutation count when each segment was last compacted: skip it until something changes. */
  private readonly visited = new WeakMap<LogSegment, number>();

  constructor(host: CompactionHost) {
    this.host = host;
    this.maxBatch = Math.max(host.partition.config.maxMessageBytes, 1 << 20);
    this.scanner = new LogScanner(host.k, this.maxBatch);
    this.cursor = new RecordCursor(host.k);
    this.out = new WasmBuffer(host.k, OUT_KEEP_BYTES);
  }

  free(): void {
    this.scanner.free();
    this.cursor.free();
    this.out.free();
  }

  /** One pass over every closed segment, oldest first. */
  async pass(): Promise<CompactionStats> {
    const st: CompactionStats = { segments: 0, rewritten: 0, removed: 0, bytesBefore: 0, bytesAfter: 0, recordsKept: 0, recordsDropped: 0 };
    const p = this.host.partition;
    const closed = p.segments.slice(0, -1);
    const C = this.host.checkpointOffset();
    try {
      for (const seg of closed) {
        if (this.host.stopping()) break;
        if (!p.segments.includes(seg)) continue;
        if (this.visited.get(seg) === this.host.mutations()) continue;
        st.segments++;
        await this.compactSegment(seg, C, st);
      }
    } finally {
      // A buffer grown for large batches is given back between passes.
      if (this.out.capacity > OUT_KEEP_BYTES) {
        this.out.free();
        this.out = new WasmBuffer(this.host.k, OUT_KEEP_BYTES);
      }
    }
    return st;
  }

  private async compactSegment(seg: LogSegment, C: number, st: CompactionStats): Promise<void> {
    const h = this.host;
    const { k, index: ix } = h;
    const mutationsAtStart = h.mutations();
    const gen = h.nextGeneration();
    const cleanedPath = `${seg.logPath}${CLEANED_SUFFIX}`;
    const file: FileHandle = h.storage.open(cleanedPath, 'write');
    let fileOpen = true;
    let outPos = 0;
    let kept = 0;
    let dropped = 0;
    // Which records of this segment hold a key's current value, or its latest flags (offset -> slot).
    // Found from the slot table, not by key: no lookup in the tree per record.
    const valueAt = new Map<number, number>();
    const flagsAt = new Map<number, number>();
    const lo = seg.baseOffset;
    const hi = seg.nextOffset;
    for (let s = 0; s < ix.used; s++) {
      const vo = ix.valOff[s]!;
      if (ix.valLen[s]! >= 0 && vo >= lo && vo < hi) valueAt.set(vo, s);
      const fo = ix.flagOff[s]!;
      if (fo >= lo && fo < hi) flagsAt.set(fo, s);
    }
    // Value fixups: slot, offset and new file position of every kept put.
    const fixSlots: number[] = [];
    const fixOffsets: number[] = [];
    const fixPositions: number[] = [];
    try {
      file.truncate(0);
      let sinceYield = 0;
      const cur = this.cursor;
      for (const { info, ptr } of this.scanner.batches(seg, 0, seg.size)) {
        // A rewritten batch is never larger than its input (sized per batch: a buffer of the namespace's
        // batch limit, 16 MiB by default, held by every open namespace exhausted wasm memory at ~120 of them).
        // Before the cursor takes its views of memory.
        this.out.ensure(info.size);
        // Kept records' [start, end) addresses in the input batch.
        const ranges: number[] = [];
        const puts: number[] = []; // index into ranges/2 of kept puts, with their value address
        cur.reset(ptr, info, seg.logPath);
        const u8 = cur.u8;
        while (cur.next()) {
          const o = cur.offset;
          let keep = false;
          let slot = -1;
          if (cur.op === OP_PUT) {
            const s = valueAt.get(o);
            if (s !== undefined) { keep = true; slot = s; }
          } else if (cur.op === OP_DEL) {
            keep = o >= C;
          } else if (cur.op === OP_FLAGS) {
            keep = flagsAt.has(o) ? cur.flags !== 0 || o >= C : o >= C;
          }
          if (keep) {
            if (slot >= 0) { puts.push(ranges.length >> 1, cur.valuePtr - cur.recordStart, o); fixSlots.push(slot); }
            ranges.push(cur.recordStart, cur.recordEnd);
            kept++;
          } else dropped++;
        }
        if (ranges.length > 0) {
          // The output batch: the input header, then the kept records back to back.
          const optr = this.out.ptr;
          const mem = k.u8;
          mem.copyWithin(optr, ptr, ptr + BATCH_HEADER_SIZE);
          let w = optr + BATCH_HEADER_SIZE;
          const recPos: number[] = [];
          for (let i = 0; i < ranges.length; i += 2) {
            recPos.push(w - optr);
            mem.copyWithin(w, ranges[i]!, ranges[i + 1]!);
            w += ranges[i + 1]! - ranges[i]!;
          }
          const size = w - optr;
          const dv = k.dv;
          dv.setInt32(optr + 8, size - LOG_OVERHEAD);
          dv.setInt32(optr + 57, ranges.length >> 1);
          stampGeneration(k, optr, gen);
          dv.setUint32(optr + 17, k.raw.crc32c(optr + 21, size - 21, 0) >>> 0);
          for (let j = 0; j < puts.length; j += 3) {
            fixOffsets.push(puts[j + 2]!);
            fixPositions.push(outPos + recPos[puts[j]!]! + puts[j + 1]!);
          }
          file.write(k.u8, optr, size, outPos);
          outPos += size;
        }
        sinceYield += info.size;
        if (sinceYield >= SLICE_BYTES) {
          sinceYield = 0;
          await new Promise<void>((r) => setImmediate(r));
          if (h.stopping() || !h.partition.segments.includes(seg)) throw new CompactionStopped();
        }
      }
      st.recordsKept += kept;
      st.recordsDropped += dropped;
      st.bytesBefore += seg.size;
      if (dropped === 0) {
        // Nothing to reclaim: keep the segment as it is.
        st.bytesAfter += seg.size;
        file.close();
        fileOpen = false;
        h.storage.remove(cleanedPath);
        this.visited.set(seg, mutationsAtStart);
        return;
      }
      await file.datasync();
      file.close();
      fileOpen = false;
      // Whatever overtook a dropped record must be durable before the drop is.
      await h.partition.flush();
      if (h.stopping()) throw new CompactionStopped();
      // An emptied segment is removed, except the first: the log start offset stays where it is (as in Kafka,
      // cleaning never moves it), so readers positioned at it are not thrown out of range.
      const remove = outPos === 0 && h.partition.segments[0] !== seg;
      const replaced = await h.partition.replaceSegment(seg, remove ? null : cleanedPath, (next) => {
        // Synchronous with the swap: no read sees the new file with old positions.
        for (let i = 0; i < fixSlots.length; i++) {
          const s = fixSlots[i]!;
          if (ix.valLen[s]! >= 0 && ix.valOff[s] === fixOffsets[i]) ix.valPos[s] = fixPositions[i]!;
        }
        h.onSegmentSwapped?.(next, gen);
      });
      if (remove) h.storage.remove(cleanedPath);
      if (replaced) { st.rewritten++; st.bytesAfter += replaced.size; this.visited.set(replaced, mutationsAtStart); } else st.removed++;
    } catch (err) {
      if (fileOpen) { try { file.close(); } catch { /* already failing */ } }
      try { h.storage.remove(cleanedPath); } catch { /* best effort; load() removes .cleaned files */ }
      if (err instanceof CompactionStopped) return;
      throw err;
    }
  }
}

/** Internal: the pass was asked to stop (or its segment went away). */
class CompactionStopped extends Error {}
