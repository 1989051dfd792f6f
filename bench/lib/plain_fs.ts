// The machine's ceiling for appends, shared by the log and scaling groups:
// the same encoded bytes appended to one file with fs.writeSync, no fsync,
// the file truncated to 0 once it passes wrapBytes (so it stays bounded
// like a log under retention).

import * as fs from 'node:fs';
import type { Contender } from '../harness.js';

export class PlainFsAppender {
  private fd: number;
  private readonly wrapBytes: number;

  constructor(file: string, wrapBytes: number) {
    this.fd = fs.openSync(file, 'w+');
    this.wrapBytes = wrapBytes;
  }

  /** A peer contender appending `bytes` once per operation. */
  contender(name: string, note: string, bytes: Uint8Array): Contender {
    const fd = this.fd;
    const wrap = this.wrapBytes;
    let pos = 0;
    return {
      name, role: 'peer', note,
      run(n) {
        for (let i = 0; i < n; i++) { fs.writeSync(fd, bytes, 0, bytes.length, pos); pos += bytes.length; }
        if (pos > wrap) { fs.ftruncateSync(fd, 0); pos = 0; }
        return pos;
      },
    };
  }

  /** Writes bytes at position 0 and reads them back (a check before timing that the file holds what was written). */
  roundTrip(bytes: Uint8Array): Buffer {
    fs.writeSync(this.fd, bytes, 0, bytes.length, 0);
    const back = Buffer.alloc(bytes.length);
    fs.readSync(this.fd, back, 0, bytes.length, 0);
    return back;
  }

  close(): void {
    if (this.fd < 0) return;
    fs.closeSync(this.fd);
    this.fd = -1;
  }
}
