// `sediment serve --dir D [--port P] [--host H]`: a small HTTP server for the
// replay page (web/) and an archive directory, so a person can point a
// browser at archived partitions without setting up a bucket.
//
//   /                 redirects to /web/
//   /web/...          the page (plain HTML + ES modules)
//   /dist/src/...     the built modules the page imports (no bundler)
//   /archive/...      files under D, with HTTP Range (206/416), ETag, CORS
//   /api/partitions   JSON list of the manifests found under D
//
// D is an OpenDAL fs tier root (`<prefix>/<h>/<topic>-<n>/manifest.json`) or
// any directory holding archived partitions; manifests are found by walking
// it (bounded depth and count). Only GET, HEAD and OPTIONS are served; paths
// cannot leave their root (no `..`, no symlinks out). Meant for local use:
// it binds 127.0.0.1 unless told otherwise.

import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as http from 'node:http';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { CliContext } from './context.js';
import { InvalidArgumentError } from '../errors.js';
import { parseManifest, manifestEndOffset } from '../replay/manifest_reader.js';

/** The headers browsers need to read ranges cross-origin (also documented in docs/replay.md). */
export const CORS_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Allow-Methods': 'GET, HEAD, OPTIONS',
  'Access-Control-Allow-Headers': 'Range, If-Match, If-None-Match, Authorization',
  'Access-Control-Expose-Headers': 'Content-Range, Accept-Ranges, Content-Length, ETag',
  'Access-Control-Max-Age': '600',
});

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/plain; charset=utf-8',
};

/** Largest directory walk when listing manifests. */
const MAX_WALK_DEPTH = 6;
const MAX_WALK_DIRS = 20_000;
const MAX_LISTED_MANIFEST_BYTES = 64 << 20;

export interface ServeOptions {
  /** Archive directory served under /archive/. */
  dir: string;
  /** TCP port (0: any free port). Default 8080. */
  port?: number;
  /** Address to bind. Default 127.0.0.1. */
  host?: string;
  /** Package root holding web/ and dist/src/ (default: found from this module). */
  packageRoot?: string;
  /** Called with one line per request (method, path, status, bytes). */
  log?: (line: string) => void;
}

export interface RunningServer {
  /** Base URL, e.g. http://127.0.0.1:8080/ */
  url: string;
  port: number;
  server: http.Server;
  close(): Promise<void>;
}

/** The package root: dist/src/cli/ -> three levels up. */
export function defaultPackageRoot(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
}

/** One summary line of /api/partitions. */
export interface PartitionListing {
  /** URL path of the manifest, e.g. /archive/ab12cd34/events-0/manifest.json */
  manifest: string;
  topic?: string;
  partition?: number;
  segments?: number;
  logStartOffset?: number;
  logEndOffset?: number;
  firstTimestamp?: number;
  maxTimestamp?: number;
  bytes?: number;
  /** Why the manifest could not be used. */
  error?: string;
}

/** Finds manifest.json files under root (bounded walk) and summarises them. */
export async function listPartitions(root: string): Promise<PartitionListing[]> {
  const out: PartitionListing[] = [];
  let dirs = 0;
  const walk = async (dir: string, rel: string[], depth: number): Promise<void> => {
    if (depth > MAX_WALK_DEPTH || ++dirs > MAX_WALK_DIRS) return;
    let entries: fs.Dirent[];
    try { entries = await fsp.readdir(dir, { withFileTypes: true }); } catch { return; }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      if (e.isDirectory()) await walk(path.join(dir, e.name), [...rel, e.name], depth + 1);
      else if (e.isFile() && e.name === 'manifest.json') {
        const urlPath = '/archive/' + [...rel, e.name].map(encodeURIComponent).join('/');
        const item: PartitionListing = { manifest: urlPath };
        try {
          const st = await fsp.stat(path.join(dir, e.name));
          if (st.size > MAX_LISTED_MANIFEST_BYTES) throw new Error(`manifest of ${st.size} bytes is too large`);
          const m = parseManifest(await fsp.readFile(path.join(dir, e.name)));
          const segs = m.segments;
          Object.assign(item, {
            topic: m.topic, partition: m.partition, segments: segs.length, logStartOffset: m.logStartOffset,
            logEndOffset: manifestEndOffset(m),
            firstTimestamp: segs.length > 0 ? segs[0]!.firstTimestamp : undefined,
            maxTimestamp: segs.reduce((mx, s) => Math.max(mx, s.maxTimestamp), -Infinity),
            bytes: segs.reduce((n, s) => n + s.objects.log.size, 0),
          });
          if (segs.length === 0) item.maxTimestamp = undefined;
        } catch (err) {
          item.error = (err as Error).message;
        }
        out.push(item);
      }
    }
  };
  await walk(root, [], 0);
  return out;
}

