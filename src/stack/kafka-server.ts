/**
 * The local Kafka: Apache Kafka (version pinned in src/stack/kafka-pom.xml) run from its Maven
 * Central jars with the machine's Java 17, as one KRaft node that is both broker and controller.
 * Topics are never auto-created: `stack up` creates them explicitly afterwards (kafka/admin).
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../config.js';
import { ErrorCode, StratusError } from '../errors.js';
import { waitForKafka } from '../kafka/admin.js';
import { isLoopback, splitHostPort, type StackPaths } from './paths.js';
import { isAlive, pidState, portAnswers, removeFile, stopProcess, firstError, tail, writePid, type PidState } from './processes.js';

const NODE_ID = 1;

export function kafkaListener(config: Config): { host: string; port: number } {
  return splitHostPort(config.kafka.brokers[0]!);
}

export function kafkaAddress(config: Config): string {
  return config.kafka.brokers[0]!;
}

/** Our broker's command line carries the path of its own server.properties. */
export function kafkaState(paths: StackPaths): PidState {
  return pidState(paths.kafkaPid, paths.kafkaProps);
}

function javaMajor(): number | null {
  const r = spawnSync('java', ['-version'], { encoding: 'utf8' });
  if (r.error !== undefined) return null;
  const m = /version "(\d+)(?:\.(\d+))?/.exec(r.stderr + r.stdout);
  if (m === null) return null;
  return m[1] === '1' ? Number(m[2]) : Number(m[1]);
}

function checkPrerequisites(config: Config, paths: StackPaths): void {
  const { host } = kafkaListener(config);
  if (!isLoopback(host)) {
    throw new StratusError(ErrorCode.CONFIG_INVALID, `config kafka.brokers must start with a loopback address for the local stack (got ${kafkaAddress(config)}); use 127.0.0.1:PORT`);
  }
  checkJavaAndJars(paths);
}

/** Java 17+ on PATH and the jars in .stratus/cache: what every Kafka JVM of the stack needs. */
export function checkJavaAndJars(paths: StackPaths): void {
  const major = javaMajor();
  if (major === null) {
    throw new StratusError(ErrorCode.STACK_PROGRAM_MISSING, 'java is not installed: Kafka needs Java 17 or later; run `npm run setup` or `apt-get install openjdk-17-jre-headless`');
  }
  if (major < 17) {
    throw new StratusError(ErrorCode.STACK_PROGRAM_MISSING, `java ${major} is too old: Kafka 4 needs Java 17 or later; install openjdk-17-jre-headless and put it first on PATH`);
  }
  if (!existsSync(paths.kafkaLibs) || !readdirSync(paths.kafkaLibs).some((f) => /^kafka_2\.13-.*\.jar$/.test(f))) {
    throw new StratusError(ErrorCode.STACK_NOT_SET_UP, `the Kafka jars are not in ${paths.kafkaLibs}; run \`npm run setup\` (fetches them with mvn)`);
  }
}

/**
 * advertisedPort: the port clients are told to use after bootstrap, when it is not the listener's
 * (the fault suite puts a fault-injecting proxy there, so every connection of a client crosses it).
 */
export interface KafkaStartOptions {
  advertisedPort?: number;
}

function serverProperties(config: Config, paths: StackPaths, options: KafkaStartOptions): string {
  const { host, port } = kafkaListener(config);
  const c = config.kafka.controllerPort;
  return [
    '# Written by `stratus stack up` from Config; edits are overwritten.',
    'process.roles=broker,controller',
    `node.id=${NODE_ID}`,
    `controller.quorum.voters=${NODE_ID}@${host}:${c}`,
    `listeners=PLAINTEXT://${host}:${port},CONTROLLER://${host}:${c}`,
    `advertised.listeners=PLAINTEXT://${host}:${options.advertisedPort ?? port}`,
    'controller.listener.names=CONTROLLER',
    'inter.broker.listener.name=PLAINTEXT',
    'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
    `log.dirs=${paths.kafkaData}`,
    // Topics are created by an explicit admin step with explicit partition counts.
    'auto.create.topics.enable=false',
    `num.partitions=${config.kafka.partitions}`,
    // One node: internal topics cannot have more than one replica.
    'offsets.topic.replication.factor=1',
    'transaction.state.log.replication.factor=1',
    'transaction.state.log.min.isr=1',
    'share.coordinator.state.topic.replication.factor=1',
    'share.coordinator.state.topic.min.isr=1',
    // A group of one member should not wait 3 s for others before its first assignment.
    'group.initial.rebalance.delay.ms=0',
    '',
  ].join('\n');
}

/** log4j2 configuration sending everything to `logFile` (the cluster's nodes each have their own). */
export function log4jProperties(logFile: string): string {
  return [
    'status = warn',
    'appender.file.type = File',
    'appender.file.name = FILE',
    `appender.file.fileName = ${logFile}`,
    'appender.file.layout.type = PatternLayout',
    'appender.file.layout.pattern = [%d] %p %m (%c)%n',
    'rootLogger.level = info',
    'rootLogger.appenderRef.file.ref = FILE',
    // The request log and state-change log are noise at info for a local broker.
    'logger.request.name = kafka.request.logger',
    'logger.request.level = warn',
    '',
  ].join('\n');
}

