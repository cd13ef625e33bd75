/**
 * The log of a real `stratus run` child, its stderr a pipe (so JSON lines): every line parses with
 * level, time, msg and role; the start line names the addresses actually bound (grpc.host 0.0.0.0);
 * Redis lost and back are logged once each when the connection to Redis (through a TCP proxy in
 * front of the shared Redis) is cut and restored; a flood of bad tokens gives a bounded number of
 * lines that account for every failure; SIGTERM logs each stage's stop and one drain summary, and
 * the process exits 0.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Client, credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import { issueToken } from '../../../src/auth/token.js';
import { PROJECT_ROOT } from '../../../src/config.js';
import { codecs } from '../../../src/gateway/protocol.js';
import { deleteTopics } from '../../../src/kafka/admin.js';
import { parseLogLine, type LogLine } from '../../../src/log.js';
import { topology } from '../../../src/topology.js';
import { testConfig } from '../../helpers/config.js';
import { TestDevice } from '../../helpers/device.js';
import { FaultProxy } from '../../helpers/fault-proxy.js';
import { unusedPort } from '../../helpers/ports.js';

const config = testConfig();
const t = topology(config);
const SECRET = randomBytes(32).toString('hex');
const inAnHour = () => Math.floor(Date.now() / 1000) + 3600;

/** The shared Redis behind a proxy that can be taken down (connections reset, new ones refused) and healed. */
let proxy: FaultProxy;
let child: ChildProcess;
let grpcPort: number;
let httpPort: number;
/** Everything the engine wrote to stderr. */
let stderr = '';
let exited: Promise<number | null>;

/** The complete lines so far, each parsed (null: not a JSON log line). */
function lines(): { raw: string; parsed: LogLine | null }[] {
  return stderr.split('\n').slice(0, -1).map((raw) => ({ raw, parsed: parseLogLine(raw) }));
}

function logged(pred: (l: LogLine) => boolean): LogLine[] {
  return lines().flatMap((l) => (l.parsed !== null && pred(l.parsed) ? [l.parsed] : []));
}

