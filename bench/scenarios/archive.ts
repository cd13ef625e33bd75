/**
 * Scenario: the archive (src/archive/). For each store (SQLite, PostgreSQL):
 *   archiver  N events and their N results put in a fresh topic prefix's events and results topics
 *             (records of RECORD_EVENTS events of many devices, 100-byte payloads, encoded as the
 *             gateway and processor encode them, produced with the engine's producer and flushed),
 *             then a child `stratus run --roles archiver` (its own process: its CPU is not this
 *             one's) on a fresh SQLite file / PostgreSQL schema, timed from its spawn until the
 *             store's counts() shows all 2N rows;
 *   ceiling   the same 2N rows loaded into a fresh file / schema created by openStore (so the same
 *             tables and indexes) the store's own fastest way: SQLite, better-sqlite3 in this process,
 *             the store's prepared INSERTs in transactions of archive.batchRowsMax rows with the
 *             store's pragmas (WAL, synchronous=FULL); PostgreSQL, `psql \copy ... FROM csv` of each
 *             table, the psql processes' wall time.
 * Ratio: archived rows/s / ceiling rows/s, per store (no target).
 *
 * Then the archiver's cost to the real-time path: one whole engine (`stratus run`) at a fixed
 * open-loop rate, its round trip measured by the load generator as in the other scenarios, with
 * archive.store off, then sqlite (a fresh file), then postgres (a fresh schema), in interleaved
 * rounds (two in a full run, each setting's side its round with the lowest result p99; one in
 * --quick). Ratios: result p99 and results/s with each store / without.
 *
 * PostgreSQL is archive.postgresUrl (the local one `stack up --postgres` runs); when it does not
 * answer, its sides are left out and the reading says so.
 */
import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../src/archive/open-store.js';
import type { ArchiveStore } from '../../src/archive/store.js';
import { loadConfig, type Config } from '../../src/config.js';
import { deleteTopics, ensureTopics } from '../../src/kafka/admin.js';
import { kafkaClients } from '../../src/kafka/factory.js';
import { topology } from '../../src/topology.js';
import { encodeEventRecord, type AcceptedEvent } from '../../src/wire/event-record.js';
import { encodeResult, encodeResultRecord, type DeviceResult } from '../../src/wire/result-record.js';
import type { LoadgenSummary } from '../../loadgen/summary.js';
import { cpuSeconds } from '../child.js';
import { loadFigures, loadgen, startEngine, type Fleet } from '../engine.js';
import { ratio, type BenchContext, type Ratio, type Scenario, type Side } from '../scenario.js';

const PARTITIONS = 6;
const RECORD_EVENTS = 100;
const PAYLOAD_BYTES = 100;
const POLL_MS = 250;

type Kind = 'sqlite' | 'postgres';

/** The rows of the run: N events of `devices` devices (seq per device) and their N results. */
function makeRows(n: number, devices: number): { events: AcceptedEvent[]; results: DeviceResult[] } {
  const nowUs = Date.now() * 1000;
  const events: AcceptedEvent[] = [];
  const results: DeviceResult[] = [];
  for (let i = 0; i < n; i++) {
    const deviceId = `bench-device-${String(i % devices).padStart(6, '0')}`;
    const seq = Math.floor(i / devices) + 1;
    const payload = randomBytes(PAYLOAD_BYTES);
    const e: AcceptedEvent = { deviceId, seq, type: 'telemetry', value: (i % 1000) / 10, payload, sentAtUs: nowUs + i - 2000, receivedAtUs: nowUs + i };
    events.push(e);
    results.push({ ...e, type: 'telemetry.result', value: e.value * 2, payload: randomBytes(PAYLOAD_BYTES), processedAtUs: e.receivedAtUs + 1500 });
  }
  return { events, results };
}

function storeConfig(kind: Kind, extra: Record<string, string>): Config {
  return loadConfig({ flags: { 'archive-store': kind, 'kafka-partitions': String(PARTITIONS), ...extra } });
}

/** Where a fresh store goes, as config flags: a new file in `dir`, or a new schema. */
function freshStoreFlags(kind: Kind, dir: string): Record<string, string> {
  return kind === 'sqlite' ? { 'archive-sqlite-path': join(dir, `archive-${randomUUID().slice(0, 8)}.sqlite`) } : { 'archive-postgres-schema': `bench_${randomUUID().slice(0, 8)}` };
}

