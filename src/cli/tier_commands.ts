// Tiered storage commands of the `sediment` CLI (docs/tiering.md):
//
//   sediment tier status  --dir D --tier tier.json [--topic T] [--json]
//   sediment tier upload  --dir D --tier tier.json [--topic T] [--roll]
//   sediment tier restore --dir D --tier tier.json [--topic T...] [--metadata-only]
//
// The object store is given as a JSON file holding a TierConfig (--tier), or
// with --service / --option key=value / --prefix (options on the command
// line are visible to other users of the machine: prefer the file for
// credentials). status opens the store read-only (it works next to a running
// writer); upload and restore open it as its writer (exit 4 while another
// process holds the lock). Long uploads and restores draw a progress bar on
// a terminal.

import * as fs from 'node:fs';
import { Command } from 'commander';
import { CliContext, progress } from './context.js';
import { Store } from '../store.js';
import { InvalidArgumentError } from '../errors.js';
import { TierConfig, resolveTierConfig } from '../tier/tier_config.js';
import { PartitionTierStatus } from '../tier/archiver.js';

interface TierFlags { tier?: string; service?: string; option?: string[]; prefix?: string }

/** The tier config from --tier <file> or --service/--option/--prefix. */
export function tierConfigFrom(o: TierFlags): TierConfig {
  if (o.tier && o.service) throw new InvalidArgumentError('give either --tier <file> or --service, not both');
  let cfg: TierConfig;
  if (o.tier) {
    let raw: string;
    try { raw = fs.readFileSync(o.tier, 'utf8'); } catch (e) {
      throw new InvalidArgumentError(`cannot read tier config ${o.tier}: ${(e as Error).message}`);
    }
    try { cfg = JSON.parse(raw) as TierConfig; } catch (e) {
      throw new InvalidArgumentError(`tier config ${o.tier} is not valid JSON: ${(e as Error).message}`);
    }
  } else if (o.service) {
    const options: Record<string, string> = {};
    for (const pair of o.option ?? []) {
      const eq = pair.indexOf('=');
      if (eq <= 0) throw new InvalidArgumentError(`--option expects key=value, got '${pair}'`);
      options[pair.slice(0, eq).trim()] = pair.slice(eq + 1);
    }
    cfg = { service: o.service, options };
  } else {
    throw new InvalidArgumentError('the object store is missing: give --tier <file.json> or --service <name> [--option key=value ...]');
  }
  if (o.prefix !== undefined) cfg = { ...cfg, prefix: o.prefix };
  resolveTierConfig(cfg);
  return cfg;
}