/**
 * A random KRaft cluster id (16 bytes, base64url, as Kafka's own). Never one starting with '-':
 * StorageTool's argument parser would take it for an option ("--cluster-id/-t: expected one
 * argument"), which failed one `stack up` in 64.
 */
export function clusterId(): string {
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

function javaArgs(paths: StackPaths, main: string, rest: string[], heapMb: number): string[] {
  return javaCommand(paths, paths.log4jProps, [`-Xms${Math.min(heapMb, 256)}m`, `-Xmx${heapMb}m`, '-XX:+UseG1GC'], main, rest);
}

/** The arguments of `java` for one of Kafka's main classes, run from the stack's jars. */
export function javaCommand(paths: StackPaths, log4jProps: string, jvmFlags: readonly string[], main: string, rest: readonly string[]): string[] {
  return [
    ...jvmFlags,
    '-Djava.awt.headless=true',
    `-Dlog4j2.configurationFile=${log4jProps}`,
    '-cp',
    join(paths.kafkaLibs, '*'),
    main,
    ...rest,
  ];
}

/** Formats the KRaft storage on first start; refuses a data dir that is neither empty nor ours. */
function ensureFormatted(paths: StackPaths): void {
  const meta = join(paths.kafkaData, 'meta.properties');
  if (existsSync(meta)) {
    const text = readFileSync(meta, 'utf8');
    if (!/^cluster\.id=\S+/m.test(text) || !new RegExp(`^node\\.id=${NODE_ID}$`, 'm').test(text)) {
      throw new StratusError(ErrorCode.STACK_DATA_CORRUPT, `${meta} is not a valid KRaft node ${NODE_ID} file; run \`stratus stack up --fresh\` to wipe the stack's data`);
    }
    return;
  }
  if (existsSync(paths.kafkaData) && readdirSync(paths.kafkaData).length > 0) {
    throw new StratusError(ErrorCode.STACK_DATA_CORRUPT, `${paths.kafkaData} holds data but no meta.properties; run \`stratus stack up --fresh\` to wipe the stack's data`);
  }
  mkdirSync(paths.kafkaData, { recursive: true });
  const r = spawnSync('java', javaArgs(paths, 'kafka.tools.StorageTool', ['format', '-t', clusterId(), '-c', paths.kafkaProps], 256), {
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (r.status !== 0) {
    throw new StratusError(ErrorCode.STACK_START_FAILED, `formatting Kafka storage failed: ${(r.stderr || r.stdout || String(r.error)).trim().split('\n').slice(-3).join(' | ')}`);
  }
}

export async function startKafka(config: Config, paths: StackPaths, options: KafkaStartOptions = {}): Promise<number> {
  checkPrerequisites(config, paths);
  const { host, port } = kafkaListener(config);
  for (const [p, what] of [[port, 'broker'], [config.kafka.controllerPort, 'controller']] as const) {
    if (await portAnswers(host, p)) {
      throw new StratusError(
        ErrorCode.STACK_PORT_TAKEN,
        `${host}:${p} (Kafka ${what}) is in use by a process this stack did not start; stop it, or choose other ports with --kafka-brokers ${host}:N / --kafka-controller-port N`,
      );
    }
  }
  mkdirSync(paths.kafkaDir, { recursive: true });
  mkdirSync(paths.logDir, { recursive: true });
  writeFileSync(paths.kafkaProps, serverProperties(config, paths, options));
  writeFileSync(paths.log4jProps, log4jProperties(paths.kafkaLog));
  ensureFormatted(paths);

  const out = openSync(paths.kafkaOut, 'a');
  const child = spawn('java', javaArgs(paths, 'kafka.Kafka', [paths.kafkaProps], config.kafka.heapMb), {
    detached: true,
    stdio: ['ignore', out, out],
  });
  closeSync(out);
  child.unref();
  if (child.pid === undefined) throw new StratusError(ErrorCode.STACK_START_FAILED, 'java could not be started for Kafka');
  writePid(paths.kafkaPid, child.pid);

  const deadline = Date.now() + config.stack.startTimeoutMs;
  const failed = async (why: string): Promise<never> => {
    await stopKafka(paths, child.pid!);
    const log = tail(paths.kafkaLog, 5) || tail(paths.kafkaOut, 5);
    const first = firstError(paths.kafkaLog) || firstError(paths.kafkaOut);
    throw new StratusError(ErrorCode.STACK_START_FAILED, `Kafka ${why}; ${first === '' ? '' : `its first error:\n${first}\n`}${paths.kafkaLog} ends with:\n${log}`);
  };
  // The JVM takes seconds to open the port; poll it cheaply before asking for metadata.
  while (!(await portAnswers(host, port, 200))) {
    if (!isAlive(child.pid)) return failed('exited while starting');
    if (Date.now() > deadline) return failed(`did not open ${host}:${port} within ${config.stack.startTimeoutMs} ms`);
    await sleep(200);
  }
  try {
    await waitForKafka(config, Math.max(1000, deadline - Date.now()));
  } catch {
    return failed(`did not answer a metadata request within ${config.stack.startTimeoutMs} ms`);
  }
  return child.pid;
}

export async function stopKafka(paths: StackPaths, pid: number): Promise<void> {
  // A controlled shutdown of a single KRaft node takes a few seconds; past 30 s it is stuck.
  await stopProcess(pid, 30_000);
  removeFile(paths.kafkaPid);
}
