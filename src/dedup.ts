// Windowed deduplication on append (docs/dedup.md).
//
// A DedupFilter is the AppendFilter of a partition whose topic config has
// `dedup`. It tells the partition which records to keep before offsets are
// assigned, in one of two ways that decide identically:
//   - filterEncoded (the append path when the append fits one batch): the
//     partition has already framed the records as a batch in wasm memory, so
//     one wasm call (dedupBatch) finds each record's identity bytes in the
//     batch, hashes them where they lie (xxHash64) and checks the hashes
//     against the window. Nothing is copied; when nothing is dropped the
//     partition writes that batch as it is.
//   - filter (appends split over several batches, confirm mode, the rebuild):
//     the identity bytes (key, value, one header, or the whole content) are
//     written back to back into wasm memory with an offsets table (one copy,
//     no per-record allocation), hashed in one call (xxh64Many) and checked
//     in one call (windowCheckInsert).
// Both use the count- and age-bounded window of assembly/dedup_window.ts, and
// catch duplicates inside the same append. The content identity is the same
// bytes in both: the record's encoding from its key length varint to its end.
//
// There is no state besides the log: on open the window is rebuilt by
// replaying the log's tail (the last `count` records with an identity, cut
// off by age) through the same kernel, so a record caught before a restart or
// a crash is still caught after it. A failed write (aborted()) clears the
// window and rebuilds it from the log, so records that never reached the log
// are not held against retries.

import * as path from 'node:path';
import { Kernels, WasmBuffer } from './kernels.js';
import type { Storage } from './storage.js';
import type { AppendFilter, Partition } from './partition.js';
import type { NormalizedRecord, StoredRecord } from './record.js';
import type { BatchLayoutTables } from './record_batch.js';
import { DedupConfig, validateDedupConfig } from './topic_config.js';
import { ClosedError, InvalidArgumentError, SedimentError, WasmMemoryError } from './errors.js';

/** Most records hashed and checked per wasm call (larger appends are processed in chunks, in order). */
export const DEDUP_CHUNK_RECORDS = 16384;
/** Most identity bytes staged in wasm memory per chunk (a single larger record still gets a chunk of its own). */
export const DEDUP_CHUNK_BYTES = 1 << 20;
/** Largest block Kernels.alloc accepts. */
const MAX_WINDOW_BLOCK = 0x7fff0000;
/** Worst-case bytes of a zig-zag varint length. */
const MAX_VARINT = 5;
/** dedupBatch flags (assembly/dedup_window.ts). */
const FLAG_DUPLICATE = 1;
/** Bytes of dedupBatch scratch per record: hash, time, record index. */
const SCRATCH_PER_RECORD = 20;

/** The window cannot be used until it has been rebuilt from the log (after a failed write, or when a rebuild failed). */
export class DedupUnavailableError extends SedimentError {
  constructor(message: string, options?: { cause?: unknown }) { super('ERR_DEDUP_UNAVAILABLE', message, options); }
}

export interface DedupStats {
  /** The configured mode ('key', 'value', 'content' or 'header:<name>'). */
  by: string;
  /** Window bounds. ageMs 0: no age bound. */
  count: number;
  ageMs: number;
  confirm: boolean;
  /** Records checked against the window since the partition was opened (records with an identity). */
  checked: number;
  /** Records dropped as duplicates since open. */
  dropped: number;
  /** Records passed through unchecked because they have no identity (null key or value, missing header). */
  skipped: number;
  /** confirm mode: hash matches whose bytes differed (the record was kept). */
  collisions: number;
  /** Entries now in the window. */
  windowSize: number;
  /** windowSize / count. */
  windowFill: number;
  /** Times the window was rebuilt from the log (open, and after failed writes). */
  rebuilds: number;
  /** Log records read by the last rebuild, and entries it left in the window. */
  rebuildScanned: number;
  rebuildEntries: number;
  /** True while the window waits for a rebuild (appends are refused with DedupUnavailableError). */
  stale: boolean;
  /**
   * Counters since the topic was created: kept in the partition directory
   * (DEDUP_STATS_FILE) and written when the partition closes cleanly; counts
   * since the last clean close are lost by a crash. Statistics only: the
   * window never depends on them.
   */
  total: { checked: number; dropped: number; skipped: number; collisions: number };
}

/** File in a partition directory holding the lifetime counters of DedupStats.total. */
export const DEDUP_STATS_FILE = 'dedup-stats.json';

