/**
 * The local PostgreSQL of `stack up --postgres`: Debian's postgresql package (the newest major
 * under /usr/lib/postgresql, else `pg_config --bindir`) run on the host and port of
 * archive.postgresUrl, with its cluster in <dataDir>/postgres/data and its pid in
 * <dataDir>/run/postgres.pid. Durability is PostgreSQL's default (fsync and synchronous_commit
 * on): the archive is the record of every event, so a crash must not lose a committed batch.
 *
 * postgres and initdb refuse to run as root. As root they run as Debian's `postgres` system user
 * (spawned with its uid/gid directly, not through runuser: runuser stays the parent, so the pid we
 * would record and signal would be runuser's, not the postmaster's), which then owns
 * <dataDir>/postgres and must be able to traverse every directory above it; when it cannot (a
 * checkout under a 0700 home), the cluster goes to /var/lib/stratus/postgres-<hash of dataDir>
 * instead, linked from <dataDir>/postgres (placeCluster).
 *
 * First start: initdb (UTF8, C collation), local (unix socket) connections trusted: the socket
 * lives in a 0700 directory of the cluster's owner, so only that user (and root) can use it. TCP
 * on loopback is trusted too when the URL has no password; with a password it is scram-sha-256.
 * Then, on every start this module makes: the URL's user as a LOGIN role (its password set from the
 * URL) and the URL's database owned by it, so the archive can create its schema there.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, chmodSync, chownSync, closeSync, existsSync, lstatSync, mkdirSync, openSync, readdirSync, realpathSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../config.js';
import { ErrorCode, StratusError } from '../errors.js';
import { isLoopback, type StackPaths } from './paths.js';
import { isAlive, pidState, portAnswers, removeFile, runToEnd, stopProcess, tail, writePid, type PidState } from './processes.js';
import type { ServiceReport } from './stack.js';

/** initdb's bootstrap superuser: the stack's own connections (readiness, provisioning) use it over the socket. */
const SUPERUSER = 'postgres';
const INITDB_TIMEOUT_MS = 120_000;
/** A fast shutdown (SIGINT) rolls back open transactions and checkpoints: seconds, unless the disk is slow. */
const STOP_GRACE_MS = 60_000;

export interface PostgresTarget {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
}

const URL_FIX = 'set it with --archive-postgres-url or STRATUS_ARCHIVE_POSTGRES_URL, e.g. postgres://stratus@127.0.0.1:5433/stratus';

/**
 * What archive.postgresUrl asks the local stack to serve; throws CONFIG_INVALID when the stack
 * cannot serve it (not a postgres:// URL, no user, a host that is not loopback).
 */
export function postgresTarget(config: Config): PostgresTarget {
  const t = parseUrl(config);
  if (!isLoopback(t.host)) {
    throw new StratusError(ErrorCode.CONFIG_INVALID, `config archive.postgresUrl must name a loopback host for the local stack (got ${t.host}); use 127.0.0.1, ::1 or localhost`);
  }
  if (t.user === '') throw new StratusError(ErrorCode.CONFIG_INVALID, `config archive.postgresUrl names no user: the local stack creates that role; ${URL_FIX}`);
  return t;
}

