/**
 * `stratus run` when something is wrong at start (README "Start-up"): a port in use (held by a
 * listener of this test, or by a running engine), Redis or Kafka not there, a password Redis
 * refuses, a bad TLS file. Each is one line on stderr naming what is wrong and the fix, exit code 1,
 * and nothing of the engine left behind: no consumer group joined, no topic created, no Redis key.
 *
 * Each run is a real `node bin/stratus.js run` with its own topic and key prefixes and free ports.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Config } from '../../../src/config.js';
import { PROJECT_ROOT } from '../../../src/config.js';
import { ErrorCode, StratusError } from '../../../src/errors.js';
import { Gateway } from '../../../src/gateway/gateway.js';
import { deleteTopics } from '../../../src/kafka/admin.js';
import { withAdmin } from '../../../src/kafka/native/client.js';
import { connectRedis, createRedis, disconnectRedis } from '../../../src/redis/client.js';
import { topology } from '../../../src/topology.js';
import { makeCerts } from '../../helpers/certs.js';
import { testConfig } from '../../helpers/config.js';
import { EngineProcess } from '../../helpers/engine-process.js';
import { unusedPort } from '../../helpers/ports.js';

interface Outcome {
  code: number | null;
  signal: string | null;
  stderr: string;
}

/** The environment that gives a run the config's prefixes (and 3 partitions: topics made by a run that should not have started would show). */
function prefixEnv(config: Config): Record<string, string> {
  return { STRATUS_KAFKA_TOPIC_PREFIX: config.kafka.topicPrefix, STRATUS_REDIS_KEY_PREFIX: config.redis.keyPrefix, STRATUS_KAFKA_PARTITIONS: '3', STRATUS_LOG_LEVEL: 'warn' };
}

