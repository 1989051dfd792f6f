// A Storage wrapper for crash and fault tests, in the spirit of LevelDB's
// fault_injection_test: it works on a real directory through an inner
// Storage (NodeStorage by default) and remembers what was made durable.
//
//   - File contents: per file, the size at the last datasync plus an undo log
//     of every byte overwritten or truncated away below that size since. A
//     crash restores each file to exactly its content at its last datasync.
//   - Directory entries: creates, removes and renames since the last
//     syncDir() of their directory are undone by a crash (removed files come
//     back with their content; files created since are deleted; renames are
//     moved back, restoring what they replaced).
//   - crash({ tornLastWrite: n }) then re-applies the first n bytes of the
//     most recent write (a torn write: part of it reached the disk).
//   - crash({ keepUnsynced: true }) models a process crash: the page cache
//     survives, only the open handles die.
//   - flipBit() corrupts stored bytes (media corruption, not tracked).
//   - failOn() makes chosen operations throw I/O errors (optionally after
//     writing part of the data, like a write that hits ENOSPC midway).
//
// After crash() every handle opened before it throws (the "process" is
// dead); the directory then holds exactly the durable state, and tracking
// restarts from it (what is on disk counts as synced).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { Storage, FileHandle, NodeStorage, writeFileAtomicWith } from '../../src/storage.js';
import { StorageError } from '../../src/errors.js';

export type FaultOp = 'open' | 'read' | 'write' | 'truncate' | 'datasync' | 'syncDir' | 'rename' | 'remove'
  | 'removeDir' | 'mkdirp' | 'list' | 'readFile' | 'createExclusive' | 'size';

export interface FaultRule {
  op: FaultOp;
  /** Which paths: a substring of the path, a RegExp, or a predicate. Any path when absent. */
  path?: string | RegExp | ((p: string) => boolean);
  /** Matching calls to let through before failing (default 0). */
  after?: number;
  /** Number of failures before the rule is spent (default 1; Infinity for always). */
  times?: number;
  /** errno code of the simulated error (default 'EIO'). */
  code?: string;
  /** For 'write': bytes actually written before the error (default 0). */
  partialBytes?: number;
}

interface FileState {
  /** Size at the last datasync (what a crash leaves). */
  syncedSize: number;
  /** Bytes below syncedSize changed since the last datasync, oldest first. */
  undo: { pos: number; bytes: Uint8Array }[];
}

type DirOp =
  | { kind: 'create'; dir: string; target: string }
  | { kind: 'remove'; dir: string; target: string; content: Uint8Array; state: FileState | undefined }
  | { kind: 'rename'; dir: string; from: string; to: string; replaced: Uint8Array | null; replacedState: FileState | undefined };

interface LastWrite { file: string; pos: number; bytes: Uint8Array; seq: number }

export interface CrashOptions {
  /** Keep the first n bytes of the most recent unsynced write (a torn write). */
  tornLastWrite?: number;
  /** Process crash: everything written survives (page cache intact); only handles die. */
  keepUnsynced?: boolean;
}

export interface FaultyStats { writes: number; datasyncs: number; syncDirs: number; crashes: number; injected: number }

function ioError(code: string, op: string, p: string): Error {
  const e = new Error(`${code}: simulated ${op} failure, ${p}`) as NodeJS.ErrnoException;
  e.code = code;
  return e;
}

class FaultyHandle implements FileHandle {
  readonly path: string;
  private readonly inner: FileHandle;
  private readonly fs: FaultyStorage;
  private readonly epoch: number;
  private readonly writable: boolean;

  constructor(fsx: FaultyStorage, inner: FileHandle, p: string, epoch: number, writable: boolean) {
    this.fs = fsx;
    this.inner = inner;
    this.path = p;
    this.epoch = epoch;
    this.writable = writable;
  }

  private alive(op: string): void {
    if (this.epoch !== this.fs.epoch) throw new StorageError(this.path, op, new Error('handle from before a simulated crash'));
  }

  size(): number {
    this.alive('stat');
    this.fs.maybeFail('size', this.path);
    return this.inner.size();
  }

  read(buf: Uint8Array, offset: number, length: number, position: number): number {
    this.alive('read');
    this.fs.maybeFail('read', this.path);
    return this.inner.read(buf, offset, length, position);
  }

