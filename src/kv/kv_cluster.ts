// Clustering: copies live values that sit in closed segments, in key order,
// to the end of the log, so that keys near each other have their values near
// each other and a range scan reads them with a few large reads instead of
// one read per value (what an LSM tree gets from sorted runs). The old
// copies become dead data that compaction reclaims.
//
// A copy is an ordinary put record (plus, for a forgotten key, its flags
// record, in the same batch), appended like any write: a crash can only
// leave a value stored twice, both copies equal, the later one current.
// Values already laid out in key order (written in key order) are only
// marked, not copied. Each copy is decided, read and appended in one
// synchronous step, after checking that the key still has that value, so
// concurrent writes always win; the pass yields to the event loop between
// batches.

import { Partition } from '../partition.js';
import { SedimentError } from '../errors.js';
import { KvIndex, IndexKey, FLAG_CLUSTERED } from './kv_index.js';

/** Values per copy batch. */
const CHUNK_VALUES = 4096;
/** Value bytes per copy batch (at most half the namespace's batch limit). */
const CHUNK_BYTES = 4 * 1024 * 1024;
/** Values closer than this in a file count as one read. */
const NEAR_BYTES = 16 * 1024;

export interface ClusterStats {
  /** Values copied into key order. */
  copied: number;
  /** Values found already in key order (marked, not copied). */
  inPlace: number;
  /** Bytes of values copied. */
  bytes: number;
}

export interface ClusterHost {
  readonly partition: Partition;
  readonly index: KvIndex;
  readonly maxBatchBytes: number;
  stopping(): boolean;
  /** Reads the values of slots from the log (CRC-checked) into out. */
  readValues(slots: readonly number[], out: Uint8Array[]): void;
  /**
   * Appends copies of these values, in this order, in batches within the
   * namespace's batch limit, and points the index at them (marking them
   * FLAG_CLUSTERED); a value too large to copy is left as it is. Returns how
   * many were copied.
   */
  appendCopies(keys: readonly IndexKey[], slots: readonly number[], values: readonly Uint8Array[]): number;
}

export async function clusterPass(h: ClusterHost): Promise<ClusterStats> {
  const st: ClusterStats = { copied: 0, inPlace: 0, bytes: 0 };
  const p = h.partition;
  // Only values in segments closed when the pass starts.
  const boundary = p.active.baseOffset;
  const maxBytes = Math.min(CHUNK_BYTES, Math.floor(h.maxBatchBytes / 2));
  // A copy-on-write snapshot of the tree: iterating it across yields is safe.
  const tree = h.index.tree.clone();
  const keys: IndexKey[] = [];
  const slots: number[] = [];
  const offs: number[] = [];
  let bytes = 0;

  const flush = (): void => {
    const ix = h.index;
    const vk: IndexKey[] = [];
    const vs: number[] = [];
    // Still the same value of the same key? (Everything from here to the append is synchronous.)
    for (let i = 0; i < keys.length; i++) {
      const s = slots[i]!;
      if (ix.tree.get(keys[i]!) === s && ix.valOff[s] === offs[i] && ix.valLen[s]! >= 0 && (ix.flags[s]! & FLAG_CLUSTERED) === 0) {
        vk.push(keys[i]!);
        vs.push(s);
      }
    }
    keys.length = 0;
    slots.length = 0;
    offs.length = 0;
    bytes = 0;
    if (vk.length === 0) return;
    // Already in key order on disk (few separate reads would fetch them all)? Then only mark them.
    let reads = 1;
    for (let i = 1; i < vs.length; i++) {
      const a = vs[i - 1]!;
      const b = vs[i]!;
      const sameSeg = p.segmentFor(ix.valOff[a]!) === p.segmentFor(ix.valOff[b]!);
      const gap = ix.valPos[b]! - (ix.valPos[a]! + ix.valLen[a]!);
      if (!sameSeg || gap < 0 || gap > NEAR_BYTES) reads++;
    }
    if (reads * 32 <= vs.length) {
      for (const s of vs) ix.moved(s, ix.valOff[s]!, ix.valPos[s]!, -1);
      st.inPlace += vs.length;
      return;
    }
    const values = new Array<Uint8Array>(vs.length);
    h.readValues(vs, values);
    const copied = h.appendCopies(vk, vs, values);
    let seen = 0;
    for (let i = 0; i < vs.length; i++) {
      const s = vs[i]!;
      if ((ix.flags[s]! & FLAG_CLUSTERED) !== 0) { seen++; st.copied++; st.bytes += values[i]!.length; continue; }
      // Too large to copy (it would not fit in one batch with its flags record): a run of its own, marked so no pass retries it.
      ix.moved(s, ix.valOff[s]!, ix.valPos[s]!, -1);
      st.inPlace++;
    }
    if (seen !== copied) throw new SedimentError('ERR_INTERNAL', `clustering: ${copied} values copied but ${seen} marked (internal invariant)`);
  };

  const pair: (IndexKey | number)[] = [];
  for (const [k, s] of tree.entries(undefined, pair) as IterableIterator<[IndexKey, number]>) {
    if (h.stopping()) return st;
    const ix = h.index;
    if (ix.valLen[s]! < 0 || (ix.flags[s]! & FLAG_CLUSTERED) !== 0 || ix.valOff[s]! >= boundary) continue;
    keys.push(k);
    slots.push(s);
    offs.push(ix.valOff[s]!);
    bytes += ix.valLen[s]! + ix.keyLength(k);
    if (keys.length >= CHUNK_VALUES || bytes >= maxBytes) {
      flush();
      await new Promise<void>((r) => setImmediate(r));
    }
  }
  if (!h.stopping()) flush();
  return st;
}
