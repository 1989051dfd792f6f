// Bounds of the append path on this design, for the log group's append
// cases. Not product code: no offsets, indexes, rolls or failure handling,
// only the work every appender built on sediment's wasm kernels must do.
//
// - framedSerial: the records framed in wasm (normalizeRecord +
//   RecordBatchEncoder: layout, copies, CRC-32C), then fs.writeSync of the
//   framed bytes from wasm memory. No serial appender of record objects can
//   be faster: Partition.appendSync does this plus its bookkeeping.
// - framedWriteBehind: the same framing, but batches are gathered into one of
//   two staging regions of wasm memory and each full region (1 MiB) is
//   written with an async fs.write on the libuv threadpool while the next
//   region is framed: the best a write-behind log (framing overlapped with
//   the write, as Redpanda's segment appender does) could reach here. Writes
//   stay in flight from one timed sample to the next (an appender that
//   writes behind never waits for them but to reuse a region).
// - checkedSerial / checkedWriteBehind: the same two for pre-framed batches:
//   copied into wasm memory, CRC-32C checked, written (no record walk).
//
// Each contender appends to its own file, truncated to 0 past wrapBytes like
// the plain-fs peer (bench/lib/plain_fs.ts).

import * as fs from 'node:fs';
import type { Contender } from '../harness.js';
import { Kernels, WasmBuffer, RecordBatchEncoder, RecordInput, normalizeRecord } from '../../src/index.js';

/** Bytes gathered before a write-behind write. */
const STAGE_BYTES = 1 << 20;
/** Where the CRC-32C sits in a RecordBatch v2 header, and where the bytes it covers start. */
const CRC_AT = 17;
const CRC_FROM = 21;

function writeAsync(fd: number, buf: Uint8Array, off: number, len: number, pos: number): Promise<void> {
  return new Promise((resolve, reject) => fs.write(fd, buf, off, len, pos, (err) => (err ? reject(err) : resolve())));
}

/** One file appended to by one contender. */
class BoundFile {
  fd: number;
  pos = 0;
  constructor(file: string, readonly wrapBytes: number) { this.fd = fs.openSync(file, 'w+'); }
  wrap(): void {
    if (this.pos > this.wrapBytes) { fs.ftruncateSync(this.fd, 0); this.pos = 0; }
  }
  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}

/** Two staging regions in wasm memory, each written whole once full, while the other fills. */
class WriteBehind {
  private readonly stage: WasmBuffer[];
  private readonly busy: (Promise<void> | null)[] = [null, null];
  private cur = 0;
  private fill = 0;

  constructor(private readonly k: Kernels, private readonly f: BoundFile, stage: [WasmBuffer, WasmBuffer]) {
    this.stage = stage;
  }

  /** Where the next batch goes (after any write still reading this region). */
  async next(): Promise<{ buf: WasmBuffer; at: number }> {
    const b = this.busy[this.cur];
    if (b) { await b; this.busy[this.cur] = null; }
    return { buf: this.stage[this.cur]!, at: this.fill };
  }

  /** A batch of size bytes was put at the position next() gave. */
  added(size: number): void {
    this.fill += size;
    if (this.fill >= STAGE_BYTES) this.flush();
  }

  private flush(): void {
    if (this.fill === 0) return;
    const s = this.stage[this.cur]!;
    // Everything the framing allocates in wasm exists before the first write
    // (stage regions sized up front, the encoder warmed up): memory does not
    // grow while a write reads a region.
    this.busy[this.cur] = writeAsync(this.f.fd, this.k.u8, s.ptr, this.fill, this.f.pos);
    this.f.pos += this.fill;
    this.fill = 0;
    this.cur ^= 1;
  }

  /** Writes what is staged and waits for every write. */
  async drain(): Promise<void> {
    this.flush();
    await Promise.all(this.busy.filter((b) => b !== null));
    this.busy[0] = this.busy[1] = null;
  }
}

export class AppendBounds {
  private readonly files: BoundFile[] = [];
  private readonly buffers: WasmBuffer[] = [];
  private readonly behind: WriteBehind[] = [];
  private readonly encoder: RecordBatchEncoder;

  constructor(private readonly k: Kernels, private readonly dir: string, private readonly wrapBytes: number) {
    this.encoder = new RecordBatchEncoder(k);
  }

  private file(tag: string): BoundFile {
    const f = new BoundFile(`${this.dir}/bound-${tag}.log`, this.wrapBytes);
    this.files.push(f);
    return f;
  }

