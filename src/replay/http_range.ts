// Byte ranges of one remote object over HTTP, with fetch only (no Node
// built-ins): works in browsers, Deno and Node.
//
// - read(start, length) sends `Range: bytes=start-end`. A 206 is checked
//   against the range asked for (Content-Range start, end and total; the body
//   length). A server that ignores Range answers 200 with the whole object:
//   that body is accepted when the object is at most maxWholeBodyBytes, and is
//   then consumed as one sequential stream that serves this and every later
//   forward read (skipping bytes that are not wanted), so memory stays at one
//   chunk either way. Later reads go straight to that mode.
// - readWhole(limit) fetches a small object (manifest, index) in one GET,
//   refusing bodies over the limit while they stream in.
// - Every request has an idle timeout (no byte for timeoutMs) and a total
//   timeout (requestTimeoutMs), both through AbortSignal; the caller's signal
//   aborts everything. 5xx, 429 and network failures are retried (idempotent
//   GETs) before any byte was used.
// - Lengths that allocate memory are the caller's own (chunk sizes, sizes
//   from a validated manifest) or are grown step by step under a limit; a
//   server-supplied header never sizes an allocation.

import { CorruptionError, InvalidArgumentError, SedimentError } from '../errors.js';
import {
  AbortedError, AccessDeniedError, BadResponseError, HttpError, NetworkError, ObjectChangedError, ObjectNotFoundError,
  RangeNotSupportedError, TimeoutError, redact,
} from './errors.js';

/** The part of `fetch` replay uses; pass your own (auth, proxies, tests). */
export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

export interface HttpOptions {
  /** fetch implementation (default: globalThis.fetch). */
  fetch?: FetchLike;
  /** Extra request headers (e.g. Authorization). Adding headers may force a CORS preflight. */
  headers?: Record<string, string>;
  /** Longest wait for the next byte, connecting included (default 30 000 ms). */
  timeoutMs?: number;
  /** Longest time one request may take in total (default 120 000 ms). */
  requestTimeoutMs?: number;
  /** Largest object replay downloads whole when the server ignores Range (default 64 MiB). */
  maxWholeBodyBytes?: number;
  /** Retries of a request after a 5xx, 429 or network failure (default 2). */
  retries?: number;
  /** First retry delay; doubles each retry (default 200 ms). */
  retryDelayMs?: number;
  /** Aborts every request (replay throws AbortedError). */
  signal?: AbortSignal;
}

export const DEFAULT_TIMEOUT_MS = 30_000;
export const DEFAULT_REQUEST_TIMEOUT_MS = 120_000;
export const DEFAULT_MAX_WHOLE_BODY_BYTES = 64 * 1024 * 1024;
export const DEFAULT_RETRIES = 2;
const MAX_RETRIES = 10;

/** Counters shared by every object of one replay. */
export interface HttpStats {
  /** HTTP requests sent (retries included). */
  requests: number;
  /** Body bytes received (including bytes skipped or discarded). */
  bytesReceived: number;
}

export function newHttpStats(): HttpStats { return { requests: 0, bytesReceived: 0 }; }

interface ResolvedHttpOptions {
  fetch: FetchLike;
  headers: Record<string, string>;
  timeoutMs: number;
  requestTimeoutMs: number;
  maxWholeBodyBytes: number;
  retries: number;
  retryDelayMs: number;
  signal: AbortSignal | undefined;
}

function positiveInt(v: unknown, name: string, def: number, max = Number.MAX_SAFE_INTEGER): number {
  if (v === undefined) return def;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1 || v > max) {
    throw new InvalidArgumentError(`${name} must be an integer in [1, ${max}], got ${String(v)}`);
  }
  return v;
}

