// Tiered storage configuration: which OpenDAL service to archive closed
// segments to, under which key prefix, and the policies around it (local
// retention, backpressure, retries, read cache). See docs/tiering.md.

import { InvalidArgumentError } from '../errors.js';

/** Options of the tiered storage (StoreOptions.tier). */
export interface TierConfig {
  /** OpenDAL service (scheme): 'fs', 'memory', 's3', 'gcs', 'azblob', ... */
  service: string;
  /** The service's OpenDAL options, e.g. { bucket, endpoint, region, access_key_id, secret_access_key } for s3, { root } for fs. */
  options?: Record<string, string>;
  /** Key prefix every object lives under ('' or e.g. 'prod/sediment'); no leading or trailing '/'. */
  prefix?: string;
  /**
   * Keep at most this many bytes of each partition locally once archived
   * (Kafka local.retention.bytes); older archived segments are evicted.
   * -1 (default): keep everything locally (the archive is a copy).
   */
  localRetentionBytes?: number;
  /** Evict archived segments whose newest record is older than this (Kafka local.retention.ms); -1 (default): off. */
  localRetentionMs?: number;
  /**
   * When a partition's local bytes not yet archived (closed segments waiting
   * for upload plus the active segment) pass this limit, appends throw
   * BackpressureError until uploads catch up. -1 (default): never refuse.
   */
  backpressureBytes?: number;
  /**
   * Upload in the background: on every roll, on open and every
   * checkIntervalMs (default true). false: only archiveNow() uploads (e.g.
   * `sediment tier upload` from a scheduler).
   */
  autoArchive?: boolean;
  /** Segment uploads in flight at the same time, across all partitions (default 4; a partition pipelines several). */
  uploadConcurrency?: number;
  /** Period of the background check for time-based local and remote retention, ms (default 60 000; -1: only on roll and archiveNow()). */
  checkIntervalMs?: number;
  /** Attempts per object store operation before ObjectStoreUnavailableError (default 6). */
  retryAttempts?: number;
  /** First retry delay, ms, doubled each attempt with jitter (default 100). */
  retryBaseDelayMs?: number;
  /** Largest delay between retries of one operation, ms (default 2000). */
  retryMaxDelayMs?: number;
  /** Total time one operation may spend retrying, ms (default 15 000). */
  retryTotalMs?: number;
  /** Timeout of one request (OpenDAL TimeoutLayer, both metadata and I/O), ms (default 30 000). */
  requestTimeoutMs?: number;
  /** Largest delay between background upload attempts while the store is unreachable, ms (default 30 000). */
  maxBackoffMs?: number;
  /** Bytes per ranged read of a remote segment (default 8 MiB). */
  chunkBytes?: number;
  /** Bytes of remote chunks kept in memory, shared by all partitions (default 64 MiB). */
  cacheBytes?: number;
  /** Chunks fetched ahead of a sequential remote read (default 2). */
  prefetchChunks?: number;
  /** Segments larger than this are uploaded in parts through a streaming writer (default 64 MiB). */
  multipartThresholdBytes?: number;
  /** Read every uploaded object back and compare its CRC-32C before listing it (default false: size check only). */
  verifyReadBack?: boolean;
  /**
   * Check every batch's own CRC-32C while uploading (default false: the
   * upload checks batch framing and offsets and records the whole object's
   * CRC-32C; batch CRCs are checked on every read, local or remote).
   */
  verifyBatchesOnUpload?: boolean;
}

/** A TierConfig with every default filled in. */
export interface ResolvedTierConfig extends Required<Omit<TierConfig, 'options'>> {
  options: Record<string, string>;
}

export const DEFAULT_TIER_SETTINGS = Object.freeze({
  prefix: '',
  localRetentionBytes: -1,
  localRetentionMs: -1,
  backpressureBytes: -1,
  autoArchive: true,
  uploadConcurrency: 4,
  checkIntervalMs: 60_000,
  retryAttempts: 6,
  retryBaseDelayMs: 100,
  retryMaxDelayMs: 2_000,
  retryTotalMs: 15_000,
  requestTimeoutMs: 30_000,
  maxBackoffMs: 30_000,
  chunkBytes: 8 << 20,
  cacheBytes: 64 << 20,
  prefetchChunks: 2,
  multipartThresholdBytes: 64 << 20,
  verifyReadBack: false,
  verifyBatchesOnUpload: false,
});

const KNOWN = new Set(['service', 'options', ...Object.keys(DEFAULT_TIER_SETTINGS)]);

