// Partition.readBatches gives exactly the records read() gives, in arrays of
// at most one stored batch, never empty, under every read option.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { Store } from '../src/store.js';
import { StoredRecord } from '../src/record.js';
import { ReadFrom, ReadOptions } from '../src/partition.js';

test('readBatches flattened equals read() for random start points and limits', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sediment-readbatches-'));
  const s = await Store.open(dir, { retentionCheckMs: -1 });
  try {
    const p = (await s.createTopic('t', { config: { segmentBytes: 8 * 1024, indexIntervalBytes: 256, flushMs: -1 } })).partition(0);
    // Batches of varying sizes so arrays, segments and limits cut in different places.
    const batchOf: number[] = [];
    let ts = 10_000;
    for (let b = 0; b < 80; b++) {
      const n = 1 + ((b * 7) % 23);
      const r = p.appendSync(Array.from({ length: n }, (_, i) => ({
        key: i % 5 === 0 ? null : `k${b}-${i}`, value: 'v'.repeat((b * 13 + i) % 70), headers: i % 4 === 0 ? [['h', `x${i}`]] : undefined, timestamp: ts++,
      })));
      for (let o = r.baseOffset; o <= r.lastOffset; o++) batchOf[o] = b;
    }
    const end = p.logEndOffset;
    await fc.assert(fc.asyncProperty(
      fc.oneof(fc.record({ offset: fc.integer({ min: 0, max: end }) }), fc.record({ timestamp: fc.integer({ min: 9_000, max: ts + 10 }) })),
      fc.option(fc.integer({ min: 1, max: 400 }), { nil: undefined }),
      fc.option(fc.integer({ min: 1, max: 20_000 }), { nil: undefined }),
      async (from, maxRecords, maxBytes) => {
        const opts: ReadOptions = { maxRecords, maxBytes };
        const flat: StoredRecord[] = [];
        for await (const r of p.read(from as ReadFrom, opts)) flat.push(r);
        const arrays: StoredRecord[][] = [];
        for await (const a of p.readBatches(from as ReadFrom, opts)) arrays.push(a);
        assert.deepEqual(arrays.flat(), flat);
        for (const a of arrays) {
          assert.ok(a.length > 0, 'no empty arrays');
          assert.ok(a.every((r) => batchOf[r.offset] === batchOf[a[0]!.offset]), 'an array holds records of one stored batch');
        }
      }), { numRuns: 150 });
  } finally {
    await s.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