/** Where a filter keeps its lifetime counters. */
export interface DedupStatsStore {
  storage: Storage;
  /** The partition directory. */
  dir: string;
  /** False on read-only stores: counters are read, never written. */
  writable: boolean;
}

export interface DedupFilterOptions {
  /**
   * Keep only this many low bits of every hash (default 64). For tests of
   * collision handling only: fewer bits make collisions common.
   */
  hashBits?: number;
}

/** What a rebuild reads: a partition's read API and bounds. */
export type DedupLogSource = Pick<Partition, 'read' | 'logStartOffset' | 'logEndOffset'>;

type Mode = 0 | 1 | 2 | 3; // key, value, header, content
const MODE_KEY = 0;
const MODE_VALUE = 1;
const MODE_HEADER = 2;
const MODE_CONTENT = 3;

const utf8 = new TextEncoder();

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  const n = a.length;
  if (n !== b.length) return false;
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Converts a record read from the log to the shape append hands to filters. */
function normalizedFromStored(r: StoredRecord): NormalizedRecord {
  const headerKeys: Uint8Array[] = new Array(r.headers.length);
  const headerValues: (Uint8Array | null)[] = new Array(r.headers.length);
  for (let j = 0; j < r.headers.length; j++) {
    headerKeys[j] = utf8.encode(r.headers[j]!.key);
    headerValues[j] = r.headers[j]!.value;
  }
  return { key: r.key, value: r.value, headerKeys, headerValues, timestamp: r.timestamp };
}

/** Hashes and times staged by a rebuild, in log order. */
interface Staged {
  hashes: Uint32Array; // lo, hi per entry
  times: Float64Array;
  bytes: (Uint8Array | null)[] | null; // confirm mode
  n: number;
  maxTs: number;
}

export class DedupFilter implements AppendFilter {
  readonly config: Readonly<DedupConfig>;
  readonly count: number;
  readonly ageMs: number;
  readonly confirm: boolean;
  private readonly k: Kernels;
  private readonly mode: Mode;
  private readonly headerName: Uint8Array | null;
  private readonly hashMaskLo: number;
  private readonly hashMaskHi: number;
  private block: number;
  private readonly data: WasmBuffer;
  private readonly offsets: WasmBuffer;
  private readonly hashes: WasmBuffer;
  private readonly times: WasmBuffer;
  private readonly flags: WasmBuffer;
  private readonly slots: WasmBuffer; // u32 tag in, u32 matched tag out (confirm)
  /** dedupBatch scratch (hashes, times, indexes) and the header name (header mode) in wasm memory. */
  private readonly scratch: WasmBuffer;
  private readonly nameBuf: WasmBuffer;
  /** Input index of each record checked in the current chunk. */
  private idx: Int32Array = new Int32Array(1024);
  /** confirm mode: identity bytes of each record checked in the current chunk (cleared after use). */
  private readonly ids: (Uint8Array | null)[] = [];
  /** confirm mode: identity bytes of each entry, by ring position (= insertions mod count). */
  private ring: (Uint8Array | null)[] | null;
  private inserts = 0;
  private rebuildGen = 0;
  /** Whether the last append (filter or filterEncoded) dropped records: see preferEncoded(). */
  private lastDropped = false;
  /** Records hashed by the last hashChunk. */
  private chunkM = 0;
  private source: DedupLogSource | null = null;
  private rebuilding: Promise<void> | null = null;
  private staleError: Error | null = null;
  private freed = false;
  private s = { checked: 0, dropped: 0, skipped: 0, collisions: 0, rebuilds: 0, rebuildScanned: 0, rebuildEntries: 0 };
  private totalsBase = { checked: 0, dropped: 0, skipped: 0, collisions: 0 };
  private statsStore: DedupStatsStore | null = null;

