// A bounded in-memory cache of remote byte ranges (chunks of archived
// segments and whole index objects), least recently used first out.
// Concurrent requests for one key share a single fetch; a failed fetch is
// not cached. Bounded in bytes: a chunk larger than the whole budget is
// returned but not kept.

export interface ChunkCacheStats {
  hits: number;
  misses: number;
  evictions: number;
  /** Bytes held now. */
  bytes: number;
  entries: number;
}

export class ChunkCache {
  readonly maxBytes: number;
  private readonly done = new Map<string, Buffer>();
  private readonly pending = new Map<string, Promise<Buffer>>();
  private held = 0;
  private hits = 0;
  private misses = 0;
  private evictions = 0;

  constructor(maxBytes: number) {
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) throw new RangeError(`cache size must be a non-negative integer, got ${maxBytes}`);
    this.maxBytes = maxBytes;
  }

  /** The cached bytes of key, or the result of load() (shared with concurrent callers). */
  get(key: string, load: () => Promise<Buffer>): Promise<Buffer> { return this.fetch(key, load, true); }

  private fetch(key: string, load: () => Promise<Buffer>, count: boolean): Promise<Buffer> {
    const hit = this.done.get(key);
    if (hit) {
      if (count) this.hits++;
      // Move to the most recently used end.
      this.done.delete(key);
      this.done.set(key, hit);
      return Promise.resolve(hit);
    }
    const inflight = this.pending.get(key);
    if (inflight) { if (count) this.hits++; return inflight; }
    if (count) this.misses++;
    const p = load().then((buf) => {
      this.pending.delete(key);
      this.insert(key, buf);
      return buf;
    }, (err: unknown) => {
      this.pending.delete(key);
      throw err;
    });
    this.pending.set(key, p);
    return p;
  }

  /** Starts loading key unless it is cached or loading; failures are dropped (a later get() retries). */
  prefetch(key: string, load: () => Promise<Buffer>): void {
    if (this.done.has(key) || this.pending.has(key)) return;
    this.fetch(key, load, false).catch(() => undefined);
  }

  has(key: string): boolean { return this.done.has(key); }

  private insert(key: string, buf: Buffer): void {
    if (buf.length > this.maxBytes) return;
    const old = this.done.get(key);
    if (old) { this.held -= old.length; this.done.delete(key); }
    this.done.set(key, buf);
    this.held += buf.length;
    for (const [k, v] of this.done) {
      if (this.held <= this.maxBytes) break;
      this.done.delete(k);
      this.held -= v.length;
      this.evictions++;
    }
  }

  /** Drops every key starting with prefix (objects deleted by remote retention). */
  invalidatePrefix(prefix: string): void {
    for (const [k, v] of this.done) if (k.startsWith(prefix)) { this.done.delete(k); this.held -= v.length; }
  }

  clear(): void { this.done.clear(); this.held = 0; }

  stats(): ChunkCacheStats {
    return { hits: this.hits, misses: this.misses, evictions: this.evictions, bytes: this.held, entries: this.done.size };
  }
}
