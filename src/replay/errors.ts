// Typed errors of remote replay (HTTP and archive problems). Content problems
// (bad CRC, malformed batches, objects that differ from the manifest) are
// CorruptionError from ../errors.ts; oversized batches are RecordTooLargeError.
// Every class here is a SedimentError with a stable `code`.

import { SedimentError } from '../errors.js';

/** The manifest is not valid JSON, has an unknown format, or breaks a rule of docs/archive-format.md. */
export class ManifestError extends SedimentError {
  /** JSON path of the offending field, e.g. `segments[3].objects.log.size`. */
  readonly field: string;
  constructor(field: string, reason: string) {
    super('ERR_BAD_MANIFEST', `invalid archive manifest: ${field ? `${field}: ` : ''}${reason}`);
    this.field = field;
  }
}

/** An HTTP request got a status it cannot use (5xx after retries, 4xx other than 404/401/403/416). */
export class HttpError extends SedimentError {
  readonly status: number;
  readonly url: string;
  constructor(status: number, url: string, detail = '') {
    super('ERR_HTTP', `GET ${redact(url)} answered HTTP ${status}${detail ? `: ${detail}` : ''}`);
    this.status = status;
    this.url = url;
  }
}

/** The object does not exist (HTTP 404 or 410), or no URL was given for its key. */
export class ObjectNotFoundError extends SedimentError {
  readonly url: string;
  constructor(url: string, detail = '') {
    super('ERR_NOT_FOUND', `${redact(url)} was not found${detail ? ` (${detail})` : ''}`);
    this.url = url;
  }
}

/** HTTP 401 or 403: credentials missing, or a presigned URL expired or was signed for something else. */
export class AccessDeniedError extends SedimentError {
  readonly status: number;
  readonly url: string;
  constructor(status: number, url: string) {
    super('ERR_ACCESS_DENIED', `GET ${redact(url)} was refused (HTTP ${status}); a presigned URL may have expired`);
    this.status = status;
    this.url = url;
  }
}

/**
 * The request never produced a usable response: connection refused or reset,
 * DNS failure, or (in browsers) a CORS rejection, which scripts cannot tell
 * apart from a network failure. See docs/replay.md for the CORS headers.
 */
export class NetworkError extends SedimentError {
  readonly url: string;
  constructor(url: string, cause: unknown) {
    super('ERR_NETWORK', `GET ${redact(url)} failed: ${(cause as Error)?.message ?? String(cause)}` +
      ' (in a browser this is also how a missing CORS header shows up; see docs/replay.md)', { cause });
    this.url = url;
  }
}

/** No byte arrived for `timeoutMs` (connecting, or in the middle of a body). */
export class TimeoutError extends SedimentError {
  readonly url: string;
  readonly timeoutMs: number;
  constructor(url: string, timeoutMs: number) {
    super('ERR_TIMEOUT', `GET ${redact(url)} made no progress for ${timeoutMs} ms`);
    this.url = url;
    this.timeoutMs = timeoutMs;
  }
}

/** The caller's AbortSignal fired. `cause` is the signal's reason. */
export class AbortedError extends SedimentError {
  constructor(cause: unknown) {
    super('ERR_ABORTED', `replay aborted${cause instanceof Error && cause.message ? `: ${cause.message}` : ''}`, { cause });
  }
}

/**
 * The server answered with something HTTP does not allow for the request:
 * a Content-Range that is not the range asked for, a body longer or shorter
 * than announced, a 206 to a request without Range.
 */
export class BadResponseError extends SedimentError {
  readonly url: string;
  constructor(url: string, reason: string) {
    super('ERR_BAD_RESPONSE', `GET ${redact(url)}: ${reason}`);
    this.url = url;
  }
}

/**
 * The server ignores Range (answers 200 with the whole object) and the object
 * is larger than `maxWholeBodyBytes`, the most replay will download to reach
 * a position without ranges.
 */
export class RangeNotSupportedError extends SedimentError {
  readonly url: string;
  readonly size: number;
  readonly limit: number;
  constructor(url: string, size: number, limit: number) {
    super('ERR_RANGE_NOT_SUPPORTED', `${redact(url)} ignores HTTP Range requests and is ${size < 0 ? 'of unknown size' : `${size} bytes`}, ` +
      `over the whole-body limit of ${limit} bytes (maxWholeBodyBytes)`);
    this.url = url;
    this.size = size;
    this.limit = limit;
  }
}

/** An immutable object changed between two requests (different ETag or size). */
export class ObjectChangedError extends SedimentError {
  readonly url: string;
  constructor(url: string, reason: string) {
    super('ERR_OBJECT_CHANGED', `${redact(url)} changed while it was read (${reason}); archived objects must be immutable`);
    this.url = url;
  }
}

/** Drops the query string of a URL for messages (presigned URLs carry credentials there). */
export function redact(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? url : `${url.slice(0, q)}?…`;
}
