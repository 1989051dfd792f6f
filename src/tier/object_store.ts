// A thin wrapper over an Apache OpenDAL Operator: the handful of operations
// tiering needs, each retried with capped exponential backoff (bounded in
// attempts and in total time) when OpenDAL reports a temporary failure, and
// every failure turned into a typed error:
//   - ObjectStoreUnavailableError: temporary failures outlasted the retries
//     (server down, connection refused or reset, timeouts, 5xx, throttling);
//   - ObjectStoreError: a permanent refusal (not found, permission denied,
//     bad configuration, unsupported operation), with OpenDAL's error kind.
// Per-request timeouts come from OpenDAL's TimeoutLayer, so no request can
// hang a retry loop.

import { Operator, TimeoutLayer, PresignedRequest } from 'opendal';
import { CorruptionError, InvalidArgumentError, ObjectStoreError, ObjectStoreUnavailableError } from '../errors.js';
import { ResolvedTierConfig } from './tier_config.js';

export interface ObjectStat {
  size: number;
  etag: string | null;
}

/** Counters of one ObjectStore (for status output and tests). */
export interface ObjectStoreCounters {
  requests: number;
  retries: number;
  failures: number;
  bytesWritten: number;
  bytesRead: number;
}

/** A streaming upload (multipart where the service supports it). */
export interface ObjectWriter {
  write(chunk: Buffer): Promise<void>;
  close(): Promise<void>;
}

/** What OpenDAL said went wrong. */
export interface OpenDalFailure {
  /** OpenDAL ErrorKind, e.g. 'NotFound', 'Unexpected', 'RateLimited'. */
  kind: string;
  /** True when a retry may succeed. */
  temporary: boolean;
}

/**
 * Classifies an error thrown by the OpenDAL binding. Its messages start with
 * "<Kind> (<status>)", status being permanent, temporary or persistent
 * (temporary errors that already outlasted an OpenDAL-level retry).
 */
export function classifyOpenDalError(err: unknown): OpenDalFailure {
  const msg = String((err as Error)?.message ?? err);
  const m = /^(\w+) \((permanent|temporary|persistent)\)/.exec(msg);
  if (!m) return { kind: 'Unexpected', temporary: false };
  const kind = m[1]!;
  return { kind, temporary: m[2] !== 'permanent' || kind === 'RateLimited' };
}

/** Options of one retried operation (overrides of the config). */
interface RetryPolicy { attempts: number; baseDelayMs: number; maxDelayMs: number; totalMs: number }

/**
 * OpenDAL's memory service keeps bytes per Operator. Operators with the same
 * options are shared within the process, so a memory "bucket" outlives a
 * store and can be restored from (tests, examples).
 */
const memoryOperators = new Map<string, Operator>();
function memoryOperator(options: Record<string, string>): Operator {
  const key = JSON.stringify(Object.entries(options).sort());
  let op = memoryOperators.get(key);
  if (!op) { op = new Operator('memory', options); memoryOperators.set(key, op); }
  return op;
}

/** Drops a shared memory bucket (tests). */
export function dropMemoryBucket(options: Record<string, string> = {}): void {
  memoryOperators.delete(JSON.stringify(Object.entries(options).sort()));
}

