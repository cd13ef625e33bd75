/**
 * Issue 21, the archive under faults: a gateway, a processor, a forwarder and an archiver, each its
 * own `stratus run` process on the fault harness's private Kafka and Redis (test/helpers/fault-harness.ts),
 * and the archive's store: a SQLite file, or a private PostgreSQL (src/stack/postgres-server.ts,
 * its own data dir and port). Events go in through IngestBatch at a steady rate from many devices;
 * the test keeps every (device, seq) the gateway acknowledged.
 *
 *   - the archiver killed with SIGKILL under load (its Kafka cut a second before, so its last
 *     commits fail), then started again (each store): afterwards every acked event is in the store
 *     once, joined to its right result, and the store holds nothing that was not sent;
 *   - PostgreSQL stopped for 20 s under load: meanwhile the archiver's /readyz says the store is
 *     failing (503: the process serves no devices) and its lag in seconds grows; afterwards the
 *     same check: 0 lost, 0 duplicates.
 *
 * "0 duplicates" is the key (device_id, seq) at work: the restarted archiver re-reads what was not
 * committed (its stratus_archive_duplicates_total counts those rows), and the store keeps one row.
 */
import assert from 'node:assert/strict';
import { Client, credentials, type ServiceError } from '@grpc/grpc-js';
import { chmodSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { openStore } from '../../src/archive/open-store.js';
import type { ArchiveStore } from '../../src/archive/store.js';
import { loadConfig, type Config } from '../../src/config.js';
import { codecs, type BatchAck, type Event } from '../../src/gateway/protocol.js';
import { startPostgres, stopPostgres } from '../../src/stack/postgres-server.js';
import { stackPaths } from '../../src/stack/paths.js';
import { FaultStack, killAll, RoleProcess } from '../helpers/fault-harness.js';
import { unusedPort } from '../helpers/ports.js';

const DEVICES = 200;
/** IngestBatch calls per second, each one event of 25 devices in turn: 25 x 40 = 1,000 events/s. */
const BATCH_EVENTS = 25;
const BATCHES_PER_S = 40;

let stack: FaultStack;
let pgConfig: Config;
let pgPid = 0;
const roles: Record<string, RoleProcess> = {};

before(async () => {
  stack = await FaultStack.start();
  // mkdtemp makes it 0700; PostgreSQL runs as its own user (as root) and must reach its data dir.
  chmodSync(stack.dataDir, 0o711);
  pgConfig = loadConfig({ flags: { 'data-dir': stack.dataDir, 'archive-postgres-url': `postgres://stratus@127.0.0.1:${await unusedPort()}/stratus` } });
  pgPid = await startPostgres(pgConfig, stackPaths(pgConfig));
  roles.processor = await RoleProcess.run('processor', 'processor', stack);
  roles.forwarder = await RoleProcess.run('forwarder', 'forwarder', stack);
  roles.gateway = await RoleProcess.run('gateway', 'gateway', stack);
}, { timeout: 240_000 });

after(async () => {
  for (const p of Object.values(roles)) await p.kill9();
  if (pgPid !== 0) await stopPostgres(stackPaths(pgConfig), pgPid).catch(() => {});
  await stack?.stop().catch(() => {});
  killAll();
});

/** The store's settings for one test: its own SQLite file, or its own schema in the private PostgreSQL. */
function storeEnv(kind: 'sqlite' | 'postgres', name: string): Record<string, string> {
  const safe = name.replace(/[^a-z0-9]/g, '_');
  return kind === 'sqlite'
    ? { STRATUS_ARCHIVE_STORE: 'sqlite', STRATUS_ARCHIVE_SQLITE_PATH: join(stack.dataDir, `${safe}.sqlite`) }
    : { STRATUS_ARCHIVE_STORE: 'postgres', STRATUS_ARCHIVE_POSTGRES_URL: pgConfig.archive.postgresUrl, STRATUS_ARCHIVE_POSTGRES_SCHEMA: safe, STRATUS_ARCHIVE_RETRY_MAX_MS: '1000', STRATUS_ARCHIVE_CONNECT_TIMEOUT_MS: '1000' };
}

function storeConfig(env: Record<string, string>): Config {
  const flags: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) flags[k.replace(/^STRATUS_/, '').toLowerCase().replace(/_/g, '-')] = v;
  return loadConfig({ envFile: null, env: {}, flags: { 'data-dir': stack.dataDir, ...flags } });
}

