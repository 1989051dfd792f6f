// Kafka (protobuf-style) zig-zag varints. Encoders write at p and return the
// new position; decoders read within [p, end) and report failure through
// VARINT_OK so callers can reject malformed input without trapping.

export let varintOk: bool = true;
export let varintEnd: usize = 0;

@inline export function zigzag32(n: i32): u32 {
  return <u32>((n << 1) ^ (n >> 31));
}

@inline export function zigzag64(n: i64): u64 {
  return <u64>((n << 1) ^ (n >> 63));
}

export function sizeVarint(n: i32): usize {
  let v = zigzag32(n);
  let s: usize = 1;
  while (v >= 0x80) { v >>>= 7; s++; }
  return s;
}

export function sizeVarlong(n: i64): usize {
  let v = zigzag64(n);
  let s: usize = 1;
  while (v >= 0x80) { v >>>= 7; s++; }
  return s;
}

export function writeVarint(p: usize, n: i32): usize {
  let v = zigzag32(n);
  while (v >= 0x80) {
    store<u8>(p++, <u8>((v & 0x7f) | 0x80));
    v >>>= 7;
  }
  store<u8>(p++, <u8>v);
  return p;
}

export function writeVarlong(p: usize, n: i64): usize {
  let v = zigzag64(n);
  while (v >= 0x80) {
    store<u8>(p++, <u8>((v & 0x7f) | 0x80));
    v >>>= 7;
  }
  store<u8>(p++, <u8>v);
  return p;
}

/** Reads a zig-zag varint (at most 5 bytes). Sets varintEnd; clears varintOk on error. */
export function readVarint(p: usize, end: usize): i32 {
  let result: u32 = 0;
  let shift: u32 = 0;
  while (true) {
    if (p >= end || shift > 28) { varintOk = false; return 0; }
    const b = <u32>load<u8>(p++);
    result |= (b & 0x7f) << shift;
    if ((b & 0x80) == 0) break;
    shift += 7;
  }
  varintEnd = p;
  return <i32>(result >>> 1) ^ -(<i32>(result & 1));
}

/** Reads a zig-zag varlong (at most 10 bytes). */
export function readVarlong(p: usize, end: usize): i64 {
  let result: u64 = 0;
  let shift: u64 = 0;
  while (true) {
    if (p >= end || shift > 63) { varintOk = false; return 0; }
    const b = <u64>load<u8>(p++);
    result |= (b & 0x7f) << shift;
    if ((b & 0x80) == 0) break;
    shift += 7;
  }
  varintEnd = p;
  return <i64>(result >>> 1) ^ -(<i64>(result & 1));
}