  write(buf: Uint8Array, offset: number, length: number, position: number): void {
    this.alive('write');
    if (!this.writable) throw new StorageError(this.path, 'write', new Error('EBADF: handle opened for reading'));
    const rule = this.fs.matchRule('write', this.path);
    const n = rule ? Math.min(length, rule.partialBytes ?? 0) : length;
    if (n > 0) {
      this.fs.beforeOverwrite(this.path, this.inner, position, n);
      this.inner.write(buf, offset, n, position);
      this.fs.recordWrite(this.path, buf.slice(offset, offset + n), position);
    }
    if (rule) this.fs.throwRule(rule, 'write', this.path);
  }

  truncate(length: number): void {
    this.alive('truncate');
    this.fs.maybeFail('truncate', this.path);
    this.fs.beforeTruncate(this.path, this.inner, length);
    this.inner.truncate(length);
  }

  async datasync(): Promise<void> {
    this.alive('fdatasync');
    this.fs.maybeFail('datasync', this.path);
    const size = this.inner.size();
    await this.inner.datasync();
    // A crash during the await kills the handle: that sync never completed.
    if (this.epoch !== this.fs.epoch) throw new StorageError(this.path, 'fdatasync', new Error('simulated crash during fdatasync'));
    this.fs.markSynced(this.path, size);
  }

  close(): void {
    // Closing after a crash is harmless (crash() already released the descriptor).
    this.fs.forget(this.inner);
    this.inner.close();
  }
}

export class FaultyStorage implements Storage {
  readonly inner: Storage;
  /** Incremented by crash(); handles from an older epoch are dead. */
  epoch = 0;
  readonly stats: FaultyStats = { writes: 0, datasyncs: 0, syncDirs: 0, crashes: 0, injected: 0 };
  private readonly files = new Map<string, FileState>();
  private dirOps: DirOp[] = [];
  private lastWrite: LastWrite | null = null;
  private seq = 0;
  private rules: (FaultRule & { seen: number; fired: number })[] = [];
  private readonly handles = new Set<FileHandle>();

  constructor(inner: Storage = new NodeStorage()) {
    this.inner = inner;
  }

  // --- fault rules -------------------------------------------------------------

  /** Adds a failure rule; returns a function that removes it. */
  failOn(rule: FaultRule): () => void {
    const r = { ...rule, seen: 0, fired: 0 };
    this.rules.push(r);
    return () => { this.rules = this.rules.filter((x) => x !== r); };
  }

  clearFaults(): void { this.rules = []; }

  /** @internal */
  matchRule(op: FaultOp, p: string): FaultRule | null {
    for (const r of this.rules) {
      if (r.op !== op) continue;
      if (r.path !== undefined) {
        const ok = typeof r.path === 'string' ? p.includes(r.path) : r.path instanceof RegExp ? r.path.test(p) : r.path(p);
        if (!ok) continue;
      }
      r.seen++;
      if (r.seen <= (r.after ?? 0)) continue;
      if (r.fired >= (r.times ?? 1)) continue;
      r.fired++;
      return r;
    }
    return null;
  }

  /** @internal */
  throwRule(rule: FaultRule, op: string, p: string): never {
    this.stats.injected++;
    throw new StorageError(p, op, ioError(rule.code ?? 'EIO', op, p));
  }

  /** @internal */
  maybeFail(op: FaultOp, p: string): void {
    const r = this.matchRule(op, p);
    if (r) this.throwRule(r, op, p);
  }

  // --- durability tracking ---------------------------------------------------------

  private stateOf(p: string, currentSize: number): FileState {
    let s = this.files.get(p);
    if (!s) {
      s = { syncedSize: currentSize, undo: [] };
      this.files.set(p, s);
    }
    return s;
  }

  /** @internal Saves the synced bytes a write at [pos, pos+n) is about to overwrite. */
  beforeOverwrite(p: string, h: FileHandle, pos: number, n: number): void {
    const s = this.stateOf(p, h.size());
    const end = Math.min(pos + n, s.syncedSize, h.size());
    if (pos < end) {
      const old = new Uint8Array(end - pos);
      h.read(old, 0, old.length, pos);
      s.undo.push({ pos, bytes: old });
    }
  }

