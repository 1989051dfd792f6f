// Model-based property test of the KV store: random sequences of
// operations (puts, deletes, batches, updates, disable, enable, forget),
// flushes, compactions, checkpoints, clean reopens and simulated crashes
// (lost unsynced data, a torn last write, a process crash that keeps the
// page cache) are run against the store and against a plain Map model.
//
// After every step the store must equal the model. After a crash the store
// must equal the model as of some write between the last flush and the
// crash: every flushed mutation present, each later mutation (one batch
// each) either wholly present or wholly absent, in order.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { Store } from '../src/store.js';
import { KvStore } from '../src/kv/kv_store.js';
import { KeyDisabledError } from '../src/kv/kv_errors.js';
import { CHECKPOINT_FILE } from '../src/kv/kv_checkpoint.js';
import { FaultyStorage } from './helpers/faulty_storage.js';
import { tmpDir, cleanupTmp, noSync } from './helpers/log_util.js';

after(cleanupTmp);

const KEYS = ['a', 'b', 'c', 'd', 'e', 'f', '\u00ff\u0001', 'k/1', 'k/2', 'k/3'];
const te = new TextEncoder();
const td = new TextDecoder();

interface Entry { value?: string; disabled: boolean; forgotten: boolean }
type Model = Map<string, Entry>;

type Op =
  | { t: 'put'; k: number; v: string }
  | { t: 'del'; k: number }
  | { t: 'batch'; ops: { k: number; v: string | null }[] }
  | { t: 'update'; k: number; mode: 'append' | 'delete' | 'keep' }
  | { t: 'disable'; k: number }
  | { t: 'enable'; k: number }
  | { t: 'forget'; k: number }
  | { t: 'flush' }
  | { t: 'compact' }
  | { t: 'cluster' }
  | { t: 'checkpoint' }
  | { t: 'reopen'; dropCheckpoint: boolean }
  | { t: 'crash'; mode: 'lose' | 'torn' | 'keep'; torn: number; compactFirst: boolean };

const keyIdx = fc.integer({ min: 0, max: KEYS.length - 1 });
// Values from empty to larger than a segment, so segments roll often.
const value = fc.oneof(
  { weight: 4, arbitrary: fc.string({ maxLength: 12 }) },
  { weight: 1, arbitrary: fc.integer({ min: 200, max: 1500 }).map((n) => 'x'.repeat(n)) },
);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ t: fc.constant('put' as const), k: keyIdx, v: value }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('del' as const), k: keyIdx }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('batch' as const), ops: fc.array(fc.record({ k: keyIdx, v: fc.option(value, { nil: null }) }), { minLength: 1, maxLength: 6 }) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('update' as const), k: keyIdx, mode: fc.constantFrom('append' as const, 'delete' as const, 'keep' as const) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('disable' as const), k: keyIdx }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('enable' as const), k: keyIdx }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('forget' as const), k: keyIdx }) },
  { weight: 2, arbitrary: fc.constant({ t: 'flush' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'compact' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'cluster' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'checkpoint' as const }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('reopen' as const), dropCheckpoint: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('crash' as const), mode: fc.constantFrom('lose' as const, 'torn' as const, 'keep' as const), torn: fc.integer({ min: 1, max: 400 }), compactFirst: fc.boolean() }) },
);

function clone(m: Model): Model {
  return new Map([...m].map(([k, e]) => [k, { ...e }]));
}

function entry(m: Model, k: string): Entry {
  let e = m.get(k);
  if (!e) { e = { disabled: false, forgotten: false }; m.set(k, e); }
  return e;
}

const visible = (e: Entry | undefined) => e !== undefined && e.value !== undefined && !e.forgotten;