// Ref'd on purpose: an awaited operation keeps the process alive through its (bounded) retries.
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class ObjectStore {
  readonly service: string;
  readonly operator: Operator;
  readonly counters: ObjectStoreCounters = { requests: 0, retries: 0, failures: 0, bytesWritten: 0, bytesRead: 0 };
  private readonly policy: RetryPolicy;

  constructor(config: ResolvedTierConfig) {
    this.service = config.service;
    let op: Operator;
    try {
      op = config.service === 'memory' ? memoryOperator(config.options) : new Operator(config.service, config.options);
    } catch (err) {
      const f = classifyOpenDalError(err);
      throw new ObjectStoreError('open', config.service, f.kind, String((err as Error)?.message ?? err).split('\n')[0]!, { cause: err });
    }
    const timeout = new TimeoutLayer();
    timeout.timeout = config.requestTimeoutMs;
    timeout.ioTimeout = config.requestTimeoutMs;
    this.operator = op.layer(timeout.build());
    this.policy = {
      attempts: config.retryAttempts,
      baseDelayMs: config.retryBaseDelayMs,
      maxDelayMs: config.retryMaxDelayMs,
      totalMs: config.retryTotalMs,
    };
  }

  /** True when the service can presign GET requests (s3, gcs, azblob, ...; not fs or memory). */
  get canPresign(): boolean { return this.operator.capability().presignRead; }

  /**
   * True when the service takes an object in pieces of any size as they come
   * (fs, hdfs, ...: each write of a writer goes straight to the object).
   * False for services whose streamed writes are multipart uploads with a
   * minimum part size (s3, gcs, ...: one PUT is cheaper for objects below
   * the multipart threshold) or that cannot write in pieces at all (memory).
   */
  get streamsWrites(): boolean {
    if (this.streams === null) {
      const c = this.operator.capability();
      this.streams = c.writeCanMulti && (c.writeMultiMinSize ?? null) === null;
    }
    return this.streams;
  }
  private streams: boolean | null = null;

  /**
   * Runs fn, retrying temporary failures with capped exponential backoff and
   * jitter until the attempt or time budget is spent.
   */
  private async retry<T>(op: string, key: string, fn: () => Promise<T>): Promise<T> {
    const p = this.policy;
    const started = performance.now();
    let attempt = 0;
    for (;;) {
      attempt++;
      this.counters.requests++;
      try {
        return await fn();
      } catch (err) {
        if (err instanceof ObjectStoreError || err instanceof ObjectStoreUnavailableError || err instanceof InvalidArgumentError) throw err;
        const f = classifyOpenDalError(err);
        const elapsed = performance.now() - started;
        if (!f.temporary) {
          this.counters.failures++;
          throw new ObjectStoreError(op, key, f.kind, String((err as Error)?.message ?? err).split('\n')[0]!, { cause: err });
        }
        const delay = Math.min(p.maxDelayMs, p.baseDelayMs * 2 ** (attempt - 1)) * (0.5 + Math.random() * 0.5);
        if (attempt >= p.attempts || elapsed + delay > p.totalMs) {
          this.counters.failures++;
          throw new ObjectStoreUnavailableError(op, key, attempt, elapsed, { cause: err });
        }
        this.counters.retries++;
        await sleep(delay);
      }
    }
  }

  /** The whole object, or [offset, offset + size) of it. The range must lie inside the object. */
  async read(key: string, range?: { offset: number; size: number }): Promise<Buffer> {
    const opts = range ? { offset: BigInt(range.offset), size: BigInt(range.size) } : undefined;
    const buf = await this.retry('read', key, () => this.operator.read(key, opts));
    if (range && buf.length !== range.size) {
      throw new ObjectStoreError('read', key, 'Unexpected', `asked for ${range.size} bytes at ${range.offset}, got ${buf.length}`);
    }
    this.counters.bytesRead += buf.length;
    return buf;
  }

  /**
   * [offset, offset + size) of an object the caller knows to hold objectSize
   * bytes (a manifest entry). When the read fails and the object's size is
   * not objectSize (truncated, replaced), that is damage to the archive:
   * CorruptionError, whatever words the service used for a range past the end.
   */
  async readRangeOf(key: string, range: { offset: number; size: number }, objectSize: number): Promise<Buffer> {
    try {
      return await this.read(key, range);
    } catch (err) {
      if (err instanceof ObjectStoreError && err.kind !== 'NotFound') {
        const st = await this.stat(key).catch(() => null);
        if (st && st.size !== objectSize) {
          throw new CorruptionError(`archived object has ${st.size} bytes, the manifest says ${objectSize}`, { file: key, position: Math.min(st.size, range.offset) });
        }
      }
      throw err;
    }
  }

  /** Writes (replaces) a whole object in one request. */
  async write(key: string, data: Buffer): Promise<void> {
    await this.retry('write', key, () => this.operator.write(key, data));
    this.counters.bytesWritten += data.length;
  }

  /** True when the service can rename objects (file-system-like services: fs, hdfs, ...; not object stores or memory). */
  get canRename(): boolean { return this.operator.capability().rename; }

  /**
   * Replaces an object so that a reader, or a crash, sees the old bytes or
   * the new ones, never a mix. Object stores replace an object atomically on
   * PUT (and cannot rename), so there this is write(); services that write
   * files in place (OpenDAL's fs truncates the file, then writes it) get the
   * bytes in `<key>.tmp` first, then a rename over the key.
   */
  async writeAtomic(key: string, data: Buffer): Promise<void> {
    if (!this.canRename) return this.write(key, data);
    const tmp = `${key}.tmp`;
    await this.write(tmp, data);
    await this.retry('rename', key, () => this.operator.rename(tmp, key));
  }

  /**
   * A streaming writer (multipart upload on S3) with parts of chunkBytes, or,
   * without chunkBytes, each write() passed on as it comes (services that
   * stream natively, see streamsWrites). Writes must not overlap: await each
   * before the next, and the chunk given must stay unchanged until its
   * write() settles. Not retried as a whole: a failure surfaces from write()
   * or close() and the caller uploads the object again.
   */
  async writer(key: string, chunkBytes?: number): Promise<ObjectWriter> {
    if (chunkBytes !== undefined && (!Number.isSafeInteger(chunkBytes) || chunkBytes < 1)) {
      throw new InvalidArgumentError(`writer chunk must be a positive integer, got ${chunkBytes}`);
    }
    const opts = chunkBytes === undefined ? undefined : { chunk: BigInt(chunkBytes) };
    const w = await this.retry('write', key, () => this.operator.writer(key, opts));
    const self = this;
    const wrap = async (what: string, fn: () => Promise<void>) => {
      try { await fn(); } catch (err) {
        self.counters.failures++;
        const f = classifyOpenDalError(err);
        if (f.temporary) throw new ObjectStoreUnavailableError(what, key, 1, 0, { cause: err });
        throw new ObjectStoreError(what, key, f.kind, String((err as Error)?.message ?? err).split('\n')[0]!, { cause: err });
      }
    };
    return {
      async write(chunk: Buffer) { await wrap('write', () => w.write(chunk)); self.counters.bytesWritten += chunk.length; },
      async close() { await wrap('write', () => w.close()); },
    };
  }

  /** Size and ETag of an object, or null when it does not exist. */
  async stat(key: string): Promise<ObjectStat | null> {
    try {
      const m = await this.retry('stat', key, () => this.operator.stat(key));
      return { size: Number(m.contentLength ?? 0n), etag: m.etag };
    } catch (err) {
      if (err instanceof ObjectStoreError && err.kind === 'NotFound') return null;
      throw err;
    }
  }

  /** Deletes an object; deleting a missing object succeeds. */
  async delete(key: string): Promise<void> {
    await this.retry('delete', key, () => this.operator.delete(key));
  }

  /**
   * Keys of the objects under a directory (dir ends with '/'; '' is the
   * root). Recursive lists every object below; otherwise the direct children,
   * sub-directories ending with '/'.
   */
  async list(dir: string, recursive = false): Promise<string[]> {
    if (dir !== '' && !dir.endsWith('/')) throw new InvalidArgumentError(`list takes a directory ending with '/', got ${JSON.stringify(dir)}`);
    let entries;
    try {
      entries = await this.retry('list', dir, () => this.operator.list(dir, { recursive }));
    } catch (err) {
      if (err instanceof ObjectStoreError && err.kind === 'NotFound') return [];
      throw err;
    }
    const out: string[] = [];
    for (const e of entries) {
      const p = e.path();
      if (p === dir) continue;
      if (recursive && p.endsWith('/')) continue;
      out.push(p);
    }
    return out.sort();
  }

  /** A presigned GET request for an object, valid for expiresSec seconds. */
  async presignRead(key: string, expiresSec: number): Promise<PresignedRequest> {
    if (!Number.isSafeInteger(expiresSec) || expiresSec < 1 || expiresSec > 7 * 24 * 3600) {
      throw new InvalidArgumentError(`presign expiry must be 1..604800 seconds, got ${expiresSec}`);
    }
    if (!this.canPresign) throw new ObjectStoreError('presign', key, 'Unsupported', `the ${this.service} service cannot presign requests`);
    return this.retry('presign', key, () => this.operator.presignRead(key, expiresSec));
  }
}
