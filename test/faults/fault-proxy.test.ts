/**
 * The fault suite's own tool: FaultProxy injects what it says (latency, resets, a blackhole that
 * heals without losing bytes) and balances over targets, skipping one that refuses.
 */
import assert from 'node:assert/strict';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { unusedPort } from '../helpers/ports.js';

/** An echo server that prefixes each connection's bytes with its name. */
async function echo(name: string): Promise<Server> {
  const server = createServer((s) => {
    // The proxy's reset() reaches this side as ECONNRESET.
    s.on('error', () => s.destroy());
    s.write(`${name}:`);
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return server;
}
const portOf = (s: Server) => (s.address() as AddressInfo).port;

function client(port: number): Promise<{ s: Socket; text: () => string; closed: Promise<string> }> {
  return new Promise((resolve) => {
    let got = '';
    const s = connect({ host: '127.0.0.1', port }, () => resolve({ s, text: () => got, closed }));
    s.on('data', (b) => (got += b.toString()));
    const closed = new Promise<string>((r) => {
      s.on('error', (e: NodeJS.ErrnoException) => r(e.code ?? 'error'));
      s.on('close', () => r('close'));
    });
  });
}

async function until(f: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!f()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await sleep(10);
  }
}

const servers: Server[] = [];
const proxies: FaultProxy[] = [];
after(async () => {
  for (const p of proxies) await p.close();
  for (const s of servers) s.close();
});

test('forwards both ways, adds latency, resets, holds and heals', async () => {
  const a = await echo('a');
  servers.push(a);
  const proxy = await FaultProxy.start(portOf(a));
  proxies.push(proxy);
  const c = await client(proxy.port);
  c.s.write('1');
  await until(() => c.text() === 'a:1');

  proxy.latency(300);
  const t0 = Date.now();
  c.s.write('2');
  await until(() => c.text() === 'a:12');
  // 300 ms each way.
  assert.ok(Date.now() - t0 >= 550, `latency ${Date.now() - t0} ms`);
  proxy.heal();

  proxy.blackhole();
  c.s.write('3');
  await sleep(500);
  assert.equal(c.text(), 'a:12', 'nothing moves in a blackhole');
  proxy.heal();
  await until(() => c.text() === 'a:123');

  proxy.reset();
  assert.equal(await c.closed, 'ECONNRESET');
});

test('balances round-robin and skips a target that refuses', async () => {
  const a = await echo('a');
  const b = await echo('b');
  servers.push(a, b);
  const dead = await unusedPort();
  const proxy = await FaultProxy.start([portOf(a), dead, portOf(b)]);
  proxies.push(proxy);
  const names: string[] = [];
  for (let i = 0; i < 3; i++) {
    const c = await client(proxy.port);
    await until(() => c.text().length >= 2);
    names.push(c.text());
    c.s.destroy();
  }
  // The second connection's target refuses: it goes to the next one, b.
  assert.deepEqual(names, ['a:', 'b:', 'b:']);
});

test('down() resets what is open and refuses new connections, counted, until heal()', async () => {
  const server = await echo('t');
  const proxy = await FaultProxy.start(portOf(server));
  after(async () => {
    await proxy.close();
    server.close();
  });
  const a = await client(proxy.port);
  await until(() => a.text() === 't:');
  proxy.down();
  assert.equal(await a.closed, 'ECONNRESET');
  // Refused at accept: the RST can reach the client before its connect callback would run.
  const b = connect({ host: '127.0.0.1', port: proxy.port });
  assert.equal(await new Promise<string>((r) => b.on('error', (e: NodeJS.ErrnoException) => r(e.code ?? 'error')).on('close', () => r('close'))), 'ECONNRESET');
  assert.equal(proxy.refused, 1);
  proxy.heal();
  const c = await client(proxy.port);
  c.s.write('x');
  await until(() => c.text() === 't:x');
  c.s.destroy();
});
