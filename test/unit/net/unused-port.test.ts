/**
 * unusedPort (src/net/unused-port.ts): ports below the kernel's ephemeral range, none handed out
 * twice, not by one process and not by several drawing at once (the test runner runs files in
 * parallel; a random draw alone would collide), and never one something listens on.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { PROJECT_ROOT } from '../../../src/config.js';
import { unusedPort } from '../../../src/net/unused-port.js';

const execFileP = promisify(execFile);
const [ephemeralStart, ephemeralEnd] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number) as [number, number];

test('ports come from outside the ephemeral range, and one process never gets a port twice', async () => {
  const ports: number[] = [];
  for (let i = 0; i < 100; i++) ports.push(await unusedPort());
  assert.equal(new Set(ports).size, ports.length);
  for (const p of ports) assert.ok(p < ephemeralStart || p > ephemeralEnd, `${p} is in ${ephemeralStart}-${ephemeralEnd}`);
});

test('processes drawing at once share no port (150 each from 4 processes: a random draw alone would collide about 8 times)', async () => {
  const module = join(PROJECT_ROOT, 'dist', 'src', 'net', 'unused-port.js');
  const script = `import { unusedPort } from ${JSON.stringify(module)}; const out = []; for (let i = 0; i < 150; i++) out.push(await unusedPort()); console.log(JSON.stringify(out));`;
  const runs = await Promise.all([1, 2, 3, 4].map(() => execFileP(process.execPath, ['--input-type=module', '-e', script])));
  const all = runs.flatMap((r) => JSON.parse(r.stdout) as number[]);
  assert.equal(all.length, 600);
  assert.equal(new Set(all).size, all.length, 'a port was handed to two processes');
});

test('a port something else listens on is never handed out', async () => {
  // Listeners this process did not draw (so only the bind check can skip them) on 1,000 ports of
  // the range: 300 draws then pass through that block about 13 times.
  const base = 10_000 + Math.floor(Math.random() * (ephemeralStart - 12_000));
  const servers = [];
  const held = new Set<number>();
  for (let port = base; port < base + 1_000; port++) {
    const server = createServer();
    const ok = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (!ok) continue;
    servers.push(server);
    held.add(port);
  }
  try {
    for (let i = 0; i < 300; i++) {
      const port = await unusedPort();
      assert.ok(!held.has(port), `${port} is listened on`);
    }
  } finally {
    for (const s of servers) s.close();
  }
});