function int(v: unknown, name: string, min: number, max: number, allowOff = false): number {
  if (allowOff && v === -1) return -1;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
    throw new InvalidArgumentError(`tier.${name} must be an integer in [${min}, ${max}]${allowOff ? ' or -1' : ''}, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** Normalises a key prefix: no leading, trailing or doubled '/', no '.' or '..' segments. */
export function normalizePrefix(prefix: unknown): string {
  if (typeof prefix !== 'string') throw new InvalidArgumentError(`tier.prefix must be a string, got ${JSON.stringify(prefix)}`);
  const parts = prefix.split('/').filter((s) => s.length > 0);
  for (const s of parts) {
    if (s === '.' || s === '..') throw new InvalidArgumentError(`tier.prefix may not contain '.' or '..' segments: ${JSON.stringify(prefix)}`);
  }
  return parts.join('/');
}

/** Validates a tier config and fills in defaults. Throws InvalidArgumentError. */
export function resolveTierConfig(c: TierConfig): ResolvedTierConfig {
  if (c === null || typeof c !== 'object') throw new InvalidArgumentError('tier config must be an object');
  for (const key of Object.keys(c)) if (!KNOWN.has(key)) throw new InvalidArgumentError(`unknown tier config '${key}'`);
  if (typeof c.service !== 'string' || !/^[a-z0-9_-]{1,64}$/.test(c.service)) {
    throw new InvalidArgumentError(`tier.service must be an OpenDAL scheme such as 'fs', 'memory' or 's3', got ${JSON.stringify(c.service)}`);
  }
  const options: Record<string, string> = {};
  if (c.options !== undefined) {
    if (c.options === null || typeof c.options !== 'object' || Array.isArray(c.options)) throw new InvalidArgumentError('tier.options must be an object of strings');
    for (const [k, v] of Object.entries(c.options)) {
      if (typeof v !== 'string') throw new InvalidArgumentError(`tier.options.${k} must be a string, got ${JSON.stringify(v)}`);
      options[k] = v;
    }
  }
  // With explicit credentials, OpenDAL's s3 service must not go looking for
  // others (config files, EC2 metadata): that hangs off AWS.
  if (c.service === 's3' && options.access_key_id && options.secret_access_key) {
    options.disable_config_load ??= 'true';
    options.disable_ec2_metadata ??= 'true';
  }
  const r: ResolvedTierConfig = { ...DEFAULT_TIER_SETTINGS, ...stripUndefined(c), options, service: c.service } as ResolvedTierConfig;
  r.prefix = normalizePrefix(r.prefix);
  int(r.localRetentionBytes, 'localRetentionBytes', 0, Number.MAX_SAFE_INTEGER, true);
  int(r.localRetentionMs, 'localRetentionMs', 0, Number.MAX_SAFE_INTEGER, true);
  int(r.backpressureBytes, 'backpressureBytes', 1, Number.MAX_SAFE_INTEGER, true);
  int(r.uploadConcurrency, 'uploadConcurrency', 1, 256);
  int(r.checkIntervalMs, 'checkIntervalMs', 10, 24 * 3600_000, true);
  int(r.retryAttempts, 'retryAttempts', 1, 100);
  int(r.retryBaseDelayMs, 'retryBaseDelayMs', 0, 60_000);
  int(r.retryMaxDelayMs, 'retryMaxDelayMs', 0, 600_000);
  int(r.retryTotalMs, 'retryTotalMs', 0, 3600_000);
  int(r.requestTimeoutMs, 'requestTimeoutMs', 100, 3600_000);
  int(r.maxBackoffMs, 'maxBackoffMs', 10, 3600_000);
  int(r.chunkBytes, 'chunkBytes', 4096, 256 << 20);
  int(r.cacheBytes, 'cacheBytes', 0, 64 * 1024 ** 3);
  int(r.prefetchChunks, 'prefetchChunks', 0, 64);
  int(r.multipartThresholdBytes, 'multipartThresholdBytes', 5 << 20, 5 * 1024 ** 3);
  if (typeof r.autoArchive !== 'boolean') throw new InvalidArgumentError('tier.autoArchive must be a boolean');
  if (typeof r.verifyReadBack !== 'boolean') throw new InvalidArgumentError('tier.verifyReadBack must be a boolean');
  if (typeof r.verifyBatchesOnUpload !== 'boolean') throw new InvalidArgumentError('tier.verifyBatchesOnUpload must be a boolean');
  if (r.retryMaxDelayMs < r.retryBaseDelayMs) throw new InvalidArgumentError('tier.retryMaxDelayMs must be >= tier.retryBaseDelayMs');
  return r;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

/** The config with secrets masked, for status output and logs. */
export function describeTierConfig(c: ResolvedTierConfig): { service: string; prefix: string; options: Record<string, string> } {
  const options: Record<string, string> = {};
  for (const [k, v] of Object.entries(c.options)) options[k] = /secret|password|token|key_id|credential|sas|account_key/i.test(k) ? '***' : v;
  return { service: c.service, prefix: c.prefix, options };
}
