// Partition.read()'s record iterator (a plain object over readViews, not an
// async generator): the same records as readBatches in order, calls made
// before earlier ones settle are served in order, return() ends the read and
// releases it (the partition closes cleanly, later calls are done), errors
// surface on the first next() and end the iteration, throw() rejects and ends.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Store } from '../src/store.js';
import { ClosedError, InvalidArgumentError } from '../src/errors.js';
import { tmpDir, cleanupTmp, testOpts } from './helpers/log_util.js';

async function filled(): Promise<{ store: Store; p: ReturnType<Store['partition']>; n: number }> {
  const store = await Store.open(tmpDir('sediment-read-iter-'), testOpts({ retentionCheckMs: -1 }));
  const p = (await store.createTopic('t', { config: { segmentBytes: 4096, flushMs: -1 } })).partition(0);
  let n = 0;
  for (let b = 0; b < 40; b++) {
    const size = 1 + (b % 9);
    p.appendSync(Array.from({ length: size }, (_, i) => ({ key: `k${b}.${i}`, value: `v${n + i}`, timestamp: 1000 + n + i })));
    n += size;
  }
  return { store, p, n };
}

test('read(): records of readBatches in order; overlapping next() calls are served in order', async () => {
  const { store, p, n } = await filled();
  try {
    const batches: number[] = [];
    for await (const b of p.readBatches({ offset: 0 })) for (const r of b) batches.push(r.offset);
    assert.equal(batches.length, n);
    const it = p.read({ offset: 0 });
    // All calls at once, with the source awaited in between (new batches, segment changes).
    const results = await Promise.all(Array.from({ length: n + 3 }, () => it.next()));
    assert.deepEqual(results.slice(0, n).map((r) => (r.done ? -1 : r.value.offset)), batches);
    assert.ok(results.slice(n).every((r) => r.done === true && r.value === undefined));
    assert.deepEqual(results.slice(0, n).map((r) => (r.done ? null : Buffer.from(r.value.value!).toString())), batches.map((o) => `v${o}`));
    assert.equal((await it.next()).done, true, 'finished stays finished');
  } finally {
    await store.close();
    cleanupTmp();
  }
});

test('read(): return() ends the read mid-batch and releases it; throw() rejects and ends; errors come from the first next()', async () => {
  const { store, p } = await filled();
  try {
    const it = p.read({ offset: 3 }, { maxRecords: 50 });
    assert.equal(it[Symbol.asyncIterator](), it);
    assert.equal((await it.next()).value?.offset, 3);
    assert.equal((await it.next()).value?.offset, 4);
    assert.deepEqual(await it.return(undefined), { value: undefined, done: true });
    assert.deepEqual(await it.next(), { value: undefined, done: true });
    let seen = 0;
    for await (const r of p.read({ offset: 10 })) { if (++seen === 5) { assert.equal(r.offset, 14); break; } }
    const it2 = p.read({ offset: 0 });
    await it2.next();
    await assert.rejects(it2.throw(new Error('stop here')), /stop here/);
    assert.deepEqual(await it2.next(), { value: undefined, done: true });
    // Bad options and a closed partition fail on the first next(), as an async generator's body would.
    const bad = p.read({ offset: 0 }, { maxRecords: 0 });
    await assert.rejects(bad.next(), InvalidArgumentError);
    assert.deepEqual(await bad.next(), { value: undefined, done: true });
    const later = p.read({ offset: 0 });
    await store.close();
    await assert.rejects(later.next(), ClosedError);
  } finally {
    await store.close();
    cleanupTmp();
  }
});