/** Applies op to the model. Returns 'disabled' when the store must refuse it, else whether a record is written. */
function applyModel(m: Model, op: Op): boolean | 'disabled' {
  const k = 'k' in op ? KEYS[op.k]! : '';
  switch (op.t) {
    case 'put': {
      const e = entry(m, k);
      if (e.disabled) return 'disabled';
      e.value = op.v; e.forgotten = false;
      return true;
    }
    case 'del': {
      const e = m.get(k);
      if (!e) return false;
      if (e.disabled) return 'disabled';
      if (e.value === undefined) return false;
      e.value = undefined; e.forgotten = false;
      return true;
    }
    case 'batch': {
      if (op.ops.some((o) => m.get(KEYS[o.k]!)?.disabled)) return 'disabled';
      for (const o of op.ops) {
        const e = entry(m, KEYS[o.k]!);
        e.value = o.v ?? undefined; e.forgotten = false;
      }
      return true;
    }
    case 'update': {
      const e = entry(m, k);
      if (e.disabled) return 'disabled';
      const old = visible(e) ? e.value : undefined;
      if (op.mode === 'keep') return false;
      if (op.mode === 'delete') {
        if (e.value === undefined) return false;
        e.value = undefined; e.forgotten = false;
        return true;
      }
      e.value = (old ?? '') + '+'; e.forgotten = false;
      return true;
    }
    case 'disable': {
      const e = entry(m, k);
      if (e.disabled) return false;
      e.disabled = true;
      return true;
    }
    case 'enable': {
      const e = m.get(k);
      if (!e || !e.disabled) return false;
      e.disabled = false;
      return true;
    }
    case 'forget': {
      const e = entry(m, k);
      if (e.disabled) return 'disabled';
      if (!visible(e)) return false;
      e.forgotten = true;
      return true;
    }
    default:
      return false;
  }
}

function applyStore(kv: KvStore, op: Op): void {
  const k = 'k' in op ? KEYS[op.k]! : '';
  switch (op.t) {
    case 'put': kv.putSync(k, op.v); break;
    case 'del': kv.deleteSync(k); break;
    case 'batch': kv.batchSync(op.ops.map((o) => (o.v === null ? { type: 'del' as const, key: KEYS[o.k]! } : { type: 'put' as const, key: KEYS[o.k]!, value: o.v }))); break;
    case 'update':
      kv.updateSync(k, (old) => (op.mode === 'keep' ? undefined : op.mode === 'delete' ? null : (old ? td.decode(old) : '') + '+'));
      break;
    case 'disable': kv.disableSync(k); break;
    case 'enable': kv.enableSync(k); break;
    case 'forget': kv.forgetSync(k); break;
    default: throw new Error(`not a write: ${op.t}`);
  }
}

/** What the store holds, in the model's terms. */
function readStore(kv: KvStore): Model {
  const m: Model = new Map();
  for (const k of KEYS) {
    const v = kv.getSync(k);
    const hidden = kv.readForgotten(k);
    const disabled = kv.isDisabled(k);
    if (v === undefined && hidden === undefined && !disabled) continue;
    m.set(k, { value: v !== undefined ? td.decode(v) : hidden !== undefined ? td.decode(hidden) : undefined, disabled, forgotten: hidden !== undefined });
  }
  return m;
}

function normal(m: Model): [string, Entry][] {
  return [...m].filter(([, e]) => e.value !== undefined || e.disabled)
    .map(([k, e]): [string, Entry] => [k, { value: e.value, disabled: e.disabled, forgotten: e.value !== undefined && e.forgotten }])
    .sort((x, y) => (x[0] < y[0] ? -1 : 1));
}

function checkEqual(kv: KvStore, m: Model, where: string): void {
  assert.deepEqual(normal(readStore(kv)), normal(m), where);
  const vis = [...m].filter(([, e]) => visible(e)).map(([k]) => k).sort();
  assert.equal(kv.count(), vis.length, `count ${where}`);
  const keys = [...kv.keysSync()].map((k) => String.fromCharCode(...k));
  const want = vis.map((k) => String.fromCharCode(...te.encode(k))).sort();
  assert.deepEqual(keys, want, `keys ${where}`);
  const range = [...kv.rangeSync()].map((e) => td.decode(e.value));
  assert.deepEqual(range, want.map((bk) => m.get(td.decode(Uint8Array.from(bk, (c) => c.charCodeAt(0))))!.value), `range ${where}`);
}

const KV_OPTS = { segmentBytes: 1024, flushMs: -1, minDirtyRatio: -1, checkpointBytes: -1, clusterRatio: -1, cacheBytes: 2048 } as const;