  /** @internal Saves the synced bytes a truncation to `length` drops. */
  beforeTruncate(p: string, h: FileHandle, length: number): void {
    const cur = h.size();
    const s = this.stateOf(p, cur);
    const end = Math.min(s.syncedSize, cur);
    if (length < end) {
      const old = new Uint8Array(end - length);
      h.read(old, 0, old.length, length);
      s.undo.push({ pos: length, bytes: old });
    }
  }

  /** @internal */
  recordWrite(p: string, bytes: Uint8Array, pos: number): void {
    this.stats.writes++;
    this.lastWrite = { file: p, pos, bytes, seq: ++this.seq };
  }

  /** @internal */
  markSynced(p: string, size: number): void {
    this.stats.datasyncs++;
    const s = this.files.get(p);
    if (s) { s.syncedSize = size; s.undo = []; } else this.files.set(p, { syncedSize: size, undo: [] });
    if (this.lastWrite && this.lastWrite.file === p) this.lastWrite = null;
  }

  /** @internal */
  forget(h: FileHandle): void { this.handles.delete(h); }

  /** Open handles (not yet closed) made through this storage. */
  get openHandles(): number { return this.handles.size; }

  /** Files and directories whose creation, removal or rename is not yet durable. */
  pendingDirOps(): readonly DirOp[] { return this.dirOps; }

  /** Bytes of `file` that a crash now would keep (its size at the last datasync). */
  syncedSize(file: string): number | undefined { return this.files.get(path.resolve(file))?.syncedSize; }

  // --- Storage -------------------------------------------------------------------

  open(file: string, mode: 'read' | 'write'): FileHandle {
    const p = path.resolve(file);
    this.maybeFail('open', p);
    const existed = this.inner.exists(p);
    const inner = this.inner.open(p, mode);
    if (mode === 'write' && !existed) {
      this.dirOps.push({ kind: 'create', dir: path.dirname(p), target: p });
      this.files.set(p, { syncedSize: 0, undo: [] });
    }
    const h = new FaultyHandle(this, inner, p, this.epoch, mode === 'write');
    this.handles.add(inner);
    return h;
  }

  exists(p: string): boolean { return this.inner.exists(p); }

  list(dir: string): string[] {
    this.maybeFail('list', path.resolve(dir));
    return this.inner.list(dir);
  }

  isDirectory(p: string): boolean { return this.inner.isDirectory(p); }

  mkdirp(dir: string): void {
    const p = path.resolve(dir);
    this.maybeFail('mkdirp', p);
    // Every level created is a new entry in its parent.
    const missing: string[] = [];
    for (let d = p; !this.inner.exists(d); d = path.dirname(d)) {
      missing.unshift(d);
      if (path.dirname(d) === d) break;
    }
    this.inner.mkdirp(p);
    for (const d of missing) this.dirOps.push({ kind: 'create', dir: path.dirname(d), target: d });
  }

  remove(file: string): void {
    const p = path.resolve(file);
    this.maybeFail('remove', p);
    if (!this.inner.exists(p)) return;
    if (this.inner.isDirectory(p)) { this.removeDir(p); return; }
    const content = this.inner.readFile(p) ?? new Uint8Array(0);
    this.inner.remove(p);
    this.dirOps.push({ kind: 'remove', dir: path.dirname(p), target: p, content, state: this.files.get(p) });
    this.files.delete(p);
  }

  removeDir(dir: string): void {
    const p = path.resolve(dir);
    this.maybeFail('removeDir', p);
    // Not undone by a crash: removing a whole tree is only used to delete topics.
    this.inner.removeDir(p);
    for (const k of [...this.files.keys()]) if (k === p || k.startsWith(p + path.sep)) this.files.delete(k);
  }

  rename(from: string, to: string): void {
    const f = path.resolve(from);
    const t = path.resolve(to);
    this.maybeFail('rename', f);
    const replaced = this.inner.exists(t) ? this.inner.readFile(t) : null;
    const replacedState = this.files.get(t);
    this.inner.rename(f, t);
    const st = this.files.get(f);
    this.files.delete(f);
    if (st) this.files.set(t, st); else this.files.delete(t);
    this.dirOps.push({ kind: 'rename', dir: path.dirname(t), from: f, to: t, replaced, replacedState });
  }

