// Before anything is timed: every peer package of the selected groups must
// load (and be the version the report names). A peer that is missing or
// broken stops the run with its name and the reason; it never silently drops
// out of a report.

import { createRequire } from 'node:module';
import { loadNodeRsCrc32, loadSse4Crc32, loadXxHashWasm, loadKafkaJsCodec } from './peers.js';
import { hypercoreVersion } from './hypercore.js';

const require = createRequire(import.meta.url);

interface PeerCheck {
  /** npm package. */
  name: string;
  /** Groups that compare against it. */
  groups: string[];
  /** Loads it and checks the entry points the groups use. */
  check(): unknown;
}

function fn(mod: unknown, key: string): void {
  const f = (mod as Record<string, unknown>)[key];
  if (typeof f !== 'function') throw new Error(`${key} is not a function`);
}

export const PEERS: PeerCheck[] = [
  { name: '@node-rs/crc32', groups: ['crc'], check: () => fn(loadNodeRsCrc32(), 'crc32c') },
  { name: 'sse4_crc32', groups: ['crc'], check: () => fn(loadSse4Crc32(), 'calculate') },
  { name: 'xxhash-wasm', groups: ['xxhash'], check: async () => fn(await loadXxHashWasm(), 'h64Raw') },
  { name: 'kafkajs', groups: ['framing'], check: () => { const c = loadKafkaJsCodec(); fn(c, 'RecordBatch'); fn(c, 'RecordBatchDecoder'); } },
  {
    name: 'hypercore', groups: ['scaling'],
    check: () => {
      const v = hypercoreVersion();
      if (!v.startsWith('10.')) throw new Error(`version ${v}; the peer is hypercore 10.x`);
      require('hypercore');
    },
  },
  { name: 'lmdb', groups: ['kv', 'scaling'], check: () => fn(require('lmdb'), 'open') },
  { name: 'classic-level', groups: ['kv', 'scaling'], check: () => fn(require('classic-level'), 'ClassicLevel') },
  { name: 'opendal', groups: ['tier'], check: () => fn(require('opendal'), 'Operator') },
  { name: 's3rver', groups: ['tier'], check: () => require('s3rver') },
  { name: 'playwright-core', groups: ['replay'], check: () => fn(require('playwright-core').chromium, 'launch') },
];

/** Throws, naming every peer that failed, when a peer of the selected groups cannot be loaded. */
export async function checkPeers(groups: string[]): Promise<void> {
  const failures: string[] = [];
  for (const p of PEERS) {
    if (!p.groups.some((g) => groups.includes(g))) continue;
    try {
      await p.check();
    } catch (err) {
      failures.push(`${p.name} (groups ${p.groups.filter((g) => groups.includes(g)).join(', ')}): ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  if (failures.length > 0) {
    throw new Error(`bench: peer(s) failed to load, so their comparisons cannot run:\n  ${failures.join('\n  ')}\n` +
      'Install the dev dependencies (npm ci) or run only the other groups.');
  }
}