  /** A filter with an empty window. Most callers want DedupFilter.open(), which also rebuilds from the log. */
  constructor(k: Kernels, config: DedupConfig, opts: DedupFilterOptions = {}) {
    validateDedupConfig(config);
    this.k = k;
    this.config = Object.freeze({ ...config, window: Object.freeze({ ...config.window }) });
    this.count = config.window.count;
    this.ageMs = config.window.ageMs ?? 0;
    this.confirm = config.confirm === true;
    if (config.by === 'key') { this.mode = MODE_KEY; this.headerName = null; }
    else if (config.by === 'value') { this.mode = MODE_VALUE; this.headerName = null; }
    else if (config.by === 'content') { this.mode = MODE_CONTENT; this.headerName = null; }
    else { this.mode = MODE_HEADER; this.headerName = utf8.encode(config.by.slice('header:'.length)); }
    if (this.confirm && this.mode !== MODE_KEY && this.mode !== MODE_HEADER) {
      throw new InvalidArgumentError(`dedup.confirm is only available with by 'key' or 'header:<name>', not '${config.by}'`);
    }
    const bits = opts.hashBits ?? 64;
    if (!Number.isInteger(bits) || bits < 1 || bits > 64) throw new InvalidArgumentError(`hashBits must be an integer in [1, 64], got ${bits}`);
    this.hashMaskLo = bits >= 32 ? 0xffffffff : (2 ** bits) - 1;
    this.hashMaskHi = bits <= 32 ? 0 : bits === 64 ? 0xffffffff : (2 ** (bits - 32)) - 1;
    const bytes = k.raw.windowBytes(this.count) >>> 0;
    if (bytes === 0) throw new InvalidArgumentError(`dedup window count ${this.count} is out of range`);
    if (bytes > MAX_WINDOW_BLOCK) {
      throw new WasmMemoryError(`a dedup window of ${this.count} entries needs ${bytes} bytes, more than one wasm block may hold (${MAX_WINDOW_BLOCK}); use a smaller window.count`);
    }
    try {
      this.block = k.alloc(bytes);
    } catch (err) {
      throw new WasmMemoryError(`cannot allocate a dedup window of ${this.count} entries (${bytes} bytes of wasm memory)`, { cause: err });
    }
    k.raw.windowInit(this.block, this.count, this.ageMs);
    try {
      this.data = new WasmBuffer(k, 16 * 1024);
      this.offsets = new WasmBuffer(k, 1025 * 4);
      this.hashes = new WasmBuffer(k, 1024 * 8);
      this.times = new WasmBuffer(k, 1024 * 8);
      this.flags = new WasmBuffer(k, 1024);
      this.slots = new WasmBuffer(k, 16);
      this.scratch = new WasmBuffer(k, 1024 * SCRATCH_PER_RECORD);
      this.nameBuf = new WasmBuffer(k, this.headerName?.length ?? 0);
      if (this.headerName) k.u8.set(this.headerName, this.nameBuf.ptr);
    } catch (err) {
      k.free(this.block);
      throw err;
    }
    this.ring = this.confirm ? [] : null;
  }

  /**
   * A filter for a partition, with its window rebuilt from the partition's
   * log tail. Install it as partition.appendFilter.
   */
  static async open(source: DedupLogSource, k: Kernels, config: DedupConfig, opts: DedupFilterOptions = {}): Promise<DedupFilter> {
    const f = new DedupFilter(k, config, opts);
    f.source = source;
    try {
      await f.rebuild();
    } catch (err) {
      f.close();
      throw err;
    }
    return f;
  }

  // --- AppendFilter ---------------------------------------------------------------

  /** Keep flags for one append's records, in order; duplicates get false. Updates the window. */
  filter(records: readonly NormalizedRecord[]): boolean[] {
    if (this.freed) throw new InvalidArgumentError('dedup filter is closed');
    if (this.staleError) throw this.staleError;
    const n = records.length;
    const keep: boolean[] = new Array(n);
    for (let i = 0; i < n; i++) keep[i] = true;
    const before = this.s.dropped;
    let start = 0;
    while (start < n) start = this.checkChunk(records, start, keep);
    this.lastDropped = this.s.dropped !== before;
    return keep;
  }

  /**
   * For the partition: whether to frame an append before filtering it
   * (filterEncoded) rather than after (filter). Framing first is cheaper
   * when nothing is dropped, but costs a second framing of the kept records
   * when something is; so after an append that dropped records, the next one
   * goes through filter(), and after one that dropped none, through
   * filterEncoded again. Both decide alike; this only picks the cheaper path.
   */
  preferEncoded(): boolean { return !this.lastDropped; }