function parseUrl(config: Config): PostgresTarget {
  let url: URL;
  try {
    url = new URL(config.archive.postgresUrl);
  } catch {
    throw new StratusError(ErrorCode.CONFIG_INVALID, `config archive.postgresUrl is not a URL; ${URL_FIX}`);
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new StratusError(ErrorCode.CONFIG_INVALID, `config archive.postgresUrl must be a postgres:// URL (got scheme ${url.protocol}); ${URL_FIX}`);
  }
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = url.port === '' ? 5432 : Number(url.port);
  const user = decodeURIComponent(url.username);
  const database = decodeURIComponent(url.pathname.replace(/^\//, '')) || user;
  return { host, port, user, password: decodeURIComponent(url.password), database };
}

/**
 * host:port of archive.postgresUrl for the stack's rows. Not validated for the stack: `down` and
 * `status` must work while the URL names a remote database, or a PostgreSQL started before the
 * URL changed could not be stopped.
 */
export function postgresAddress(config: Config): string {
  let t: PostgresTarget;
  try {
    t = parseUrl(config);
  } catch {
    return '(archive.postgresUrl is not a URL)';
  }
  return t.host.includes(':') ? `[${t.host}]:${t.port}` : `${t.host}:${t.port}`;
}

/** Our postmaster's command line names its own data directory (the postmaster keeps its title). */
function marker(paths: StackPaths): string {
  return `-D ${clusterDirs(paths).data} `;
}

export function postgresState(paths: StackPaths): PidState {
  return pidState(paths.postgresPid, marker(paths));
}

/** The bin directory of the newest installed PostgreSQL, or null. */
export function postgresBinDir(): string | null {
  const base = '/usr/lib/postgresql';
  let majors: string[] = [];
  try {
    majors = readdirSync(base).filter((d) => /^\d+$/.test(d)).sort((a, b) => Number(b) - Number(a));
  } catch {
    // No Debian layout: pg_config may still know where the binaries are.
  }
  for (const m of majors) if (existsSync(join(base, m, 'bin', 'postgres'))) return join(base, m, 'bin');
  const r = spawnSync('pg_config', ['--bindir'], { encoding: 'utf8' });
  const dir = r.status === 0 ? r.stdout.trim() : '';
  return dir !== '' && existsSync(join(dir, 'postgres')) && existsSync(join(dir, 'initdb')) ? dir : null;
}

interface RunAs {
  name: string;
  uid: number;
  gid: number;
}

/** The user postgres and initdb run as: null for the current user, `postgres` when we are root. */
function runAs(): RunAs | null {
  if (process.getuid?.() !== 0) return null;
  const r = spawnSync('getent', ['passwd', 'postgres'], { encoding: 'utf8' });
  const f = r.status === 0 ? r.stdout.trim().split(':') : [];
  if (f.length < 4) {
    throw new StratusError(ErrorCode.STACK_PROGRAM_MISSING, 'PostgreSQL refuses to run as root and there is no `postgres` system user to run it as: install Debian\'s postgresql package (`npm run setup`), or run stratus as a non-root user');
  }
  return { name: 'postgres', uid: Number(f[2]), gid: Number(f[3]) };
}

/**
 * The first directory from / down to `dir` that `who` cannot traverse (x for it as owner, group
 * or other), or null when postgres, running as that user, can reach `dir`. Supplementary groups
 * are not considered: a directory reachable only through one counts as unreachable, to be safe.
 */
function blockedAt(dir: string, who: RunAs): { dir: string; mode: number; uid: number } | null {
  const chain: string[] = [];
  for (let d = dir; ; d = dirname(d)) {
    chain.unshift(d);
    if (dirname(d) === d) break;
  }
  for (const d of chain) {
    const st = statSync(d);
    const bit = st.uid === who.uid ? 0o100 : st.gid === who.gid ? 0o010 : 0o001;
    if ((st.mode & bit) === 0) return { dir: d, mode: st.mode & 0o777, uid: st.uid };
  }
  return null;
}

function checkReachable(dir: string, who: RunAs): void {
  const b = blockedAt(dir, who);
  if (b !== null) {
    throw new StratusError(
      ErrorCode.STACK_START_FAILED,
      `PostgreSQL runs as the ${who.name} user (it refuses root) and cannot reach ${dir}: ${b.dir} (mode ${b.mode.toString(8).padStart(4, '0')}, owner uid ${b.uid}) is not traversable for it; set dataDir elsewhere (--data-dir, STRATUS_DATA_DIR) or \`chmod o+x ${b.dir}\``,
    );
  }
}

/**
 * Where the cluster lives when the postgres user cannot reach the data dir (a checkout under a
 * 0700 home, as root): a directory of its own under /var/lib/stratus, named after the data dir,
 * linked from <dataDir>/postgres so that `stack up --fresh` and the paths above still find it.
 */
const FALLBACK_ROOT = '/var/lib/stratus';

function fallbackDir(paths: StackPaths): string {
  return join(FALLBACK_ROOT, `postgres-${createHash('sha256').update(paths.dataDir).digest('hex').slice(0, 16)}`);
}

/**
 * The cluster's data and socket directories as postgres is given them: through <dataDir>/postgres,
 * resolved when that is a link to the fallback (postgres must be handed a path it can traverse).
 */
export function clusterDirs(paths: StackPaths): { dir: string; data: string; socket: string } {
  let dir = paths.postgresDir;
  try {
    if (lstatSync(dir).isSymbolicLink()) dir = realpathSync(dir);
  } catch {
    // Not there yet: the paths as configured.
  }
  return { dir, data: join(dir, 'data'), socket: join(dir, 'socket') };
}

/** `stack up --fresh`: the cluster's files, at the fallback too when <dataDir>/postgres links there. */
export function postgresDataToWipe(paths: StackPaths): string[] {
  const dirs = clusterDirs(paths);
  return dirs.dir === paths.postgresDir ? [paths.postgresDir] : [dirs.dir, paths.postgresDir];
}

/**
 * As root, when the postgres user cannot reach <dataDir>/postgres and it holds no cluster yet:
 * the cluster goes to fallbackDir() instead, linked from there. Said once, by `say`.
 */
function placeCluster(paths: StackPaths, who: RunAs, say: (l: string) => void): void {
  if (lstatSync(paths.postgresDir, { throwIfNoEntry: false })?.isSymbolicLink() === true) return;
  const blocked = blockedAt(dirname(paths.postgresDir), who);
  if (blocked === null) return;
  if (existsSync(paths.postgresDir) && readdirSync(paths.postgresDir).length > 0) return;
  const target = fallbackDir(paths);
  mkdirSync(FALLBACK_ROOT, { recursive: true, mode: 0o755 });
  chmodSync(FALLBACK_ROOT, 0o755);
  mkdirSync(target, { recursive: true });
  rmSync(paths.postgresDir, { recursive: true, force: true });
  symlinkSync(target, paths.postgresDir);
  say(`postgres: the ${who.name} user cannot traverse ${blocked.dir} (mode ${blocked.mode.toString(8).padStart(4, '0')}): its cluster goes to ${target}, linked from ${paths.postgresDir}`);
}

/** A directory of the cluster's owner: created if missing, then handed to `who` when we are root. */
function ownedDir(dir: string, who: RunAs | null, mode?: number): void {
  mkdirSync(dir, { recursive: true });
  if (mode !== undefined) chmodSync(dir, mode);
  if (who !== null) chownSync(dir, who.uid, who.gid);
}

type PgClient = import('pg').Client;

/** A connection as the bootstrap superuser over the unix socket (trusted): the stack's own. */
async function superuserClient(paths: StackPaths, port: number, timeoutMs: number): Promise<PgClient> {
  const pg = (await import('pg')).default;
  const client = new pg.Client({ host: paths.postgresSocketDir, port, user: SUPERUSER, database: 'postgres', connectionTimeoutMillis: timeoutMs });
  // A connection lost later surfaces in the query that uses it; this only keeps it off 'uncaughtException'.
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => {
      // Never connected: nothing to close.
    });
    throw err;
  }
  return client;
}