export function resolveHttpOptions(o: HttpOptions = {}): ResolvedHttpOptions {
  const f = o.fetch ?? (globalThis.fetch ? globalThis.fetch.bind(globalThis) : undefined);
  if (typeof f !== 'function') throw new InvalidArgumentError('no fetch implementation: pass options.fetch');
  if (o.headers !== undefined && (o.headers === null || typeof o.headers !== 'object')) {
    throw new InvalidArgumentError('headers must be an object of strings');
  }
  const retries = o.retries === undefined ? DEFAULT_RETRIES : o.retries;
  if (!Number.isInteger(retries) || retries < 0 || retries > MAX_RETRIES) {
    throw new InvalidArgumentError(`retries must be an integer in [0, ${MAX_RETRIES}], got ${String(retries)}`);
  }
  return {
    fetch: f as FetchLike,
    headers: { ...(o.headers ?? {}) },
    timeoutMs: positiveInt(o.timeoutMs, 'timeoutMs', DEFAULT_TIMEOUT_MS, 3_600_000),
    requestTimeoutMs: positiveInt(o.requestTimeoutMs, 'requestTimeoutMs', DEFAULT_REQUEST_TIMEOUT_MS, 86_400_000),
    maxWholeBodyBytes: positiveInt(o.maxWholeBodyBytes, 'maxWholeBodyBytes', DEFAULT_MAX_WHOLE_BODY_BYTES, 0x7fffffff),
    retries,
    retryDelayMs: o.retryDelayMs === undefined ? 200 : positiveInt(o.retryDelayMs, 'retryDelayMs', 200, 60_000),
    signal: o.signal,
  };
}

/**
 * One request's abort controller: the caller's signal, an idle watchdog and a
 * total deadline. The watchdog is armed only while the request is being
 * waited on, so a slow consumer is never mistaken for a slow server.
 */
class RequestControl {
  readonly ctrl = new AbortController();
  timedOut = false;
  private last = 0;
  private armed = false;
  private idleTimer: ReturnType<typeof setTimeout> | undefined;
  private totalTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly onAbort: () => void;

  /**
   * Rejects when the request is aborted. Raced against every wait, so a
   * fetch implementation (or body stream) that ignores its signal still
   * cannot hang a replay.
   */
  readonly aborted: Promise<never>;

  constructor(private readonly o: ResolvedHttpOptions) {
    this.aborted = new Promise<never>((_resolve, reject) => {
      this.ctrl.signal.addEventListener('abort', () => reject(this.ctrl.signal.reason ?? new Error('aborted')), { once: true });
    });
    this.aborted.catch(() => undefined);
    this.onAbort = () => this.ctrl.abort(o.signal?.reason);
    o.signal?.addEventListener('abort', this.onAbort, { once: true });
    this.startDeadline();
  }

  /** Starts the requestTimeoutMs deadline (if not running). */
  startDeadline(): void {
    if (this.totalTimer !== undefined) return;
    this.totalTimer = setTimeout(() => this.fire(), this.o.requestTimeoutMs);
    unref(this.totalTimer);
  }

  /**
   * Stops the deadline while a kept-open body waits for the next read: time
   * the consumer spends elsewhere is not the server's.
   */
  stopDeadline(): void {
    if (this.totalTimer !== undefined) { clearTimeout(this.totalTimer); this.totalTimer = undefined; }
  }

  private fire(): void {
    if (this.ctrl.signal.aborted) return;
    this.timedOut = true;
    this.ctrl.abort(new Error('timeout'));
  }

  /** Starts (or continues) waiting: no progress for timeoutMs aborts. */
  arm(): void {
    this.last = Date.now();
    if (this.armed) return;
    this.armed = true;
    this.schedule(this.o.timeoutMs);
  }

  private schedule(ms: number): void {
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      if (!this.armed) return;
      const idle = Date.now() - this.last;
      if (idle >= this.o.timeoutMs) this.fire();
      else this.schedule(this.o.timeoutMs - idle);
    }, ms);
    unref(this.idleTimer);
  }

  progress(): void { this.last = Date.now(); }

  disarm(): void {
    this.armed = false;
    if (this.idleTimer !== undefined) { clearTimeout(this.idleTimer); this.idleTimer = undefined; }
  }

  dispose(): void {
    this.disarm();
    this.stopDeadline();
    this.o.signal?.removeEventListener('abort', this.onAbort);
  }

  /** Maps an exception raised while this request was active to a typed error. */
  translate(err: unknown, url: string): Error {
    if (this.timedOut) return new TimeoutError(url, this.o.timeoutMs);
    if (this.o.signal?.aborted) return new AbortedError(this.o.signal.reason);
    if (err instanceof SedimentError) return err;
    return new NetworkError(url, err);
  }
}