/** Maps a URL path below a root to a file path, or null when it would leave the root or is malformed. */
export function safeJoin(root: string, urlPath: string): string | null {
  const parts: string[] = [];
  for (const raw of urlPath.split('/')) {
    if (raw === '') continue;
    let seg: string;
    try { seg = decodeURIComponent(raw); } catch { return null; }
    if (seg === '.' || seg === '..' || seg.includes('/') || seg.includes('\\') || seg.includes('\0')) return null;
    parts.push(seg);
  }
  const full = path.resolve(root, ...parts);
  const rel = path.relative(root, full);
  if (rel.startsWith('..') || path.isAbsolute(rel)) return null;
  return full;
}

/** Parses a Range header against a size: a single range, 'unsatisfiable', or null (ignore, send 200). */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | null {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return null; // multiple or malformed ranges: whole body (RFC 9110 allows ignoring)
  let start: number;
  let end: number;
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0) return 'unsatisfiable';
    start = Math.max(0, size - n);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    if (m[2] !== '' && Number(m[2]) < start) return null;
  }
  if (!Number.isSafeInteger(start) || start >= size) return 'unsatisfiable';
  return { start, end };
}

async function sendFile(req: http.IncomingMessage, res: http.ServerResponse, root: string, urlPath: string, range: boolean): Promise<number> {
  const file = safeJoin(root, urlPath);
  if (!file) return sendText(res, 400, 'bad path');
  let real: string;
  let st: fs.Stats;
  try {
    real = await fsp.realpath(file);
    const realRoot = await fsp.realpath(root);
    const rel = path.relative(realRoot, real);
    if (rel.startsWith('..') || path.isAbsolute(rel)) return sendText(res, 404, 'not found');
    st = await fsp.stat(real);
  } catch {
    return sendText(res, 404, 'not found');
  }
  if (st.isDirectory()) {
    if (!urlPath.endsWith('/')) { res.writeHead(301, { Location: `${urlPath}/` }); res.end(); return 301; }
    return sendFile(req, res, root, urlPath + 'index.html', range);
  }
  if (!st.isFile()) return sendText(res, 404, 'not found');
  const size = st.size;
  const etag = `"${size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`;
  const headers: Record<string, string | number> = {
    'Content-Type': MIME[path.extname(real).toLowerCase()] ?? 'application/octet-stream',
    'ETag': etag,
    'Last-Modified': st.mtime.toUTCString(),
    // A local tool: files change under it (manifests are rewritten), and a
    // browser cache would only add disk writes to every read.
    'Cache-Control': 'no-store',
  };
  if (range) headers['Accept-Ranges'] = 'bytes';
  let start = 0;
  let end = size - 1;
  let status = 200;
  if (range) {
    const r = parseRange(req.headers.range, size);
    if (r === 'unsatisfiable') {
      res.writeHead(416, { ...headers, 'Content-Range': `bytes */${size}`, 'Content-Length': 0 });
      res.end();
      return 416;
    }
    if (r) { start = r.start; end = r.end; status = 206; headers['Content-Range'] = `bytes ${start}-${end}/${size}`; }
  }
  headers['Content-Length'] = size === 0 ? 0 : end - start + 1;
  res.writeHead(status, headers);
  if (req.method === 'HEAD' || size === 0) { res.end(); return status; }
  await new Promise<void>((resolve) => {
    const stream = fs.createReadStream(real, { start, end, highWaterMark: 256 * 1024 });
    stream.on('error', () => { res.destroy(); resolve(); });
    res.on('close', () => { stream.destroy(); resolve(); });
    stream.pipe(res);
  });
  return status;
}

function sendText(res: http.ServerResponse, status: number, text: string): number {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
  return status;
}

