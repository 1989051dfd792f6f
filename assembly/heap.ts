// Buffers owned by the TypeScript layer: TLSF allocation from the minimal
// runtime. Kernels themselves never allocate; only these two calls (and
// nothing inside a hot loop) can grow memory.

/** Allocates size bytes, 16-byte aligned. Traps when memory cannot grow. */
export function alloc(size: usize): usize {
  return heap.alloc(size);
}

/** Frees a block returned by alloc. */
export function free(ptr: usize): void {
  heap.free(ptr);
}
