// Offset lookups are index lookups plus a bounded scan: never a walk of the
// segment. (Regression: for the segment at base offset 0, the "no chain
// check" sentinel -1 equalled baseOffset - 1, every index entry was rejected
// and each lookup scanned from position 0.)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Store } from '../src/store.js';
import { LogSegment } from '../src/log_segment.js';

function countHeaderReads(seg: LogSegment): { reads: number } {
  const counter = { reads: 0 };
  const orig = seg.peekHeader.bind(seg);
  seg.peekHeader = (position: number, limit?: number) => { counter.reads++; return orig(position, limit); };
  return counter;
}

test('offset lookups read at most two batch headers after the index, in the first segment and in later ones', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sediment-lookup-'));
  try {
    const batches = 60;
    const perBatch = 50;
    {
      const s = await Store.open(dir, { retentionCheckMs: -1 });
      const p = (await s.createTopic('t', { config: { segmentBytes: 40 * 1024, indexIntervalBytes: 64, flushMs: -1 } })).partition(0);
      const value = new Uint8Array(100).fill(7);
      for (let b = 0; b < batches; b++) p.appendSync(Array.from({ length: perBatch }, (_, i) => ({ key: `k${b}-${i}`, value, timestamp: 1_000_000 + b })));
      await s.close();
    }
    const s = await Store.open(dir, { retentionCheckMs: -1 });
    try {
      const p = s.partition('t', 0);
      assert.ok(p.segments.length >= 3, `expected several segments, got ${p.segments.length}`);
      for (const seg of p.segments.slice(0, 2)) {
        seg.loadIndexes(); // the first load may check the index against the log
        assert.ok(seg.index.entries > 5, 'the segment has index entries');
        const counter = countHeaderReads(seg);
        for (let target = seg.baseOffset; target < seg.nextOffset; target += 7) {
          counter.reads = 0;
          const pos = seg.translateOffset(target);
          assert.ok(pos >= 0, `offset ${target} found`);
          assert.ok(counter.reads <= 2, `segment ${seg.baseOffset}: lookup of ${target} read ${counter.reads} headers`);
        }
      }
      // And the answers are right: every offset reads back as itself.
      for (let target = 0; target < p.logEndOffset; target += 13) {
        for await (const r of p.read({ offset: target }, { maxRecords: 1 })) assert.equal(r.offset, target);
      }
    } finally {
      await s.close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