function sendJson(res: http.ServerResponse, value: unknown): number {
  const body = JSON.stringify(value, null, 2) + '\n';
  res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
  res.end(body);
  return 200;
}

/** Starts the server; resolves once it listens. */
export async function startServer(opts: ServeOptions): Promise<RunningServer> {
  const dir = path.resolve(opts.dir);
  let st: fs.Stats;
  try { st = await fsp.stat(dir); } catch { throw new InvalidArgumentError(`archive directory ${dir} does not exist`); }
  if (!st.isDirectory()) throw new InvalidArgumentError(`${dir} is not a directory`);
  const port = opts.port ?? 8080;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError(`port must be an integer in [0, 65535], got ${port}`);
  const host = opts.host ?? '127.0.0.1';
  const pkg = path.resolve(opts.packageRoot ?? defaultPackageRoot());
  const webRoot = path.join(pkg, 'web');
  const distRoot = path.join(pkg, 'dist', 'src');
  const server = http.createServer((req, res) => {
    const t0 = Date.now();
    handle(req, res).then((status) => {
      opts.log?.(`${req.method} ${req.url} ${status} ${Date.now() - t0}ms`);
    }, (err: unknown) => {
      opts.log?.(`${req.method} ${req.url} failed: ${(err as Error)?.message}`);
      if (!res.headersSent) sendText(res, 500, 'internal error'); else res.destroy();
    });
  });
  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<number> {
    for (const [k, v] of Object.entries(CORS_HEADERS)) res.setHeader(k, v);
    if (req.method === 'OPTIONS') { res.writeHead(204); res.end(); return 204; }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD, OPTIONS');
      return sendText(res, 405, 'method not allowed');
    }
    let pathname: string;
    try { pathname = new URL(req.url ?? '/', 'http://localhost').pathname; } catch { return sendText(res, 400, 'bad URL'); }
    if (pathname === '/' || pathname === '/index.html') { res.writeHead(302, { Location: '/web/' }); res.end(); return 302; }
    if (pathname === '/api/partitions') return sendJson(res, { dir, partitions: await listPartitions(dir) });
    if (pathname.startsWith('/archive/')) return sendFile(req, res, dir, pathname.slice('/archive'.length), true);
    if (pathname === '/web') { res.writeHead(301, { Location: '/web/' }); res.end(); return 301; }
    if (pathname.startsWith('/web/')) return sendFile(req, res, webRoot, pathname.slice('/web'.length), true);
    if (pathname.startsWith('/dist/src/')) return sendFile(req, res, distRoot, pathname.slice('/dist/src'.length), true);
    return sendText(res, 404, 'not found');
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => { server.off('error', reject); resolve(); });
  });
  const addr = server.address();
  const boundPort = typeof addr === 'object' && addr ? addr.port : port;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shownHost}:${boundPort}/`,
    port: boundPort,
    server,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections?.();
    }),
  };
}

export function register(program: Command, ctx: CliContext): void {
  program
    .command('serve')
    .description('serve the replay page and an archive directory over HTTP (Range, CORS) for browsers')
    .requiredOption('--dir <dir>', 'archive directory: an OpenDAL fs tier root or a directory of archived partitions')
    .option('--port <port>', 'TCP port (0: any free port)', '8080')
    .option('--host <host>', 'address to bind', '127.0.0.1')
    .option('--quiet', 'do not log requests')
    .action(async (o: { dir: string; port: string; host: string; quiet?: boolean }) => {
      if (!/^\d{1,5}$/.test(o.port)) throw new InvalidArgumentError(`--port must be a number, got ${o.port}`);
      const srv = await startServer({
        dir: o.dir, port: Number(o.port), host: o.host,
        log: o.quiet ? undefined : (line) => ctx.stderr.write(line + '\n'),
      });
      const parts = await listPartitions(path.resolve(o.dir));
      ctx.stdout.write(`serving ${path.resolve(o.dir)} (${parts.length} archived partition${parts.length === 1 ? '' : 's'})\n` +
        `page:    ${srv.url}web/\narchive: ${srv.url}archive/\n`);
      // Runs until interrupted.
      await new Promise<void>((resolve) => {
        const stop = (): void => { process.off('SIGINT', stop); process.off('SIGTERM', stop); srv.close().then(resolve); };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
    });
}
