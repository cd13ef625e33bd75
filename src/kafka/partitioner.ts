/**
 * A device's partition: Kafka's default partitioner of its id, the same as the Java client's and
 * librdkafka's `murmur2_random` for a keyed record: murmur2 of the UTF-8 bytes, sign bit cleared,
 * modulo the partitions. The gateway and the processor pick partitions with it for records that
 * carry many devices (proto/stratus/v1/kafka.proto), so any Kafka producer keyed by device id
 * puts a device's records in the same partition as Stratus does.
 */
const M = 0x5bd1e995;
const SEED = 0x9747b28c;

/** Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2) as a signed 32-bit integer. */
export function murmur2(data: Uint8Array): number {
  const length = data.length;
  let h = (SEED ^ length) | 0;
  const length4 = length & ~3;
  for (let i = 0; i < length4; i += 4) {
    let k = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  const tail = length & 3;
  if (tail === 3) h ^= data[length4 + 2]! << 16;
  if (tail >= 2) h ^= data[length4 + 1]! << 8;
  if (tail >= 1) {
    h ^= data[length4]!;
    h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

const ascii = new Uint8Array(256);

/** The partition of a device id among `partitions`. */
export function partitionOf(deviceId: string, partitions: number): number {
  let bytes: Uint8Array;
  if (deviceId.length <= ascii.length && isAscii(deviceId)) {
    for (let i = 0; i < deviceId.length; i++) ascii[i] = deviceId.charCodeAt(i);
    bytes = ascii.subarray(0, deviceId.length);
  } else {
    bytes = Buffer.from(deviceId, 'utf8');
  }
  return (murmur2(bytes) & 0x7fffffff) % partitions;
}

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 127) return false;
  return true;
}