async function openKv(dir: string, fsx: FaultyStorage): Promise<{ store: Store; kv: KvStore }> {
  const store = await Store.open(dir, { retentionCheckMs: -1, storage: fsx });
  return { store, kv: await store.kv('m', KV_OPTS) };
}

async function runScenario(ops: Op[]): Promise<void> {
  const dir = tmpDir('kv-model-');
  const fsx = new FaultyStorage(noSync);
  let { store, kv } = await openKv(dir, fsx);
  let model: Model = new Map();
  // Model states since the last flush: durable first, then one per written batch.
  let since: Model[] = [clone(model)];
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    const where = `step ${i} ${JSON.stringify(op).slice(0, 120)}`;
    switch (op.t) {
      case 'flush':
        await kv.flush();
        since = [clone(model)];
        break;
      case 'compact':
        await kv.compact();
        checkEqual(kv, model, where);
        break;
      case 'cluster':
        await kv.cluster();
        checkEqual(kv, model, where);
        break;
      case 'checkpoint':
        await kv.checkpoint();
        since = [clone(model)];
        break;
      case 'reopen':
        await store.close();
        // Without the checkpoint the whole (compacted) log is replayed: it alone must give the same state.
        if (op.dropCheckpoint) fs.rmSync(path.join(dir, '__kv.m-0', CHECKPOINT_FILE), { force: true });
        ({ store, kv } = await openKv(dir, fsx));
        assert.equal(kv.stats().load.fromCheckpoint, !op.dropCheckpoint, where);
        since = [clone(model)];
        checkEqual(kv, model, where);
        break;
      case 'crash': {
        if (op.compactFirst) {
          // Compaction swaps segments, then the checkpoint it writes fails: the crash comes between the two.
          const undo = fsx.failOn({ op: 'open', path: CHECKPOINT_FILE, times: Infinity });
          await kv.compact().catch(() => undefined);
          undo();
        }
        fsx.crash(op.mode === 'keep' ? { keepUnsynced: true } : op.mode === 'torn' ? { tornLastWrite: op.torn } : {});
        // The crashed process's lock file is stale (same pid here): a new process would take it over.
        fs.rmSync(path.join(dir, '.lock'), { force: true });
        ({ store, kv } = await openKv(dir, fsx));
        const got = normal(readStore(kv));
        let match = -1;
        for (let j = since.length - 1; j >= 0; j--) {
          try { assert.deepEqual(got, normal(since[j]!)); match = j; break; } catch { /* try an earlier state */ }
        }
        if (match < 0) assert.fail(`${where}: state after the crash is no prefix of the writes since the last flush: ${JSON.stringify(got)}`);
        if (op.mode === 'keep') assert.equal(match, since.length - 1, `${where}: a process crash loses nothing`);
        model = clone(since[match]!);
        since = [clone(model)];
        checkEqual(kv, model, where);
        break;
      }
      default: {
        const next = clone(model);
        const expect = applyModel(next, op);
        const endBefore = kv.stats().logEndOffset;
        if (expect === 'disabled') {
          assert.throws(() => applyStore(kv, op), KeyDisabledError, where);
          assert.equal(kv.stats().logEndOffset, endBefore, `${where}: a refused write writes nothing`);
        } else {
          applyStore(kv, op);
          assert.equal(kv.stats().logEndOffset > endBefore, expect, `${where}: written iff the model says so`);
          model = next;
          if (expect) since.push(clone(model));
        }
        if (i % 4 === 0) checkEqual(kv, model, where);
      }
    }
  }
  checkEqual(kv, model, 'end');
  await store.close();
  ({ store, kv } = await openKv(dir, fsx));
  checkEqual(kv, model, 'end, reopened');
  await store.close();
}

test('KV store equals a Map model across random operations, reopens, compactions and crashes', async () => {
  await fc.assert(fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 60 }), runScenario), { numRuns: 60 });
});

test('a long scenario with many segments and compactions', async () => {
  await fc.assert(fc.asyncProperty(fc.array(opArb, { minLength: 150, maxLength: 250 }), runScenario), { numRuns: 6 });
});
