// Searches over Kafka-format index bytes held in wasm memory.
// Offset index: 8-byte entries (u32 relative offset, u32 position), BE.
// Time index: 12-byte entries (i64 timestamp, u32 relative offset), BE.

import { Kernels } from './kernels.js';

export const OFFSET_INDEX_ENTRY = 8;
export const TIME_INDEX_ENTRY = 12;

/**
 * Slot of the largest entry with relative offset <= target, or -1. Targets
 * below 0 find nothing; targets beyond u32 are clamped (never wrapped).
 */
export function offsetIndexLookup(k: Kernels, indexPtr: number, entries: number, target: number): number {
  if (!(target >= 0)) return -1;
  return k.raw.offsetIndexLookup(indexPtr, entries, Math.min(Math.floor(target), 0xffffffff) >>> 0);
}

/** Slot of the largest entry with timestamp <= target, or -1. */
export function timeIndexLookup(k: Kernels, indexPtr: number, entries: number, target: number): number {
  return k.raw.timeIndexLookup(indexPtr, entries, target);
}

/** Batched offset lookups: targets u32 at targetsPtr, slots i32 at outPtr. */
export function offsetIndexLookupMany(k: Kernels, indexPtr: number, entries: number, targetsPtr: number, n: number, outPtr: number): void {
  k.raw.offsetIndexLookupMany(indexPtr, entries, targetsPtr, n, outPtr);
}

/** Batched time lookups: targets f64 at targetsPtr, slots i32 at outPtr. */
export function timeIndexLookupMany(k: Kernels, indexPtr: number, entries: number, targetsPtr: number, n: number, outPtr: number): void {
  k.raw.timeIndexLookupMany(indexPtr, entries, targetsPtr, n, outPtr);
}
