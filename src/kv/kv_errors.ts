// Typed errors of the KV store (codes are stable, like every SedimentError).

import { SedimentError } from '../errors.js';

/** A write (put, update, delete, batch, forget) touched a disabled key. Nothing was written. */
export class KeyDisabledError extends SedimentError {
  /** The key's bytes. */
  readonly key: Uint8Array;
  constructor(key: Uint8Array, namespace: string) {
    super('ERR_KEY_DISABLED', `key ${describeKey(key)} of KV namespace '${namespace}' is disabled: writes are refused until enable()`);
    this.key = key;
  }
}

/** A key (or a KV namespace) that an operation requires does not exist. */
export class KeyNotFoundError extends SedimentError {
  readonly key: Uint8Array | undefined;
  constructor(message: string, key?: Uint8Array) {
    super('ERR_NOT_FOUND', message);
    this.key = key;
  }
}

/** A short printable form of a key for messages: UTF-8 when it is printable, hex otherwise. */
export function describeKey(key: Uint8Array): string {
  const shown = key.length > 64 ? key.subarray(0, 64) : key;
  let printable = true;
  for (let i = 0; i < shown.length; i++) { const c = shown[i]!; if (c < 0x20 || c > 0x7e) { printable = false; break; } }
  const body = printable ? JSON.stringify(String.fromCharCode(...shown)) : `0x${Array.from(shown, (b) => b.toString(16).padStart(2, '0')).join('')}`;
  return key.length > 64 ? `${body}... (${key.length} bytes)` : body;
}
