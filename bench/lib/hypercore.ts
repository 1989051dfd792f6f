// Typed loader for hypercore 10.x (an append-only log: a Merkle tree over
// the blocks, signed on every append; CommonJS, no TypeScript declarations).
// Only the parts the scaling benchmarks use. The 11.x line needs
// hypercore-storage, which the registry here cannot resolve, so 10.x it is;
// loading anything else throws, so a wrong peer cannot slip into a report.

import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export interface Hypercore {
  ready(): Promise<void>;
  /** Appends one block or a batch of blocks (one Merkle tree update and one signature per call). */
  append(blocks: Uint8Array | Uint8Array[]): Promise<{ length: number; byteLength: number }>;
  /** Block i (from local storage here; hypercore waits for peers when it does not have it). */
  get(index: number, opts?: { wait?: boolean }): Promise<Buffer | null>;
  close(): Promise<void>;
  readonly length: number;
  readonly byteLength: number;
}

type HypercoreCtor = new (storage: string, opts?: Record<string, unknown>) => Hypercore;

let ctor: HypercoreCtor | null = null;

/** The hypercore version in node_modules. */
export function hypercoreVersion(): string {
  return (require('hypercore/package.json') as { version: string }).version;
}

/**
 * Opens a new hypercore in `dir` with its default storage (random-access-file:
 * four files, written with plain pwrite, no fsync), block cache off (hypercore's
 * default), so every get reads its data file like sediment reads segments.
 */
export async function openHypercore(dir: string): Promise<Hypercore> {
  if (!ctor) {
    const v = hypercoreVersion();
    if (!v.startsWith('10.')) throw new Error(`bench: the hypercore peer must be 10.x, found ${v}`);
    ctor = require('hypercore') as HypercoreCtor;
  }
  const core = new ctor(dir, { cache: false });
  await core.ready();
  return core;
}