function unref(t: unknown): void {
  const u = (t as { unref?: () => void } | undefined)?.unref;
  if (typeof u === 'function') u.call(t);
}

/** A response body read in order, with bytes left over from the last chunk. */
class BodyReader {
  private reader: ReadableStreamDefaultReader<Uint8Array>;
  private rest: Uint8Array | null = null;
  /** Bytes consumed from the body so far. */
  pos = 0;
  done = false;

  constructor(readonly res: Response, readonly control: RequestControl, private readonly url: string, private readonly stats: HttpStats) {
    if (!res.body) throw new BadResponseError(url, 'response has no body');
    this.reader = res.body.getReader();
  }

  /** Next piece of the body (at most max bytes), or null at the end. */
  private async next(max: number): Promise<Uint8Array | null> {
    if (this.rest) {
      const r = this.rest;
      if (r.length <= max) { this.rest = null; return r; }
      this.rest = r.subarray(max);
      return r.subarray(0, max);
    }
    if (this.done) return null;
    let chunk: ReadableStreamReadResult<Uint8Array>;
    this.control.arm();
    try {
      chunk = await Promise.race([this.reader.read(), this.control.aborted]);
    } catch (err) {
      throw this.control.translate(err, this.url);
    } finally {
      this.control.disarm();
    }
    if (chunk.done) { this.done = true; return null; }
    const v = chunk.value;
    if (!(v instanceof Uint8Array)) throw new BadResponseError(this.url, 'response body is not bytes');
    this.stats.bytesReceived += v.length;
    if (v.length > max) { this.rest = v.subarray(max); return v.subarray(0, max); }
    return v;
  }

  /** Fills out[at, at+n); false when the body ends first. */
  async readInto(out: Uint8Array, at: number, n: number): Promise<boolean> {
    let filled = 0;
    while (filled < n) {
      const c = await this.next(n - filled);
      if (c === null) return false;
      out.set(c, at + filled);
      filled += c.length;
      this.pos += c.length;
    }
    return true;
  }

  /** Discards n bytes; false when the body ends first. */
  async skip(n: number): Promise<boolean> {
    let left = n;
    while (left > 0) {
      const c = await this.next(Math.min(left, 1 << 20));
      if (c === null) return false;
      left -= c.length;
      this.pos += c.length;
    }
    return true;
  }

  /** Reads the rest of the body, growing a buffer, failing past limit. Returns null when over the limit. */
  async readAll(limit: number): Promise<Uint8Array | null> {
    let buf = new Uint8Array(Math.min(limit + 1, 64 * 1024));
    let len = 0;
    while (true) {
      const c = await this.next(limit + 1 - len);
      if (c === null) return buf.subarray(0, len);
      if (len + c.length > limit) return null;
      if (len + c.length > buf.length) {
        const grown = new Uint8Array(Math.min(limit + 1, Math.max(buf.length * 2, len + c.length)));
        grown.set(buf.subarray(0, len));
        buf = grown;
      }
      buf.set(c, len);
      len += c.length;
      this.pos += c.length;
    }
  }

  /** True when the body has no more bytes (reads once if needed). */
  async atEnd(): Promise<boolean> {
    const c = await this.next(1);
    if (c === null) return true;
    this.rest = this.rest ? concat(c, this.rest) : c;
    return false;
  }

  cancel(): void {
    this.done = true;
    this.rest = null;
    this.reader.cancel().catch(() => undefined);
    this.control.dispose();
  }

  finish(): void {
    this.reader.releaseLock?.();
    this.control.dispose();
  }
}

