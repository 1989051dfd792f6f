// The file system as the log sees it. Everything the engine does to disk goes
// through Storage, so tests can swap in a faulty implementation (torn writes,
// lost unsynced data, I/O errors) — see test/helpers/faulty_storage.ts.
//
// Reads and writes are synchronous (page-cache speed, and they let wasm
// memory be the I/O buffer without it detaching under an in-flight call);
// only durability barriers (datasync, directory sync) and the optional
// read-ahead (readAsync) are asynchronous.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { StorageError } from './errors.js';

export interface FileHandle {
  readonly path: string;
  /** Current size in bytes. */
  size(): number;
  /** Reads up to length bytes at position into buf[offset..]; returns bytes read (0 at EOF). */
  read(buf: Uint8Array, offset: number, length: number, position: number): number;
  /**
   * Optional: read() off the calling thread (Node: the libuv threadpool), for
   * read-ahead. close() while reads are in flight defers closing the
   * descriptor until they settle, so its number cannot be reused under them.
   * The caller keeps buf's memory in place until the promise settles (for
   * wasm memory: see "Read-ahead" in docs/wasm-boundary.md).
   */
  readAsync?(buf: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  /** Writes all of buf[offset..offset+length) at position, or throws. */
  write(buf: Uint8Array, offset: number, length: number, position: number): void;
  truncate(length: number): void;
  /** Makes written data durable (fdatasync). */
  datasync(): Promise<void>;
  close(): void;
}

export interface Storage {
  open(file: string, mode: 'read' | 'write'): FileHandle;
  exists(p: string): boolean;
  /** Names in a directory ([] when it does not exist). */
  list(dir: string): string[];
  isDirectory(p: string): boolean;
  mkdirp(dir: string): void;
  remove(p: string): void;
  /** Removes a file off the event loop (large unlinks are slow); optional. */
  removeAsync?(p: string): Promise<void>;
  removeDir(dir: string): void;
  rename(from: string, to: string): void;
  /** Makes directory entries (creates, renames, removes) durable. */
  syncDir(dir: string): Promise<void>;
  /** Whole file, or null when it does not exist. */
  readFile(p: string): Uint8Array | null;
  /** Writes a small file atomically: temp file, datasync, rename, directory sync. */
  writeFileAtomic(p: string, data: Uint8Array): Promise<void>;
  /** Creates a file exclusively; false when it already exists. */
  createExclusive(p: string, data: Uint8Array): boolean;
}

/**
 * The atomic small-file write, from a Storage's primitives: write a temp
 * file, datasync it, rename it over the target, sync the directory. Shared by
 * every Storage, so test doubles track (and can fail) each step.
 */
export async function writeFileAtomicWith(st: Storage, p: string, data: Uint8Array): Promise<void> {
  const tmp = `${p}.tmp`;
  const h = st.open(tmp, 'write');
  try {
    h.truncate(0);
    h.write(data, 0, data.length, 0);
    await h.datasync();
  } finally {
    h.close();
  }
  st.rename(tmp, p);
  await st.syncDir(path.dirname(path.resolve(p)));
}

function wrap<T>(p: string, op: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw new StorageError(p, op, err);
  }
}

class NodeFileHandle implements FileHandle {
  readonly path: string;
  private fd: number;
  /** readAsync calls not yet settled, and the descriptor close() left to them. */
  private inflight = 0;
  private deferredClose = -1;

  constructor(p: string, fd: number) {
    this.path = p;
    this.fd = fd;
  }

  size(): number { return wrap(this.path, 'stat', () => fs.fstatSync(this.fd).size); }

  read(buf: Uint8Array, offset: number, length: number, position: number): number {
    let done = 0;
    while (done < length) {
      const n = wrap(this.path, 'read', () => fs.readSync(this.fd, buf, offset + done, length - done, position + done));
      if (n === 0) break;
      done += n;
    }
    return done;
  }