  /**
   * filter() for records the caller has already framed as one uncompressed
   * batch at [ptr, ptr + size) of k's wasm memory (by
   * RecordBatchEncoder, in the same order): the identities are hashed where
   * they lie in the batch, in one wasm call with the window check. `layout`,
   * the encoder's lastLayout() for this batch, spares the kernel decoding the
   * records' varints. Returns null when every record is kept (the batch can
   * be written as it is), otherwise the keep flags. Decides exactly as
   * filter() would. Confirm mode, appends of more than DEDUP_CHUNK_RECORDS
   * records and batches in another Kernels instance's memory go through
   * filter().
   */
  filterEncoded(records: readonly NormalizedRecord[], k: Kernels, ptr: number, size: number, layout?: BatchLayoutTables): boolean[] | null {
    if (this.freed) throw new InvalidArgumentError('dedup filter is closed');
    if (this.staleError) throw this.staleError;
    const n = records.length;
    if (this.confirm || n > DEDUP_CHUNK_RECORDS || k !== this.k) {
      const keep = this.filter(records);
      for (let i = 0; i < n; i++) if (!keep[i]) return keep;
      return null;
    }
    if (n === 0) return null;
    const scratchPtr = this.scratch.ensure(n * SCRATCH_PER_RECORD);
    const flagPtr = this.flags.ensure(n);
    const nameLen = this.headerName?.length ?? 0;
    // With the encoder's layout tables the kernel finds the identities without decoding varints.
    const dups = layout && layout.count === n
      ? k.raw.dedupLayout(this.block, ptr, size, layout.desc, layout.pos, this.mode, this.nameBuf.ptr, nameLen,
        this.hashMaskLo, this.hashMaskHi, scratchPtr, flagPtr)
      : k.raw.dedupBatch(this.block, ptr, size, this.mode, this.nameBuf.ptr, nameLen,
        this.hashMaskLo, this.hashMaskHi, scratchPtr, flagPtr);
    if (dups < 0) throw new InvalidArgumentError(`dedup: the encoded batch at ${ptr} (${size} bytes) does not hold ${n} records`);
    const none = k.raw.dedupSkipped();
    this.s.checked += n - none;
    this.s.skipped += none;
    this.inserts += n - none - dups;
    this.lastDropped = dups > 0;
    if (dups === 0) return null;
    this.s.dropped += dups;
    const keep: boolean[] = new Array(n);
    const f = k.u8;
    for (let i = 0; i < n; i++) keep[i] = f[flagPtr + i] !== FLAG_DUPLICATE;
    return keep;
  }

  /** A write failed after filter(): the window may hold records that never reached the log. Rebuild it from the log. */
  aborted(): void {
    if (this.freed) return;
    this.clearWindow();
    this.staleError = new DedupUnavailableError('the dedup window is being rebuilt after a failed write');
    if (this.source) {
      this.rebuilding = this.rebuild().catch(() => undefined);
    }
  }

  /** Saves the lifetime counters (when writable) and frees the window's wasm memory (called by Partition.close). */
  close(): void {
    if (this.freed) return;
    this.saveTotals();
    this.freed = true;
    this.k.free(this.block);
    this.block = 0;
    this.data.free(); this.offsets.free(); this.hashes.free(); this.times.free(); this.flags.free(); this.slots.free();
    this.scratch.free(); this.nameBuf.free();
    this.ring = null;
  }

  // --- stats -------------------------------------------------------------------

  get windowSize(): number { return this.freed ? 0 : this.k.raw.windowSize(this.block); }

  stats(): DedupStats {
    const size = this.windowSize;
    return {
      by: this.config.by, count: this.count, ageMs: this.ageMs, confirm: this.confirm,
      checked: this.s.checked, dropped: this.s.dropped, skipped: this.s.skipped, collisions: this.s.collisions,
      windowSize: size, windowFill: size / this.count,
      rebuilds: this.s.rebuilds, rebuildScanned: this.s.rebuildScanned, rebuildEntries: this.s.rebuildEntries,
      stale: this.staleError !== null,
      total: this.totals(),
    };
  }

  private totals(): DedupStats['total'] {
    const b = this.totalsBase;
    return { checked: b.checked + this.s.checked, dropped: b.dropped + this.s.dropped, skipped: b.skipped + this.s.skipped, collisions: b.collisions + this.s.collisions };
  }

  /** Loads the lifetime counters from a partition directory (missing or unreadable file: zeros) and saves them there on close when writable. */
  attachStats(st: DedupStatsStore): void {
    this.statsStore = st;
    let raw: Uint8Array | null = null;
    try { raw = st.storage.readFile(path.join(st.dir, DEDUP_STATS_FILE)); } catch { raw = null; }
    if (!raw) return;
    try {
      const v = JSON.parse(new TextDecoder().decode(raw)) as Record<string, unknown>;
      const num = (x: unknown) => (typeof x === 'number' && Number.isSafeInteger(x) && x >= 0 ? x : 0);
      this.totalsBase = { checked: num(v.checked), dropped: num(v.dropped), skipped: num(v.skipped), collisions: num(v.collisions) };
    } catch {
      // A torn statistics file only loses statistics.
    }
  }