function noop(): void { /* settles a gate */ }

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** `bytes a-b/total` (total may be `*`): numbers, or null when unparsable. */
export function parseContentRange(v: string): { start: number; end: number; total: number } | null {
  const m = /^\s*bytes\s+(\d{1,15})-(\d{1,15})\/(\d{1,15}|\*)\s*$/i.exec(v);
  if (!m) return null;
  const start = Number(m[1]);
  const end = Number(m[2]);
  const total = m[3] === '*' ? -1 : Number(m[3]);
  if (end < start || (total >= 0 && end >= total)) return null;
  return { start, end, total };
}

function parseLength(v: string | null): number {
  if (v === null) return -1;
  if (!/^\s*\d{1,15}\s*$/.test(v)) return -2;
  return Number(v);
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) { reject(new AbortedError(signal.reason)); return; }
    const t = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve(); }, ms);
    const onAbort = (): void => { clearTimeout(t); reject(new AbortedError(signal!.reason)); };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * One immutable remote object. `size` is the size the manifest gives
 * (-1 when unknown, e.g. the manifest itself): responses must agree with it.
 */
export class RemoteObject {
  readonly url: string;
  readonly name: string;
  readonly size: number;
  /** ETag of the first response that had one (compared with later ones). */
  etag: string | null = null;
  /** Set once the server answered a Range request with 200. */
  rangeIgnored = false;
  /** Set once the server answered a Range request with 206. */
  private rangesWork = false;
  private seq: BodyReader | null = null;
  /** Settles when the first read has found out whether ranges work. */
  private gate: Promise<void> | null = null;
  /** Orders reads that share one 200 body. */
  private chain: Promise<void> = Promise.resolve();
  private readonly o: ResolvedHttpOptions;
  private readonly stats: HttpStats;

  constructor(url: string, name: string, size: number, o: ResolvedHttpOptions, stats: HttpStats) {
    this.url = url;
    this.name = name;
    this.size = size;
    this.o = o;
    this.stats = stats;
  }

  /** Sends one GET (retrying 5xx/429/network failures); returns the response and its control. */
  private async request(range: string | null): Promise<{ res: Response; control: RequestControl }> {
    const o = this.o;
    for (let attempt = 0; ; attempt++) {
      if (o.signal?.aborted) throw new AbortedError(o.signal.reason);
      const control = new RequestControl(o);
      const headers: Record<string, string> = { ...o.headers };
      if (range !== null) headers['Range'] = range;
      this.stats.requests++;
      let res: Response;
      control.arm();
      try {
        const pending = Promise.resolve(o.fetch(this.url, { method: 'GET', headers, signal: control.ctrl.signal, redirect: 'follow' }));
        // If the abort wins, a response that still arrives is discarded.
        pending.then((r) => { if (control.ctrl.signal.aborted) r.body?.cancel().catch(noop); }, noop);
        res = await Promise.race([pending, control.aborted]);
      } catch (err) {
        control.dispose();
        const e = control.translate(err, this.url);
        if (e instanceof NetworkError && attempt < o.retries) { await sleep(o.retryDelayMs * 2 ** attempt, o.signal); continue; }
        throw e;
      } finally {
        control.disarm();
      }
      const s = res.status;
      if ((s >= 500 || s === 429) && attempt < o.retries) {
        res.body?.cancel().catch(() => undefined);
        control.dispose();
        await sleep(o.retryDelayMs * 2 ** attempt, o.signal);
        continue;
      }
      if (s === 200 || s === 206) {
        try {
          this.checkEtag(res);
        } catch (err) {
          res.body?.cancel().catch(noop);
          control.dispose();
          throw err;
        }
        return { res, control };
      }
      res.body?.cancel().catch(() => undefined);
      control.dispose();
      if (s === 404 || s === 410) throw new ObjectNotFoundError(this.url, `HTTP ${s}`);
      if (s === 401 || s === 403) throw new AccessDeniedError(s, this.url);
      if (s === 416) throw new CorruptionError(`the object is shorter than the manifest says (HTTP 416 for ${range})`, { file: redact(this.url), position: 0 });
      throw new HttpError(s, this.url);
    }
  }

  private checkEtag(res: Response): void {
    const tag = res.headers.get('etag');
    if (tag === null) return;
    if (this.etag === null) this.etag = tag;
    else if (this.etag !== tag) throw new ObjectChangedError(this.url, `ETag ${this.etag} became ${tag}`);
  }

