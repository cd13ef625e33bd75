/**
 * Protobuf wire format by hand, for the Kafka records (proto/stratus/v1/kafka.proto): the few
 * field kinds they use, sized exactly before writing so a record is one allocation. Numbers are
 * JavaScript numbers: uint64 and int64 are exact within ±(2^53-1), which the gateway enforces for
 * seq; a device clock beyond it was already rounded when the gateway decoded it.
 *
 * Wire types: 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32 (3 and 4, groups, are refused).
 */
import { ErrorCode, StratusError } from '../errors.js';

const TWO_32 = 4294967296;

/** Bytes of a varint holding a uint64 or int64 (a negative int64 always takes 10). */
export function varintSize(n: number): number {
  if (n < 0) return 10;
  if (n < 128) return 1;
  if (n < 16384) return 2;
  if (n < 2097152) return 3;
  if (n < 268435456) return 4;
  let size = 4;
  for (let v = Math.floor(n / 268435456); v > 0; v = Math.floor(v / 128)) size++;
  return size;
}

/** Bytes of a length-delimited field's tag (one byte for fields 1..15), length and body. */
export function delimitedSize(len: number): number {
  return 1 + varintSize(len) + len;
}

/** Writes into a buffer sized beforehand; `at` is where the next byte goes. */
export class ProtoWriter {
  at = 0;
  constructor(readonly buf: Buffer) {}

  /** Tag of a field 1..15. */
  tag(field: number, wireType: number): void {
    this.buf[this.at++] = (field << 3) | wireType;
  }

  /** A uint64 or int64 (two's complement, 10 bytes when negative). */
  varint(n: number): void {
    let hi = Math.floor(n / TWO_32) >>> 0;
    let lo = n >>> 0;
    const buf = this.buf;
    let at = this.at;
    while (hi !== 0) {
      buf[at++] = (lo & 127) | 128;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    while (lo > 127) {
      buf[at++] = (lo & 127) | 128;
      lo >>>= 7;
    }
    buf[at++] = lo;
    this.at = at;
  }

  double(field: number, v: number): void {
    this.tag(field, 1);
    this.buf.writeDoubleLE(v, this.at);
    this.at += 8;
  }

  uint(field: number, n: number): void {
    this.tag(field, 0);
    this.varint(n);
  }

  /** A string whose UTF-8 length the caller already measured. */
  string(field: number, s: string, byteLength: number): void {
    this.tag(field, 2);
    this.varint(byteLength);
    this.at += this.buf.write(s, this.at, byteLength, 'utf8');
  }

  bytes(field: number, b: Uint8Array): void {
    this.tag(field, 2);
    this.varint(b.length);
    this.buf.set(b, this.at);
    this.at += b.length;
  }
}

/** Reads one message's fields in order; every read checks the bounds and throws WIRE_CORRUPT past them. */
export class ProtoReader {
  at: number;
  constructor(
    readonly buf: Buffer,
    start = 0,
    readonly end = buf.length,
  ) {
    this.at = start;
  }

  get done(): boolean {
    return this.at >= this.end;
  }

  /** The next field's number and wire type. */
  tag(): { field: number; wireType: number } {
    const t = this.uint();
    return { field: Math.floor(t / 8), wireType: t & 7 };
  }

  private varint64(): { lo: number; hi: number } {
    let lo = 0;
    let hi = 0;
    const buf = this.buf;
    for (let i = 0; i < 10; i++) {
      if (this.at >= this.end) throw corruptProto(buf, 'a varint runs past the end');
      const b = buf[this.at++]!;
      if (i < 4) lo |= (b & 127) << (i * 7);
      else if (i === 4) {
        lo |= (b & 15) << 28;
        hi |= (b & 127) >> 4;
      } else hi |= (b & 127) << (i * 7 - 32);
      if (b < 128) return { lo: lo >>> 0, hi: hi >>> 0 };
    }
    throw corruptProto(buf, 'a varint is longer than 10 bytes');
  }

  /** A uint64 (as a number: exact up to 2^53-1). */
  uint(): number {
    // Fast path: one byte.
    if (this.at < this.end && this.buf[this.at]! < 128) return this.buf[this.at++]!;
    const { lo, hi } = this.varint64();
    return hi * TWO_32 + lo;
  }

  /** An int64 (two's complement). */
  int(): number {
    const { lo, hi } = this.varint64();
    if ((hi & 0x80000000) === 0) return hi * TWO_32 + lo;
    return -((~hi >>> 0) * TWO_32 + (~lo >>> 0) + 1);
  }

  double(): number {
    if (this.at + 8 > this.end) throw corruptProto(this.buf, 'a double runs past the end');
    const v = this.buf.readDoubleLE(this.at);
    this.at += 8;
    return v;
  }

  /** A length-delimited field's bounds (a view into the buffer, not a copy). */
  delimited(): { start: number; end: number } {
    const len = this.uint();
    const start = this.at;
    if (start + len > this.end) throw corruptProto(this.buf, 'a length-delimited field runs past the end');
    this.at = start + len;
    return { start, end: start + len };
  }

  string(): string {
    const { start, end } = this.delimited();
    return this.buf.toString('utf8', start, end);
  }

  bytes(): Buffer {
    const { start, end } = this.delimited();
    return this.buf.subarray(start, end);
  }

  /** Skips a field of this wire type (an unknown field: a newer writer's). */
  skip(wireType: number): void {
    if (wireType === 0) this.varint64();
    else if (wireType === 1) this.at += 8;
    else if (wireType === 2) this.delimited();
    else if (wireType === 5) this.at += 4;
    else throw corruptProto(this.buf, `wire type ${wireType} is not used by these messages`);
    if (this.at > this.end) throw corruptProto(this.buf, 'a field runs past the end');
  }
}

/**
 * The entries of a message whose field 1 is a repeated embedded message (EventRecord, ResultRecord),
 * in order: `read` gets each entry's bounds in `buf`. Other fields (a newer writer's) are skipped.
 */
export function mapRepeated<T>(buf: Buffer, read: (start: number, end: number) => T): T[] {
  const out: T[] = [];
  const r = new ProtoReader(buf);
  while (!r.done) {
    const { field, wireType } = r.tag();
    if (field !== 1 || wireType !== 2) {
      r.skip(wireType);
      continue;
    }
    const { start, end } = r.delimited();
    out.push(read(start, end));
  }
  return out;
}

export function corruptProto(buf: Buffer, why: string): StratusError {
  return new StratusError(ErrorCode.WIRE_CORRUPT, `record value of ${buf.length} bytes is not a valid protobuf message: ${why}`);
}
