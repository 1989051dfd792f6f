// A real crash: a child process appends and flushes in a loop and is killed
// with SIGKILL at different moments. On reopen every record covered by a
// resolved flush (the child printed it) is present and identical, nothing
// corrupt is readable, and the log reads cleanly to its end.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Store } from '../src/store.js';
import { tmpDir, cleanupTmp, testOpts, readUntilError, valueOf, keyOf, assertRecord, segmentBases, partitionDir } from './helpers/log_util.js';

after(cleanupTmp);

const child = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'log_writer_child.js');

/** Runs the writer until `killAfterMs` past its first flush, then SIGKILLs it. Returns the last flushed offset it printed. */
function runAndKill(dir: string, killAfterMs: number): Promise<{ opened: number; flushed: number; flushes: number }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [child, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let timer: NodeJS.Timeout | null = null;
    proc.stdout.on('data', (d) => {
      out += d;
      if (!timer && /\nF \d+\n/.test(`\n${out}`)) timer = setTimeout(() => proc.kill('SIGKILL'), killAfterMs);
    });
    proc.stderr.on('data', (d) => { err += d; });
    const guard = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error(`writer never flushed: ${out} ${err}`)); }, 30_000);
    proc.on('exit', (code, signal) => {
      clearTimeout(guard);
      if (signal !== 'SIGKILL') return reject(new Error(`writer exited with ${code}: ${err}`));
      const lines = out.split('\n');
      // Only complete lines count: a line cut by the kill was not a finished print.
      if (!out.endsWith('\n')) lines.pop();
      const opened = Number(lines.find((l) => l.startsWith('R '))!.slice(2));
      const flushes = lines.filter((l) => l.startsWith('F ')).map((l) => Number(l.slice(2)));
      resolve({ opened, flushed: Math.max(opened, ...flushes), flushes: flushes.length });
    });
  });
}

test('SIGKILL mid-append: every flushed record survives, identical; nothing corrupt; appends continue', async () => {
  const dir = tmpDir();
  let lastEnd = 0;
  for (const killAfterMs of [0, 15, 60, 150, 400]) {
    const run = await runAndKill(dir, killAfterMs);
    assert.ok(run.opened >= lastEnd, `the child opened at ${run.opened}, after ${lastEnd}`);
    const store = await Store.open(dir, testOpts());
    try {
      const p = store.partition('t', 0);
      assert.ok(p.logEndOffset >= run.flushed, `log ends at ${p.logEndOffset}, flushed up to ${run.flushed} (kill after ${killAfterMs} ms)`);
      const { records, error } = await readUntilError(p, { offset: 0 });
      assert.equal(error, null, `the log reads cleanly to its end: ${String(error)}`);
      assert.equal(records.length, p.logEndOffset);
      records.forEach((r, o) => assertRecord(r, o, valueOf(o, 20 + (o % 300)), keyOf(o)));
      assert.equal((await p.append([{ key: keyOf(p.logEndOffset), value: valueOf(p.logEndOffset, 20 + (p.logEndOffset % 300)) }])).baseOffset, records.length);
      lastEnd = p.logEndOffset;
    } finally {
      await store.close();
    }
  }
  assert.ok(segmentBases(partitionDir(dir)).length > 1, 'the runs rolled segments');
});