/** `stratus run` with free ports unless `args` name them; resolves when it exits (killed after 60 s: it should never be running). */
async function run(config: Config, args: string[], env: Record<string, string> = {}, as: { uid?: number; gid?: number } = {}): Promise<Outcome> {
  const ports = [];
  if (!args.includes('--grpc-port')) ports.push('--grpc-port', String(await unusedPort()));
  if (!args.includes('--http-port')) ports.push('--http-port', String(await unusedPort()));
  const child = spawn(process.execPath, [join(PROJECT_ROOT, 'bin', 'stratus.js'), 'run', ...ports, ...args], {
    env: { ...process.env, ...prefixEnv(config), ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
    ...as,
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (s: string) => (stderr += s));
  const kill = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
  clearTimeout(kill);
  return { code, signal, stderr };
}

/** Exit code 1 and stderr exactly one line, matching `line`. */
function assertOneLine(o: Outcome, line: RegExp): void {
  assert.equal(o.signal, null, o.stderr);
  assert.equal(o.code, 1, o.stderr);
  const lines = o.stderr.split('\n');
  assert.equal(lines.length, 2, `stderr is not one line:\n${o.stderr}`);
  assert.equal(lines[1], '');
  assert.match(lines[0]!, line);
}

function esc(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

async function listen(t: { after(fn: () => unknown): void }): Promise<{ server: Server; port: number }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { server, port: (server.address() as { port: number }).port };
}

/** librdkafka's ConsumerGroupStates (types/rdkafka.d.ts); tests do not import the Kafka client. */
const GROUP_STABLE = 3;

/**
 * The processor and forwarder groups of config's prefix that the coordinators know, with their
 * states. listGroups, not describeGroups: librdkafka's describeGroups answers a group whose
 * coordinator is not ready yet (a broker just started, __consumer_offsets still being created) with
 * an error description whose strings are NULL, and the binding's conversion of it crashes the
 * process (confluent-kafka-javascript issue 531; this test died of SIGSEGV in CI that way).
 */
async function listedGroups(config: Config): Promise<{ groupId: string; state: number }[]> {
  const t = topology(config);
  const wanted = [t.groups.processor, t.groups.forwarder];
  const { groups: listed } = await withAdmin(config, 'startup-test', (admin) => admin.listGroups({ timeout: 10_000 }));
  return listed.filter((g) => wanted.includes(g.groupId)).map((g) => ({ groupId: g.groupId, state: Number(g.state) }));
}

/** Members of the processor and forwarder groups; only called once listedGroups shows both Stable (their coordinator answers, so the descriptions carry no error). */
async function members(config: Config): Promise<{ groupId: string; state: number; members: string[] }[]> {
  const t = topology(config);
  return withAdmin(config, 'startup-test', async (admin) => {
    const { groups: described } = await admin.describeGroups([t.groups.processor, t.groups.forwarder], { timeout: 10_000 });
    return described.map((g) => ({ groupId: g.groupId, state: Number(g.state), members: g.members.map((m) => m.memberId).sort() }));
  });
}

/** Nothing of a run that did not start: its groups never existed, no topic or Redis key of its prefixes. */
async function assertNothingLeft(config: Config): Promise<void> {
  // Not listed: the coordinators do not know the groups (never joined, no offsets). One that was
  // joined and left would be listed EMPTY, one still joined STABLE or rebalancing.
  assert.deepEqual(await listedGroups(config), []);
  const topics = await withAdmin(config, 'startup-test', (admin) => admin.listTopics({ timeout: 10_000 }));
  assert.deepEqual(topics.filter((n) => n.startsWith(config.kafka.topicPrefix)), []);
  const redis = createRedis(config, 'startup-test');
  try {
    await connectRedis(redis);
    const [, keys] = await redis.scan('0', 'MATCH', `${config.redis.keyPrefix}*`, 'COUNT', 100_000);
    assert.deepEqual(keys, []);
  } finally {
    disconnectRedis(redis);
  }
}

const FIX_REDIS = 'start it with `npx stratus stack up` or set redis.host / redis.port (--redis-host, --redis-port)';

test('gRPC port held by another process: one line naming it, before any group is joined', { timeout: 90_000 }, async (t) => {
  const config = testConfig();
  const { port } = await listen(t);
  const o = await run(config, ['--grpc-port', String(port)]);
  assertOneLine(o, new RegExp(`^stratus run: gRPC port 127\\.0\\.0\\.1:${port} is in use \\(by pid ${process.pid}: node .*\\); stop that process or set --grpc-port$`));
  await assertNothingLeft(config);
});

test('HTTP port held by another process: one line naming it', { timeout: 90_000 }, async (t) => {
  const config = testConfig();
  const { port } = await listen(t);
  const o = await run(config, ['--http-port', String(port)]);
  assertOneLine(o, new RegExp(`^stratus run: HTTP port 127\\.0\\.0\\.1:${port} is in use \\(by pid ${process.pid}: node .*\\); stop that process or set --http-port$`));
  await assertNothingLeft(config);
});

test('--threads 2 with the gRPC port held: the primary says so once, no worker is forked', { timeout: 90_000 }, async (t) => {
  const config = testConfig();
  const { port } = await listen(t);
  const o = await run(config, ['--grpc-port', String(port), '--threads', '2']);
  assertOneLine(o, new RegExp(`^stratus run: gRPC port 127\\.0\\.0\\.1:${port} is in use \\(by pid ${process.pid}: node .*\\); stop that process or set --grpc-port$`));
  await assertNothingLeft(config);
});

test('--threads 2 --shard threads where net ignores reusePort: one line naming --shard processes, nothing started', { timeout: 90_000 }, async (t) => {
  const { probeReusePort } = await import('../../../src/net/reuse-port.js');
  if ((await probeReusePort('127.0.0.1')).supported) return t.skip(`${process.version} honours reusePort: test/integration/http/cluster-metrics.test.ts runs --shard threads`);
  const config = testConfig();
  const o = await run(config, ['--threads', '2', '--shard', 'threads']);
  assertOneLine(o, new RegExp(`^${esc(`stratus run: --shard threads needs net's reusePort (Node >= 22.12, Bun), which node ${process.version} does not honour: a second listener with reusePort on port `)}\\d+ failed \\(EADDRINUSE\\); use --shard processes \\(the default\\), or run on a newer runtime$`));
  await assertNothingLeft(config);
});

test('a privileged gRPC port without the privilege: one line with EACCES and the fix', { timeout: 90_000 }, async (t) => {
  let lowest: number;
  try {
    lowest = Number(readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8').trim());
  } catch {
    return t.skip('not Linux: the message names the lowest unprivileged port from /proc');
  }
  if (lowest <= 81) return t.skip(`this machine lets anyone bind ports from ${lowest} up`);
  // As root (CI containers) the run is made as nobody, who lacks the privilege.
  const as = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
  const config = testConfig();
  const o = await run(config, ['--grpc-port', '81'], { HOME: '/tmp' }, as);
  assertOneLine(o, new RegExp(`^${esc(`stratus run: gRPC port 127.0.0.1:81 needs privileges this process lacks (EACCES: ports below ${lowest} are privileged); set --grpc-port to ${lowest} or above, or give the program CAP_NET_BIND_SERVICE`)}$`));
  await assertNothingLeft(config);
});

test('a second engine on a running engine\'s gRPC port leaves the running one\'s groups as they were', { timeout: 180_000 }, async (t) => {
  const config = testConfig();
  const t0 = topology(config);
  // info: EngineProcess waits for the engine's `started` line, an info line (src/log.ts).
  const a = await EngineProcess.start({ ...prefixEnv(config), STRATUS_LOG_LEVEL: 'info' });
  t.after(async () => {
    await a.stop();
    await deleteTopics(config, [t0.topics.events, t0.topics.results]);
  });
  // Each group has the running engine's one member, and is settled.
  const settled = async () => {
    for (;;) {
      const listed = await listedGroups(config);
      if (listed.length === 2 && listed.every((x) => x.state === GROUP_STABLE)) {
        const g = await members(config);
        if (g.every((x) => x.members.length === 1 && x.state === GROUP_STABLE)) return g;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  const before = await settled();
  const o = await run(config, ['--grpc-port', String(a.grpcPort)]);
  assertOneLine(o, new RegExp(`^stratus run: gRPC port 127\\.0\\.0\\.1:${a.grpcPort} is in use \\(by pid ${a.child.pid}: node \\S*bin/stratus\\.js run .*\\); stop that process or set --grpc-port$`));
  // The same members, no rebalance: a member that joined and died would still be listed (until
  // its session timed out) or have moved the group out of Stable.
  assert.deepEqual(await members(config), before);
  assert.equal(a.exit, null, 'the running engine is still running');
});

test('Redis at a closed port: one line with the address and the fix', { timeout: 90_000 }, async () => {
  const config = testConfig();
  const port = await unusedPort();
  const o = await run(config, ['--redis-port', String(port)]);
  assertOneLine(o, new RegExp(`^${esc(`stratus run: Redis unreachable at 127.0.0.1:${port} (ECONNREFUSED); ${FIX_REDIS}`)}$`));
  await assertNothingLeft(config);
});

test('Redis that wants a password: NOAUTH without one, WRONGPASS with a wrong one, each its own line', { timeout: 90_000 }, async (t) => {
  const config = testConfig();
  const port = await unusedPort();
  const server: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--requirepass', 'right-one', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'ignore'] });
  t.after(() => server.kill('SIGKILL'));
  let out = '';
  server.stdout!.setEncoding('utf8');
  await new Promise<void>((resolve, reject) => {
    server.stdout!.on('data', (s: string) => {
      out += s;
      if (out.includes('Ready to accept connections')) resolve();
    });
    server.once('exit', (code) => reject(new Error(`redis-server exited (${code}): ${out}`)));
  });
  const fix = 'set redis.password (STRATUS_REDIS_PASSWORD, --redis-password) to the one the server requires';
  const none = await run(config, ['--redis-port', String(port)]);
  assertOneLine(none, new RegExp(`^${esc(`stratus run: Redis at 127.0.0.1:${port} requires a password (NOAUTH); ${fix}`)}$`));
  const wrong = await run(config, ['--redis-port', String(port), '--redis-password', 'wrong-one']);
  assertOneLine(wrong, new RegExp(`^${esc(`stratus run: Redis at 127.0.0.1:${port} refused the password of redis.password (WRONGPASS); ${fix}`)}$`));
});

test('Kafka at a closed port: one line with the brokers and the timeout, after kafka.connectTimeoutMs', { timeout: 90_000 }, async () => {
  const config = testConfig();
  const brokers = `127.0.0.1:${await unusedPort()},127.0.0.1:${await unusedPort()}`;
  const o = await run(config, ['--kafka-brokers', brokers, '--kafka-connect-timeout-ms', '1000']);
  assertOneLine(
    o,
    new RegExp(`^${esc(`stratus run: Kafka at ${brokers} did not answer a metadata request within 1000 ms (`)}[^)]+\\); start the local one with \`npx stratus stack up\` .* or set kafka\\.brokers \\(STRATUS_KAFKA_BROKERS, --kafka-brokers\\) to where it runs$`),
  );
  await assertNothingLeft(config);
});

test('TLS: a missing certificate, a garbage file, a key of another certificate: one line naming the option and the file', { timeout: 90_000 }, async (t) => {
  const certs = makeCerts();
  t.after(() => certs.remove());
  const config = testConfig();
  const missing = join(certs.dir, 'missing.crt');
  const garbage = join(certs.dir, 'garbage.pem');
  writeFileSync(garbage, 'not a certificate\n');

  const a = await run(config, ['--tls-cert', missing, '--tls-key', certs.serverKey]);
  assertOneLine(a, new RegExp(`^${esc(`stratus run: config tls.cert: cannot read ${missing} (no such file); set tls.cert (--tls-cert) to a readable PEM file`)}$`));
  const b = await run(config, ['--tls-cert', garbage, '--tls-key', certs.serverKey]);
  assertOneLine(b, new RegExp(`^${esc(`stratus run: config tls.cert: ${garbage} is not a PEM certificate (`)}.+${esc('); set tls.cert (--tls-cert) to a file starting with -----BEGIN CERTIFICATE-----')}$`));
  const c = await run(config, ['--tls-cert', certs.serverCert, '--tls-key', garbage]);
  assertOneLine(c, new RegExp(`^${esc(`stratus run: config tls.key: ${garbage} is not an unencrypted PEM private key (`)}.+\\); set tls\\.key \\(--tls-key\\) to the certificate's key, e\\.g\\. -----BEGIN PRIVATE KEY-----$`));
  const d = await run(config, ['--tls-cert', certs.serverCert, '--tls-key', certs.clientKey]);
  assertOneLine(d, new RegExp(`^${esc(`stratus run: config tls.key: ${certs.clientKey} is not the private key of the certificate in tls.cert (${certs.serverCert}); set tls.key (--tls-key) to the key that certificate was issued for`)}$`));
  await assertNothingLeft(config);
});

test('Gateway.start on a taken port: PORT_IN_USE naming the holder, and its Redis connections closed', { timeout: 60_000 }, async (t) => {
  const config = testConfig();
  const { port } = await listen(t);
  const instanceId = `startup-${port}`;
  await assert.rejects(Gateway.start(config, instanceId, port), (err: unknown) => {
    assert.ok(err instanceof StratusError);
    assert.equal(err.code, ErrorCode.PORT_IN_USE);
    assert.match(err.message, new RegExp(`^gRPC port 127\\.0\\.0\\.1:${port} is in use \\(by pid ${process.pid}: node .*\\); stop that process or set --grpc-port$`));
    return true;
  });
  // The link's two connections (stratus-<id>-gateway, -gateway-sub) and the services' are gone.
  const redis = createRedis(config, 'startup-test');
  t.after(() => disconnectRedis(redis));
  await connectRedis(redis);
  for (;;) {
    const list = String(await redis.client('LIST'));
    if (!list.includes(`name=stratus-${instanceId}`)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
});