  /** Writes the lifetime counters (temp file + rename, not fsynced: statistics only; errors are ignored). */
  private saveTotals(): void {
    const st = this.statsStore;
    if (!st || !st.writable) return;
    const file = path.join(st.dir, DEDUP_STATS_FILE);
    const tmp = `${file}.tmp`;
    try {
      const data = new TextEncoder().encode(JSON.stringify(this.totals()) + '\n');
      const h = st.storage.open(tmp, 'write');
      try { h.truncate(0); h.write(data, 0, data.length, 0); } finally { h.close(); }
      st.storage.rename(tmp, file);
    } catch {
      // Statistics only: a failed write loses the counters since open, never data.
    }
  }

  /** Resolves when a rebuild started by aborted() has finished (at once when none is running). */
  async whenReady(): Promise<void> {
    while (this.rebuilding) {
      const r = this.rebuilding;
      await r;
      if (this.rebuilding === r) this.rebuilding = null;
    }
  }

  // --- the hot path --------------------------------------------------------------

  /** Identity bytes of a record in key/value/header mode, or null (not checked). */
  private identity(r: NormalizedRecord): Uint8Array | null {
    switch (this.mode) {
      case MODE_KEY: return r.key;
      case MODE_VALUE: return r.value;
      case MODE_HEADER: {
        const name = this.headerName!;
        const hk = r.headerKeys;
        for (let j = 0; j < hk.length; j++) if (bytesEqual(hk[j]!, name)) return r.headerValues[j]!;
        return null;
      }
      default: return null;
    }
  }

  /** Upper bound of a record's content encoding (see writeContent). */
  private static contentBound(r: NormalizedRecord): number {
    let n = 3 * MAX_VARINT + (r.key?.length ?? 0) + (r.value?.length ?? 0);
    for (let j = 0; j < r.headerKeys.length; j++) n += 2 * MAX_VARINT + r.headerKeys[j]!.length + (r.headerValues[j]?.length ?? 0);
    return n;
  }

  /**
   * Stages records from `start` (up to the chunk limits), hashes and checks
   * them; sets keep[i] = false for duplicates. Returns where the chunk ended.
   */
  private checkChunk(records: readonly NormalizedRecord[], start: number, keep: boolean[]): number {
    const end = this.hashChunk(records, start, true);
    const m = this.chunkM;
    if (m === 0) return end;
    const hashPtr = this.hashes.ptr;
    const timePtr = this.times.ptr;
    const flagPtr = this.flags.ensure(m);
    this.s.checked += m;
    if (!this.confirm) {
      const k = this.k;
      const dups = k.raw.windowCheckInsert(this.block, hashPtr, timePtr, 0, m, flagPtr, 0);
      this.inserts += m - dups;
      if (dups > 0) {
        const f = k.u8;
        const idx = this.idx;
        for (let j = 0; j < m; j++) if (f[flagPtr + j] !== 0) keep[idx[j]!] = false;
        this.s.dropped += dups;
      }
    } else {
      this.checkConfirm(records, m, hashPtr, timePtr, flagPtr, keep);
    }
    if (this.confirm) this.ids.fill(null, 0, m);
    return end;
  }

  /**
   * confirm mode: one key per kernel call, each inserted key tagged with its
   * ring position (insertions mod count, which is where the kernel puts it),
   * so a hit names the entry whose bytes to compare.
   */
  private checkConfirm(records: readonly NormalizedRecord[], m: number, hashPtr: number, timePtr: number, flagPtr: number, keep: boolean[]): void {
    const k = this.k;
    const raw = k.raw;
    const slotPtr = this.slots.ptr;
    const ring = this.ring!;
    const idx = this.idx;
    for (let j = 0; j < m; j++) {
      const bytes = this.ids[j]!;
      const pos = this.inserts % this.count;
      k.u32[slotPtr >>> 2] = pos;
      const dup = raw.windowCheckInsert(this.block, hashPtr + j * 8, timePtr + j * 8, slotPtr, 1, flagPtr + j, slotPtr + 4);
      if (dup === 0) {
        ring[pos] = bytes;
        this.inserts++;
        continue;
      }
      const prev = ring[k.u32[(slotPtr + 4) >>> 2]!];
      if (prev !== undefined && prev !== null && bytesEqual(prev, bytes)) {
        keep[idx[j]!] = false;
        this.s.dropped++;
      } else {
        // A hash collision: keep the record. It is not added to the window (its hash is taken).
        this.s.collisions++;
      }
    }
  }