  private stages(maxBatch: number): [WasmBuffer, WasmBuffer] {
    return [this.buffer(STAGE_BYTES + maxBatch), this.buffer(STAGE_BYTES + maxBatch)];
  }

  private buffer(bytes: number): WasmBuffer {
    const b = new WasmBuffer(this.k, bytes);
    this.buffers.push(b);
    return b;
  }

  private frame(records: readonly RecordInput[], out: WasmBuffer, at: number): number {
    const now = Date.now();
    const norm = records.map((r, i) => normalizeRecord(r, i, now));
    return this.encoder.encode(norm, out, at);
  }

  /** Frames the records in wasm, then fs.writeSync from wasm memory. */
  framedSerial(name: string, records: readonly RecordInput[], maxBatch: number): Contender {
    const f = this.file('framed-serial');
    const out = this.buffer(maxBatch);
    const k = this.k;
    return {
      name, role: 'peer',
      note: 'not product code, a bound: the records framed with sediment\'s encoder in wasm (normalize, layout, copies, CRC-32C), then fs.writeSync from wasm memory; no offsets, indexes or rolls',
      run: (n) => {
        for (let i = 0; i < n; i++) {
          const size = this.frame(records, out, 0);
          fs.writeSync(f.fd, k.u8, out.ptr, size, f.pos);
          f.pos += size;
        }
        f.wrap();
        return f.pos;
      },
    };
  }

  /** The same framing, written behind: 1 MiB async writes overlapping the framing of what follows. */
  framedWriteBehind(name: string, records: readonly RecordInput[], maxBatch: number): Contender {
    const f = this.file('framed-behind');
    const stage = this.stages(maxBatch);
    this.frame(records, stage[0], 0); // the encoder's tables reach their size before any write is in flight
    const wb = new WriteBehind(this.k, f, stage);
    this.behind.push(wb);
    return {
      name, role: 'peer', async: true,
      note: 'not product code, a bound: the same framing into one of two 1 MiB staging regions of wasm memory; each full region written by an async fs.write on the threadpool while the other is framed',
      run: async (n) => {
        for (let i = 0; i < n; i++) {
          const { buf, at } = await wb.next();
          wb.added(this.frame(records, buf, at));
        }
        // Writes stay in flight from one sample to the next, as in a log that writes behind.
        if (f.pos > f.wrapBytes) { await wb.drain(); f.wrap(); }
        return f.pos;
      },
    };
  }

  private check(bytes: Uint8Array, ptr: number): void {
    const k = this.k;
    k.u8.set(bytes, ptr);
    if ((k.raw.crc32c(ptr + CRC_FROM, bytes.length - CRC_FROM, 0) >>> 0) !== k.dv.getUint32(ptr + CRC_AT)) throw new Error('CRC-32C mismatch');
  }

  /** Pre-framed bytes copied into wasm, CRC-32C checked, fs.writeSync from wasm memory. */
  checkedSerial(name: string, bytes: Uint8Array): Contender {
    const f = this.file('checked-serial');
    const out = this.buffer(bytes.length);
    const k = this.k;
    return {
      name, role: 'peer',
      note: 'not product code, a bound: the pre-framed batch copied into wasm memory and its CRC-32C checked (no record walk), then fs.writeSync from wasm memory',
      run: (n) => {
        for (let i = 0; i < n; i++) {
          this.check(bytes, out.ptr);
          fs.writeSync(f.fd, k.u8, out.ptr, bytes.length, f.pos);
          f.pos += bytes.length;
        }
        f.wrap();
        return f.pos;
      },
    };
  }

  /** The same check, written behind (1 MiB async writes). */
  checkedWriteBehind(name: string, bytes: Uint8Array): Contender {
    const f = this.file('checked-behind');
    const wb = new WriteBehind(this.k, f, this.stages(bytes.length));
    this.behind.push(wb);
    return {
      name, role: 'peer', async: true,
      note: 'not product code, a bound: the same copy and check into one of two 1 MiB staging regions of wasm memory, each full region written by an async fs.write while the other fills',
      run: async (n) => {
        for (let i = 0; i < n; i++) {
          const { buf, at } = await wb.next();
          this.check(bytes, buf.ptr + at);
          wb.added(bytes.length);
        }
        if (f.pos > f.wrapBytes) { await wb.drain(); f.wrap(); }
        return f.pos;
      },
    };
  }

  /** Waits for the writes still in flight, then closes the files and frees the buffers. */
  async close(): Promise<void> {
    for (const wb of this.behind) await wb.drain();
    for (const f of this.files) f.close();
    for (const b of this.buffers) b.free();
    this.encoder.free();
  }
}
