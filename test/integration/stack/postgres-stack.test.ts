/**
 * `stratus stack up --postgres` against Debian's real PostgreSQL, on a data dir and a port of this
 * test's own (a port below the ephemeral range from unusedPort(), put into archive.postgresUrl), so
 * it never touches the stack the rest of the suite uses. The PostgreSQL part is driven directly
 * (ensurePostgres, stackStatus, stackDown on the test's data dir: with no pid files there for
 * Redis and Kafka, those find nothing to check or stop); one test goes through the CLI with its
 * own Redis and Kafka ports as stack.test.ts does.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import pg from 'pg';
import { loadConfig, PROJECT_ROOT, type Config } from '../../../src/config.js';
import { ErrorCode, StratusError } from '../../../src/errors.js';
import { stackPaths, type StackPaths } from '../../../src/stack/paths.js';
import { ensurePostgres, postgresBinDir, postgresDataToWipe, postgresDown, postgresState } from '../../../src/stack/postgres-server.js';
import { isAlive, portAnswers, readPid } from '../../../src/stack/processes.js';
import { stackDown, stackStatus } from '../../../src/stack/stack.js';
import { unusedPort } from '../../helpers/ports.js';
import { privateStack } from '../../helpers/private-stack.js';

const CLI = join(PROJECT_ROOT, 'bin', 'stratus.js');
const SKIP = postgresBinDir() === null ? 'PostgreSQL is not installed (npm run setup installs Debian\'s postgresql)' : false;

interface Pg {
  dir: string;
  port: number;
  url: string;
  config: Config;
  paths: StackPaths;
}

function urlFor(port: number, password: string): string {
  return `postgres://archiver${password === '' ? '' : `:${encodeURIComponent(password)}`}@127.0.0.1:${port}/archive_db`;
}

async function newPg(password = ''): Promise<Pg> {
  const dir = mkdtempSync(join(tmpdir(), 'stratus-pg-'));
  // mkdtemp makes it 0700; as root, PostgreSQL runs as the postgres user, which must traverse it.
  chmodSync(dir, 0o755);
  const port = await unusedPort();
  const url = urlFor(port, password);
  const config = loadConfig({ flags: { 'data-dir': dir, 'archive-postgres-url': url }, envFile: null });
  return { dir, port, url, config, paths: stackPaths(config) };
}

async function cleanUp(p: Pg): Promise<void> {
  await postgresDown(p.paths);
  rmSync(p.dir, { recursive: true, force: true });
}

async function query(url: string, sql: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    return await client.query(sql);
  } finally {
    await client.end();
  }
}

test('up starts PostgreSQL, the URL\'s user creates a schema and a table, a second up finds it running, down stops it, up again keeps the data', { skip: SKIP, timeout: 180_000 }, async (t) => {
  const p = await newPg();
  t.after(() => cleanUp(p));
  // A pid file naming a live process that is not ours (this test): up must not trust it.
  mkdirSync(p.paths.runDir, { recursive: true });
  writeFileSync(p.paths.postgresPid, `${process.pid}\n`);

  const said: string[] = [];
  const first = await ensurePostgres(p.config, p.paths, (l) => said.push(l));
  assert.equal(first.report.state, 'started');
  assert.equal(first.report.address, `127.0.0.1:${p.port}`);
  assert.ok(said.some((l) => /removing stale pid file/.test(l)), said.join('\n'));
  const pid = first.startedPid;
  assert.ok(pid !== null && pid !== process.pid && isAlive(pid));
  assert.equal(readPid(p.paths.postgresPid), pid);

  await query(p.url, 'CREATE SCHEMA kept');
  await query(p.url, 'CREATE TABLE kept.rows (id int PRIMARY KEY)');
  await query(p.url, 'INSERT INTO kept.rows VALUES (7)');
  // Durability defaults left as they are.
  assert.equal((await query(p.url, 'SHOW fsync')).rows[0].fsync, 'on');
  assert.equal((await query(p.url, 'SHOW synchronous_commit')).rows[0].synchronous_commit, 'on');

  const second = await ensurePostgres(p.config, p.paths);
  assert.equal(second.report.state, 'running');
  assert.equal(second.report.pid, pid);
  assert.equal(second.startedPid, null);

  const status = await stackStatus(p.config, { postgres: true });
  const row = status.find((s) => s.name === 'postgres');
  assert.deepEqual(row && { state: row.state, pid: row.pid, answering: row.answering, informational: row.informational }, { state: 'running', pid, answering: true, informational: undefined });
  // Without --postgres the running server is still shown, for information.
  assert.equal((await stackStatus(p.config)).find((s) => s.name === 'postgres')?.informational, true);

  const down = await stackDown(p.config);
  assert.deepEqual(down.map((s) => [s.name, s.state]), [['kafka', 'stopped'], ['redis', 'stopped'], ['postgres', 'stopped']]);
  assert.equal(isAlive(pid), false);
  assert.equal(await portAnswers('127.0.0.1', p.port), false);
  assert.equal(existsSync(p.paths.postgresPid), false);
  assert.ok(isAlive(process.pid));
  assert.equal((await stackStatus(p.config, { postgres: true })).find((s) => s.name === 'postgres')?.state, 'stopped');

  const again = await ensurePostgres(p.config, p.paths);
  assert.equal(again.report.state, 'started');
  assert.deepEqual((await query(p.url, 'SELECT id FROM kept.rows')).rows, [{ id: 7 }]);
});

test('a URL with a password: scram on loopback TCP, the right password works, a wrong or missing one is refused', { skip: SKIP, timeout: 120_000 }, async (t) => {
  const p = await newPg('s3cret pass/word');
  t.after(() => cleanUp(p));
  assert.equal((await ensurePostgres(p.config, p.paths)).report.state, 'started');
  assert.deepEqual((await query(p.url, 'SELECT current_user AS u, current_database() AS d')).rows, [{ u: 'archiver', d: 'archive_db' }]);
  await assert.rejects(query(urlFor(p.port, 'wrong'), 'SELECT 1'), /password authentication failed for user "archiver"/);
  await assert.rejects(query(urlFor(p.port, ''), 'SELECT 1'), /password/);
});

test('the port held by another listener: STACK_PORT_TAKEN in one line, nothing started', { skip: SKIP, timeout: 60_000 }, async (t) => {
  const p = await newPg();
  const squatter = createServer((c) => c.destroy());
  await new Promise<void>((r) => squatter.listen(p.port, '127.0.0.1', r));
  t.after(async () => {
    squatter.close();
    await cleanUp(p);
  });
  await assert.rejects(ensurePostgres(p.config, p.paths), (err: unknown) => {
    assert.ok(err instanceof StratusError);
    assert.equal(err.code, ErrorCode.STACK_PORT_TAKEN);
    assert.doesNotMatch(err.message, /\n/);
    assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${p.port} is in use by a process this stack did not start.*archive\\.postgresUrl`));
    return true;
  });
  assert.equal(existsSync(p.paths.postgresPid), false);
  assert.equal(existsSync(p.paths.postgresData), false);
});

test('a server that exits while starting: STACK_START_FAILED with the log\'s tail, no pid file left', { skip: SKIP, timeout: 60_000 }, async (t) => {
  const p = await newPg();
  t.after(() => cleanUp(p));
  await ensurePostgres(p.config, p.paths);
  await postgresDown(p.paths);
  appendFileSync(join(p.paths.postgresData, 'postgresql.conf'), "\nshared_buffers = 'not a size'\n");
  await assert.rejects(ensurePostgres(p.config, p.paths), (err: unknown) => {
    assert.ok(err instanceof StratusError);
    assert.equal(err.code, ErrorCode.STACK_START_FAILED);
    assert.match(err.message, /^postgres exited while starting; its log \(.*postgres\.log\) ends with:\n/);
    assert.match(err.message, /shared_buffers/);
    return true;
  });
  assert.equal(existsSync(p.paths.postgresPid), false);
});

test('as root: a data dir the postgres user cannot reach: the cluster goes to /var/lib/stratus, linked from <dataDir>/postgres, and works', { skip: SKIP || (process.getuid?.() !== 0 && 'only as root (then PostgreSQL runs as the postgres user)'), timeout: 120_000 }, async (t) => {
  // mkdtemp's 0700, left as it is: the postgres user cannot traverse it (a checkout under /root).
  const closed = mkdtempSync(join(tmpdir(), 'stratus-pg-closed-'));
  const port = await unusedPort();
  const config = loadConfig({ flags: { 'data-dir': join(closed, 'data'), 'archive-postgres-url': urlFor(port, '') }, envFile: null });
  const paths = stackPaths(config);
  const lines: string[] = [];
  t.after(async () => {
    await postgresDown(paths);
    for (const d of postgresDataToWipe(paths)) rmSync(d, { recursive: true, force: true });
    rmSync(closed, { recursive: true, force: true });
  });
  const { startedPid } = await ensurePostgres(config, paths, (l) => lines.push(l));
  assert.ok(startedPid !== null);
  assert.ok(lstatSync(paths.postgresDir).isSymbolicLink(), `${paths.postgresDir} links to the cluster`);
  const target = realpathSync(paths.postgresDir);
  assert.match(target, /^\/var\/lib\/stratus\/postgres-[0-9a-f]{16}$/);
  assert.ok(lines.some((l) => l.includes(`cannot traverse ${closed} (mode 0700)`) && l.includes(target)), lines.join('\n'));
  assert.deepEqual(postgresDataToWipe(paths), [target, paths.postgresDir]);
  await query(urlFor(port, ''), 'CREATE TABLE reachable (x int)');
  assert.equal(postgresState(paths).state, 'running', 'found by its pid file and marker');
});

test('the CLI: stack up --postgres with its own Redis and Kafka, status --postgres, logs postgres, up without --postgres leaves it alone, --fresh wipes it, down stops all', { skip: SKIP, timeout: 400_000 }, async (t) => {
  const stack = await privateStack('stratus-pg-cli-');
  const dir = stack.dir;
  chmodSync(dir, 0o755);
  const pgPort = await unusedPort();
  const url = urlFor(pgPort, '');
  // Only this test's ports and data dir: the suite's own stack is never touched.
  const env: Record<string, string> = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', ...stack.env, STRATUS_ARCHIVE_POSTGRES_URL: url };
  const stratus = (...args: string[]) => {
    const r = spawnSync(process.execPath, [CLI, ...args], { env, encoding: 'utf8', timeout: 150_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  t.after(() => {
    stratus('stack', 'down');
    rmSync(dir, { recursive: true, force: true });
  });
  const pidFile = join(dir, 'run', 'postgres.pid');

  const up = stratus('stack', 'up', '--postgres');
  assert.equal(up.code, 0, up.stderr);
  assert.match(up.stdout, new RegExp(`postgres\\s+started\\s+127\\.0\\.0\\.1:${pgPort}`));
  assert.match(up.stdout, /redis\s+started/);
  const pid = readPid(pidFile);
  assert.ok(pid !== null && isAlive(pid));
  await query(url, 'CREATE TABLE wiped (id int)');

  const status = stratus('stack', 'status', '--postgres');
  assert.equal(status.code, 0, status.stdout + status.stderr);
  assert.match(status.stdout, new RegExp(`postgres\\s+running\\s+127\\.0\\.0\\.1:${pgPort}\\s+pid ${pid}`));
  assert.doesNotMatch(status.stdout, /NOT ANSWERING/);

  const logs = stratus('stack', 'logs', 'postgres', '--lines', '5');
  assert.equal(logs.code, 0, logs.stderr);
  assert.match(logs.stdout, /postgres\.log <==/);

  const plain = stratus('stack', 'up');
  assert.equal(plain.code, 0, plain.stderr);
  assert.doesNotMatch(plain.stdout, /postgres/);
  assert.equal(readPid(pidFile), pid);
  assert.ok(isAlive(pid));

  const fresh = stratus('stack', 'up', '--postgres', '--fresh');
  assert.equal(fresh.code, 0, fresh.stderr);
  assert.match(fresh.stdout, /postgres\s+started/);
  assert.equal(isAlive(pid), false);
  await assert.rejects(query(url, 'SELECT * FROM wiped'), /relation "wiped" does not exist/);

  const freshPid = readPid(pidFile);
  const down = stratus('stack', 'down');
  assert.equal(down.code, 0, down.stderr);
  assert.match(down.stdout, /postgres\s+stopped/);
  assert.ok(freshPid !== null && !isAlive(freshPid));
  assert.equal(await portAnswers('127.0.0.1', pgPort), false);
  assert.equal(existsSync(pidFile), false);
});
