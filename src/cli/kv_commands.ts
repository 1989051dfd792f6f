// KV commands of the `sediment` CLI: kv get | put | del | scan | list, and
// groups (committed consumer offsets and lag). Reference: docs/kv.md.
//
// put and del open the store as its one writer (exit 4 while another process
// holds the lock); get, scan, list and groups open it read-only and see the
// data as it was when the command started (a KV namespace's unflushed tail
// included, as the log recovery sees it).

import * as path from 'node:path';
import { Command, Option } from 'commander';
import { CliContext } from './context.js';
import { Store } from '../store.js';
import { defaultStorage } from '../storage.js';
import { InvalidArgumentError } from '../errors.js';
import { KeyNotFoundError, describeKey } from '../kv/kv_errors.js';
import { KvStore, KV_TOPIC_PREFIX, RangeOptions } from '../kv/kv_store.js';
import { CONSUMER_OFFSETS_TOPIC } from '../kv/consumer_offsets.js';

type Encoding = 'utf8' | 'hex' | 'base64';

const utf8 = new TextEncoder();
const utf8d = new TextDecoder();

/** Parses a key or value given on the command line. */
export function decodeArg(s: string, enc: Encoding, what: string): Uint8Array {
  if (enc === 'utf8') return utf8.encode(s);
  if (enc === 'hex') {
    const t = s.startsWith('0x') ? s.slice(2) : s;
    if (t.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(t)) throw new InvalidArgumentError(`${what} is not hex: '${s}'`);
    const out = new Uint8Array(t.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(t.slice(2 * i, 2 * i + 2), 16);
    return out;
  }
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) throw new InvalidArgumentError(`${what} is not base64: '${s}'`);
  return new Uint8Array(Buffer.from(s, 'base64'));
}

/** Formats bytes for output. */
export function encodeOut(b: Uint8Array, enc: Encoding): string {
  if (enc === 'utf8') return utf8d.decode(b);
  if (enc === 'hex') return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
}

/** Text output: tabs and newlines inside keys and values are escaped so every entry stays one line. */
function oneLine(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n').replace(/\r/g, '\\r');
}

