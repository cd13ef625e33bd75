/**
 * A local stack of a test's own for `stratus stack` through the CLI: a new data dir and free ports
 * for Redis, the Kafka broker and its controller, as the STRATUS_* variables the CLI reads. The
 * suite's own stack (default ports, .stratus/data) is never touched.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unusedPort } from './ports.js';

export interface PrivateStack {
  dir: string;
  env: Record<string, string>;
  redisPort: number;
  kafkaPort: number;
  controllerPort: number;
}

export async function privateStack(prefix: string): Promise<PrivateStack> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const [redisPort, kafkaPort, controllerPort] = [await unusedPort(), await unusedPort(), await unusedPort()];
  return {
    dir, redisPort, kafkaPort, controllerPort,
    env: {
      STRATUS_DATA_DIR: dir,
      STRATUS_REDIS_PORT: String(redisPort),
      STRATUS_KAFKA_BROKERS: `127.0.0.1:${kafkaPort}`,
      STRATUS_KAFKA_CONTROLLER_PORT: String(controllerPort),
      STRATUS_KAFKA_PARTITIONS: '3',
      STRATUS_KAFKA_HEAP_MB: '256',
    },
  };
}