function tierOptions(c: Command): Command {
  return c
    .requiredOption('--dir <dir>', 'store directory')
    .option('--tier <file>', 'JSON file with the tier config: {"service": "s3", "options": {...}, "prefix": "..."}')
    .option('--service <name>', 'OpenDAL service instead of --tier: s3, fs, gcs, azblob, ...')
    .option('--option <key=value...>', 'an OpenDAL option of --service (repeatable)', [])
    .option('--prefix <prefix>', 'key prefix in the object store (overrides the file)');
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

function statusLines(rows: PartitionTierStatus[]): string[] {
  const head = ['partition', 'archived', 'archive offsets', 'local offsets', 'waiting', 'manifest'];
  const body = rows.map((r) => [
    `${r.topic}-${r.partition}`,
    `${r.archivedSegments} seg, ${formatBytes(r.archivedBytes)}`,
    r.remoteLogStartOffset === null ? '-' : `${r.remoteLogStartOffset}..${r.archivedUpTo - 1}`,
    r.localLogStartOffset < 0 ? '-' : `${r.localLogStartOffset}..${r.logEndOffset - 1}`,
    `${r.pendingSegments} seg, ${formatBytes(r.unarchivedBytes)}`,
    r.manifestConfirmed ? `v${r.manifestVersion}` : `v${r.manifestVersion} (local copy)`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cols: string[]) => cols.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  const out = [line(head), ...body.map(line)];
  for (const r of rows) if (r.lastError) out.push(`${r.topic}-${r.partition}: ${r.lastError.code}: ${r.lastError.message}`);
  return out;
}

export function register(program: Command, ctx: CliContext): void {
  const tier = program.command('tier').description('tiered storage: archive status, uploads, restore from the object store');

  tierOptions(tier.command('status'))
    .description('what is archived, what waits for upload, per partition (read-only; works next to a running writer)')
    .option('--topic <name>', 'only this topic')
    .option('--json', 'print JSON')
    .action(async (o: TierFlags & { dir: string; topic?: string; json?: boolean }) => {
      const cfg = tierConfigFrom(o);
      const store = await Store.open(o.dir, { readOnly: true, retentionCheckMs: -1, tier: { ...cfg, autoArchive: false } });
      try {
        const t = store.tier!;
        let unreachable: string | null = null;
        // Opening loaded the manifests when it could; ask again for the error if it could not.
        if (t.status(o.topic).partitions.some((p) => !p.manifestConfirmed)) {
          try { await t.refresh(o.topic); } catch (e) { unreachable = (e as Error).message; }
        }
        const st = t.status(o.topic);
        if (o.json) {
          ctx.stdout.write(JSON.stringify({ ...st, reachable: unreachable === null, error: unreachable }, null, 2) + '\n');
        } else {
          ctx.stdout.write(`object store: ${st.service}${st.prefix ? ` prefix ${st.prefix}` : ''}${unreachable ? ` (unreachable: ${unreachable})` : ''}\n`);
          for (const l of statusLines(st.partitions)) ctx.stdout.write(l + '\n');
        }
        if (unreachable) ctx.exitCode = 5;
      } finally {
        await store.close();
      }
    });

  tierOptions(tier.command('upload'))
    .description('archive every closed segment not yet in the object store, now')
    .option('--topic <name>', 'only this topic')
    .option('--roll', 'roll non-empty active segments first, so everything appended so far is archived')
    .action(async (o: TierFlags & { dir: string; topic?: string; roll?: boolean }) => {
      const cfg = tierConfigFrom(o);
      const store = await Store.open(o.dir, { retentionCheckMs: -1, create: false, tier: { ...cfg, autoArchive: false } });
      try {
        const t = store.tier!;
        await t.refresh(o.topic);
        const total = t.pendingBytes({ topic: o.topic, roll: o.roll });
        const before = t.status(o.topic).partitions.reduce((n, s) => n + s.uploadedSegments, 0);
        const bar = progress(ctx, 'upload');
        let done = 0;
        const started = performance.now();
        await t.archiveNow({
          topic: o.topic,
          roll: o.roll,
          onProgress: (e) => { done += e.bytes; bar.update(done, total, formatBytes(done)); },
        });
        bar.update(total, total, formatBytes(done));
        bar.done();
        const secs = (performance.now() - started) / 1000;
        const st = t.status(o.topic);
        const segs = st.partitions.reduce((n, s) => n + s.uploadedSegments, 0) - before;
        ctx.stdout.write(`uploaded ${segs} segment(s), ${formatBytes(done)} in ${secs.toFixed(1)} s` +
          (secs > 0 && done > 0 ? ` (${formatBytes(Math.round(done / secs))}/s)` : '') + '\n');
        for (const l of statusLines(st.partitions)) ctx.stdout.write(l + '\n');
      } finally {
        await store.close();
      }
    });

  tierOptions(tier.command('restore'))
    .description('rebuild topics in --dir from the object store alone (downloads and verifies every archived segment)')
    .option('--topic <name...>', 'only these topics (default: every topic in the archive)')
    .option('--metadata-only', 'download nothing: the archived offsets are read from the object store')
    .action(async (o: TierFlags & { dir: string; topic?: string[]; metadataOnly?: boolean }) => {
      const cfg = tierConfigFrom(o);
      const bar = progress(ctx, 'restore');
      let done = 0;
      const started = performance.now();
      const store = await Store.restore(o.dir, cfg, {
        topics: o.topic,
        download: o.metadataOnly ? 'none' : 'all',
        onProgress: (e) => { done = e.doneBytes; bar.update(e.doneBytes, e.totalBytes, formatBytes(e.doneBytes)); },
      });
      try {
        bar.done();
        const secs = (performance.now() - started) / 1000;
        const topics = store.listTopics();
        ctx.stdout.write(`restored ${topics.length} topic(s) (${topics.join(', ')}), downloaded ${formatBytes(done)} in ${secs.toFixed(1)} s\n`);
        for (const name of topics) {
          for (const p of store.topic(name).partitions) ctx.stdout.write(`${p.name}: offsets ${p.logStartOffset}..${p.logEndOffset - 1}, next offset ${p.logEndOffset}\n`);
        }
      } finally {
        await store.close();
      }
    });
}