  /** A 200 body replaces ranges: check its size against the manifest and the whole-body limit. */
  private adoptWholeBody(res: Response, control: RequestControl, keep = true): BodyReader {
    const cl = parseLength(res.headers.get('content-length'));
    const size = this.size >= 0 ? this.size : cl;
    if (this.size >= 0 && cl >= 0 && cl !== this.size) {
      res.body?.cancel().catch(() => undefined);
      control.dispose();
      throw new CorruptionError(`object is ${cl} bytes, the manifest says ${this.size}`, { file: redact(this.url), position: 0 });
    }
    if (size < 0 || size > this.o.maxWholeBodyBytes) {
      res.body?.cancel().catch(() => undefined);
      control.dispose();
      throw new RangeNotSupportedError(this.url, size, this.o.maxWholeBodyBytes);
    }
    if (keep) this.rangeIgnored = true;
    return new BodyReader(res, control, this.url, this.stats);
  }

  /**
   * Bytes [start, start+length) of the object, as a new array of exactly
   * `length` bytes. Forward reads after a 200 reuse that body.
   */
  read(start: number, length: number): Promise<Uint8Array> {
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(length) || start < 0 || length < 1 ||
      (this.size >= 0 && start + length > this.size)) {
      return Promise.reject(new InvalidArgumentError(`range [${start}, ${start + length}) is outside object ${this.name} of ${this.size} bytes`));
    }
    // The first read finds out whether the server honours Range; reads
    // issued meanwhile wait for it. Range reads then run concurrently;
    // after a 200 they share one body, so they run one after the other, in
    // the order they were issued.
    if (this.gate === null) {
      const p = this.readNow(start, length);
      this.gate = p.then(noop, noop);
      return p;
    }
    return this.gate.then(() => {
      if (!this.rangeIgnored) return this.readNow(start, length);
      const q = this.chain.then(() => this.readNow(start, length));
      this.chain = q.then(noop, noop);
      return q;
    });
  }

  /**
   * readOnce, again after a connection that broke in the middle of a body
   * (GET is idempotent): up to `retries` times, with the same backoff as
   * failed requests. A body kept open between reads (server without Range)
   * that the server closed meanwhile is requested again the same way.
   */
  private async readNow(start: number, length: number): Promise<Uint8Array> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.readOnce(start, length);
      } catch (err) {
        if (!(err instanceof NetworkError) || attempt >= this.o.retries || this.o.signal?.aborted) throw err;
        await sleep(this.o.retryDelayMs * 2 ** attempt, this.o.signal);
      }
    }
  }

  private async readOnce(start: number, length: number): Promise<Uint8Array> {
    const out = new Uint8Array(length);
    if (this.seq && this.seq.pos > start) { this.seq.cancel(); this.seq = null; }
    if (!this.seq && this.rangeIgnored) {
      const { res, control } = await this.request(null);
      if (res.status !== 200) { res.body?.cancel().catch(() => undefined); control.dispose(); throw new BadResponseError(this.url, `HTTP ${res.status} to a request without Range`); }
      this.seq = this.adoptWholeBody(res, control);
    }
    if (!this.seq) {
      const end = start + length - 1;
      const { res, control } = await this.request(`bytes=${start}-${end}`);
      if (res.status === 200 && this.rangesWork) {
        // A server that honoured ranges before sent the whole object this
        // time (some caches do): take the bytes from it, keep nothing.
        const body = this.adoptWholeBody(res, control, false);
        try {
          if (!(await body.skip(start)) || !(await body.readInto(out, 0, length))) {
            throw new CorruptionError(`object ended at byte ${body.pos}, before ${start + length}`, { file: redact(this.url), position: body.pos });
          }
        } finally {
          body.cancel();
        }
        return out;
      }
      if (res.status === 206) {
        this.rangesWork = true;
        const body = new BodyReader(res, control, this.url, this.stats);
        try {
          this.check206(res, start, end);
          if (!(await body.readInto(out, 0, length))) {
            throw new BadResponseError(this.url, `206 body ended before ${length} bytes of range ${start}-${end}`);
          }
        } finally {
          body.cancel();
        }
        return out;
      }
      this.seq = this.adoptWholeBody(res, control);
    }
    const seq = this.seq;
    seq.control.startDeadline();
    try {
      if (!(await seq.skip(start - seq.pos)) || !(await seq.readInto(out, 0, length))) {
        throw new CorruptionError(`object ended at byte ${seq.pos}, before ${start + length}`, { file: redact(this.url), position: seq.pos });
      }
      // Time until the next read is the consumer's, not the server's.
      seq.control.stopDeadline();
    } catch (err) {
      seq.cancel();
      this.seq = null;
      throw err;
    }
    if (this.size >= 0 && seq.pos === this.size) {
      // The whole object was read: it must end here.
      const atEnd = await seq.atEnd().catch((e: unknown) => { seq.cancel(); this.seq = null; throw e; });
      seq.cancel();
      this.seq = null;
      if (!atEnd) throw new CorruptionError(`object is longer than the ${this.size} bytes the manifest says`, { file: redact(this.url), position: this.size });
    }
    return out;
  }

  private check206(res: Response, start: number, end: number): void {
    const crh = res.headers.get('content-range');
    const cl = parseLength(res.headers.get('content-length'));
    if (crh === null) {
      // Not exposed (CORS) or not sent: the body length is still checked, and
      // every batch carries its own CRC.
      if (cl >= 0 && cl !== end - start + 1) throw new BadResponseError(this.url, `206 of ${cl} bytes for range ${start}-${end} without Content-Range`);
      return;
    }
    const cr = parseContentRange(crh);
    if (!cr) throw new BadResponseError(this.url, `unparsable Content-Range '${crh.slice(0, 80)}'`);
    if (cr.start !== start) throw new BadResponseError(this.url, `Content-Range ${crh} does not start at ${start}`);
    if (cr.total >= 0 && this.size >= 0 && cr.total !== this.size) {
      throw new CorruptionError(`object is ${cr.total} bytes, the manifest says ${this.size}`, { file: redact(this.url), position: 0 });
    }
    if (cr.end < end) throw new BadResponseError(this.url, `Content-Range ${crh} is shorter than the range ${start}-${end}`);
    if (cl >= 0 && cl !== cr.end - cr.start + 1) throw new BadResponseError(this.url, `Content-Length ${cl} does not match Content-Range ${crh}`);
  }

  /**
   * The whole object in one GET (manifest, index files). `limit` caps the
   * bytes accepted; when the object's size is known the body must match it.
   * Returns null when the body exceeds limit.
   */
  async readWhole(limit: number): Promise<Uint8Array | null> {
    const { res, control } = await this.request(null);
    if (res.status !== 200) {
      res.body?.cancel().catch(() => undefined);
      control.dispose();
      throw new BadResponseError(this.url, `HTTP ${res.status} to a request without Range`);
    }
    const cl = parseLength(res.headers.get('content-length'));
    const body = new BodyReader(res, control, this.url, this.stats);
    try {
      if (this.size >= 0 && cl >= 0 && cl !== this.size) {
        throw new CorruptionError(`object is ${cl} bytes, the manifest says ${this.size}`, { file: redact(this.url), position: 0 });
      }
      if (cl > limit) return null;
      const cap = this.size >= 0 ? Math.min(limit, this.size) : limit;
      const all = await body.readAll(cap);
      if (all === null) {
        if (this.size >= 0 && this.size <= limit) {
          throw new CorruptionError(`object is longer than the ${this.size} bytes the manifest says`, { file: redact(this.url), position: this.size });
        }
        return null;
      }
      if (this.size >= 0 && all.length !== this.size) {
        throw new CorruptionError(`object is ${all.length} bytes, the manifest says ${this.size}`, { file: redact(this.url), position: all.length });
      }
      return all;
    } finally {
      body.cancel();
    }
  }

  /** Cancels a body kept open for sequential reads. */
  close(): void {
    this.seq?.cancel();
    this.seq = null;
  }
}