  private maskHashes(hashPtr: number, m: number): void {
    const u32 = this.k.u32;
    const w = hashPtr >>> 2;
    for (let j = 0; j < m; j++) {
      u32[w + 2 * j] = (u32[w + 2 * j]! & this.hashMaskLo) >>> 0;
      u32[w + 2 * j + 1] = (u32[w + 2 * j + 1]! & this.hashMaskHi) >>> 0;
    }
  }

  /**
   * Content encoding: exactly the bytes of the record in a RecordBatch v2 from
   * its key length on (what dedupBatch hashes in place): zig-zag varint key
   * length (-1 for null), the key, the same for the value, varint header
   * count, then each header's name and value the same way.
   */
  private static writeContent(u8: Uint8Array, pos: number, r: NormalizedRecord): number {
    pos = writeField(u8, pos, r.key);
    pos = writeField(u8, pos, r.value);
    const hk = r.headerKeys;
    pos = writeVarint(u8, pos, hk.length);
    for (let j = 0; j < hk.length; j++) {
      pos = writeField(u8, pos, hk[j]!);
      pos = writeField(u8, pos, r.headerValues[j]!);
    }
    return pos;
  }

  private clearWindow(): void {
    this.k.raw.windowInit(this.block, this.count, this.ageMs);
    this.inserts = 0;
    if (this.ring) this.ring.length = 0;
  }

  // --- rebuild from the log ---------------------------------------------------------

  /**
   * Clears the window and replays the log's tail through it: records are
   * read backwards in ranges until `count` records with an identity were
   * found, the start of the log was reached, or (with an age bound) a range
   * held nothing within ageMs of the newest record. They are then inserted
   * oldest first, exactly as appends would have inserted them.
   */
  async rebuild(source: DedupLogSource | null = this.source): Promise<void> {
    if (this.freed) throw new InvalidArgumentError('dedup filter is closed');
    if (!source) throw new InvalidArgumentError('dedup rebuild needs a log source');
    this.source = source;
    this.staleError ??= new DedupUnavailableError('the dedup window is being rebuilt');
    this.clearWindow();
    // A newer rebuild (e.g. a second failed write) supersedes this one: it must not touch the window after its awaits.
    const gen = ++this.rebuildGen;
    try {
      const parts: Staged[] = [];
      const floor = source.logStartOffset;
      let to = source.logEndOffset;
      let need = this.count;
      let newest = -Infinity;
      let scanned = 0;
      while (need > 0 && to > floor) {
        const from = Math.max(floor, to - need);
        const part = await this.stage(source, from, to);
        scanned += part.scanned;
        parts.unshift(part.staged);
        need -= part.staged.n;
        to = from;
        if (part.staged.n > 0) {
          if (newest === -Infinity) newest = part.staged.maxTs;
          else if (this.ageMs > 0 && newest - part.staged.maxTs >= this.ageMs) break;
        }
      }
      if (this.freed) throw new ClosedError('dedup filter');
      if (gen !== this.rebuildGen) return;
      // Replay, oldest first. Only the newest `count` entries can matter.
      let skip = Math.max(0, -need);
      for (const p of parts) {
        const from = Math.min(skip, p.n);
        skip -= from;
        this.replay(p, from);
      }
      this.s.rebuilds++;
      this.s.rebuildScanned = scanned;
      this.s.rebuildEntries = this.windowSize;
      this.staleError = null;
    } catch (err) {
      if (this.freed) throw err;
      if (gen !== this.rebuildGen) return;
      this.clearWindow();
      this.staleError = new DedupUnavailableError(`rebuilding the dedup window from the log failed: ${(err as Error).message}`, { cause: err });
      throw err;
    }
  }

