// A bounded cache of values by key byte string, for hot reads.
//
// Two generations: hits in the young map cost one Map lookup and nothing
// else; hits in the old map move the entry to the young one. When the young
// generation reaches half the byte budget it becomes the old one and the
// previous old generation is dropped whole. Recently used values therefore
// survive and the cache never holds more than the budget (plus one value);
// no per-hit bookkeeping, no linked list.
//
// The cache holds only values that reads may return (never a forgotten
// key's): writers keep it exact with set()/delete().

/** Bytes counted per entry on top of key and value (Map slot, Uint8Array object). */
const ENTRY_OVERHEAD = 96;

export class ValueCache {
  private young = new Map<string, Uint8Array>();
  private old = new Map<string, Uint8Array>();
  private youngBytes = 0;
  private readonly half: number;
  hits = 0;
  misses = 0;

  /** maxBytes 0 disables the cache. */
  constructor(readonly maxBytes: number) {
    this.half = Math.floor(maxBytes / 2);
  }

  get(key: string): Uint8Array | undefined {
    let v = this.young.get(key);
    if (v !== undefined) { this.hits++; return v; }
    v = this.old.get(key);
    if (v !== undefined) {
      this.hits++;
      this.old.delete(key);
      this.insert(key, v);
      return v;
    }
    this.misses++;
    return undefined;
  }

  /** Caches a value the caller will not modify. */
  set(key: string, value: Uint8Array): void {
    if (this.half === 0) return;
    this.old.delete(key);
    const prev = this.young.get(key);
    if (prev !== undefined) {
      this.young.delete(key);
      this.youngBytes -= key.length + prev.length + ENTRY_OVERHEAD;
    }
    this.insert(key, value);
  }

  private insert(key: string, value: Uint8Array): void {
    const cost = key.length + value.length + ENTRY_OVERHEAD;
    if (cost > this.half) return;
    if (this.youngBytes + cost > this.half) {
      this.old = this.young;
      this.young = new Map();
      this.youngBytes = 0;
    }
    this.young.set(key, value);
    this.youngBytes += cost;
  }

  delete(key: string): void {
    const v = this.young.get(key);
    if (v !== undefined) {
      this.young.delete(key);
      this.youngBytes -= key.length + v.length + ENTRY_OVERHEAD;
    }
    this.old.delete(key);
  }

  clear(): void {
    this.young.clear();
    this.old.clear();
    this.youngBytes = 0;
  }

  /** Entries held (both generations). */
  get size(): number { return this.young.size + this.old.size; }
}