  async syncDir(dir: string): Promise<void> {
    const p = path.resolve(dir);
    this.maybeFail('syncDir', p);
    const epoch = this.epoch;
    await this.inner.syncDir(p);
    if (epoch !== this.epoch) throw new StorageError(p, 'fsync dir', new Error('simulated crash during directory sync'));
    this.stats.syncDirs++;
    this.dirOps = this.dirOps.filter((op) => op.dir !== p);
  }

  readFile(p: string): Uint8Array | null {
    this.maybeFail('readFile', path.resolve(p));
    return this.inner.readFile(p);
  }

  writeFileAtomic(p: string, data: Uint8Array): Promise<void> {
    // Through the primitives, so that every step is tracked and can fail.
    return writeFileAtomicWith(this, p, data);
  }

  createExclusive(file: string, data: Uint8Array): boolean {
    const p = path.resolve(file);
    this.maybeFail('createExclusive', p);
    const created = this.inner.createExclusive(p, data);
    if (created) {
      this.dirOps.push({ kind: 'create', dir: path.dirname(p), target: p });
      this.files.set(p, { syncedSize: 0, undo: [] });
    }
    return created;
  }

  // --- crash and corruption -------------------------------------------------------

  /**
   * Simulates a crash: every existing handle dies and the directory tree is
   * reset to what was durable (see the file comment). Tracking restarts.
   */
  crash(opts: CrashOptions = {}): void {
    this.stats.crashes++;
    this.epoch++;
    // The dead process's descriptors go away with it.
    for (const h of this.handles) h.close();
    this.handles.clear();
    const torn = this.lastWrite;
    if (!opts.keepUnsynced) {
      // Directory entries first, newest first, so file identities are restored...
      for (let i = this.dirOps.length - 1; i >= 0; i--) this.revertDirOp(this.dirOps[i]!);
      // ...then each file's content to its last datasync.
      for (const [p, s] of this.files) {
        if (!fs.existsSync(p) || fs.statSync(p).isDirectory()) continue;
        const fd = fs.openSync(p, 'r+');
        try {
          for (let i = s.undo.length - 1; i >= 0; i--) {
            const u = s.undo[i]!;
            fs.writeSync(fd, u.bytes, 0, u.bytes.length, u.pos);
          }
          fs.ftruncateSync(fd, s.syncedSize);
          if (torn && torn.file === p && opts.tornLastWrite !== undefined && opts.tornLastWrite > 0) {
            const n = Math.min(opts.tornLastWrite, torn.bytes.length);
            fs.writeSync(fd, torn.bytes, 0, n, torn.pos);
          }
        } finally {
          fs.closeSync(fd);
        }
      }
    }
    this.files.clear();
    this.dirOps = [];
    this.lastWrite = null;
  }

  private revertDirOp(op: DirOp): void {
    switch (op.kind) {
      case 'create':
        fs.rmSync(op.target, { recursive: true, force: true });
        for (const k of [...this.files.keys()]) if (k === op.target || k.startsWith(op.target + path.sep)) this.files.delete(k);
        break;
      case 'remove':
        if (!fs.existsSync(op.dir)) break;
        fs.writeFileSync(op.target, op.content);
        if (op.state) this.files.set(op.target, op.state);
        else this.files.delete(op.target);
        break;
      case 'rename': {
        if (fs.existsSync(op.to)) {
          fs.renameSync(op.to, op.from);
          const st = this.files.get(op.to);
          this.files.delete(op.to);
          if (st) this.files.set(op.from, st);
        }
        if (op.replaced) {
          fs.writeFileSync(op.to, op.replaced);
          if (op.replacedState) this.files.set(op.to, op.replacedState);
        }
        break;
      }
    }
  }

  /** Flips one bit of a stored file (media corruption; not a tracked write). */
  static flipBit(file: string, byteOffset: number, bit = 0): void {
    const fd = fs.openSync(file, 'r+');
    try {
      const b = Buffer.alloc(1);
      if (fs.readSync(fd, b, 0, 1, byteOffset) !== 1) throw new RangeError(`${file} has no byte ${byteOffset}`);
      b[0] = b[0]! ^ (1 << bit);
      fs.writeSync(fd, b, 0, 1, byteOffset);
    } finally {
      fs.closeSync(fd);
    }
  }
}
