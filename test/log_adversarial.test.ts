// Adversarial review of the partition log: each test here reproduces a bug
// found by that review (it failed before the fix named in its title) or
// covers a path no other test reached.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { refBatch, refRecords, RefRecord } from './fixtures/reference.js';
import { InvalidArgumentError } from '../src/errors.js';
import { tmpDir, cleanupTmp, openPartition, readAll } from './helpers/log_util.js';

after(cleanupTmp);

const rec = (d: number, ts: bigint): RefRecord => ({ timestampDelta: ts, offsetDelta: d, key: null, value: new Uint8Array([d]), headers: [] });

test('appendBatches refuses timestamps past 2^53 - 1 (they read back rounded) with InvalidArgumentError, writing nothing', async () => {
  const dir = tmpDir();
  const { store, p } = await openPartition(dir);
  try {
    // Largest safe timestamp: accepted and read back exactly.
    const safe = BigInt(Number.MAX_SAFE_INTEGER) - 1n;
    await p.appendBatches(refBatch({ lastOffsetDelta: 1, baseTimestamp: safe, maxTimestamp: safe + 1n, recordCount: 2 }, refRecords([rec(0, 0n), rec(1, 1n)])));
    assert.deepEqual((await readAll(p)).map((r) => r.timestamp), [Number.MAX_SAFE_INTEGER - 1, Number.MAX_SAFE_INTEGER]);
    const cases: [string, bigint, bigint[]][] = [
      ['max one past 2^53 - 1', BigInt(Number.MAX_SAFE_INTEGER), [0n, 1n]],
      ['2^53 + 1 (not a double)', 2n ** 53n + 1n, [0n, 1n]],
      ['2^60, two records one ms apart', 2n ** 60n, [0n, 1n]],
      ['2^62', 2n ** 62n, [0n, 5n]],
      ['i64 max', 2n ** 63n - 1n, [0n, 0n]],
    ];
    for (const [label, base, deltas] of cases) {
      const max = base + deltas.reduce((a, b) => (b > a ? b : a), 0n);
      const bytes = refBatch({ lastOffsetDelta: deltas.length - 1, baseTimestamp: base, maxTimestamp: max, recordCount: deltas.length },
        refRecords(deltas.map((d, i) => rec(i, d))));
      await assert.rejects(p.appendBatches(bytes), InvalidArgumentError, label);
      assert.equal(p.logEndOffset, 2, `${label}: nothing written`);
    }
    assert.equal((await readAll(p)).length, 2);
  } finally {
    await store.close();
  }
});