async function dropStore(kind: Kind, c: Config): Promise<void> {
  if (kind === 'sqlite') {
    for (const suffix of ['', '-wal', '-shm']) rmSync(c.archive.sqlitePath + suffix, { force: true });
    return;
  }
  await psql(c.archive.postgresUrl, `DROP SCHEMA IF EXISTS "${c.archive.postgresSchema}" CASCADE`).catch(() => {});
}

/** Runs one psql command; resolves with its wall time in ms. */
function psql(url: string, command: string): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) =>
    execFile('psql', [url, '-v', 'ON_ERROR_STOP=1', '-qAt', '-c', command], { timeout: 600_000 }, (err, _out, stderr) =>
      err === null ? resolve(performance.now() - t0) : reject(new Error(`psql -c ${JSON.stringify(command)}: ${stderr.trim() || err.message}`)),
    ),
  );
}

/** Fills the events and results topics of `c`'s prefix with the rows, RECORD_EVENTS per record, and flushes. */
async function fillTopics(c: Config, rows: { events: AcceptedEvent[]; results: DeviceResult[] }): Promise<void> {
  const t = topology(c);
  await ensureTopics(c, [
    { topic: t.topics.events, partitions: PARTITIONS },
    { topic: t.topics.results, partitions: PARTITIONS },
  ]);
  let failed: Error | null = null;
  const producer = await (await kafkaClients(c)).producer(c, `bench-archive-${randomUUID().slice(0, 8)}`, (err) => {
    if (err !== null) failed ??= err;
  });
  try {
    const send = async (topic: string, partition: number, value: Buffer) => {
      while (!producer.produce(topic, partition, null, value, null)) await producer.flush(60_000);
    };
    for (let i = 0, r = 0; i < rows.events.length; i += RECORD_EVENTS, r++) {
      const partition = r % PARTITIONS;
      await send(t.topics.events, partition, encodeEventRecord(rows.events.slice(i, i + RECORD_EVENTS)));
      await send(t.topics.results, partition, encodeResultRecord(rows.results.slice(i, i + RECORD_EVENTS).map(encodeResult)));
    }
    await producer.flush(120_000);
  } finally {
    await producer.disconnect(10_000);
  }
  if (failed !== null) throw new Error(`producing the archive's input failed: ${(failed as Error).message}`);
}

