// Deterministic test data for benchmarks (same bytes on every run).

/** xorshift32 PRNG: a function returning uint32 values from a seed. */
export function prng(seed: number): () => number {
  let s = seed >>> 0 || 0x9e3779b9;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s;
  };
}

/** n pseudo-random bytes. */
export function randomBytes(n: number, seed = 1): Uint8Array {
  const next = prng(seed);
  const out = new Uint8Array(n);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const v = next();
    out[i] = v; out[i + 1] = v >>> 8; out[i + 2] = v >>> 16; out[i + 3] = v >>> 24;
  }
  for (; i < n; i++) out[i] = next();
  return out;
}

/** Human-readable size: 64 B, 1 KiB, 1 MiB. */
export function sizeName(n: number): string {
  if (n >= 1 << 20 && n % (1 << 20) === 0) return `${n >> 20} MiB`;
  if (n >= 1024 && n % 1024 === 0) return `${n >> 10} KiB`;
  return `${n} B`;
}