  readAsync(buf: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    const fd = this.fd;
    if (fd < 0) return Promise.reject(new StorageError(this.path, 'read', new Error('file is closed')));
    this.inflight++;
    return new Promise<number>((resolve, reject) => {
      let done = 0;
      const step = (): void => {
        fs.read(fd, buf, offset + done, length - done, position + done, (err, n) => {
          if (err) { this.settled(); reject(new StorageError(this.path, 'read', err)); return; }
          done += n;
          if (n === 0 || done >= length) { this.settled(); resolve(done); return; }
          step();
        });
      };
      step();
    });
  }

  private settled(): void {
    if (--this.inflight === 0 && this.deferredClose >= 0) {
      const fd = this.deferredClose;
      this.deferredClose = -1;
      fs.close(fd, () => undefined);
    }
  }

  write(buf: Uint8Array, offset: number, length: number, position: number): void {
    let done = 0;
    while (done < length) {
      done += wrap(this.path, 'write', () => fs.writeSync(this.fd, buf, offset + done, length - done, position + done));
    }
  }

  truncate(length: number): void { wrap(this.path, 'truncate', () => fs.ftruncateSync(this.fd, length)); }

  datasync(): Promise<void> {
    return new Promise((resolve, reject) => {
      fs.fdatasync(this.fd, (err) => (err ? reject(new StorageError(this.path, 'fdatasync', err)) : resolve()));
    });
  }

  close(): void {
    if (this.fd >= 0) {
      const fd = this.fd;
      this.fd = -1;
      if (this.inflight > 0) { this.deferredClose = fd; return; }
      wrap(this.path, 'close', () => fs.closeSync(fd));
    }
  }
}

/** Storage on the local file system through node:fs. */
export class NodeStorage implements Storage {
  open(file: string, mode: 'read' | 'write'): FileHandle {
    const fd = wrap(file, 'open', () => fs.openSync(file, mode === 'read' ? 'r' : fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644));
    return new NodeFileHandle(file, fd);
  }
  exists(p: string): boolean { return fs.existsSync(p); }
  list(dir: string): string[] {
    if (!fs.existsSync(dir)) return [];
    return wrap(dir, 'readdir', () => fs.readdirSync(dir));
  }
  isDirectory(p: string): boolean {
    try { return fs.statSync(p).isDirectory(); } catch { return false; }
  }
  mkdirp(dir: string): void { wrap(dir, 'mkdir', () => fs.mkdirSync(dir, { recursive: true })); }
  remove(p: string): void { wrap(p, 'unlink', () => fs.rmSync(p, { force: true })); }
  removeAsync(p: string): Promise<void> {
    return fs.promises.rm(p, { force: true }).catch((err) => { throw new StorageError(p, 'unlink', err); });
  }
  removeDir(dir: string): void { wrap(dir, 'rmdir', () => fs.rmSync(dir, { recursive: true, force: true })); }
  rename(from: string, to: string): void { wrap(from, 'rename', () => fs.renameSync(from, to)); }
  syncDir(dir: string): Promise<void> {
    return new Promise((resolve, reject) => {
      fs.open(dir, 'r', (err, fd) => {
        if (err) return reject(new StorageError(dir, 'open dir', err));
        fs.fsync(fd, (err2) => {
          fs.close(fd, () => (err2 ? reject(new StorageError(dir, 'fsync dir', err2)) : resolve()));
        });
      });
    });
  }
  readFile(p: string): Uint8Array | null {
    try {
      return fs.readFileSync(p);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new StorageError(p, 'read', err);
    }
  }
  writeFileAtomic(p: string, data: Uint8Array): Promise<void> {
    return writeFileAtomicWith(this, p, data);
  }
  createExclusive(p: string, data: Uint8Array): boolean {
    let fd: number;
    try {
      fd = fs.openSync(p, 'wx', 0o644);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw new StorageError(p, 'create', err);
    }
    try { fs.writeSync(fd, data); } finally { fs.closeSync(fd); }
    return true;
  }
}

export const defaultStorage: Storage = new NodeStorage();
