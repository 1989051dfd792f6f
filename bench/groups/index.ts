// The benchmark group registry. To add a group, write bench/groups/<name>.ts
// exporting a BenchGroup (see bench/README.md) and add it to GROUPS; the
// runner (bench/run.ts) needs no change. Order here is run and report order.

import type { BenchGroup } from '../harness.js';
import { crc } from './crc.js';
import { xxhash } from './xxhash.js';
import { framing } from './framing.js';
import { indexGroup } from './index_search.js';
import { dedup } from './dedup.js';
import { dedupAppend } from './dedup_append.js';
import { tier } from './tier.js';
import { kv } from './kv.js';
import { replayGroup } from './replay.js';
import { logGroup } from './log.js';
import { scaling } from './scaling.js';

export const GROUPS: BenchGroup[] = [
  // Kernel groups (issue 2).
  crc,
  xxhash,
  framing,
  indexGroup,
  dedup,
  // The log (issue 3).
  logGroup,
  dedupAppend,
  tier,
  kv,
  replayGroup,
  // Scaling curves and charts (issue 8).
  scaling,
];
