/**
 * Redis Cluster's key -> slot function (cluster spec: CRC16-XMODEM of the key, or of its hash tag,
 * modulo 16384), so a caller can group keys by the node that serves them before it calls a script.
 *
 * Hash tag: the part between the first `{` and the first `}` after it, when that part is not empty;
 * otherwise the whole key. Stratus names every key of one device with the tag `{d:<device id>}`
 * (topology.ts), so they share a slot whatever the id contains.
 */

export const SLOTS = 16384;

const TABLE = new Uint16Array(256);
for (let i = 0; i < 256; i++) {
  let c = i << 8;
  for (let j = 0; j < 8; j++) c = c & 0x8000 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff;
  TABLE[i] = c;
}

function crc16(bytes: Uint8Array, from: number, to: number): number {
  let crc = 0;
  for (let i = from; i < to; i++) crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ bytes[i]!) & 0xff]!;
  return crc;
}

/** The slot of `key` (bytes as Redis sees them: the key's UTF-8). */
export function keySlot(key: string): number {
  const b = Buffer.from(key, 'utf8');
  const open = b.indexOf(0x7b); // {
  if (open >= 0) {
    const close = b.indexOf(0x7d, open + 1); // }
    if (close > open + 1) return crc16(b, open + 1, close) % SLOTS;
  }
  return crc16(b, 0, b.length) % SLOTS;
}