/** The archiver in a child `stratus run --roles archiver`: its spawn until the store holds every row. */
async function measureArchiver(ctx: BenchContext, kind: Kind, dir: string, rows: { events: AcceptedEvent[]; results: DeviceResult[] }): Promise<Record<string, number>> {
  const prefix = `bench.${randomUUID().slice(0, 8)}.`;
  const c = storeConfig(kind, { 'kafka-topic-prefix': prefix, ...freshStoreFlags(kind, dir) });
  const want = rows.events.length + rows.results.length;
  let store: ArchiveStore | null = null;
  try {
    ctx.log(`  ${kind}: producing ${rows.events.length} events and ${rows.results.length} results to ${prefix}*`);
    await fillTopics(c, rows);
    store = await openStore(c);
    const env: Record<string, string> = {
      STRATUS_KAFKA_TOPIC_PREFIX: prefix,
      STRATUS_KAFKA_PARTITIONS: String(PARTITIONS),
      STRATUS_ARCHIVE_STORE: kind,
      ...(kind === 'sqlite' ? { STRATUS_ARCHIVE_SQLITE_PATH: c.archive.sqlitePath } : { STRATUS_ARCHIVE_POSTGRES_SCHEMA: c.archive.postgresSchema }),
    };
    const t0 = performance.now();
    const enginePromise = startEngine({ roles: 'archiver', env });
    let startedS = NaN;
    enginePromise.then(() => (startedS = (performance.now() - t0) / 1000), () => {});
    let seen = 0;
    let doneMs = NaN;
    const deadline = t0 + 600_000;
    // Polled while the child starts: its rows count from its spawn.
    for (;;) {
      const n = await store.counts();
      seen = n.events + n.results;
      if (seen >= want) {
        doneMs = performance.now() - t0;
        break;
      }
      if (performance.now() > deadline) break;
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
    const engine = await enginePromise;
    const cpuS = cpuSeconds(engine.service.child.pid!);
    await engine.stop();
    if (!(seen >= want)) throw new Error(`${kind}: the archiver stored ${seen} of ${want} rows in ${Math.round((deadline - t0) / 1000)} s`);
    const counts = await store.counts();
    const s = doneMs / 1000;
    ctx.log(`  ${kind} archiver: ${want} rows in ${s.toFixed(1)} s (${Math.round(want / s)} rows/s; started after ${startedS.toFixed(1)} s; ${cpuS.toFixed(1)} CPU s; ${counts.deadLetters} dead letters)`);
    return { rows: want, seconds: Math.round(s * 100) / 100, rowsPerS: Math.round(want / s), eventsPerS: Math.round(want / 2 / s), startS: Math.round(startedS * 100) / 100, cpuS: Math.round(cpuS * 100) / 100, deadLetters: counts.deadLetters };
  } finally {
    await store?.close().catch(() => {});
    const t = topology(c);
    await deleteTopics(c, [t.topics.events, t.topics.results]).catch(() => {});
    await dropStore(kind, c);
  }
}

/** SQLite's bulk-load ceiling: better-sqlite3 here, the store's INSERTs in transactions of archive.batchRowsMax. */
function sqliteCeiling(path: string, batchRowsMax: number, rows: { events: AcceptedEvent[]; results: DeviceResult[] }): number {
  const require = createRequire(import.meta.url);
  const Database = require('better-sqlite3') as new (path: string) => {
    exec(sql: string): void;
    prepare(sql: string): { run(...p: unknown[]): unknown };
    close(): void;
  };
  const db = new Database(path);
  try {
    db.exec('PRAGMA journal_mode = WAL');
    db.exec('PRAGMA synchronous = FULL');
    const ev = db.prepare('INSERT INTO events (device_id, seq, type, value, payload, sent_at_us, received_at_us) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (device_id, seq) DO NOTHING');
    const rs = db.prepare('INSERT INTO results (device_id, seq, type, value, payload, received_at_us, processed_at_us) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (device_id, seq) DO NOTHING');
    const t0 = performance.now();
    const load = <T>(list: T[], insert: (x: T) => void) => {
      for (let i = 0; i < list.length; i += batchRowsMax) {
        db.exec('BEGIN IMMEDIATE');
        const end = Math.min(i + batchRowsMax, list.length);
        for (let j = i; j < end; j++) insert(list[j]!);
        db.exec('COMMIT');
      }
    };
    load(rows.events, (e) => ev.run(e.deviceId, e.seq, e.type, e.value, e.payload, e.sentAtUs, e.receivedAtUs));
    load(rows.results, (r) => rs.run(r.deviceId, r.seq, r.type, r.value, r.payload, r.receivedAtUs, r.processedAtUs));
    return performance.now() - t0;
  } finally {
    db.close();
  }
}

const csvBytes = (b: Uint8Array) => `\\x${Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')}`;

/** PostgreSQL's bulk-load ceiling: `psql \copy FROM csv` of each table, the psql processes' wall time. */
async function postgresCeiling(c: Config, dir: string, rows: { events: AcceptedEvent[]; results: DeviceResult[] }): Promise<number> {
  const eventsCsv = join(dir, 'events.csv');
  const resultsCsv = join(dir, 'results.csv');
  writeFileSync(eventsCsv, rows.events.map((e) => `${e.deviceId},${e.seq},${e.type},${e.value},${csvBytes(e.payload)},${e.sentAtUs},${e.receivedAtUs}\n`).join(''));
  writeFileSync(resultsCsv, rows.results.map((r) => `${r.deviceId},${r.seq},${r.type},${r.value},${csvBytes(r.payload)},${r.receivedAtUs},${r.processedAtUs}\n`).join(''));
  try {
    const s = c.archive.postgresSchema;
    const events = await psql(c.archive.postgresUrl, `\\copy "${s}".events (device_id, seq, type, value, payload, sent_at_us, received_at_us) FROM '${eventsCsv}' WITH (FORMAT csv)`);
    const results = await psql(c.archive.postgresUrl, `\\copy "${s}".results (device_id, seq, type, value, payload, received_at_us, processed_at_us) FROM '${resultsCsv}' WITH (FORMAT csv)`);
    return events + results;
  } finally {
    rmSync(eventsCsv, { force: true });
    rmSync(resultsCsv, { force: true });
  }
}

async function measureCeiling(ctx: BenchContext, kind: Kind, dir: string, rows: { events: AcceptedEvent[]; results: DeviceResult[] }): Promise<Record<string, number>> {
  const c = storeConfig(kind, freshStoreFlags(kind, dir));
  try {
    // The same tables and indexes as the archiver's: created by openStore.
    const store = await openStore(c);
    await store.close();
    const ms = kind === 'sqlite' ? sqliteCeiling(c.archive.sqlitePath, c.archive.batchRowsMax, rows) : await postgresCeiling(c, dir, rows);
    const check = await openStore(c);
    const n = await check.counts().finally(() => check.close());
    const want = rows.events.length + rows.results.length;
    if (n.events + n.results !== want) throw new Error(`${kind} ceiling: ${n.events + n.results} of ${want} rows loaded`);
    const s = ms / 1000;
    ctx.log(`  ${kind} ceiling: ${want} rows in ${s.toFixed(1)} s (${Math.round(want / s)} rows/s)`);
    return { rows: want, seconds: Math.round(s * 100) / 100, rowsPerS: Math.round(want / s), eventsPerS: Math.round(want / 2 / s) };
  } finally {
    await dropStore(kind, c);
  }
}

/** Whether archive.postgresUrl answers (psql), and why not. */
async function postgresProblem(config: Config): Promise<string | null> {
  try {
    await psql(config.archive.postgresUrl, 'SELECT 1');
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

export const archive: Scenario = {
  id: 'archive',
  title: 'Archive: archiver rows/s vs each store\'s bulk-load ceiling; its cost to the round trip',
  async run(ctx) {
    const n = ctx.quick ? 20_000 : 200_000;
    const devices = ctx.quick ? 1000 : 10_000;
    const fleet: Fleet = ctx.quick ? { devices: 100, totalRate: 500, durationS: 3, warmupS: 2, drainS: 10 } : { devices: 1000, totalRate: 3000, durationS: 20, warmupS: 5, drainS: 15 };
    const dir = mkdtempSync(join(tmpdir(), 'stratus-bench-archive-'));
    const pgProblem = await postgresProblem(ctx.config);
    if (pgProblem !== null) ctx.log(`  postgres: left out (${pgProblem})`);
    const kinds: Kind[] = pgProblem === null ? ['sqlite', 'postgres'] : ['sqlite'];
    const sides: Side[] = [];
    const ratios: Ratio[] = [];
    const summaries: Record<string, LoadgenSummary> = {};
    const roundsP99: Record<string, number[]> = {};
    const rounds = ctx.quick ? 1 : 2;
    const figures: Record<string, { archiver: Record<string, number>; ceiling: Record<string, number> }> = {};
    try {
      const rows = makeRows(n, devices);
      for (const kind of kinds) {
        const archiver = await measureArchiver(ctx, kind, dir, rows);
        const ceiling = await measureCeiling(ctx, kind, dir, rows);
        figures[kind] = { archiver, ceiling };
        const how = kind === 'sqlite' ? `better-sqlite3, transactions of ${ctx.config.archive.batchRowsMax} rows` : 'psql \\copy from CSV';
        sides.push({ name: `${kind}: archiver (child process)`, figures: archiver }, { name: `${kind}: bulk-load ceiling (${how})`, figures: ceiling });
        ratios.push(ratio(`rows/s: ${kind} archiver / ${kind} bulk-load ceiling`, archiver.rowsPerS! / ceiling.rowsPerS!));
      }
      // Interleaved rounds (off, sqlite, postgres, off, ...): on this shared machine one run can
      // land on another process's burst; each setting's side is its round with the lowest result p99.
      const settings: ('off' | Kind)[] = ['off', ...kinds];
      const runs: Record<string, LoadgenSummary[]> = {};
      for (let round = 0; round < rounds; round++) {
        for (const setting of settings) {
          const flags = setting === 'off' ? {} : freshStoreFlags(setting, dir);
          const c = setting === 'off' ? null : storeConfig(setting, flags);
          const env: Record<string, string> = { STRATUS_ARCHIVE_STORE: setting };
          if (c !== null && setting === 'sqlite') env.STRATUS_ARCHIVE_SQLITE_PATH = c.archive.sqlitePath;
          if (c !== null && setting === 'postgres') env.STRATUS_ARCHIVE_POSTGRES_SCHEMA = c.archive.postgresSchema;
          ctx.log(`  engine with archive.store=${setting} (round ${round + 1} of ${rounds}): ${fleet.totalRate} events/s open loop`);
          const engine = await startEngine({ env });
          try {
            (runs[setting] ??= []).push(await loadgen(ctx, engine.target, fleet));
          } finally {
            await engine.stop();
            if (c !== null && setting !== 'off') await dropStore(setting, c);
          }
        }
      }
      const p99 = (x: LoadgenSummary) => x.latency.result?.p99Ms ?? Infinity;
      for (const setting of settings) {
        summaries[setting] = [...runs[setting]!].sort((a, b) => p99(a) - p99(b))[0]!;
        sides.push({ name: `engine, archive.store=${setting}`, figures: loadFigures(summaries[setting]!) });
        roundsP99[setting] = runs[setting]!.map((x) => x.latency.result?.p99Ms ?? NaN);
      }
      const off = sides.find((s) => s.name === 'engine, archive.store=off')!.figures;
      for (const kind of kinds) {
        const on = sides.find((s) => s.name === `engine, archive.store=${kind}`)!.figures;
        ratios.push(ratio(`result p99: archive ${kind} / off`, on.resultP99Ms! / off.resultP99Ms!));
        ratios.push(ratio(`results/s: archive ${kind} / off`, on.resultsPerS! / off.resultsPerS!));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const fmt = (v: number) => (Math.abs(v) >= 100 ? Math.round(v).toLocaleString('en-US') : String(Math.round(v * 100) / 100));
    const r = (name: string) => ratios.find((x) => x.name === name)!.value;
    const stores = kinds.map((k) => `${k} ${fmt(figures[k]!.archiver.eventsPerS!)} events/s (${fmt(figures[k]!.archiver.rowsPerS!)} rows/s, ${fmt(r(`rows/s: ${k} archiver / ${k} bulk-load ceiling`))}× its bulk-load ceiling of ${fmt(figures[k]!.ceiling.rowsPerS!)} rows/s)`);
    const cost = kinds.map((k) => `${k} ${fmt(r(`result p99: archive ${k} / off`))}× the result p99 and ${fmt(r(`results/s: archive ${k} / off`))}× the results/s`);
    const reading =
      `Draining ${fmt(n)} events and their results from Kafka, the archiver (a child \`stratus run --roles archiver\`, timed from its spawn) stored ${stores.join('; ')}. ` +
      `With the archiver running beside the whole engine at ${fmt(fleet.totalRate)} events/s the round trip had, against archive.store=off, ${cost.join('; ')}` +
      (rounds > 1 ? ` (each setting's best of ${rounds} interleaved runs by result p99; every run's result p99 in ms: ${Object.entries(roundsP99).map(([k, v]) => `${k} ${v.map(fmt).join(', ')}`).join('; ')}).` : '.') +
      (pgProblem === null ? '' : ' PostgreSQL did not answer at archive.postgresUrl, so it was not measured.');
    return {
      id: 'archive',
      title: 'Archive: archiver rows/s vs each store\'s bulk-load ceiling; its cost to the round trip',
      params: { events: n, rows: 2 * n, devices, eventsPerRecord: RECORD_EVENTS, payloadBytes: PAYLOAD_BYTES, partitions: PARTITIONS, batchRowsMax: ctx.config.archive.batchRowsMax, loadDevices: fleet.devices, loadRatePerS: fleet.totalRate, loadDurationS: fleet.durationS, loadRounds: rounds },
      sides,
      ratios,
      reading,
      plots: [{ id: 'result', title: 'Round-trip (result) latency with and without the archiver', series: Object.entries(summaries).filter(([, s]) => s.latency.result !== undefined).map(([k, s]) => ({ name: `archive.store=${k}`, distribution: s.latency.result!.distribution })) }],
      raw: { postgres: pgProblem === null ? 'measured' : `left out: ${pgProblem}`, resultP99MsPerRound: roundsP99 },
    };
  },
};