  /** Reads [from, to) and returns the hashes and times of the records with an identity, in order. */
  private async stage(source: DedupLogSource, from: number, to: number): Promise<{ staged: Staged; scanned: number }> {
    let cap = 1024;
    let hashes = new Uint32Array(cap * 2);
    let times = new Float64Array(cap);
    const bytes: (Uint8Array | null)[] | null = this.confirm ? [] : null;
    let n = 0;
    let maxTs = -Infinity;
    let scanned = 0;
    const batch: NormalizedRecord[] = [];
    const flush = () => {
      let start = 0;
      while (start < batch.length) {
        const end = this.hashChunk(batch, start, false);
        const m = this.chunkM;
        if (n + m > cap) {
          while (n + m > cap) cap *= 2;
          const h = new Uint32Array(cap * 2); h.set(hashes); hashes = h;
          const t = new Float64Array(cap); t.set(times); times = t;
        }
        const u32 = this.k.u32;
        const f64 = this.k.f64;
        const hw = this.hashes.ptr >>> 2;
        const tw = this.times.ptr >>> 3;
        hashes.set(u32.subarray(hw, hw + 2 * m), 2 * n);
        times.set(f64.subarray(tw, tw + m), n);
        if (bytes) {
          for (let j = 0; j < m; j++) bytes.push(this.ids[j]!);
          this.ids.fill(null, 0, m);
        }
        for (let j = 0; j < m; j++) if (times[n + j]! > maxTs) maxTs = times[n + j]!;
        n += m;
        start = end;
      }
      batch.length = 0;
    };
    if (to > from) {
      for await (const rec of source.read({ offset: from }, { maxRecords: to - from })) {
        if (this.freed) throw new ClosedError('dedup filter');
        if (rec.offset >= to) break;
        scanned++;
        batch.push(normalizedFromStored(rec));
        if (batch.length >= DEDUP_CHUNK_RECORDS) flush();
      }
      flush();
    }
    return { staged: { hashes, times, bytes, n, maxTs }, scanned };
  }

  /**
   * Writes the identity bytes of records from `start` (up to the chunk
   * limits) into wasm memory and hashes them in one call: hashes at
   * this.hashes.ptr, timestamps at this.times.ptr, input indexes in this.idx,
   * count in this.chunkM. Returns where the chunk ended.
   */
  private hashChunk(records: readonly NormalizedRecord[], start: number, countSkipped: boolean): number {
    // One pass: identity bytes straight into wasm memory. The per-record
    // tables are sized for the most records this chunk can take; the data
    // buffer grows when needed (memory growth detaches views: re-read them).
    const n = records.length;
    const content = this.mode === MODE_CONTENT;
    const keepIds = this.confirm;
    const maxM = Math.min(n - start, DEDUP_CHUNK_RECORDS);
    if (this.idx.length < maxM) this.idx = new Int32Array(Math.max(maxM, this.idx.length * 2));
    const idx = this.idx;
    const ids = this.ids;
    const k = this.k;
    const offPtr = this.offsets.ensure((maxM + 1) * 4);
    const hashPtr = this.hashes.ensure(maxM * 8);
    const timePtr = this.times.ensure(maxM * 8);
    let dataPtr = this.data.ptr;
    let cap = this.data.capacity;
    let u8 = k.u8;
    let u32 = k.u32;
    let f64 = k.f64;
    const ow = (offPtr >>> 2) + 1;
    const tw = timePtr >>> 3;
    u32[ow - 1] = 0;
    let end = start;
    let m = 0;
    let total = 0;
    while (end < n && m < DEDUP_CHUNK_RECORDS) {
      const r = records[end]!;
      let len: number;
      let b: Uint8Array | null = null;
      if (content) len = DedupFilter.contentBound(r);
      else {
        b = this.identity(r);
        if (b === null) { if (countSkipped) this.s.skipped++; end++; continue; }
        len = b.length;
      }
      if (m > 0 && total + len > DEDUP_CHUNK_BYTES) break;
      if (total + len > cap) {
        this.data.ensure(total + len, total);
        dataPtr = this.data.ptr;
        cap = this.data.capacity;
        u8 = k.u8; u32 = k.u32; f64 = k.f64;
      }
      if (content) len = DedupFilter.writeContent(u8, dataPtr + total, r) - (dataPtr + total);
      else copyBytes(u8, dataPtr + total, b!);
      if (keepIds) ids[m] = b;
      total += len;
      u32[ow + m] = total;
      f64[tw + m] = r.timestamp;
      idx[m++] = end;
      end++;
    }
    this.chunkM = m;
    if (m === 0) return end;
    k.raw.xxh64Many(dataPtr, offPtr, m, 0, 0, hashPtr);
    if (this.hashMaskLo !== 0xffffffff || this.hashMaskHi !== 0xffffffff) this.maskHashes(hashPtr, m);
    return end;
  }


