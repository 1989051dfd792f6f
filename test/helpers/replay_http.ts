// HTTP doubles for replay tests: an in-memory fetch with Range support (fast
// property tests without sockets, and a place to misbehave on purpose), a
// request log, and a raw node:http server for protocol-level abuse.

import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { FetchLike } from '../../src/replay/http_range.js';

export interface LoggedRequest { url: string; path: string; range: string | null; status: number }

export interface MemoryFetchOptions {
  /** Answer every request with 200 and the whole body (a server without Range support). */
  ignoreRange?: boolean;
  /** Requests are appended here. */
  log?: LoggedRequest[];
  /** Rewrites a response before it is returned (misbehaviour). */
  tamper?: (req: { path: string; range: string | null; attempt: number }, res: Response) => Response | Promise<Response>;
  /** Send an ETag derived from the bytes (default true). */
  etag?: boolean;
}

export const MEM_ORIGIN = 'http://archive.test';

/** Every file under root, keyed by URL path '/<rel path>'. */
export function filesOf(root: string): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  const walk = (dir: string, rel: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p, `${rel}/${e.name}`);
      else out.set(`${rel}/${e.name}`, new Uint8Array(fs.readFileSync(p)));
    }
  };
  walk(root, '');
  return out;
}

function etagOf(b: Uint8Array): string {
  let h = 2166136261;
  for (let i = 0; i < b.length; i += Math.max(1, b.length >>> 10)) h = Math.imul(h ^ b[i]!, 16777619);
  return `"${b.length.toString(16)}-${(h >>> 0).toString(16)}"`;
}

/** A fetch over a map of path -> bytes, with single-range support like a static server. */
export function memoryFetch(files: Map<string, Uint8Array>, o: MemoryFetchOptions = {}): FetchLike {
  const attempts = new Map<string, number>();
  return async (input: string, init: RequestInit): Promise<Response> => {
    const url = new URL(input);
    const p = decodeURIComponent(url.pathname);
    const headers = new Headers(init.headers);
    const range = headers.get('range');
    if (init.signal?.aborted) throw init.signal.reason ?? new DOMException('aborted', 'AbortError');
    const key = `${p} ${range}`;
    const attempt = (attempts.get(key) ?? 0) + 1;
    attempts.set(key, attempt);
    const body = files.get(p);
    let res: Response;
    if (!body) res = new Response('not found', { status: 404 });
    else {
      const h: Record<string, string> = { 'Accept-Ranges': 'bytes', 'Content-Type': 'application/octet-stream' };
      if (o.etag !== false) h['ETag'] = etagOf(body);
      const m = range && !o.ignoreRange ? /^bytes=(\d+)-(\d*)$/.exec(range) : null;
      if (m) {
        const start = Number(m[1]);
        const end = m[2] === '' ? body.length - 1 : Math.min(Number(m[2]), body.length - 1);
        if (start >= body.length) res = new Response(null, { status: 416, headers: { 'Content-Range': `bytes */${body.length}` } });
        else {
          h['Content-Range'] = `bytes ${start}-${end}/${body.length}`;
          h['Content-Length'] = String(end - start + 1);
          res = new Response(body.slice(start, end + 1), { status: 206, headers: h });
        }
      } else {
        h['Content-Length'] = String(body.length);
        res = new Response(body.slice(), { status: 200, headers: h });
      }
    }
    if (o.tamper) res = await o.tamper({ path: p, range, attempt }, res);
    o.log?.push({ url: input, path: p, range, status: res.status });
    return res;
  };
}

/** A response whose body is produced by pull() chunk by chunk (null ends it); honours the abort signal. */
export function streamResponse(status: number, headers: Record<string, string>, chunks: () => AsyncGenerator<Uint8Array | 'stall', void>, signal?: AbortSignal | null): Response {
  const it = chunks();
  const stream = new ReadableStream<Uint8Array>({
    async pull(c) {
      if (signal?.aborted) { c.error(signal.reason); return; }
      const n = await it.next();
      if (n.done) { c.close(); return; }
      if (n.value === 'stall') {
        await new Promise<void>((_resolve, reject) => {
          if (signal?.aborted) reject(signal.reason);
          signal?.addEventListener('abort', () => reject(signal.reason ?? new DOMException('aborted', 'AbortError')), { once: true });
        });
        return;
      }
      c.enqueue(n.value);
    },
    cancel() { it.return(undefined).catch(() => undefined); },
  });
  return new Response(stream, { status, headers });
}

/** A raw HTTP server whose handler can misbehave at the socket level. */
export async function rawServer(handler: (req: http.IncomingMessage, res: http.ServerResponse) => void): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${addr.port}`,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

/**
 * Rejects when p takes longer than ms: replay must never hang. onTimeout
 * stops whatever p was doing, so a failing test cannot leave work running
 * that would keep the test process alive.
 */
export function within<T>(p: Promise<T>, ms: number, what: string, onTimeout?: () => unknown): Promise<T> {
  let t: ReturnType<typeof setTimeout>;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<T>((_r, reject) => {
      t = setTimeout(() => {
        try { onTimeout?.(); } catch { /* best effort */ }
        reject(new Error(`${what} did not finish within ${ms} ms`));
      }, ms);
    }),
  ]);
}