/**
 * Sends events for `seconds` from DEVICES devices (seq per device from `seqFrom`), one IngestBatch
 * at a time at BATCHES_PER_S; resolves with every (device, seq) acknowledged. A failed call's events
 * count as not acked (they may still be archived: the check allows that).
 */
async function load(tag: string, seconds: number): Promise<{ acked: Map<string, number[]>; sent: Set<string> }> {
  const client = new Client(`127.0.0.1:${roles.gateway!.grpcPort}`, credentials.createInsecure());
  const acked = new Map<string, number[]>();
  const sent = new Set<string>();
  const seqs = new Array<number>(DEVICES).fill(0);
  const started = Date.now();
  let next = 0;
  try {
    for (let i = 0; Date.now() - started < seconds * 1000; i++) {
      const events: Event[] = [];
      for (let k = 0; k < BATCH_EVENTS; k++) {
        const d = next++ % DEVICES;
        const seq = ++seqs[d]!;
        events.push({ deviceId: `${tag}-${d}`, seq, type: 'sq', value: d * 1000 + seq, payload: Buffer.from(`${tag}:${seq}`), sentAtUs: Date.now() * 1000 });
        sent.add(`${tag}-${d}/${seq}`);
      }
      const ack = await new Promise<BatchAck | null>((resolve) =>
        client.makeUnaryRequest('/stratus.v1.DeviceGateway/IngestBatch', codecs.EventBatch.serialize, codecs.BatchAck.deserialize, { events }, { deadline: Date.now() + 10_000 }, (err: ServiceError | null, res?: BatchAck) => resolve(err ? null : res!)),
      );
      // A reject names a seq, not its device: a batch with any reject counts as not acked at all
      // (its events may still be archived: the check allows what was sent).
      if (ack !== null && ack.rejects.length === 0) {
        for (const e of events) {
          const list = acked.get(e.deviceId) ?? [];
          list.push(e.seq);
          acked.set(e.deviceId, list);
        }
      }
      const due = started + ((i + 1) * 1000) / BATCHES_PER_S;
      if (due > Date.now()) await sleep(due - Date.now());
    }
  } finally {
    client.close();
  }
  return { acked, sent };
}

/**
 * Runs `steps` at their second from now, in order, beside the load (a step waits for the one
 * before; the load never waits for a step, nor a step for the load's calls).
 */
async function schedule(steps: [number, () => Promise<void> | void][]): Promise<void> {
  const t0 = Date.now();
  for (const [atS, step] of steps) {
    const wait = t0 + atS * 1000 - Date.now();
    if (wait > 0) await sleep(wait);
    await step();
  }
}

/** Waits until every acked event is in the store with its result; then checks each and returns the counts. */
async function reconcile(store: ArchiveStore, tag: string, acked: Map<string, number[]>, sent: Set<string>): Promise<{ acked: number; lost: number; wrong: number; foreign: number; rows: number }> {
  const ackedCount = [...acked.values()].reduce((n, l) => n + l.length, 0);
  const deadline = Date.now() + 120_000;
  let lost = ackedCount;
  let wrong = 0;
  let foreign = 0;
  let rows = 0;
  for (;;) {
    lost = 0;
    wrong = 0;
    foreign = 0;
    rows = 0;
    for (let d = 0; d < DEVICES; d++) {
      const device = `${tag}-${d}`;
      const history = await store.history({ deviceId: device, limit: 1_000_000 });
      rows += history.length;
      const bySeq = new Map(history.map((e) => [e.seq, e]));
      for (const e of history) if (!sent.has(`${device}/${e.seq}`)) foreign++;
      for (const seq of acked.get(device) ?? []) {
        const e = bySeq.get(seq);
        if (e === undefined || e.result === null) lost++;
        else if (e.value !== d * 1000 + seq || e.result.value !== (d * 1000 + seq) ** 2 || Buffer.from(e.payload).toString() !== `${tag}:${seq}`) wrong++;
      }
    }
    if (lost === 0 || Date.now() > deadline) break;
    await sleep(1000);
  }
  return { acked: ackedCount, lost, wrong, foreign, rows };
}

async function metric(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith(name) && !l.startsWith('#'))
    .reduce((n, l) => n + Number(l.split(' ').at(-1)), 0);
}