/** Resolves when the server accepts a connection and runs a query; rejects otherwise. */
export async function pingPostgres(paths: StackPaths, port: number, timeoutMs: number): Promise<void> {
  const client = await superuserClient(paths, port, timeoutMs);
  try {
    await client.query('SELECT 1');
  } finally {
    await client.end();
  }
}

/** Waits until our postmaster (pid) answers, or it exits, or the deadline passes. */
async function waitAnswering(config: Config, paths: StackPaths, pid: number, port: number, deadline: number): Promise<void> {
  for (;;) {
    if (!isAlive(pid)) {
      removeFile(paths.postgresPid);
      throw new StratusError(ErrorCode.STACK_START_FAILED, `postgres exited while starting; its log (${paths.postgresLog}) ends with:\n${tail(paths.postgresLog, 5)}`);
    }
    try {
      await pingPostgres(paths, port, 1000);
      return;
    } catch (e) {
      if (Date.now() > deadline) {
        throw new StratusError(ErrorCode.STACK_START_FAILED, `postgres did not answer within ${config.stack.startTimeoutMs} ms; its log (${paths.postgresLog}) ends with:\n${tail(paths.postgresLog, 5)}`, { cause: e });
      }
      // "the database system is starting up", or the socket not there yet.
      await sleep(100);
    }
  }
}

