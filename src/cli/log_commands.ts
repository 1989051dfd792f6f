// Log commands of the `sediment` CLI: topics (create, list, describe,
// delete), produce, consume, dump, verify. Reference: docs/cli.md.
//
// Write commands (topics create/delete, produce) open the store as its one
// writer and fail with exit 4 while another process holds the lock. Read
// commands (topics list/describe, consume) open it read-only: they work next
// to a running writer and see the data as it was when they opened (consume
// --follow re-opens the partition when its files change). dump and verify
// read the files directly and never change them.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, Option } from 'commander';
import { CliContext, EXIT, Writable, progress } from './context.js';
import { Store } from '../store.js';
import { Partition } from '../partition.js';
import { MAX_APPEND_BATCHES_BYTES } from '../batch_ingest.js';
import { defaultStorage } from '../storage.js';
import { getKernelsSync } from '../kernels.js';
import { DEFAULT_TOPIC_CONFIG, TopicConfig } from '../topic_config.js';
import { CorruptionError, InvalidArgumentError, SedimentError, StorageError, UnsupportedCodecError } from '../errors.js';
import { RecordInput, StoredRecord } from '../record.js';
import { RecordBatchDecoder, ATTR_CODEC_MASK, ATTR_CONTROL, ATTR_LOG_APPEND_TIME, ATTR_TRANSACTIONAL } from '../record_batch.js';
import { LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX } from '../log_segment.js';
import { OFFSET_INDEX_ENTRY_SIZE } from '../offset_index.js';
import { TIME_INDEX_ENTRY_SIZE } from '../time_index.js';
import {
  walkLog, WalkedBatch, DUMP_MAX_BATCH_BYTES, CODEC_NAMES, hex32, baseOffsetOf, parseOffsetIndex, parseTimeIndex,
  IndexParse, verifyStore, VerifyProblem,
} from './log_inspect.js';

/** A store, topic partition or file that does not exist (exit 3). */
class NotFoundError extends SedimentError {
  constructor(message: string) { super('ERR_NOT_FOUND', message); }
}

/** Lines per append call in `produce`. */
export const PRODUCE_BATCH_LINES = 1000;
const OUTPUT_CHUNK = 64 * 1024;

export const EXIT_CODES_HELP = `
Exit codes:
  0  success
  1  usage or argument error (unknown option, bad value, offset out of range)
  2  corruption found (verify, dump)
  3  not found (store directory, topic, partition, file)
  4  store locked by another writer (write commands)
  5  any other failure (I/O error, topic already exists, ...)`;

// --- argument helpers ----------------------------------------------------------

function intOption(v: string | undefined, name: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (v === undefined) return undefined;
  if (!/^-?\d+$/.test(v.trim())) throw new InvalidArgumentError(`--${name} must be an integer, got '${v}'`);
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`--${name} must be an integer in [${min}, ${max}], got ${v}`);
  return n;
}