for (const kind of ['sqlite', 'postgres'] as const) {
  test(`${kind}: the archiver killed with SIGKILL under load and started again: every acked event archived once with its result`, { timeout: 300_000 }, async () => {
    const tag = `kill-${kind}`;
    const env = storeEnv(kind, tag);
    const archiver = (roles[`archiver-${kind}`] = await RoleProcess.run(`archiver-${kind}`, 'archiver', stack, env));
    // Kafka cut for two seconds around the kill: the archiver's last commits fail, so what it
    // wrote just before is read again by its next start (the duplicates the key must absorb).
    const faults = schedule([
      [6, () => stack.kafkaProxy.down()],
      [7, () => archiver.kill9()],
      [8, () => stack.kafkaProxy.heal()],
      [11, () => archiver.start()],
    ]);
    const { acked, sent } = await load(tag, 20);
    await faults;
    assert.ok(archiver.alive, 'the archiver runs again');
    const store = await openStore(storeConfig(env));
    try {
      const r = await reconcile(store, tag, acked, sent);
      const duplicates = await metric(archiver.httpPort, 'stratus_archive_duplicates_total');
      process.stdout.write(`# ${kind} kill -9: acked ${r.acked}, rows ${r.rows}, lost ${r.lost}, wrong ${r.wrong}, foreign ${r.foreign}; rows the restarted archiver found already stored: ${duplicates}\n`);
      assert.ok(r.acked > 10_000, `load ran: ${r.acked} acked`);
      assert.deepEqual({ lost: r.lost, wrong: r.wrong, foreign: r.foreign }, { lost: 0, wrong: 0, foreign: 0 });
      // One row per (device, seq): rows counted per device equal the distinct events the store holds.
      const counts = await store.counts();
      assert.ok(counts.events >= r.acked && counts.results >= r.acked, JSON.stringify(counts));
      assert.equal(counts.deadLetters, 0);
    } finally {
      await store.close();
      await archiver.kill9();
    }
  });
}

test('postgres: PostgreSQL stopped for 20 s under load: /readyz and the lag say so, nothing is lost', { timeout: 300_000 }, async () => {
  const tag = 'outage';
  const env = storeEnv('postgres', tag);
  const archiver = (roles.archiverOutage = await RoleProcess.run('archiver-outage', 'archiver', stack, env));
  const paths = stackPaths(pgConfig);
  const seen = { notReady: '', lagS: 0 };
  /** What /readyz and the lag say while PostgreSQL is down. */
  const watch = async () => {
    const res = await fetch(`http://127.0.0.1:${archiver.httpPort}/readyz`);
    const body = await res.text();
    if (res.status === 503 && seen.notReady === '') seen.notReady = body;
    seen.lagS = Math.max(seen.lagS, await metric(archiver.httpPort, 'stratus_archive_lag_seconds'));
  };
  const faults = schedule([
    [6, async () => {
      const pid = pgPid;
      pgPid = 0;
      await stopPostgres(paths, pid);
    }],
    ...Array.from({ length: 18 }, (_, i): [number, () => Promise<void>] => [8 + i, watch]),
    [26, async () => {
      pgPid = await startPostgres(pgConfig, paths);
    }],
  ]);
  const { acked, sent } = await load(tag, 40);
  await faults;
  assert.ok(pgPid !== 0, 'PostgreSQL runs again');
  assert.match(seen.notReady, /^not ready: archive store postgres at .*failing for \d+ s/);
  assert.ok(seen.lagS >= 5, `stratus_archive_lag_seconds grew during the outage (max ${seen.lagS})`);
  const store = await openStore(storeConfig(env));
  try {
    const r = await reconcile(store, tag, acked, sent);
    process.stdout.write(`# postgres outage 20 s: acked ${r.acked}, rows ${r.rows}, lost ${r.lost}, wrong ${r.wrong}, foreign ${r.foreign}; max lag ${seen.lagS.toFixed(1)} s; /readyz said: ${seen.notReady.trim()}\n`);
    assert.ok(r.acked > 20_000, `load ran: ${r.acked} acked`);
    assert.deepEqual({ lost: r.lost, wrong: r.wrong, foreign: r.foreign }, { lost: 0, wrong: 0, foreign: 0 });
    const res = await fetch(`http://127.0.0.1:${archiver.httpPort}/readyz`);
    assert.equal(res.status, 200, await res.text());
    assert.ok((await metric(archiver.httpPort, 'stratus_archive_write_failures_total')) > 0);
  } finally {
    await store.close();
    await archiver.kill9();
  }
});