/** The URL's role (LOGIN, its password from the URL) and database (owned by it), created if missing. */
async function provision(paths: StackPaths, t: PostgresTarget): Promise<void> {
  const client = await superuserClient(paths, t.port, 5000);
  try {
    const role = client.escapeIdentifier(t.user);
    const password = t.password === '' ? '' : ` PASSWORD ${client.escapeLiteral(t.password)}`;
    const exists = await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [t.user]);
    // ALTER for an existing role: the URL is the truth for its password (and the superuser may be the URL's user).
    await client.query(exists.rowCount === 0 ? `CREATE ROLE ${role} LOGIN${password}` : `ALTER ROLE ${role} LOGIN${password}`);
    const db = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [t.database]);
    // The owner of a database may create schemas in it: the archive creates archive.postgresSchema.
    if (db.rowCount === 0) await client.query(`CREATE DATABASE ${client.escapeIdentifier(t.database)} OWNER ${role} ENCODING 'UTF8'`);
  } finally {
    await client.end();
  }
}

async function initdb(bin: string, paths: StackPaths, data: string, t: PostgresTarget, who: RunAs | null): Promise<void> {
  const args = [
    '-D', data,
    '-U', SUPERUSER,
    '--encoding=UTF8',
    // C collation: the same sort order on every machine, and no dependency on installed locales.
    '--no-locale',
    '--auth-local=trust',
    // No password in the URL: nothing to check it against, so loopback TCP is trusted like the socket.
    `--auth-host=${t.password === '' ? 'trust' : 'scram-sha-256'}`,
  ];
  const r = await runToEnd(join(bin, 'initdb'), args, { timeoutMs: INITDB_TIMEOUT_MS, ...(who === null ? {} : { uid: who.uid, gid: who.gid }) });
  appendFileSync(paths.postgresLog, r.stdout + r.stderr);
  if (r.code !== 0) {
    // A half-initialised cluster would make every later start fail: the next `up` runs initdb again.
    rmSync(data, { recursive: true, force: true });
    throw new StratusError(ErrorCode.STACK_START_FAILED, `initdb failed (exit ${r.code}); its output (also in ${paths.postgresLog}) ends with:\n${(r.stdout + r.stderr).trimEnd().split('\n').slice(-5).join('\n')}`);
  }
}