  /** Inserts staged entries [from, n) into the window, in order. */
  private replay(p: Staged, from: number): void {
    const CH = 4096;
    let i = from;
    while (i < p.n) {
      const m = Math.min(CH, p.n - i);
      const hashPtr = this.hashes.ensure(m * 8);
      const timePtr = this.times.ensure(m * 8);
      const flagPtr = this.flags.ensure(m);
      const u32 = this.k.u32;
      const f64 = this.k.f64;
      u32.set(p.hashes.subarray(2 * i, 2 * (i + m)), hashPtr >>> 2);
      f64.set(p.times.subarray(i, i + m), timePtr >>> 3);
      if (!p.bytes) {
        const dups = this.k.raw.windowCheckInsert(this.block, hashPtr, timePtr, 0, m, flagPtr, 0);
        this.inserts += m - dups;
      } else {
        const raw = this.k.raw;
        const slotPtr = this.slots.ptr;
        const ring = this.ring!;
        for (let j = 0; j < m; j++) {
          const pos = this.inserts % this.count;
          this.k.u32[slotPtr >>> 2] = pos;
          const dup = raw.windowCheckInsert(this.block, hashPtr + j * 8, timePtr + j * 8, slotPtr, 1, flagPtr + j, slotPtr + 4);
          if (dup === 0) { ring[pos] = p.bytes[i + j]!; this.inserts++; }
        }
      }
      i += m;
    }
  }
}

function copyBytes(u8: Uint8Array, pos: number, b: Uint8Array): number {
  // A byte loop beats TypedArray.set's fixed cost only for the shortest keys.
  const n = b.length;
  if (n <= 8) {
    for (let i = 0; i < n; i++) u8[pos + i] = b[i]!;
  } else {
    u8.set(b, pos);
  }
  return pos + n;
}

/** Kafka's zig-zag varint of a 32-bit integer (as the batch encoder writes lengths). */
function writeVarint(u8: Uint8Array, pos: number, n: number): number {
  let v = ((n << 1) ^ (n >> 31)) >>> 0;
  while (v >= 0x80) {
    u8[pos++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  u8[pos++] = v;
  return pos;
}

function writeField(u8: Uint8Array, pos: number, b: Uint8Array | null | undefined): number {
  if (b === null || b === undefined) return writeVarint(u8, pos, -1);
  pos = writeVarint(u8, pos, b.length);
  return copyBytes(u8, pos, b);
}

/**
 * Stands in for a DedupFilter whose window could not be allocated (a
 * WasmMemoryError): appends to the partition fail with DedupUnavailableError
 * (whose cause is the allocation error) instead of silently not deduplicating.
 */
export class UnavailableDedupFilter implements AppendFilter {
  readonly error: DedupUnavailableError;
  constructor(error: DedupUnavailableError) { this.error = error; }
  filter(): boolean[] { throw this.error; }
}

/**
 * Installs a DedupFilter on a partition whose topic config has `dedup` and
 * rebuilds its window from the log; returns it, or null when the topic has no
 * dedup config. When the rebuild fails (e.g. corrupt data in the tail) the
 * filter stays installed but refuses appends with DedupUnavailableError (its
 * cause says why) until rebuild() succeeds; reads are unaffected. When the
 * window cannot be allocated, an UnavailableDedupFilter is installed (appends
 * fail, reads work, the store still opens) and null is returned.
 */
export async function installDedup(p: Partition, k: Kernels, opts: DedupFilterOptions = {}, stats?: DedupStatsStore): Promise<DedupFilter | null> {
  const cfg = p.config.dedup;
  if (!cfg) return null;
  let f: DedupFilter;
  try {
    f = new DedupFilter(k, cfg, opts);
  } catch (err) {
    if (!(err instanceof WasmMemoryError)) throw err;
    if (p.appendFilter instanceof DedupFilter) p.appendFilter.close();
    p.appendFilter = new UnavailableDedupFilter(new DedupUnavailableError(`partition ${p.name} cannot deduplicate: ${err.message}`, { cause: err }));
    return null;
  }
  if (stats) f.attachStats(stats);
  if (p.appendFilter instanceof DedupFilter) p.appendFilter.close();
  p.appendFilter = f;
  await f.rebuild(p).catch(() => undefined);
  return f;
}
