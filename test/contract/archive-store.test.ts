/**
 * The archive store contract (src/archive/store.ts), one test body run against both stores:
 * SQLite in a temporary file, and PostgreSQL at archive.postgresUrl (the one `npm test` starts with
 * `stack up --postgres`) in a schema of its own per test (`c_<uuid>`, dropped afterwards).
 *
 * What each test holds the store to: exactly once under a re-read batch, the join of a result to
 * its event whichever came first, the history queries, retention, rows the store refuses
 * dead-lettered with the store's reason while the rest is written, the schema's version table and
 * migrations (an unknown version refused with one line, two engines opening one database at once),
 * and an unreachable store failing with ARCHIVE_UNAVAILABLE.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import Database from 'better-sqlite3';
import pg from 'pg';
import { loadConfig, type Config } from '../../src/config.js';
import { ErrorCode, StratusError } from '../../src/errors.js';
import { openStore } from '../../src/archive/open-store.js';
import { MIGRATIONS, SCHEMA_VERSION } from '../../src/archive/schema.js';
import type { ArchivedEvent, ArchivedResult, ArchiveStore, DeadLetter, StoreKind } from '../../src/archive/store.js';
import { unusedPort } from '../helpers/ports.js';

interface Harness {
  kind: StoreKind;
  /** A config for a store of its own (a new file; a new schema), removed after the test. */
  config(t: TestContext, flags?: Record<string, string>): Config;
  /** Runs SQL on that store's database directly, bypassing the store (to set up what a store must refuse). */
  exec(config: Config, sql: string): Promise<void>;
}