/** Starts (initialising first when there is no cluster yet) and provisions PostgreSQL; returns the postmaster's pid. */
export async function startPostgres(config: Config, paths: StackPaths, say: (l: string) => void = () => {}): Promise<number> {
  const t = postgresTarget(config);
  const bin = postgresBinDir();
  if (bin === null) {
    throw new StratusError(ErrorCode.STACK_PROGRAM_MISSING, 'PostgreSQL is not installed (no /usr/lib/postgresql/<major>/bin/postgres, no pg_config); run `npm run setup` (it installs Debian\'s postgresql) or `apt-get install postgresql`');
  }
  const who = runAs();
  if (await portAnswers(t.host, t.port)) {
    throw new StratusError(
      ErrorCode.STACK_PORT_TAKEN,
      `${postgresAddress(config)} is in use by a process this stack did not start; stop it, or give Stratus another port in archive.postgresUrl (--archive-postgres-url, STRATUS_ARCHIVE_POSTGRES_URL)`,
    );
  }
  mkdirSync(paths.logDir, { recursive: true });
  mkdirSync(paths.runDir, { recursive: true });
  if (who !== null) placeCluster(paths, who, say);
  const dirs = clusterDirs(paths);
  mkdirSync(dirs.dir, { recursive: true });
  if (who !== null) checkReachable(dirs.dir, who);
  ownedDir(dirs.dir, who);
  // Only the cluster's owner may use the trusted socket.
  ownedDir(dirs.socket, who, 0o700);
  if (!existsSync(join(dirs.data, 'PG_VERSION'))) {
    if (existsSync(dirs.data) && readdirSync(dirs.data).length > 0) {
      throw new StratusError(ErrorCode.STACK_DATA_CORRUPT, `${dirs.data} holds files but no PG_VERSION (not a PostgreSQL cluster); run \`stratus stack up --postgres --fresh\` to wipe it`);
    }
    say(`postgres: initialising a cluster in ${dirs.data}${who === null ? '' : ` (as the ${who.name} user)`}`);
    await initdb(bin, paths, dirs.data, t, who);
  }

  const args = ['-D', dirs.data, '-p', String(t.port), '-k', dirs.socket, '-c', `listen_addresses=${t.host}`];
  const log = openSync(paths.postgresLog, 'a');
  const child = spawn(join(bin, 'postgres'), args, { detached: true, stdio: ['ignore', log, log], ...(who === null ? {} : { uid: who.uid, gid: who.gid }) });
  closeSync(log);
  // A spawn error (EACCES, EPERM) also shows as an undefined pid: reported below, not thrown twice.
  child.once('error', () => {});
  child.unref();
  if (child.pid === undefined) throw new StratusError(ErrorCode.STACK_START_FAILED, `postgres could not be started from ${bin}; see ${paths.postgresLog}`);
  writePid(paths.postgresPid, child.pid);
  try {
    await waitAnswering(config, paths, child.pid, t.port, Date.now() + config.stack.startTimeoutMs);
    await provision(paths, t);
  } catch (err) {
    await stopPostgres(paths, child.pid);
    if (err instanceof StratusError) throw err;
    throw new StratusError(ErrorCode.STACK_START_FAILED, `postgres started but creating role ${t.user} and database ${t.database} failed: ${(err as Error).message}; see ${paths.postgresLog}`, { cause: err });
  }
  return child.pid;
}

export async function stopPostgres(paths: StackPaths, pid: number): Promise<void> {
  // SIGINT: fast shutdown (open transactions rolled back, a checkpoint written, then exit).
  await stopProcess(pid, STOP_GRACE_MS, 'SIGINT');
  removeFile(paths.postgresPid);
}

/**
 * `stack up --postgres`'s part, callable alone: found running (answering is then checked), a
 * stale pid file removed, or started. `startedPid` is set when this call started it.
 */
export async function ensurePostgres(config: Config, paths: StackPaths, say: (l: string) => void = () => {}): Promise<{ report: ServiceReport; startedPid: number | null }> {
  const address = postgresAddress(config);
  const st = postgresState(paths);
  if (st.state === 'running') {
    // Ours and alive; it may still be starting (a racing `up` before the lock, or a crash recovery).
    await waitAnswering(config, paths, st.pid, postgresTarget(config).port, Date.now() + config.stack.startTimeoutMs);
    return { report: { name: 'postgres', state: 'running', address, pid: st.pid, startMs: null, answering: true }, startedPid: null };
  }
  if (st.state === 'stale') {
    say(`postgres: removing stale pid file ${paths.postgresPid} (pid ${st.pid} is not our postgres)`);
    removeFile(paths.postgresPid);
  }
  say(`postgres: starting on ${address}`);
  const t0 = performance.now();
  const pid = await startPostgres(config, paths, say);
  return { report: { name: 'postgres', state: 'started', address, pid, startMs: performance.now() - t0, answering: true }, startedPid: pid };
}

/** Stops our PostgreSQL if its pid file says it runs (a stale pid file is removed); returns what was found. */
export async function postgresDown(paths: StackPaths): Promise<PidState> {
  const st = postgresState(paths);
  if (st.state === 'running') await stopPostgres(paths, st.pid);
  if (st.state === 'stale') removeFile(paths.postgresPid);
  return st;
}