async function withStore<T>(dir: string, mode: 'read' | 'create', fn: (s: Store) => Promise<T>): Promise<T> {
  const abs = path.resolve(dir);
  if (mode === 'read' && !defaultStorage.isDirectory(abs)) throw new KeyNotFoundError(`store directory ${abs} does not exist`);
  const store = await Store.open(abs, { readOnly: mode === 'read', create: mode === 'create', retentionCheckMs: -1 });
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

function encodingOption(): Option {
  return new Option('--encoding <enc>', 'how keys and values are given and printed').choices(['utf8', 'hex', 'base64']).default('utf8');
}

function formatOption(): Option {
  return new Option('--format <format>', 'output format').choices(['text', 'json']).default('text');
}

function limitOf(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError(`--limit must be a non-negative integer, got '${v}'`);
  return Number(v);
}

export function register(program: Command, ctx: CliContext): void {
  const kv = program.command('kv').description('key-value namespaces: get, put, del, scan, list (docs/kv.md)');

  kv.command('get')
    .description('print the value of a key (exit 3 when absent)')
    .requiredOption('--dir <dir>', 'store directory')
    .requiredOption('--ns <name>', 'KV namespace')
    .argument('<key>', 'the key')
    .addOption(encodingOption())
    .addOption(formatOption())
    .action(async (key: string, o: { dir: string; ns: string; encoding: Encoding; format: string }) => {
      const k = decodeArg(key, o.encoding, 'key');
      await withStore(o.dir, 'read', async (store) => {
        const ns = await store.kv(o.ns);
        const v = ns.getSync(k);
        if (v === undefined) throw new KeyNotFoundError(`key ${describeKey(k)} is not in KV namespace '${o.ns}'`, k);
        if (o.format === 'json') ctx.stdout.write(JSON.stringify({ key: encodeOut(k, o.encoding), value: encodeOut(v, o.encoding) }) + '\n');
        else ctx.stdout.write(encodeOut(v, o.encoding) + '\n');
      });
    });

  kv.command('put')
    .description('set the value of a key (creates the store and namespace when missing); durable on exit')
    .requiredOption('--dir <dir>', 'store directory')
    .requiredOption('--ns <name>', 'KV namespace')
    .argument('<key>', 'the key')
    .argument('<value>', 'the value')
    .addOption(encodingOption())
    .action(async (key: string, value: string, o: { dir: string; ns: string; encoding: Encoding }) => {
      const k = decodeArg(key, o.encoding, 'key');
      const v = decodeArg(value, o.encoding, 'value');
      await withStore(o.dir, 'create', async (store) => {
        const ns = await store.kv(o.ns);
        ns.putSync(k, v);
        await ns.flush();
      });
    });

  kv.command('del')
    .description('delete a key (exit 3 when it was absent); durable on exit')
    .requiredOption('--dir <dir>', 'store directory')
    .requiredOption('--ns <name>', 'KV namespace')
    .argument('<key>', 'the key')
    .addOption(encodingOption())
    .action(async (key: string, o: { dir: string; ns: string; encoding: Encoding }) => {
      const k = decodeArg(key, o.encoding, 'key');
      await withStore(o.dir, 'create', async (store) => {
        if (!store.hasTopic(`${KV_TOPIC_PREFIX}${o.ns}`)) throw new KeyNotFoundError(`KV namespace '${o.ns}' does not exist`);
        const ns = await store.kv(o.ns);
        const existed = ns.deleteSync(k);
        await ns.flush();
        if (!existed) throw new KeyNotFoundError(`key ${describeKey(k)} is not in KV namespace '${o.ns}'`, k);
      });
    });

  kv.command('scan')
    .description('print keys and values in byte order of keys (text: key<TAB>value per line; json: one object per line)')
    .requiredOption('--dir <dir>', 'store directory')
    .requiredOption('--ns <name>', 'KV namespace')
    .option('--prefix <p>', 'only keys starting with p')
    .option('--gte <k>', 'keys >= k')
    .option('--gt <k>', 'keys > k')
    .option('--lte <k>', 'keys <= k')
    .option('--lt <k>', 'keys < k')
    .option('--limit <n>', 'at most n entries')
    .option('--reverse', 'descending order')
    .option('--keys-only', 'print only keys')
    .addOption(encodingOption())
    .addOption(formatOption())
    .action(async (o: { dir: string; ns: string; prefix?: string; gte?: string; gt?: string; lte?: string; lt?: string; limit?: string;
      reverse?: boolean; keysOnly?: boolean; encoding: Encoding; format: string }) => {
      const r: RangeOptions = { reverse: o.reverse === true };
      const arg = (v: string | undefined, what: string) => (v === undefined ? undefined : decodeArg(v, o.encoding, what));
      r.prefix = arg(o.prefix, '--prefix');
      r.gte = arg(o.gte, '--gte');
      r.gt = arg(o.gt, '--gt');
      r.lte = arg(o.lte, '--lte');
      r.lt = arg(o.lt, '--lt');
      r.limit = limitOf(o.limit);
      for (const k of Object.keys(r) as (keyof RangeOptions)[]) if (r[k] === undefined) delete r[k];
      await withStore(o.dir, 'read', async (store) => {
        const ns = await store.kv(o.ns);
        let out = '';
        const emit = (line: string) => {
          out += line + '\n';
          if (out.length >= 64 * 1024) { ctx.stdout.write(out); out = ''; }
        };
        if (o.keysOnly) {
          for (const k of ns.keysSync(r)) emit(o.format === 'json' ? JSON.stringify({ key: encodeOut(k, o.encoding) }) : oneLine(encodeOut(k, o.encoding)));
        } else {
          for (const { key, value } of ns.rangeSync(r)) {
            emit(o.format === 'json'
              ? JSON.stringify({ key: encodeOut(key, o.encoding), value: encodeOut(value, o.encoding) })
              : `${oneLine(encodeOut(key, o.encoding))}\t${oneLine(encodeOut(value, o.encoding))}`);
          }
        }
        if (out.length > 0) ctx.stdout.write(out);
      });
    });

  kv.command('list')
    .description('list the KV namespaces of a store with their visible key counts')
    .requiredOption('--dir <dir>', 'store directory')
    .addOption(formatOption())
    .action(async (o: { dir: string; format: string }) => {
      await withStore(o.dir, 'read', async (store) => {
        for (const t of store.listTopics()) {
          if (!t.startsWith(KV_TOPIC_PREFIX)) continue;
          const name = t.slice(KV_TOPIC_PREFIX.length);
          const ns: KvStore = await store.kv(name);
          const keys = ns.count();
          ctx.stdout.write(o.format === 'json' ? JSON.stringify({ namespace: name, keys }) + '\n' : `${name}\t${keys}\n`);
        }
      });
    });

  program.command('groups')
    .description('committed consumer offsets per group, topic and partition, with the log end offset and lag')
    .requiredOption('--dir <dir>', 'store directory')
    .option('--group <id>', 'only this group')
    .addOption(formatOption())
    .action(async (o: { dir: string; group?: string; format: string }) => {
      await withStore(o.dir, 'read', async (store) => {
        if (!store.hasTopic(CONSUMER_OFFSETS_TOPIC)) {
          if (o.group !== undefined) throw new KeyNotFoundError(`group '${o.group}' has no committed offsets`);
          return;
        }
        const co = await store.consumerOffsets();
        const groups = o.group !== undefined ? [o.group] : co.listGroups();
        const rows = groups.flatMap((g) => co.describeGroup(g));
        if (o.group !== undefined && rows.length === 0) throw new KeyNotFoundError(`group '${o.group}' has no committed offsets`);
        if (o.format === 'json') {
          for (const r of rows) ctx.stdout.write(JSON.stringify(r) + '\n');
          return;
        }
        const table = [['GROUP', 'TOPIC', 'PARTITION', 'OFFSET', 'LOG-END', 'LAG', 'METADATA']];
        for (const r of rows) {
          table.push([r.group, r.topic, String(r.partition), String(r.offset), r.logEndOffset === null ? '-' : String(r.logEndOffset),
            r.lag === null ? '-' : String(r.lag), oneLine(r.metadata)]);
        }
        const widths = table[0]!.map((_, c) => Math.max(...table.map((row) => row[c]!.length)));
        for (const row of table) ctx.stdout.write(row.map((cell, c) => (c === row.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ').trimEnd() + '\n');
      });
    });
}