/** 'segment.bytes' -> 'segmentBytes' (Kafka's names are accepted too). */
function camel(key: string): string {
  return key.replace(/[._-]([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** Parses --config key=value pairs; numeric settings are parsed as integers, dedup as JSON. */
export function parseTopicConfig(pairs: readonly string[]): Partial<TopicConfig> {
  const out: Record<string, unknown> = {};
  const known = [...Object.keys(DEFAULT_TOPIC_CONFIG), 'dedup'];
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new InvalidArgumentError(`--config expects key=value, got '${pair}'`);
    const rawKey = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    const key = camel(rawKey);
    if (!known.includes(key)) throw new InvalidArgumentError(`unknown topic config '${rawKey}' (known: ${known.join(', ')})`);
    if (key === 'dedup') {
      try { out[key] = JSON.parse(value); } catch (e) {
        throw new InvalidArgumentError(`--config dedup must be JSON, e.g. dedup='{"by":"key","window":{"count":100000}}': ${(e as Error).message}`);
      }
    } else if (typeof (DEFAULT_TOPIC_CONFIG as unknown as Record<string, unknown>)[key] === 'number') {
      if (!/^-?\d+$/.test(value)) throw new InvalidArgumentError(`topic config ${rawKey} must be an integer, got '${value}'`);
      out[key] = Number(value);
    } else {
      out[key] = value;
    }
  }
  return out as Partial<TopicConfig>;
}

function requireStoreDir(dir: string): string {
  const abs = path.resolve(dir);
  if (!defaultStorage.isDirectory(abs)) throw new NotFoundError(`store directory ${abs} does not exist`);
  return abs;
}

function partitionOf(store: Store, topic: string, id: number): Partition {
  const t = store.topic(topic);
  const p = t.partitions[id];
  if (!p) throw new NotFoundError(`topic '${topic}' has no partition ${id} (it has ${t.partitions.length})`);
  return p;
}

async function withStore<T>(dir: string, mode: 'read' | 'write' | 'create', fn: (s: Store) => Promise<T>): Promise<T> {
  const abs = mode === 'create' ? path.resolve(dir) : requireStoreDir(dir);
  const store = await Store.open(abs, { readOnly: mode === 'read', create: mode === 'create', retentionCheckMs: -1 });
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

function b64(bytes: Uint8Array | null): string | null {
  return bytes === null ? null : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/**
 * Buffered output to a stream: writes in 64 KiB chunks and waits for 'drain'
 * when the stream asks. Stops (broken = true) when the reader goes away (EPIPE).
 */
class Output {
  private parts: Buffer[] = [];
  private size = 0;
  broken = false;
  private readonly w: Writable & { once?: (ev: string, f: (...a: unknown[]) => void) => unknown; on?: (ev: string, f: (...a: unknown[]) => void) => unknown; removeListener?: (ev: string, f: (...a: unknown[]) => void) => unknown };
  private readonly onError = (err: unknown) => { if ((err as NodeJS.ErrnoException)?.code === 'EPIPE') this.broken = true; };

  constructor(w: Writable) {
    this.w = w as Output['w'];
    this.w.on?.('error', this.onError);
  }

  push(s: string | Uint8Array): void {
    const b = typeof s === 'string' ? Buffer.from(s) : Buffer.from(s.buffer, s.byteOffset, s.byteLength);
    this.parts.push(b);
    this.size += b.length;
  }

  get full(): boolean { return this.size >= OUTPUT_CHUNK; }

  async flush(): Promise<void> {
    if (this.size === 0 || this.broken) { this.parts = []; this.size = 0; return; }
    const data = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.size);
    this.parts = [];
    this.size = 0;
    let ok: unknown;
    try { ok = this.w.write(data); } catch (err) {
      if ((err as NodeJS.ErrnoException)?.code === 'EPIPE') { this.broken = true; return; }
      throw err;
    }
    if (ok === false && typeof this.w.once === 'function') {
      await new Promise<void>((resolve) => {
        const drained = () => { this.w.removeListener?.('close', closed); resolve(); };
        const closed = () => { this.w.removeListener?.('drain', drained); this.broken = true; resolve(); };
        this.w.once!('drain', drained);
        this.w.once!('close', closed);
      });
    }
  }

  close(): void { this.w.removeListener?.('error', this.onError); }
}

// --- topics ----------------------------------------------------------------------

function registerTopics(program: Command, ctx: CliContext): void {
  const topics = program.command('topics').description('create, list, describe and delete topics');

  topics.command('create')
    .description('create a topic (creates the store directory when missing)')
    .requiredOption('--dir <dir>', 'store directory')
    .requiredOption('--topic <name>', 'topic name: 1-249 characters of [a-zA-Z0-9._-]')
    .option('--partitions <n>', 'number of partitions', '1')
    .option('--config <key=value...>', 'topic settings (segmentBytes=1048576 or segment.bytes=1048576; see docs/cli.md)', [])
    .option('--if-not-exists', 'succeed without change when the topic exists')
    .addHelpText('after', `\nPrints: created topic <name> with <n> partition(s)\n${EXIT_CODES_HELP}`)
    .action(async (o: { dir: string; topic: string; partitions: string; config: string[]; ifNotExists?: boolean }) => {
      const partitions = intOption(o.partitions, 'partitions', 1)!;
      const config = parseTopicConfig(o.config);
      await withStore(o.dir, 'create', async (store) => {
        if (o.ifNotExists && store.hasTopic(o.topic)) {
          ctx.stdout.write(`topic ${o.topic} exists\n`);
          return;
        }
        await store.createTopic(o.topic, { partitions, config });
        ctx.stdout.write(`created topic ${o.topic} with ${partitions} partition${partitions === 1 ? '' : 's'}\n`);
      });
    });

  topics.command('list')
    .description('list topics, one name per line (read-only)')
    .requiredOption('--dir <dir>', 'store directory')
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'))
    .addHelpText('after', EXIT_CODES_HELP)
    .action(async (o: { dir: string; format: string }) => {
      await withStore(o.dir, 'read', async (store) => {
        const names = store.listTopics();
        ctx.stdout.write(o.format === 'json' ? JSON.stringify(names) + '\n' : names.map((n) => n + '\n').join(''));
      });
    });

  topics.command('describe')
    .description('configuration and per-partition offsets, segments and bytes of a topic (read-only)')
    .requiredOption('--dir <dir>', 'store directory')
    .requiredOption('--topic <name>', 'topic name')
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'))
    .addHelpText('after', `
Per partition: logStartOffset (first readable offset), logEndOffset (next
offset to be written), highWatermark (end of the data known durable; a
read-only open counts everything on disk), segments, bytes (sum of .log sizes).
${EXIT_CODES_HELP}`)
    .action(async (o: { dir: string; topic: string; format: string }) => {
      await withStore(o.dir, 'read', async (store) => {
        const t = store.topic(o.topic);
        const parts = t.partitions.map((p) => {
          const s = p.stats();
          return { partition: p.id, logStartOffset: s.logStartOffset, logEndOffset: s.logEndOffset, highWatermark: s.highWatermark, segments: s.segments, bytes: s.sizeBytes };
        });
        // Dedup topics: window fill (rebuilt from the log) and lifetime counters (docs/dedup.md).
        const dedup = t.config.dedup ? await Promise.all(t.partitions.map((p) => store.dedupStats(t.name, p.id).catch(() => null))) : null;
        if (o.format === 'json') {
          const withDedup = dedup ? parts.map((p, i) => ({ ...p, dedup: dedup[i] })) : parts;
          ctx.stdout.write(JSON.stringify({ name: t.name, partitions: withDedup, config: t.config }) + '\n');
          return;
        }
        const lines = [`topic: ${t.name}`, `partitions: ${parts.length}`, 'config:'];
        for (const [k, v] of Object.entries(t.config)) lines.push(`  ${k}: ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`);
        const head = ['partition', 'logStartOffset', 'logEndOffset', 'highWatermark', 'segments', 'bytes'];
        const rows = parts.map((p) => [p.partition, p.logStartOffset, p.logEndOffset, p.highWatermark, p.segments, p.bytes].map(String));
        const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
        const fmt = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
        lines.push(fmt(head), ...rows.map(fmt));
        if (dedup) {
          const dhead = ['partition', 'windowEntries', 'windowFill', 'checked', 'dropped', 'skipped', 'collisions'];
          const drows = dedup.map((d, i) => (d ? [String(parts[i]!.partition), String(d.windowSize), `${(d.windowFill * 100).toFixed(1)}%`,
            String(d.total.checked), String(d.total.dropped), String(d.total.skipped), String(d.total.collisions)] : [String(parts[i]!.partition), '-', '-', '-', '-', '-', '-']));
          const dw = dhead.map((h, i) => Math.max(h.length, ...drows.map((r) => r[i]!.length)));
          const dfmt = (r: string[]) => r.map((c, i) => c.padEnd(dw[i]!)).join('  ').trimEnd();
          lines.push('dedup (window rebuilt from the log; counters since topic creation, as of the last clean close):', dfmt(dhead), ...drows.map(dfmt));
        }
        ctx.stdout.write(lines.join('\n') + '\n');
      });
    });

  topics.command('delete')
    .description('delete a topic and its data')
    .requiredOption('--dir <dir>', 'store directory')
    .requiredOption('--topic <name>', 'topic name')
    .addHelpText('after', `\nPrints: deleted topic <name>\n${EXIT_CODES_HELP}`)
    .action(async (o: { dir: string; topic: string }) => {
      await withStore(o.dir, 'write', async (store) => {
        await store.deleteTopic(o.topic);
        ctx.stdout.write(`deleted topic ${o.topic}\n`);
      });
    });
}

// --- produce ---------------------------------------------------------------------

/**
 * Splits a byte stream into lines (LF, with a trailing CR removed), yielding
 * the lines of each chunk together. A line longer than maxLine bytes throws.
 */
export async function* lineBatches(input: AsyncIterable<unknown>, maxLine: number): AsyncGenerator<Buffer[]> {
  let pending: Buffer[] = [];
  let pendingLen = 0;
  let lineNo = 0;
  const strip = (b: Buffer) => (b.length > 0 && b[b.length - 1] === 13 ? b.subarray(0, b.length - 1) : b);
  const tooLong = () => new InvalidArgumentError(`input line ${lineNo + 1} is longer than ${maxLine} bytes (the topic's maxMessageBytes)`);
  for await (const c of input) {
    const chunk = typeof c === 'string' ? Buffer.from(c) : Buffer.from((c as Uint8Array).buffer, (c as Uint8Array).byteOffset, (c as Uint8Array).byteLength);
    const out: Buffer[] = [];
    let start = 0;
    while (start <= chunk.length) {
      const nl = chunk.indexOf(10, start);
      if (nl < 0) break;
      let line = chunk.subarray(start, nl);
      if (pendingLen > 0) {
        line = Buffer.concat([...pending, line]);
        pending = [];
        pendingLen = 0;
      }
      if (line.length > maxLine + 1) throw tooLong();
      out.push(strip(line));
      lineNo++;
      start = nl + 1;
    }
    if (start < chunk.length) {
      pending.push(chunk.subarray(start));
      pendingLen += chunk.length - start;
      if (pendingLen > maxLine + 1) throw tooLong();
    }
    if (out.length > 0) yield out;
  }
  if (pendingLen > 0) yield [strip(Buffer.concat(pending))];
}

/** Bytes of a batches file appended per call by `produce --batches`. */
export const BATCHES_CHUNK_BYTES = 8 << 20;

/**
 * `produce --batches FILE`: reads the file in chunks, cuts each chunk at a
 * batch boundary (from the batch length fields) and appends the whole
 * batches with Partition.appendBatches. Bytes that cannot start a batch (a
 * bad length, a truncated end) are handed over as they are, so the append
 * reports them with its typed error.
 */
async function produceBatches(ctx: CliContext, dir: string, topic: string, pid: number, file: string): Promise<void> {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(`no such file: ${file}`);
    throw err;
  }
  try {
    const fileSize = fs.fstatSync(fd).size;
    await withStore(dir, 'write', async (store) => {
      const part = partitionOf(store, topic, pid);
      let buf = Buffer.allocUnsafe(Math.min(BATCHES_CHUNK_BYTES, Math.max(fileSize, 61)));
      let filePos = 0; // file position of buf[0]
      let have = 0;
      let first = -1;
      let last = -1;
      let count = 0;
      const range = () => (count > 0 ? ` at offsets ${first}..${last}` : '');
      const bar = progress(ctx, 'produce');
      try {
        for (;;) {
          const attempted = have < buf.length && filePos + have < fileSize;
          const got = attempted ? fs.readSync(fd, buf, have, buf.length - have, filePos + have) : 0;
          have += got;
          if (have === 0) break;
          const eof = (attempted && got === 0) || filePos + have >= fileSize;
          // Whole batches at the start of buf.
          let end = 0;
          while (end + 12 <= have) {
            const size = buf.readInt32BE(end + 8) + 12;
            if (size < 61 || size > MAX_APPEND_BATCHES_BYTES || end + size > have) break;
            end += size;
          }
          if (end === 0) {
            const size = have >= 12 ? buf.readInt32BE(8) + 12 : 0;
            if (!eof && size >= 61 && size <= MAX_APPEND_BATCHES_BYTES && size > buf.length) {
              // One batch larger than the buffer: grow it (the append checks the topic's limit).
              const bigger = Buffer.allocUnsafe(size);
              buf.copy(bigger, 0, 0, have);
              buf = bigger;
              continue;
            }
            if (!eof && size >= 61 && size <= MAX_APPEND_BATCHES_BYTES) continue;
            end = have; // not a batch start, or a truncated last batch: let the append say what is wrong
          }
          try {
            const r = await part.appendBatches(buf.subarray(0, end));
            if (first < 0 && r.count > 0) first = r.baseOffset;
            if (r.count > 0) last = r.lastOffset;
            count += r.count;
          } catch (err) {
            if (err instanceof CorruptionError) (err as { message: string }).message += ` (${file} at byte ${filePos + err.position})`;
            throw err;
          }
          buf.copyWithin(0, end, have);
          have -= end;
          filePos += end;
          bar.update(filePos, fileSize);
        }
      } catch (err) {
        try { await part.flush(); } catch { /* the original error is the one to report */ }
        if (err instanceof SedimentError) {
          (err as { message: string }).message += `; ${count} record${count === 1 ? ' was' : 's were'} written${range()}`;
        }
        throw err;
      } finally {
        bar.done();
      }
      await part.flush();
      ctx.stdout.write(`produced ${count} record${count === 1 ? '' : 's'} to ${part.name}${range()}\n`);
    });
  } finally {
    fs.closeSync(fd);
  }
}

function registerProduce(program: Command, ctx: CliContext): void {
  program.command('produce')
    .description('append stdin lines to a partition, one record per line')
    .requiredOption('--dir <dir>', 'store directory')
    .requiredOption('--topic <name>', 'topic name')
    .option('--partition <n>', 'partition', '0')
    .addOption(new Option('--key <key>', 'key of every record (default: null key)').conflicts('keySeparator'))
    .option('--key-separator <sep>', 'split each line at the first <sep> into key and value')
    .option('--header <name=value...>', 'header on every record (repeatable; "name" alone: null value)', [])
    .addOption(new Option('--batches <file>', 'append the RecordBatch v2 batches in <file> (e.g. a Kafka .log segment) as they are, instead of stdin lines')
      .conflicts(['key', 'keySeparator']))
    .addHelpText('after', `
Each input line (LF or CRLF ended; bytes, not necessarily UTF-8) becomes one
record with the append time as timestamp. Lines are appended ${PRODUCE_BATCH_LINES} at a time
and flushed (fdatasync) at the end. With --key-separator a line without the
separator stops the command with exit 1 after writing the lines before it.

With --batches <file> the file's concatenated batches are validated (CRC,
framing, limits) and appended as they are with new offsets (the Kafka produce
path, Partition.appendBatches), up to ${BATCHES_CHUNK_BYTES >> 20} MiB per call; a damaged batch stops
the command with exit 2 after writing the batches before its call.

Prints: produced <n> records to <topic>-<partition> at offsets <first>..<last>
${EXIT_CODES_HELP}`)
    .action(async (o: { dir: string; topic: string; partition: string; key?: string; keySeparator?: string; header: string[]; batches?: string }) => {
      const pid = intOption(o.partition, 'partition', 0)!;
      if (o.batches !== undefined) {
        if (o.header.length > 0) throw new InvalidArgumentError('--header cannot be used with --batches (the batches are appended as they are)');
        return produceBatches(ctx, o.dir, o.topic, pid, o.batches);
      }
      if (o.keySeparator !== undefined && o.keySeparator.length === 0) throw new InvalidArgumentError('--key-separator must not be empty');
      const headers: [string, string | null][] = o.header.map((h) => {
        const eq = h.indexOf('=');
        if (eq === 0) throw new InvalidArgumentError(`--header needs a name, got '${h}'`);
        return eq < 0 ? [h, null] : [h.slice(0, eq), h.slice(eq + 1)];
      });
      const key = o.key === undefined ? null : Buffer.from(o.key);
      const sep = o.keySeparator === undefined ? null : Buffer.from(o.keySeparator);
      await withStore(o.dir, 'write', async (store) => {
        const part = partitionOf(store, o.topic, pid);
        let first = -1;
        let last = -1;
        let count = 0;
        let lineNo = 0;
        let batch: RecordInput[] = [];
        const append = async () => {
          if (batch.length === 0) return;
          const r = await part.append(batch);
          if (first < 0 && r.count > 0) first = r.baseOffset;
          if (r.count > 0) last = r.lastOffset;
          count += r.count;
          batch = [];
        };
        const range = () => (count > 0 ? ` at offsets ${first}..${last}` : '');
        try {
          for await (const lines of lineBatches(ctx.stdin, part.config.maxMessageBytes)) {
            for (const line of lines) {
              lineNo++;
              let k: Uint8Array | null = key;
              let v: Uint8Array = line;
              if (sep) {
                const at = line.indexOf(sep);
                if (at < 0) throw new InvalidArgumentError(`input line ${lineNo} has no key separator ${JSON.stringify(o.keySeparator)}`);
                k = line.subarray(0, at);
                v = line.subarray(at + sep.length);
              }
              batch.push(headers.length > 0 ? { key: k, value: v, headers } : { key: k, value: v });
              if (batch.length >= PRODUCE_BATCH_LINES) await append();
            }
          }
          await append();
        } catch (err) {
          // Keep the lines read before the bad one, durably, and say what was written.
          try { await append(); await part.flush(); } catch { /* the original error is the one to report */ }
          if (err instanceof SedimentError) {
            (err as { message: string }).message += `; ${count} record${count === 1 ? ' was' : 's were'} written${range()}`;
          }
          throw err;
        }
        await part.flush();
        ctx.stdout.write(`produced ${count} record${count === 1 ? '' : 's'} to ${part.name}${range()}\n`);
      });
    });
}

// --- consume ---------------------------------------------------------------------

function recordJson(r: StoredRecord): string {
  return JSON.stringify({
    offset: r.offset,
    timestamp: r.timestamp,
    key: b64(r.key),
    value: b64(r.value),
    headers: r.headers.map((h) => [h.key, b64(h.value)]),
  });
}

function logSignature(dir: string): string {
  let names: string[];
  try { names = fs.readdirSync(dir).filter((n) => n.endsWith(LOG_SUFFIX)).sort(); } catch { return ''; }
  const lastLog = names[names.length - 1];
  let size = -1;
  if (lastLog) { try { size = fs.statSync(path.join(dir, lastLog)).size; } catch { size = -2; } }
  return `${names.join(',')}:${size}`;
}

function registerConsume(program: Command, ctx: CliContext): void {
  program.command('consume')
    .description('print the records of a partition (read-only: works while a writer holds the store)')
    .requiredOption('--dir <dir>', 'store directory')
    .requiredOption('--topic <name>', 'topic name')
    .option('--partition <n>', 'partition', '0')
    .addOption(new Option('--offset <n>', "first offset: a number, 'earliest' (default) or 'latest'").conflicts('timestamp'))
    .option('--timestamp <ms>', 'start at the first record whose timestamp is >= ms (epoch milliseconds)')
    .option('--max <n>', 'stop after n records')
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'))
    .option('--key-separator <sep>', 'text format: print key<sep>value (a null key prints as nothing)')
    .option('--follow', 'keep waiting for new records (stop with Ctrl-C, --max or --timeout-ms)')
    .option('--poll-ms <ms>', 'with --follow: how often to look for new data', '200')
    .option('--timeout-ms <ms>', 'with --follow: stop after this long without a new record')
    .addHelpText('after', `
Formats (one record per line):
  text  the value's bytes as stored (UTF-8 text stays text); a null value
        prints as an empty line
  json  {"offset":N,"timestamp":MS,"key":B64|null,"value":B64|null,
         "headers":[[name,B64|null],...]}  key, value and header values are
        base64; null means absent (distinct from "" for empty bytes)

The store is opened read-only: the output is the partition as it was when the
command started. --follow re-opens the partition read-only whenever its files
change, so it sees what a writer in another process appends (and flushes or
not: records are visible once written to the file).
${EXIT_CODES_HELP}`)
    .action(async (o: { dir: string; topic: string; partition: string; offset?: string; timestamp?: string; max?: string; format: string;
      keySeparator?: string; follow?: boolean; pollMs: string; timeoutMs?: string }) => {
      const pid = intOption(o.partition, 'partition', 0)!;
      const max = intOption(o.max, 'max', 1) ?? Infinity;
      const ts = intOption(o.timestamp, 'timestamp', Number.MIN_SAFE_INTEGER);
      const pollMs = intOption(o.pollMs, 'poll-ms', 1, 3_600_000)!;
      const timeoutMs = intOption(o.timeoutMs, 'timeout-ms', 0);
      const sep = o.keySeparator === undefined ? null : Buffer.from(o.keySeparator);
      const json = o.format === 'json';
      const out = new Output(ctx.stdout);
      let count = 0;
      const emit = async (part: Partition, from: number): Promise<number> => {
        let next = from;
        if (next >= part.logEndOffset || count >= max) return next;
        for await (const r of part.read({ offset: next }, { maxRecords: max - count })) {
          if (json) out.push(recordJson(r) + '\n');
          else {
            if (sep) { if (r.key) out.push(r.key); out.push(sep); }
            if (r.value) out.push(r.value);
            out.push('\n');
          }
          count++;
          next = r.offset + 1;
          if (out.full) { await out.flush(); if (out.broken) break; }
        }
        await out.flush();
        return next;
      };
      await withStore(o.dir, 'read', async (store) => {
        const base = partitionOf(store, o.topic, pid);
        let next: number;
        if (ts !== undefined) next = await base.offsetForTimestamp(ts);
        else if (o.offset === undefined || o.offset === 'earliest') next = base.logStartOffset;
        else if (o.offset === 'latest') next = base.logEndOffset;
        else next = intOption(o.offset, 'offset', 0)!;
        if (next < base.logStartOffset || next > base.logEndOffset) {
          // Same error (exit 1) the API gives, before any output.
          await base.read({ offset: next }).next();
        }
        next = await emit(base, next);
        if (!o.follow || count >= max || out.broken) { out.close(); return; }

        // --follow: poll the partition's files; re-open read-only when they change.
        let current = base;
        let sig = logSignature(base.dir);
        let lastData = Date.now();
        let stopped = false;
        let wake: (() => void) | null = null;
        const onSigint = () => { stopped = true; wake?.(); };
        process.on('SIGINT', onSigint);
        try {
          while (!stopped && count < max && !out.broken) {
            await new Promise<void>((resolve) => { wake = resolve; setTimeout(resolve, pollMs); });
            wake = null;
            if (stopped) break;
            if (timeoutMs !== undefined && Date.now() - lastData >= timeoutMs) break;
            const s = logSignature(base.dir);
            if (s === sig) continue;
            let fresh: Partition;
            try {
              fresh = await Partition.open({ k: store.k, storage: store.storage, dir: base.dir, topic: base.topic, id: base.id, config: base.config, readOnly: true });
            } catch (err) {
              if (err instanceof StorageError) continue; // a file went away mid-open (retention, roll): look again
              throw err;
            }
            sig = s;
            if (current !== base) await current.close();
            current = fresh;
            if (next < current.logStartOffset) {
              ctx.stderr.write(`sediment: offsets ${next}..${current.logStartOffset - 1} were deleted (retention); continuing at ${current.logStartOffset}\n`);
              next = current.logStartOffset;
            }
            if (next > current.logEndOffset) continue;
            const before = count;
            next = await emit(current, next);
            if (count > before) lastData = Date.now();
          }
        } finally {
          process.removeListener('SIGINT', onSigint);
          if (current !== base) await current.close();
          out.close();
        }
      });
    });
}

// --- dump --------------------------------------------------------------------------

function batchText(b: WalkedBatch): string {
  const codec = b.attributes & ATTR_CODEC_MASK;
  return `position: ${b.position} baseOffset: ${b.baseOffset} lastOffset: ${b.baseOffset + b.lastOffsetDelta} count: ${b.recordCount}` +
    ` firstTimestamp: ${b.firstTimestamp} maxTimestamp: ${b.maxTimestamp} timestampType: ${b.attributes & ATTR_LOG_APPEND_TIME ? 'LogAppendTime' : 'CreateTime'}` +
    ` size: ${b.size} magic: ${b.magic} attributes: 0x${b.attributes.toString(16).padStart(4, '0')} codec: ${CODEC_NAMES[codec] ?? codec}` +
    ` transactional: ${(b.attributes & ATTR_TRANSACTIONAL) !== 0} control: ${(b.attributes & ATTR_CONTROL) !== 0}` +
    ` producerId: ${b.producerId} producerEpoch: ${b.producerEpoch} baseSequence: ${b.baseSequence} leaderEpoch: ${b.leaderEpoch}` +
    ` crc: ${hex32(b.crc)} crcValid: ${b.crcValid}` + (b.invalid ? ` INVALID: ${b.invalid}` : '');
}

function batchJson(b: WalkedBatch): Record<string, unknown> {
  return {
    type: 'batch', position: b.position, baseOffset: b.baseOffset, lastOffset: b.baseOffset + b.lastOffsetDelta, count: b.recordCount,
    firstTimestamp: b.firstTimestamp, maxTimestamp: b.maxTimestamp, size: b.size, magic: b.magic, attributes: b.attributes,
    codec: CODEC_NAMES[b.attributes & ATTR_CODEC_MASK] ?? b.attributes & ATTR_CODEC_MASK,
    timestampType: b.attributes & ATTR_LOG_APPEND_TIME ? 'LogAppendTime' : 'CreateTime',
    transactional: (b.attributes & ATTR_TRANSACTIONAL) !== 0, control: (b.attributes & ATTR_CONTROL) !== 0,
    producerId: b.producerId, producerEpoch: b.producerEpoch, baseSequence: b.baseSequence, leaderEpoch: b.leaderEpoch,
    crc: b.crc, crcValid: b.crcValid, valid: !b.invalid, ...(b.invalid ? { problem: b.invalid } : {}),
  };
}

function textOf(bytes: Uint8Array | null): string {
  return bytes === null ? 'null' : JSON.stringify(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
}

async function dumpLog(file: string, o: { records?: boolean; format: string }, ctx: CliContext, out: Output): Promise<number> {
  const k = getKernelsSync();
  const json = o.format === 'json';
  const decoder = o.records ? new RecordBatchDecoder(k) : null;
  const h = defaultStorage.open(file, 'read');
  let batches = 0;
  let records = 0;
  let invalid = 0;
  try {
    if (!json) out.push(`Dumping ${file} (log segment, base offset ${baseOffsetOf(file) ?? '?'}, ${h.size()} bytes)\n`);
    const res = await walkLog(k, h, {
      maxBatchBytes: DUMP_MAX_BATCH_BYTES,
      onBatch: async (b, ptr) => {
        batches++;
        if (b.invalid) invalid++;
        else records += b.recordCount;
        let recs: StoredRecord[] | null = null;
        let recError: string | null = null;
        if (decoder && !b.invalid) {
          recs = [];
          try {
            if (RecordBatchDecoder.isSync(b)) decoder.decode(ptr, b, recs, 0, { file, position: b.position });
            else await decoder.decodeAsync(ptr, b, recs, 0, { file, position: b.position });
          } catch (err) {
            if (!(err instanceof SedimentError)) throw err;
            recError = err.message;
            if (!(err instanceof UnsupportedCodecError)) invalid++;
          }
        }
        if (json) {
          const obj = batchJson(b);
          if (recs) obj.records = recs.map((r) => JSON.parse(recordJson(r)) as unknown);
          if (recError) obj.recordsError = recError;
          out.push(JSON.stringify(obj) + '\n');
        } else {
          out.push(batchText(b) + '\n');
          if (recs) {
            for (const r of recs) {
              out.push(`| offset: ${r.offset} timestamp: ${r.timestamp} keySize: ${r.key?.length ?? -1} valueSize: ${r.value?.length ?? -1}` +
                ` key: ${textOf(r.key)} value: ${textOf(r.value)}` +
                (r.headers.length > 0 ? ` headers: ${r.headers.map((x) => `${JSON.stringify(x.key)}=${textOf(x.value)}`).join(',')}` : '') + '\n');
            }
          }
          if (recError) out.push(`| records not decoded: ${recError}\n`);
        }
        if (out.full) await out.flush();
      },
    });
    for (const p of res.problems) {
      if (p.skipped) continue;
      invalid++;
      if (json) out.push(JSON.stringify({ type: 'problem', position: p.position, ...(p.offset !== undefined ? { offset: p.offset } : {}), reason: p.reason }) + '\n');
      else out.push(`INVALID at position ${p.position}: ${p.reason}\n`);
    }
    for (const p of res.problems) ctx.stderr.write(`sediment: corrupt data in ${file} at byte ${p.position}${p.offset !== undefined ? ` (offset ${p.offset})` : ''}: ${p.reason}\n`);
    if (!json) out.push(`${batches} batch${batches === 1 ? '' : 'es'}, ${records} record${records === 1 ? '' : 's'}, ${res.end} of ${res.fileSize} bytes framed, ${invalid} invalid\n`);
  } finally {
    h.close();
    decoder?.free();
  }
  return invalid;
}

function dumpIndex<E extends object>(file: string, kind: 'index' | 'timeindex', entrySize: number, o: { format: string }, ctx: CliContext, out: Output,
  parse: (bytes: Uint8Array, base: number) => IndexParse<E>, text: (e: E) => string): number {
  const bytes = defaultStorage.readFile(file)!;
  let base = baseOffsetOf(file);
  if (base === null) {
    ctx.stderr.write(`sediment: ${path.basename(file)} is not named <20-digit base offset>.${kind}: offsets are shown relative to 0\n`);
    base = 0;
  }
  const p = parse(bytes, base);
  const json = o.format === 'json';
  if (!json) out.push(`Dumping ${file} (${kind === 'index' ? 'offset index' : 'time index'}, base offset ${base}, ${p.entries.length} entries)\n`);
  const bad = new Map(p.problems.map((q) => [q.slot, q.reason]));
  p.entries.forEach((e, i) => {
    const problem = bad.get(i);
    if (json) out.push(JSON.stringify({ type: 'entry', slot: i, ...e, ...(problem ? { problem } : {}) }) + '\n');
    else out.push(`${text(e)}${problem ? ` INVALID: ${problem}` : ''}\n`);
  });
  const problems = p.problems.map((q) => ({ position: q.position, reason: `entry ${q.slot}: ${q.reason}` }));
  if (p.trailingBytes !== 0) {
    const at = p.entries.length * entrySize;
    const reason = `${p.trailingBytes} trailing bytes: the file length ${bytes.length} is not a multiple of ${entrySize}`;
    problems.push({ position: at, reason });
    out.push(json ? JSON.stringify({ type: 'problem', position: at, reason }) + '\n' : `INVALID at position ${at}: ${reason}\n`);
  }
  for (const q of problems) ctx.stderr.write(`sediment: corrupt data in ${file} at byte ${q.position}: ${q.reason}\n`);
  return problems.length;
}

function registerDump(program: Command, ctx: CliContext): void {
  program.command('dump')
    .description('print the contents of a segment file: .log, .index or .timeindex (like kafka-dump-log)')
    .argument('<file>', 'a .log, .index or .timeindex file')
    .option('--records', '.log: print every record too')
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'))
    .addHelpText('after', `
.log: one line per batch: position, baseOffset, lastOffset, count, timestamps,
  size, magic, attributes and codec, producer fields, crc and crcValid. A batch
  whose CRC does not match is printed with INVALID and skipped; a batch that
  cannot be framed (bad length or magic, torn tail) ends the dump.
  --records adds one "| offset: ..." line per record (key and value as JSON
  strings of their UTF-8 text; json format: base64, as in consume).
.index: "offset: O position: P" per entry. .timeindex: "timestamp: T offset: O".
json format: one object per line with a "type" of batch, entry or problem.
Invalid data is also reported on stderr ("corrupt data in FILE at byte P: ...")
and makes the exit code 2.
${EXIT_CODES_HELP}`)
    .action(async (file: string, o: { records?: boolean; format: string }) => {
      const abs = path.resolve(file);
      if (!defaultStorage.exists(abs) || defaultStorage.isDirectory(abs)) throw new NotFoundError(`file ${abs} does not exist`);
      const out = new Output(ctx.stdout);
      let invalid: number;
      try {
        if (abs.endsWith(LOG_SUFFIX)) invalid = await dumpLog(abs, o, ctx, out);
        else if (abs.endsWith(TIME_INDEX_SUFFIX)) {
          invalid = dumpIndex(abs, 'timeindex', TIME_INDEX_ENTRY_SIZE, o, ctx, out, parseTimeIndex, (e) => `timestamp: ${e.timestamp} offset: ${e.offset}`);
        } else if (abs.endsWith(INDEX_SUFFIX)) {
          invalid = dumpIndex(abs, 'index', OFFSET_INDEX_ENTRY_SIZE, o, ctx, out, parseOffsetIndex, (e) => `offset: ${e.offset} position: ${e.position}`);
        } else {
          throw new InvalidArgumentError(`cannot dump ${path.basename(abs)}: expected a .log, .index or .timeindex file`);
        }
        await out.flush();
      } finally {
        out.close();
      }
      if (invalid > 0) ctx.exitCode = EXIT.CORRUPTION;
    });
}

// --- verify ----------------------------------------------------------------------

function mb(bytes: number): string { return (bytes / 1e6).toFixed(1); }

function problemLine(p: VerifyProblem): string {
  const where = (p.position !== undefined ? ` position ${p.position}` : '') + (p.offset !== undefined ? ` offset ${p.offset}` : '');
  return `${p.severity}: ${p.file}${where}: ${p.reason}\n`;
}

function registerVerify(program: Command, ctx: CliContext): void {
  program.command('verify')
    .description('check every batch (CRC, length, magic, offsets) and every index entry of a store')
    .requiredOption('--dir <dir>', 'store directory')
    .addHelpText('after', `
Reads the files directly (no lock, nothing written). Prints one line per
problem, "corrupt: FILE position P offset O: reason" or "warning: ...", then a
summary line starting "verify: OK" or "verify: CORRUPT". Warnings are states
the next open repairs by itself: an unflushed torn tail of a partition that
was not shut down cleanly (past its recovery point), indexes of segments that
recovery rebuilds, leftover files. They do not change the exit code.
Progress is shown on stderr when it is a terminal.
${EXIT_CODES_HELP}`)
    .action(async (o: { dir: string }) => {
      const dir = requireStoreDir(o.dir);
      const started = performance.now();
      const bar = progress(ctx, 'verify');
      let shown = false;
      const { totals, problems } = await verifyStore(getKernelsSync(), defaultStorage, dir, {
        onProgress: (done, total) => { shown = true; bar.update(done, total, `${mb(done)} / ${mb(total)} MB`); },
        onProblem: (p) => {
          if (ctx.isTTY && shown) ctx.stderr.write('\r\x1b[K');
          ctx.stdout.write(problemLine(p));
        },
      });
      bar.done();
      const corrupt = problems.filter((p) => p.severity === 'corrupt').length;
      const warnings = problems.length - corrupt;
      const secs = ((performance.now() - started) / 1000).toFixed(2);
      const what = `${totals.topics} topic${totals.topics === 1 ? '' : 's'}, ${totals.partitions} partition${totals.partitions === 1 ? '' : 's'}, ` +
        `${totals.segments} segment${totals.segments === 1 ? '' : 's'}, ${totals.batches} batches, ${totals.records} records, ${mb(totals.bytes)} MB in ${secs} s`;
      const w = `${warnings} warning${warnings === 1 ? '' : 's'}`;
      ctx.stdout.write(corrupt > 0 ? `verify: CORRUPT: ${corrupt} corrupt, ${w}; checked ${what}\n` : `verify: OK: ${w}; checked ${what}\n`);
      if (corrupt > 0) ctx.exitCode = EXIT.CORRUPTION;
    });
}

export function register(program: Command, ctx: CliContext): void {
  registerTopics(program, ctx);
  registerProduce(program, ctx);
  registerConsume(program, ctx);
  registerDump(program, ctx);
  registerVerify(program, ctx);
}
