/**
 * The machine and software a bench run measured on: every RESULTS.md row carries it, because a
 * figure means nothing without it.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { PROJECT_ROOT, type Config } from '../src/config.js';
import { connectRedis, createRedis } from '../src/redis/client.js';

export interface BenchEnvironment {
  date: string;
  commit: string;
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  node: string;
  librdkafka: string;
  kafka: string;
  redis: string;
}

const tryRun = (cmd: string, args: string[]) => {
  try {
    return execFileSync(cmd, args, { cwd: PROJECT_ROOT, encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
};

export async function benchEnvironment(config: Config): Promise<BenchEnvironment> {
  const require = createRequire(import.meta.url);
  const rdkafka = (require('@confluentinc/kafka-javascript') as { librdkafkaVersion?: string }).librdkafkaVersion ?? 'unknown';
  let kafka = 'unknown';
  try {
    const jar = readdirSync(join(PROJECT_ROOT, '.stratus', 'cache', 'kafka', 'libs')).find((f) => /^kafka_2\.13-[\d.]+\.jar$/.test(f));
    if (jar) kafka = jar.replace(/^kafka_2\.13-|\.jar$/g, '');
  } catch {
    // Kafka elsewhere (kafka.brokers): its version is not known here.
  }
  const redis = createRedis(config, 'bench-environment');
  await connectRedis(redis);
  const info = await redis.info('server');
  redis.disconnect();
  const dirty = tryRun('git', ['status', '--porcelain', '--untracked-files=no']) !== '';
  return {
    date: new Date().toISOString(),
    commit: `${tryRun('git', ['rev-parse', '--short=12', 'HEAD'])}${dirty ? '-dirty' : ''}`,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: release(),
    node: process.version,
    librdkafka: rdkafka,
    kafka,
    redis: /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown',
  };
}