const sqlite: Harness = {
  kind: 'sqlite',
  config(t, flags = {}) {
    const dir = mkdtempSync(join(tmpdir(), 'stratus-archive-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    return loadConfig({ envFile: null, flags: { 'archive-store': 'sqlite', 'archive-sqlite-path': join(dir, 'archive.sqlite'), ...flags } });
  },
  async exec(config, sql) {
    const db = new Database(config.archive.sqlitePath);
    try {
      db.exec(sql);
    } finally {
      db.close();
    }
  },
};

const postgres: Harness = {
  kind: 'postgres',
  config(t, flags = {}) {
    const schema = `c_${randomUUID().replace(/-/g, '').slice(0, 20)}`;
    const config = loadConfig({ flags: { 'archive-store': 'postgres', 'archive-postgres-schema': schema, ...flags } });
    t.after(() => this.exec(config, `DROP SCHEMA IF EXISTS ${schema} CASCADE`));
    return config;
  },
  async exec(config, sql) {
    const client = new pg.Client({ connectionString: config.archive.postgresUrl, connectionTimeoutMillis: 5000 });
    await client.connect();
    try {
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${config.archive.postgresSchema}`);
      await client.query(`SET search_path TO ${config.archive.postgresSchema}`);
      await client.query(sql);
    } finally {
      await client.end();
    }
  },
};

const T0 = 1_750_000_000_000_000; // µs
const DAY_US = 86_400_000_000;

function event(deviceId: string, seq: number, extra: Partial<ArchivedEvent> = {}): ArchivedEvent {
  return {
    deviceId,
    seq,
    type: 'sq',
    value: seq + 0.5,
    payload: Buffer.from(`p${seq}`),
    sentAtUs: T0 + seq * 1000,
    receivedAtUs: T0 + seq * 1000 + 100,
    origin: { topic: 'stratus.events', partition: 3, offset: 1000 + seq, item: 0 },
    ...extra,
  };
}

function result(deviceId: string, seq: number, extra: Partial<ArchivedResult> = {}): ArchivedResult {
  return {
    deviceId,
    seq,
    type: 'sq',
    value: (seq + 0.5) ** 2,
    payload: Buffer.from(`r${seq}`),
    receivedAtUs: T0 + seq * 1000 + 100,
    processedAtUs: T0 + seq * 1000 + 700,
    origin: { topic: 'stratus.results', partition: 5, offset: 2000 + seq, item: 1 },
    ...extra,
  };
}

async function open(t: TestContext, config: Config): Promise<ArchiveStore> {
  const store = await openStore(config);
  t.after(() => store.close());
  return store;
}

function range(n: number, from = 0): number[] {
  return Array.from({ length: n }, (_, i) => from + i);
}

for (const h of [sqlite, postgres]) {
  test(`${h.kind}: a new store is created at the current schema version, and opening it again changes nothing`, async (t) => {
    const config = h.config(t);
    const a = await openStore(config);
    assert.equal(await a.schemaVersion(), SCHEMA_VERSION);
    assert.equal(a.kind, h.kind);
    await a.write({ events: [event('d', 1)], results: [], deadLetters: [] });
    await a.close();
    const b = await open(t, config);
    assert.equal(await b.schemaVersion(), SCHEMA_VERSION);
    assert.deepEqual(await b.counts(), { events: 1, results: 0, deadLetters: 0 });
  });

  test(`${h.kind}: a re-read batch changes nothing; an overlapping one adds only its new rows`, async (t) => {
    const store = await open(t, h.config(t));
    const batch = { events: range(100).map((i) => event(`dev-${i % 7}`, i)), results: range(100).map((i) => result(`dev-${i % 7}`, i)), deadLetters: [] };
    const first = await store.write(batch);
    assert.deepEqual({ events: first.events, results: first.results, duplicates: first.duplicates, dead: first.deadLetters.length }, { events: 100, results: 100, duplicates: 0, dead: 0 });
    const again = await store.write(batch);
    assert.deepEqual({ events: again.events, results: again.results, duplicates: again.duplicates, dead: again.deadLetters.length }, { events: 0, results: 0, duplicates: 200, dead: 0 });
    // Half old, half new; a duplicate in the batch itself counts once.
    const overlap = await store.write({ events: [...range(100, 50).map((i) => event(`dev-${i % 7}`, i)), event('dev-0', 140)], results: [], deadLetters: [] });
    assert.deepEqual({ events: overlap.events, duplicates: overlap.duplicates }, { events: 50, duplicates: 51 });
    assert.deepEqual(await store.counts(), { events: 150, results: 100, deadLetters: 0 });
  });

  test(`${h.kind}: a result joins its event whichever is written first; an event without one reads null`, async (t) => {
    const store = await open(t, h.config(t));
    await store.write({ events: [], results: [result('d1', 2)], deadLetters: [] });
    let h1 = await store.history({ deviceId: 'd1', limit: 10 });
    assert.deepEqual(h1, [], 'a result alone is not an event');
    await store.write({ events: [event('d1', 1), event('d1', 2)], results: [], deadLetters: [] });
    h1 = await store.history({ deviceId: 'd1', limit: 10 });
    assert.equal(h1.length, 2);
    assert.equal(h1[0]!.result, null);
    const e2 = event('d1', 2);
    const r2 = result('d1', 2);
    assert.deepEqual(
      { ...h1[1]!, payload: Buffer.from(h1[1]!.payload), result: { ...h1[1]!.result!, payload: Buffer.from(h1[1]!.result!.payload) } },
      { seq: 2, type: e2.type, value: e2.value, payload: Buffer.from('p2'), sentAtUs: e2.sentAtUs, receivedAtUs: e2.receivedAtUs, result: { type: r2.type, value: r2.value, payload: Buffer.from('r2'), processedAtUs: r2.processedAtUs } },
    );
    await store.write({ events: [], results: [result('d1', 1)], deadLetters: [] });
    h1 = await store.history({ deviceId: 'd1', limit: 10 });
    assert.equal(h1[0]!.result!.processedAtUs, result('d1', 1).processedAtUs);
  });

  test(`${h.kind}: history: one device only, the latest N without since, from since oldest first, any device id`, async (t) => {
    const store = await open(t, h.config(t));
    const odd = "dev 'ü' \"quoted\" ; DROP TABLE events; --";
    await store.write({ events: [...range(50, 1).map((i) => event('a', i)), ...range(5, 1).map((i) => event('b', i)), ...range(3, 1).map((i) => event(odd, i))], results: [], deadLetters: [] });
    const latest = await store.history({ deviceId: 'a', limit: 5 });
    assert.deepEqual(latest.map((e) => e.seq), [46, 47, 48, 49, 50]);
    const since = await store.history({ deviceId: 'a', sinceUs: event('a', 10).receivedAtUs, limit: 4 });
    assert.deepEqual(since.map((e) => e.seq), [10, 11, 12, 13]);
    const sinceAfterAll = await store.history({ deviceId: 'a', sinceUs: T0 + DAY_US, limit: 4 });
    assert.deepEqual(sinceAfterAll, []);
    assert.deepEqual((await store.history({ deviceId: 'b', limit: 100 })).map((e) => e.seq), [1, 2, 3, 4, 5]);
    assert.deepEqual((await store.history({ deviceId: odd, limit: 100 })).map((e) => e.seq), [1, 2, 3]);
    assert.deepEqual(await store.history({ deviceId: 'nobody', limit: 100 }), []);
    assert.deepEqual(await store.counts(), { events: 58, results: 0, deadLetters: 0 });
  });

  test(`${h.kind}: values round-trip: empty and binary payloads, large seqs and times, negative and fractional values`, async (t) => {
    const store = await open(t, h.config(t));
    const bytes = Buffer.from(range(256).map((i) => i));
    const e = event('bin', 2 ** 53 - 1, { payload: bytes, value: -1234.5678, type: 'ü-type', sentAtUs: 2 ** 52, receivedAtUs: 2 ** 52 + 1 });
    const r = result('bin', 2 ** 53 - 1, { payload: Buffer.alloc(0), value: Number.MAX_VALUE, receivedAtUs: 2 ** 52 + 1, processedAtUs: 2 ** 52 + 9 });
    await store.write({ events: [e], results: [r], deadLetters: [] });
    const [got] = await store.history({ deviceId: 'bin', limit: 1 });
    assert.equal(got!.seq, 2 ** 53 - 1);
    assert.deepEqual(Buffer.from(got!.payload), bytes);
    assert.equal(got!.value, -1234.5678);
    assert.equal(got!.type, 'ü-type');
    assert.equal(got!.sentAtUs, 2 ** 52);
    assert.equal(got!.result!.value, Number.MAX_VALUE);
    assert.equal(got!.result!.payload.length, 0);
    assert.equal(got!.result!.processedAtUs, 2 ** 52 + 9);
  });

  test(`${h.kind}: retention deletes what was received before the cut, in chunks, events and results alike`, async (t) => {
    const store = await open(t, h.config(t));
    const old = range(30).map((i) => event('r', i, { receivedAtUs: T0 - 40 * DAY_US + i }));
    const fresh = range(10, 100).map((i) => event('r', i));
    await store.write({ events: [...old, ...fresh], results: [...old.map((e) => result('r', e.seq, { receivedAtUs: e.receivedAtUs })), ...fresh.map((e) => result('r', e.seq))], deadLetters: [] });
    const cut = T0 - 30 * DAY_US;
    let deleted = 0;
    let rounds = 0;
    for (;;) {
      const n = await store.expire(cut, 7);
      assert.ok(n <= 14, `one call deletes at most rowsMax of each table (got ${n})`);
      if (n === 0) break;
      deleted += n;
      rounds++;
    }
    assert.equal(deleted, 60);
    assert.ok(rounds >= 5, `chunked: ${rounds} calls`);
    assert.deepEqual(await store.counts(), { events: 10, results: 10, deadLetters: 0 });
    assert.deepEqual((await store.history({ deviceId: 'r', limit: 100 })).map((e) => e.seq), range(10, 100));
  });

  test(`${h.kind}: dead letters are written once, listed in Kafka order`, async (t) => {
    const store = await open(t, h.config(t));
    const dl: DeadLetter[] = [
      { topic: 'stratus.events', partition: 1, offset: 7, item: 0, deviceId: null, seq: null, reason: 'undecodable record: truncated' },
      { topic: 'stratus.events', partition: 0, offset: 9, item: 3, deviceId: 'x', seq: 4, reason: 'payload of 2000000 bytes is over archive.payloadBytesMax (1048576)' },
    ];
    const first = await store.write({ events: [event('x', 1)], results: [], deadLetters: dl });
    assert.equal(first.deadLetters.length, 2);
    const again = await store.write({ events: [event('x', 1)], results: [], deadLetters: dl });
    assert.equal(again.duplicates, 1);
    assert.deepEqual(await store.counts(), { events: 1, results: 0, deadLetters: 2 });
    assert.deepEqual(await store.deadLetters(10), [dl[1], dl[0]]);
  });

  test(`${h.kind}: a row the store refuses is dead-lettered with the store's reason; the rest of the batch is written`, async (t) => {
    const store = await open(t, h.config(t));
    // Poison for one store or the other: PostgreSQL's text cannot hold NUL; SQLite stores NaN as
    // NULL, which NOT NULL refuses. Whatever a store accepts it must also give back.
    const poisonEvents = [event('nul\u0000dev', 1), event('nan', 2, { value: Number.NaN })];
    const poisonResult = result('nan', 2, { value: Number.NaN });
    const poison = [...poisonEvents, poisonResult];
    const good = range(20).map((i) => event('good', i));
    const out = await store.write({ events: [...good.slice(0, 10), ...poisonEvents, ...good.slice(10)], results: [poisonResult, result('good', 3)], deadLetters: [] });
    const counts = await store.counts();
    assert.equal(out.events + out.results + out.deadLetters.length, 24, 'every row written or dead-lettered');
    assert.equal(counts.events, out.events);
    assert.equal(counts.deadLetters, out.deadLetters.length);
    assert.ok(out.deadLetters.length >= 1, `${h.kind} refuses one of the poison rows`);
    for (const d of out.deadLetters) {
      assert.ok(d.reason.length > 0 && d.reason.length <= 500, d.reason);
      assert.ok(poison.some((p) => p.origin.topic === d.topic && p.origin.offset === d.offset && p.deviceId === d.deviceId), `dead letter names a poison row: ${JSON.stringify(d)}`);
    }
    assert.deepEqual((await store.history({ deviceId: 'good', limit: 100 })).map((e) => e.seq), range(20));
    // Written again (a re-read): nothing new, and the refused rows are not dead-lettered twice.
    await store.write({ events: [...good, ...poisonEvents], results: [poisonResult, result('good', 3)], deadLetters: [] });
    assert.deepEqual(await store.counts(), counts);
  });

  test(`${h.kind}: a batch of 30,000 rows is one write`, async (t) => {
    const store = await open(t, h.config(t));
    const events = range(15_000).map((i) => event(`big-${i % 100}`, i));
    const results = events.map((e) => result(e.deviceId, e.seq));
    const out = await store.write({ events, results, deadLetters: [] });
    assert.deepEqual({ events: out.events, results: out.results }, { events: 15_000, results: 15_000 });
    assert.deepEqual(await store.counts(), { events: 15_000, results: 15_000, deadLetters: 0 });
  });

  test(`${h.kind}: a database at an unknown schema version is refused with one line`, async (t) => {
    const config = h.config(t);
    (await openStore(config)).close();
    await h.exec(config, `INSERT INTO stratus_schema_version (version, summary, applied_at_us) VALUES (${SCHEMA_VERSION + 5}, 'from the future', 0)`);
    await assert.rejects(openStore(config), (err: unknown) => {
      assert.ok(err instanceof StratusError && err.code === ErrorCode.ARCHIVE_SCHEMA_UNKNOWN, String(err));
      assert.match(err.message, new RegExp(`schema version ${SCHEMA_VERSION + 5}, newer than this Stratus knows \\(${SCHEMA_VERSION}\\)`));
      assert.ok(!err.message.includes('\n'));
      return true;
    });
  });

  test(`${h.kind}: a database at version 1 is migrated, its rows kept`, async (t) => {
    const config = h.config(t);
    const v1 = MIGRATIONS[0]!;
    const ddl = h.kind === 'sqlite' ? v1.sqlite : v1.postgres;
    await h.exec(config, [
      'CREATE TABLE stratus_schema_version (version INTEGER PRIMARY KEY, summary TEXT NOT NULL, applied_at_us BIGINT NOT NULL)',
      ...ddl,
      `INSERT INTO stratus_schema_version VALUES (1, 'v1', 0)`,
      `INSERT INTO events VALUES ('old', 1, 't', 1.5, ${h.kind === 'sqlite' ? "X'00'" : "'\\x00'::bytea"}, 1, 2)`,
    ].join(';\n'));
    const store = await open(t, config);
    assert.equal(await store.schemaVersion(), SCHEMA_VERSION);
    assert.deepEqual((await store.history({ deviceId: 'old', limit: 10 })).map((e) => [e.seq, e.value]), [[1, 1.5]]);
    await store.write({ events: [], results: [], deadLetters: [{ topic: 't', partition: 0, offset: 1, item: 0, deviceId: null, seq: null, reason: 'r' }] });
    assert.deepEqual(await store.counts(), { events: 1, results: 0, deadLetters: 1 });
  });

  test(`${h.kind}: two engines opening one new database at once migrate it once`, async (t) => {
    const config = h.config(t);
    const stores = await Promise.all(range(4).map(() => openStore(config)));
    t.after(() => Promise.all(stores.map((s) => s.close())));
    for (const s of stores) assert.equal(await s.schemaVersion(), SCHEMA_VERSION);
    await Promise.all(stores.map((s, i) => s.write({ events: [event('same', 1), event('own', i)], results: [], deadLetters: [] })));
    assert.deepEqual(await stores[0]!.counts(), { events: 5, results: 0, deadLetters: 0 });
  });
}

test('postgres: an unreachable server fails the open with ARCHIVE_UNAVAILABLE within archive.connectTimeoutMs', async () => {
  const port = await unusedPort();
  const config = loadConfig({ flags: { 'archive-store': 'postgres', 'archive-postgres-url': `postgres://stratus@127.0.0.1:${port}/stratus`, 'archive-connect-timeout-ms': '1000' } });
  const started = Date.now();
  await assert.rejects(openStore(config), (err: unknown) => {
    assert.ok(err instanceof StratusError && err.code === ErrorCode.ARCHIVE_UNAVAILABLE && err.retryable, String(err));
    assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
    assert.ok(!err.message.includes('stratus@127.0.0.1:') || !/:[^@/]*@/.test(err.message), 'no password in the message');
    return true;
  });
  assert.ok(Date.now() - started < 10_000);
});

test('off: opening a store with archive.store off says how to set one', async () => {
  await assert.rejects(openStore(loadConfig({ envFile: null, env: {} })), (err: unknown) => err instanceof StratusError && err.code === ErrorCode.ARCHIVE_OFF && /--archive-store/.test(err.message));
});
