// Typed errors. Every error sediment throws is a SedimentError with a stable
// `code` a script can switch on; subclasses carry the facts needed to act.

export class SedimentError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** An argument is the wrong type or out of range. Nothing was written. */
export class InvalidArgumentError extends SedimentError {
  constructor(message: string) { super('ERR_INVALID_ARGUMENT', message); }
}

/** A record or batch exceeds a configured or format limit. Nothing was written. */
export class RecordTooLargeError extends SedimentError {
  readonly size: number;
  readonly limit: number;
  constructor(size: number, limit: number, what = 'record') {
    super('ERR_RECORD_TOO_LARGE', `${what} of ${size} bytes exceeds the limit of ${limit} bytes`);
    this.size = size;
    this.limit = limit;
  }
}

/** Stored bytes failed validation (CRC, magic, lengths, framing). Never returned as data. */
export class CorruptionError extends SedimentError {
  readonly file: string | undefined;
  readonly position: number;
  readonly offset: number | undefined;
  readonly reason: string;
  constructor(reason: string, details: { file?: string; position: number; offset?: number }) {
    const where = `${details.file ?? '<buffer>'} at byte ${details.position}` +
      (details.offset !== undefined ? ` (offset ${details.offset})` : '');
    super('ERR_CORRUPTION', `corrupt data in ${where}: ${reason}`);
    this.file = details.file;
    this.position = details.position;
    this.offset = details.offset;
    this.reason = reason;
  }
}

/** A batch uses a compression codec this build cannot read (snappy, lz4, zstd). */
export class UnsupportedCodecError extends SedimentError {
  readonly codec: number;
  constructor(codec: number) {
    const names = ['none', 'gzip', 'snappy', 'lz4', 'zstd'];
    super('ERR_UNSUPPORTED_CODEC', `compression codec ${names[codec] ?? codec} (${codec}) is not supported; only none and gzip are`);
    this.codec = codec;
  }
}

/** WebAssembly memory could not grow, or the module trapped. */
export class WasmMemoryError extends SedimentError {
  constructor(message: string, options?: { cause?: unknown }) { super('ERR_WASM_MEMORY', message, options); }
}

/** An offset (or timestamp) outside the log's range [logStartOffset, logEndOffset]. */
export class OffsetOutOfRangeError extends SedimentError {
  readonly offset: number;
  readonly logStartOffset: number;
  readonly logEndOffset: number;
  constructor(offset: number, logStartOffset: number, logEndOffset: number, what = 'offset') {
    super('ERR_OFFSET_OUT_OF_RANGE', `${what} ${offset} is outside the log [${logStartOffset}, ${logEndOffset}]`);
    this.offset = offset;
    this.logStartOffset = logStartOffset;
    this.logEndOffset = logEndOffset;
  }
}

/** Another writer holds the store directory's lock. */
export class StoreLockedError extends SedimentError {
  readonly dir: string;
  readonly holderPid: number | undefined;
  constructor(dir: string, holderPid?: number) {
    super('ERR_STORE_LOCKED', `store ${dir} is locked by another writer${holderPid ? ` (pid ${holderPid})` : ''}; open it with readOnly: true to read`);
    this.dir = dir;
    this.holderPid = holderPid;
  }
}

/** The store, topic or partition was closed. */
export class ClosedError extends SedimentError {
  constructor(what: string) { super('ERR_CLOSED', `${what} is closed`); }
}

/** A write was attempted on a store opened read-only. */
export class ReadOnlyError extends SedimentError {
  constructor(what: string) { super('ERR_READ_ONLY', `${what} is open read-only`); }
}

export class TopicNotFoundError extends SedimentError {
  readonly topic: string;
  constructor(topic: string) { super('ERR_TOPIC_NOT_FOUND', `topic '${topic}' does not exist`); this.topic = topic; }
}

export class TopicExistsError extends SedimentError {
  readonly topic: string;
  constructor(topic: string) { super('ERR_TOPIC_EXISTS', `topic '${topic}' already exists`); this.topic = topic; }
}

/** A storage operation failed (I/O error); the message names the file. */
export class StorageError extends SedimentError {
  readonly path: string;
  constructor(path: string, op: string, cause: unknown) {
    super('ERR_STORAGE', `${op} ${path} failed: ${(cause as Error)?.message ?? String(cause)}`, { cause });
    this.path = path;
  }
}

/** An object store (tiered storage) refused an operation for good: permission, configuration, a missing object. */
export class ObjectStoreError extends SedimentError {
  /** The operation: 'read', 'write', 'stat', 'delete', 'list', 'presign'. */
  readonly op: string;
  /** The object key (or prefix) involved. */
  readonly key: string;
  /** OpenDAL's error kind, e.g. 'NotFound', 'PermissionDenied', 'ConfigInvalid'. */
  readonly kind: string;
  constructor(op: string, key: string, kind: string, message: string, options?: { cause?: unknown }) {
    super('ERR_OBJECT_STORE', `object store ${op} ${key} failed (${kind}): ${message}`, options);
    this.op = op;
    this.key = key;
    this.kind = kind;
  }
}

/** The object store could not be reached: temporary failures persisted through every retry. Nothing was lost. */
export class ObjectStoreUnavailableError extends SedimentError {
  readonly op: string;
  readonly key: string;
  readonly attempts: number;
  readonly elapsedMs: number;
  constructor(op: string, key: string, attempts: number, elapsedMs: number, options?: { cause?: unknown }) {
    const why = (options?.cause as Error | undefined)?.message?.split('\n')[0] ?? 'unknown error';
    super('ERR_OBJECT_STORE_UNAVAILABLE', `object store unavailable: ${op} ${key} failed ${attempts} time(s) in ${Math.round(elapsedMs)} ms (last: ${why})`, options);
    this.op = op;
    this.key = key;
    this.attempts = attempts;
    this.elapsedMs = elapsedMs;
  }
}

/**
 * Appends are refused because too much local data waits for upload to the
 * object store (tiered storage backpressure). Nothing was written; retry later.
 */
export class BackpressureError extends SedimentError {
  readonly partition: string;
  /** Local bytes not yet archived. */
  readonly bytes: number;
  /** The configured limit (TierConfig.backpressureBytes). */
  readonly limit: number;
  constructor(partition: string, bytes: number, limit: number) {
    super('ERR_BACKPRESSURE', `partition ${partition} has ${bytes} bytes waiting for upload to the object store (limit ${limit}); append refused, retry later`);
    this.partition = partition;
    this.bytes = bytes;
    this.limit = limit;
  }
}

/**
 * A partition's local log and its archive in the object store disagree (the
 * local log was reset or rewritten): tiering stops for that partition, and
 * nothing local is evicted, until an operator restores or re-points it.
 */
export class TierConflictError extends SedimentError {
  constructor(message: string) { super('ERR_TIER_CONFLICT', message); }
}
