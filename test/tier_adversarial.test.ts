// Tiered storage under adversarial conditions: each test here reproduces a
// bug found by review (docs/tiering.md is the contract) and keeps it fixed.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Store } from '../src/store.js';
import { parseManifest, Manifest } from '../src/tier/manifest.js';
import {
  tmp, cleanup, memoryTier, forgetMemoryTier, smallTopic, recentRecords, openTiered, appendAll, readPlain,
} from './helpers/tier_util.js';

after(cleanup);

async function remoteManifest(store: Store, topic = 'ev', id = 0): Promise<Manifest> {
  const t = store.tier!;
  const key = t.layout.manifestKey(topic, id);
  return parseManifest(await t.objects.read(key), key);
}

test('remote retention by size counts the segments still held locally: it drops no more than the log\'s own retention keeps', async () => {
  // Every closed segment is both local and archived (no local retention). The
  // total log is the local log; retention.bytes must keep the same segments in
  // the archive that the log's own retention keeps locally.
  const tier = memoryTier();
  const dir = tmp();
  const config = smallTopic({ retentionBytes: 40 * 1024 });
  let { store, p } = await openTiered(dir, tier, config);
  try {
    await appendAll(p, recentRecords(600, 71));
    await p.flush();
    const all = await readPlain(p);
    assert.ok(p.segments.length >= 8, `expected many segments, got ${p.segments.length}`);
    await store.tier!.archiveNow();
    store.enforceRetention();
    const kept = p.localLogStartOffset;
    assert.ok(kept > 0, 'the log\'s retention deleted old segments');
    const m = await remoteManifest(store);
    assert.equal(m.logStartOffset, kept, 'the archive starts where the log\'s retention starts');
    for (const seg of p.segments.slice(0, -1)) {
      assert.ok(m.segments.some((s) => s.baseOffset === seg.baseOffset), `segment ${seg.baseOffset}, kept by retention, is still archived`);
    }
    await store.close();
    // Reopened with local retention 0: the archived local copies are evicted; every retained record stays readable.
    ({ store, p } = await openTiered(dir, { ...tier, localRetentionBytes: 0 }, config));
    await store.tier!.archiveNow();
    assert.equal(p.logStartOffset, kept);
    assert.deepEqual(await readPlain(p, { offset: kept }), all.slice(kept));
  } finally {
    await store.close();
    forgetMemoryTier(tier);
  }
});
