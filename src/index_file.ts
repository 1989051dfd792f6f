// An index file whose entries are mirrored in wasm memory, so the search
// kernels read them in place (the file is read straight into wasm memory).
// Shared by OffsetIndex and TimeIndex; entries are only ever appended or
// truncated. Closed segments load their index lazily and may unload it.

import { Kernels, WasmBuffer } from './kernels.js';
import { Storage, FileHandle } from './storage.js';

/** Largest index file read into memory (Kafka's segment.index.bytes default is 10 MiB). */
export const MAX_INDEX_FILE_BYTES = 64 * 1024 * 1024;

export class IndexFile {
  readonly path: string;
  readonly entrySize: number;
  protected readonly k: Kernels;
  protected readonly storage: Storage;
  protected buf: WasmBuffer | null = null;
  protected file: FileHandle | null = null;
  /** Entries held (valid only while loaded). */
  entries = 0;
  /** Read-only store: rebuilds and appends stay in memory, the file is never written. */
  memoryOnly = false;
  /** The file was changed since the last datasync (even when its handle has been closed since). */
  private unsynced = false;

  constructor(k: Kernels, storage: Storage, path: string, entrySize: number) {
    this.k = k;
    this.storage = storage;
    this.path = path;
    this.entrySize = entrySize;
  }

  get loaded(): boolean { return this.buf !== null; }

  /** Pointer to entry 0 in wasm memory (load() first). */
  get ptr(): number { return this.buf!.ptr; }

  /**
   * Reads the file into wasm memory. Returns false when the file's length is
   * not a whole number of entries (the caller rebuilds the index).
   */
  load(): boolean {
    if (this.buf) return true;
    const exists = this.storage.exists(this.path);
    const h = exists ? this.storage.open(this.path, 'read') : null;
    try {
      const size = h ? h.size() : 0;
      if (size > MAX_INDEX_FILE_BYTES) return false;
      const buf = new WasmBuffer(this.k, Math.max(size, this.entrySize * 64));
      if (h && size > 0) h.read(this.k.u8, buf.ptr, size, 0);
      this.buf = buf;
      this.entries = Math.floor(size / this.entrySize);
      return size % this.entrySize === 0;
    } finally {
      h?.close();
    }
  }

  /** Opens the file for appending (active segment). */
  openForWrite(): void {
    if (!this.buf) this.load();
    if (!this.file && !this.memoryOnly) this.file = this.storage.open(this.path, 'write');
  }

  /** Appends one entry already encoded by writeEntry(). */
  protected appendRaw(write: (dv: DataView, at: number) => void): void {
    const buf = this.buf!;
    const at = this.entries * this.entrySize;
    buf.ensure(at + this.entrySize, at);
    write(this.k.dv, buf.ptr + at);
    if (!this.memoryOnly) {
      if (!this.file) this.file = this.storage.open(this.path, 'write');
      this.file.write(this.k.u8, buf.ptr + at, this.entrySize, at);
      this.unsynced = true;
    }
    this.entries++;
  }

  /** Keeps the first n entries (memory and file). */
  truncateEntries(n: number): void {
    if (n >= this.entries) return;
    this.entries = n;
    if (this.memoryOnly) return;
    this.unsynced = true;
    if (this.file) this.file.truncate(n * this.entrySize);
    else {
      const h = this.storage.open(this.path, 'write');
      try { h.truncate(n * this.entrySize); } finally { h.close(); }
    }
  }

  /** Drops every entry and truncates the file (before a rebuild). */
  reset(): void {
    if (!this.buf) this.buf = new WasmBuffer(this.k, this.entrySize * 64);
    this.entries = 0;
    if (this.memoryOnly) return;
    if (!this.file) this.file = this.storage.open(this.path, 'write');
    this.file.truncate(0);
    this.unsynced = true;
  }

  /** Makes the file durable; reopens it when it was changed and its handle closed since. */
  async datasync(): Promise<void> {
    if (this.memoryOnly || !this.unsynced) return;
    this.unsynced = false;
    try {
      if (this.file) {
        await this.file.datasync();
      } else {
        const h = this.storage.open(this.path, 'write');
        try { await h.datasync(); } finally { h.close(); }
      }
    } catch (err) {
      this.unsynced = true;
      throw err;
    }
  }

  /** Closes the file handle (the entries stay loaded). */
  closeFile(): void {
    this.file?.close();
    this.file = null;
  }

  /** Releases memory and the handle. */
  unload(): void {
    this.closeFile();
    this.buf?.free();
    this.buf = null;
  }

  /** The raw entry bytes (copy), e.g. for upload or dump. */
  bytes(): Uint8Array {
    if (!this.buf) this.load();
    return this.k.u8.slice(this.buf!.ptr, this.buf!.ptr + this.entries * this.entrySize);
  }
}
