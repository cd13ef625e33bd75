/**
 * A delivery frame: the results the forwarder sends to one gateway instance in one PUBLISH.
 * The forwarder's Redis script (forwarder/deliver-script.ts) writes the entries of one instance back
 * to back, with struct.pack:
 *
 *   entry: | deviceLen u16 | device UTF-8 | n f64 (per-device buffer index) | resultLen u32 | result |
 *
 * n is the entry's id in the device's Redis Stream buffer (`n-0`), so a gateway can tell whether
 * it missed anything and read it back from the buffer.
 */
import { ErrorCode, StratusError } from '../errors.js';

export interface FrameEntry {
  deviceId: string;
  /** The entry's index in the device's Redis Stream buffer (stream id `n-0`). */
  n: number;
  result: Buffer;
}

export function decodeFrame(frame: Buffer): FrameEntry[] {
  const out: FrameEntry[] = [];
  let at = 0;
  while (at < frame.length) {
    if (at + 2 > frame.length) throw bad(frame);
    const dl = frame.readUInt16LE(at);
    if (at + 14 + dl > frame.length) throw bad(frame);
    const deviceId = frame.toString('utf8', at + 2, at + 2 + dl);
    const n = frame.readDoubleLE(at + 2 + dl);
    const rl = frame.readUInt32LE(at + 10 + dl);
    const start = at + 14 + dl;
    if (start + rl > frame.length) throw bad(frame);
    out.push({ deviceId, n, result: frame.subarray(start, start + rl) });
    at = start + rl;
  }
  return out;
}

function bad(frame: Buffer): StratusError {
  return new StratusError(ErrorCode.WIRE_CORRUPT, `delivery frame of ${frame.length} bytes is truncated`);
}
