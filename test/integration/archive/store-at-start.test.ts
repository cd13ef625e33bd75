/**
 * The archive's store is beside the real-time path: an engine whose PostgreSQL does not answer
 * when it starts still starts and serves devices. Meanwhile /readyz stays 200 but names the store
 * ("degraded": the process runs the gateway), history answers 503; once PostgreSQL is up the
 * archiver opens it by itself, /readyz is plain "ready" again and history answers. (Events sent
 * while the store is away and archived after: test/faults/archive.test.ts.)
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig } from '../../../src/config.js';
import { stackPaths } from '../../../src/stack/paths.js';
import { postgresBinDir, startPostgres, stopPostgres } from '../../../src/stack/postgres-server.js';
import { EngineProcess } from '../../helpers/engine-process.js';
import { unusedPort } from '../../helpers/ports.js';

test('PostgreSQL down when the engine starts: it starts, /readyz says degraded, history 503; once up, the archiver catches up', { skip: postgresBinDir() === null && 'PostgreSQL is not installed', timeout: 180_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'stratus-store-at-start-'));
  // As root PostgreSQL runs as its own user, which must reach the data dir (mkdtemp makes it 0700).
  chmodSync(dir, 0o711);
  const port = await unusedPort();
  const url = `postgres://stratus@127.0.0.1:${port}/stratus`;
  const pgConfig = loadConfig({ envFile: null, flags: { 'data-dir': dir, 'archive-postgres-url': url } });
  let pgPid = 0;
  const engine = await EngineProcess.start({ STRATUS_ARCHIVE_STORE: 'postgres', STRATUS_ARCHIVE_POSTGRES_URL: url, STRATUS_ARCHIVE_CONNECT_TIMEOUT_MS: '500', STRATUS_ARCHIVE_RETRY_MAX_MS: '500' });
  t.after(async () => {
    await engine.stop();
    if (pgPid !== 0) await stopPostgres(stackPaths(pgConfig), pgPid);
    rmSync(dir, { recursive: true, force: true });
  });
  const http = `http://127.0.0.1:${engine.httpPort}`;
  assert.match(engine.stderr, /the archive store does not answer: starting without it/);

  const ready = await fetch(`${http}/readyz`);
  const body = await ready.text();
  assert.equal(ready.status, 200, body);
  assert.match(body, new RegExp(`^ready \\(degraded: archive store postgres at 127\\.0\\.0\\.1:${port}/stratus: failing for \\d+ s`));
  const history = await fetch(`${http}/v1/devices/dev-1/history`);
  assert.equal(history.status, 503);
  assert.match(await history.text(), /the archive store does not answer/);
  const metrics = await (await fetch(`${http}/metrics`)).text();
  assert.match(metrics, /^stratus_dependency_up\{dependency="archive"\} 0$/m);
  assert.match(metrics, /^stratus_ready 1$/m);

  pgPid = await startPostgres(pgConfig, stackPaths(pgConfig));
  const deadline = Date.now() + 60_000;
  let now = '';
  while (Date.now() < deadline) {
    now = await (await fetch(`${http}/readyz`)).text();
    if (now === 'ready\n') break;
    await sleep(200);
  }
  assert.equal(now, 'ready\n');
  const after = await fetch(`${http}/v1/devices/dev-1/history`);
  assert.equal(after.status, 200);
  assert.deepEqual(((await after.json()) as { events: unknown[] }).events, []);
});
