/**
 * The local Redis: Debian's redis-server on a loopback port, started detached with its pid in
 * <dataDir>/run/redis.pid. AOF with fsync every second, so a restarted stack keeps its queues,
 * streams and result buffers.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, openSync, closeSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../config.js';
import { ErrorCode, StratusError } from '../errors.js';
import { pingRedis } from '../redis/client.js';
import type { StackPaths } from './paths.js';
import { isAlive, pidState, portAnswers, removeFile, stopProcess, tail, writePid, type PidState } from './processes.js';

/** redis-server rewrites its process title to "redis-server host:port", so that is our marker. */
export function redisMarker(config: Config): string {
  return `redis-server ${config.redis.host}:${config.redis.port}`;
}

export function redisState(config: Config, paths: StackPaths): PidState {
  return pidState(paths.redisPid, redisMarker(config));
}

export function redisAddress(config: Config): string {
  return `${config.redis.host}:${config.redis.port}`;
}

export async function startRedis(config: Config, paths: StackPaths): Promise<number> {
  const which = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (which.error !== undefined) {
    throw new StratusError(ErrorCode.STACK_PROGRAM_MISSING, 'redis-server is not installed; run `npm run setup` (it installs Debian\'s redis-server) or `apt-get install redis-server`');
  }
  if (await portAnswers(config.redis.host, config.redis.port)) {
    throw new StratusError(
      ErrorCode.STACK_PORT_TAKEN,
      `${redisAddress(config)} is in use by a process this stack did not start; stop it, or give Stratus another port with --redis-port N (STRATUS_REDIS_PORT)`,
    );
  }
  mkdirSync(paths.redisData, { recursive: true });
  mkdirSync(paths.logDir, { recursive: true });
  const args = [
    '--port', String(config.redis.port),
    '--bind', config.redis.host,
    '--dir', paths.redisData,
    '--logfile', paths.redisLog,
    '--daemonize', 'no',
    // Durability of queues and result buffers across a restart of the stack: fsync once a second.
    '--appendonly', 'yes',
    '--appendfsync', 'everysec',
    '--save', '',
    // No eviction: a full Redis must refuse writes (and Stratus report it), never drop buffered results.
    '--maxmemory-policy', 'noeviction',
  ];
  if (config.redis.password !== '') args.push('--requirepass', config.redis.password);
  const err = openSync(paths.redisLog, 'a');
  const child = spawn('redis-server', args, { detached: true, stdio: ['ignore', 'ignore', err] });
  closeSync(err);
  child.unref();
  if (child.pid === undefined) throw new StratusError(ErrorCode.STACK_START_FAILED, 'redis-server could not be started');
  writePid(paths.redisPid, child.pid);

  const deadline = Date.now() + config.stack.startTimeoutMs;
  for (;;) {
    if (!isAlive(child.pid)) {
      removeFile(paths.redisPid);
      throw new StratusError(ErrorCode.STACK_START_FAILED, `redis-server exited while starting; its log (${paths.redisLog}) ends with:\n${tail(paths.redisLog, 5)}`);
    }
    try {
      await pingRedis(config, 500);
      return child.pid;
    } catch (e) {
      if (Date.now() > deadline) {
        await stopRedis(paths, child.pid);
        throw new StratusError(ErrorCode.STACK_START_FAILED, `redis-server did not answer PING within ${config.stack.startTimeoutMs} ms; see ${paths.redisLog}`, { cause: e });
      }
      await sleep(50);
    }
  }
}

export async function stopRedis(paths: StackPaths, pid: number): Promise<void> {
  // Redis writes its AOF and exits on SIGTERM within a second or two.
  await stopProcess(pid, 10_000);
  removeFile(paths.redisPid);
}