async function until<T>(what: string, probe: () => T | null | undefined | false, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== null && v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; stderr so far:\n${stderr.slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function readyz(): Promise<number> {
  return (await fetch(`http://127.0.0.1:${httpPort}/readyz`)).status;
}

before(async () => {
  proxy = await FaultProxy.start(config.redis.port);
  grpcPort = await unusedPort();
  httpPort = await unusedPort();
  child = spawn(process.execPath, [join(PROJECT_ROOT, 'bin', 'stratus.js'), 'run', '--grpc-port', String(grpcPort), '--http-port', String(httpPort), '--instance-id', `logs-${grpcPort}`], {
    env: {
      ...process.env,
      STRATUS_KAFKA_TOPIC_PREFIX: config.kafka.topicPrefix,
      STRATUS_REDIS_KEY_PREFIX: config.redis.keyPrefix,
      STRATUS_REDIS_PORT: String(proxy.port),
      STRATUS_KAFKA_PARTITIONS: '2',
      STRATUS_GRPC_HOST: '0.0.0.0',
      STRATUS_AUTH_TOKEN_SECRET: SECRET,
      STRATUS_LOG_LEVEL: 'info',
      // The drain must not depend on the grace running out: with it this long, a stop that waited
      // for it would take a minute and fail the timing check below.
      STRATUS_GATEWAY_DRAIN_GRACE_MS: '60000',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (s: string) => (stderr += s));
  exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  await Promise.race([
    until('the started line', () => logged((l) => l.msg === 'started' && l.role === 'run')[0], 60_000),
    exited.then((code) => Promise.reject(new Error(`stratus run exited (${code}) while starting:\n${stderr}`))),
  ]);
});

after(async () => {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await proxy.close();
  await deleteTopics(config, [t.topics.events, t.topics.results]).catch(() => {});
});

test('the start line names the addresses actually bound: grpc.host 0.0.0.0 and both ports', () => {
  const [started] = logged((l) => l.msg === 'started' && l.role === 'run');
  assert.equal(started!.level, 30);
  assert.equal(started!.grpc, `0.0.0.0:${grpcPort}`);
  assert.equal(started!.http, `0.0.0.0:${httpPort}`);
  assert.deepEqual(started!.roles, ['gateway', 'processor', 'forwarder', 'exporter']);
  assert.equal(started!.instance, `logs-${grpcPort}`);
  assert.equal(logged((l) => l.msg === 'gateway listening')[0]?.grpc, `0.0.0.0:${grpcPort}`);
});

test('Redis lost and back are logged once each, however many reconnect attempts there are', { timeout: 90_000 }, async () => {
  assert.equal(await readyz(), 200);
  proxy.down();
  await until('Redis lost', () => logged((l) => l.role === 'redis' && l.msg === 'Redis lost').length > 0);
  // Several reconnect attempts of each client, and /readyz has noticed.
  await until('20 refused reconnects', () => proxy.refused >= 20);
  assert.equal(await readyz(), 503);
  proxy.heal();
  await until('Redis back', () => logged((l) => l.role === 'redis' && l.msg === 'Redis back')[0]);
  const deadline = Date.now() + 30_000;
  while ((await readyz()) !== 200) {
    assert.ok(Date.now() < deadline, 'not ready again within 30 s');
    await new Promise((r) => setTimeout(r, 50));
  }
  // A sentinel: a device's event goes through Redis and Kafka and back; any late "lost"/"back"
  // line of the outage would have been written before its result.
  const d = new TestDevice('logs-sentinel').connect(`127.0.0.1:${grpcPort}`, { token: issueToken(SECRET, 'logs-sentinel', inAnHour()), deviceHeader: false });
  d.send([{ seq: 1, type: 'sq', value: 3 }]);
  await d.until(() => d.results.length === 1, 30_000, 'the sentinel result');
  d.close();
  const lost = logged((l) => l.msg === 'Redis lost' && l.role === 'redis');
  const back = logged((l) => l.msg === 'Redis back' && l.role === 'redis');
  assert.equal(lost.length, 1, JSON.stringify(lost));
  assert.equal(back.length, 1, JSON.stringify(back));
  assert.equal(lost[0]!.level, 40);
  assert.equal(back[0]!.level, 30);
  assert.ok(typeof back[0]!.downMs === 'number' && back[0]!.downMs > 0 && back[0]!.downMs <= back[0]!.time - lost[0]!.time + 1, `downMs ${back[0]!.downMs}`);
  assert.ok(proxy.refused >= 20, `${proxy.refused} reconnect attempts, one line`);
});

test('a flood of forged tokens gives two lines that account for every failure', { timeout: 60_000 }, async () => {
  const n = 300;
  const forged = issueToken(`${SECRET}-not-ours`, 'flood', inAnHour());
  const client = new Client(`127.0.0.1:${grpcPort}`, credentials.createInsecure());
  const before = logged((l) => l.role === 'gateway' && l.msg.includes('failed authentication')).length;
  const codes = await Promise.all(
    Array.from({ length: n }, () => new Promise<number>((resolve) => {
      const md = new Metadata();
      md.set('authorization', `Bearer ${forged}`);
      const call = client.makeBidiStreamRequest('/stratus.v1.DeviceGateway/Connect', codecs.Uplink.serialize, codecs.Downlink.deserialize, md);
      call.on('error', (err: ServiceError) => resolve(err.code));
      call.on('data', () => {});
    })),
  );
  client.close();
  assert.deepEqual([...new Set(codes)], [16 /* UNAUTHENTICATED */]);
  // The first failure is written at once; the rest are tallied into one line when its window ends.
  const flood = await until(
    'the tally of the flood',
    () => {
      const ls = logged((l) => l.role === 'gateway' && l.msg.includes('failed authentication')).slice(before);
      return ls.reduce((a, l) => a + (l.failures as number), 0) === n ? ls : null;
    },
    30_000,
  );
  assert.equal(flood.length, 2, JSON.stringify(flood));
  assert.deepEqual(flood.map((l) => [l.level, l.failures, l.byReason]), [
    [40, 1, { forged: 1 }],
    [40, n - 1, { forged: n - 1 }],
  ]);
  assert.ok(!stderr.includes(forged.slice(10)), 'a token in the log');
});

test('SIGTERM: each stage logs its stop, then one drain summary; exit 0 without waiting out the grace', { timeout: 90_000 }, async () => {
  const devices = Array.from({ length: 3 }, (_, i) => new TestDevice(`logs-${i}`).connect(`127.0.0.1:${grpcPort}`, { token: issueToken(SECRET, `logs-${i}`, inAnHour()), deviceHeader: false }));
  for (const d of devices) d.send(Array.from({ length: 20 }, (_, k) => ({ seq: k + 1, type: 'sq', value: k })));
  for (const d of devices) await d.until(() => d.ackedSeq === 20, 30_000, 'acks');
  const signalledAt = Date.now();
  child.kill('SIGTERM');
  assert.equal(await exited, 0, stderr.slice(-3000));
  const tookMs = Date.now() - signalledAt;
  // The grace is 60 s: a stop that waited it out would not be here yet.
  assert.ok(tookMs < 30_000, `stop took ${tookMs} ms`);
  for (const d of devices) {
    await d.until(() => d.ended, 10_000, 'the stream to end');
    assert.equal(d.status?.code, 14 /* UNAVAILABLE */);
    d.close();
  }
  const stopped = logged((l) => l.role === 'run' && l.msg.startsWith('stopped '));
  assert.deepEqual(stopped.map((l) => l.stage), ['sse', 'gateway', 'forwarder', 'processor', 'exporter']);
  const gateway = logged((l) => l.role === 'gateway' && l.msg.startsWith('every taken event answered'));
  assert.equal(gateway.length, 1, 'the gateway drained without the grace running out');
  assert.equal(gateway[0]!.streams, 3);
  const drained = logged((l) => l.role === 'run' && l.msg === 'drained');
  assert.equal(drained.length, 1);
  const s = drained[0]!;
  assert.equal(s.streamsEnded, 3);
  for (const k of ['eventsFlushed', 'eventsUnflushed', 'offsetsCommitted', 'ms']) assert.equal(typeof s[k], 'number', k);
  assert.equal(s.eventsUnflushed, 0);
  assert.ok((s.ms as number) <= tookMs);
  assert.equal(logged((l) => l.msg.startsWith('SIGTERM')).length, 1);
});

test('every line the engine wrote is a JSON log line with level, time, msg and role', () => {
  const all = lines();
  assert.ok(all.length >= 10, `${all.length} lines`);
  for (const { raw, parsed } of all) {
    assert.ok(parsed !== null, `not a JSON log line: ${raw}`);
    assert.equal(typeof parsed.level, 'number', raw);
    assert.equal(typeof parsed.time, 'number', raw);
    assert.equal(typeof parsed.msg, 'string', raw);
    assert.equal(typeof parsed.role, 'string', raw);
  }
  assert.ok(stderr.endsWith('\n'), 'the last line is complete');
});
