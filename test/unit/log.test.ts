/** src/log.ts: JSON or pretty by the stream, levels, RateLimitedLog, OutageLog, the line parsers. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLogger, findLogLine, OutageLog, parseLogLine, RateLimitedLog, sinkFor, type LogStream } from '../../src/log.js';

/** A stream that keeps what is written, a TTY or not. */
function memory(isTTY: boolean): LogStream & { chunks: string[] } {
  const chunks: string[] = [];
  return { isTTY, chunks, write: (s: string) => chunks.push(s) };
}

test('not a TTY: one JSON object per line with level, time, msg and the bindings', () => {
  const out = memory(false);
  const log = createLogger({ stream: out }).child({ role: 'gateway' });
  log.info({ grpc: '0.0.0.0:50051' }, 'started');
  log.debug('not at info');
  assert.equal(out.chunks.length, 1);
  assert.ok(out.chunks[0]!.endsWith('\n'));
  const line = JSON.parse(out.chunks[0]!) as Record<string, unknown>;
  assert.equal(line.level, 30);
  assert.equal(typeof line.time, 'number');
  assert.ok(Math.abs((line.time as number) - Date.now()) < 60_000);
  assert.equal(line.msg, 'started');
  assert.equal(line.role, 'gateway');
  assert.equal(line.grpc, '0.0.0.0:50051');
  assert.equal(line.pid, process.pid);
});

test('a TTY: pino-pretty is chosen, one readable line with time, level, role, message and fields', () => {
  assert.equal(sinkFor(memory(true)).pretty, true);
  assert.equal(sinkFor(memory(false)).pretty, false);
  assert.equal(sinkFor({ write: () => true }).pretty, false);
  const out = memory(true);
  const saved = process.env.NO_COLOR;
  process.env.NO_COLOR = '1';
  try {
    createLogger({ stream: out }).child({ role: 'gateway' }).warn({ grpc: '0.0.0.0:50051' }, 'started');
  } finally {
    if (saved === undefined) delete process.env.NO_COLOR;
    else process.env.NO_COLOR = saved;
  }
  assert.equal(out.chunks.length, 1);
  const text = out.chunks[0]!;
  assert.throws(() => JSON.parse(text));
  assert.match(text, /^\[\d\d:\d\d:\d\d\.\d\d\d\] WARN: \(gateway\) started \{"grpc":"0\.0\.0\.0:50051"\}\n$/);
});

test('levels: the logger level drops the lines below it', () => {
  const out = memory(false);
  const log = createLogger({ stream: out, level: 'warn' });
  log.info('no');
  log.warn('yes');
  log.error('yes too');
  assert.deepEqual(out.chunks.map((c) => (JSON.parse(c) as { msg: string; level: number }).level), [40, 50]);
});

test('RateLimitedLog: linesMax lines per key per interval, then one line with the suppressed count', () => {
  const out = memory(false);
  let now = 1_000;
  const limited = new RateLimitedLog(createLogger({ stream: out }), { linesMax: 3, intervalMs: 10_000, now: () => now });
  for (let i = 0; i < 1000; i++) limited.warn('bad-token', { i }, 'authentication failed');
  limited.warn('other', {}, 'another key has its own budget');
  const lines = () => out.chunks.map((c) => JSON.parse(c) as Record<string, unknown>);
  assert.deepEqual(lines().map((l) => [l.key, l.i, l.msg]), [
    ['bad-token', 0, 'authentication failed'],
    ['bad-token', 1, 'authentication failed'],
    ['bad-token', 2, 'authentication failed'],
    ['other', undefined, 'another key has its own budget'],
  ]);
  // The window ends: the next line of the key first says how many were suppressed.
  now += 10_000;
  limited.warn('bad-token', { i: 1000 }, 'authentication failed');
  const after = lines().slice(4);
  assert.deepEqual(after.map((l) => [l.level, l.key, l.suppressed, l.msg]), [
    [40, 'bad-token', 997, '997 similar lines suppressed'],
    [40, 'bad-token', undefined, 'authentication failed'],
  ]);
  // A quiet key writes its count when asked (the timer does it at the window's end).
  for (let i = 0; i < 5; i++) limited.warn('bad-token', {}, 'again');
  limited.flush();
  assert.deepEqual(lines().slice(6).map((l) => [l.msg, l.suppressed]), [
    ['again', undefined],
    ['again', undefined],
    ['3 similar lines suppressed', 3],
  ]);
});

test('RateLimitedLog: the suppressed count is written at the window end by itself', async () => {
  const out = memory(false);
  const limited = new RateLimitedLog(createLogger({ stream: out }), { linesMax: 1, intervalMs: 50 });
  for (let i = 0; i < 10; i++) limited.error('k', {}, 'flood');
  assert.equal(out.chunks.length, 1);
  const deadline = Date.now() + 5000;
  while (out.chunks.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  const last = JSON.parse(out.chunks[1]!) as Record<string, unknown>;
  assert.deepEqual([last.level, last.suppressed, last.msg], [50, 9, '9 similar lines suppressed']);
  assert.equal(out.chunks.length, 2);
});

test('RateLimitedLog: at most keysMax keys; past it, new keys share one budget', () => {
  const out = memory(false);
  const limited = new RateLimitedLog(createLogger({ stream: out }), { linesMax: 1, intervalMs: 10_000, keysMax: 2, now: () => 0 });
  for (let i = 0; i < 100; i++) limited.warn(`device-${i}`, {}, 'x');
  assert.deepEqual(out.chunks.map((c) => (JSON.parse(c) as { key: string }).key), ['device-0', 'device-1', '*']);
  limited.flush();
  assert.equal((JSON.parse(out.chunks.at(-1)!) as { suppressed: number }).suppressed, 97);
});

test('OutageLog: lost once when the first client loses it, back once when the last one has it again', () => {
  const out = memory(false);
  let now = 0;
  const outage = new OutageLog(createLogger({ stream: out }), 'Redis', () => now);
  const [a, b, c] = [{}, {}, {}];
  outage.back(a); // never lost: nothing
  outage.lost(a, { client: 'a' });
  now = 100;
  for (let i = 0; i < 20; i++) outage.lost(a, { client: 'a' }); // every reconnect attempt
  outage.lost(b, { client: 'b' });
  outage.lost(c, { client: 'c' });
  outage.forget(c); // closed on purpose while down: no longer waited for
  assert.equal(outage.isDown, true);
  now = 2_500;
  outage.back(a);
  outage.back(b);
  outage.back(b);
  const lines = out.chunks.map((x) => JSON.parse(x) as Record<string, unknown>);
  assert.deepEqual(lines.map((l) => [l.level, l.msg, l.client, l.downMs]), [
    [40, 'Redis lost', 'a', undefined],
    [30, 'Redis back', undefined, 2_500],
  ]);
  assert.equal(outage.isDown, false);
});

test('parseLogLine and findLogLine read only complete JSON log lines', () => {
  assert.equal(parseLogLine('stratus run: a usage error'), null);
  assert.equal(parseLogLine('{"not":"a log line"}'), null);
  assert.equal(parseLogLine('{"level":30,"time":1,"msg":'), null);
  assert.deepEqual(parseLogLine('{"level":30,"time":1,"msg":"x","role":"run"}'), { level: 30, time: 1, msg: 'x', role: 'run' });
  const text = 'grpc-js noise\n{"level":30,"time":1,"role":"worker","msg":"started"}\n{"level":30,"time":2,"role":"run","msg":"started","grpc":"0.0.0.0:1"}\n{"level":30,"time":3,"role":"run","msg":"dra';
  assert.equal(findLogLine(text, 'started', 'run')?.grpc, '0.0.0.0:1');
  assert.equal(findLogLine(text, 'started')?.role, 'worker');
  assert.equal(findLogLine(text, 'drained', 'run'), null, 'a line still being written is not read');
});

test('Kafka lost and back: once per change for all the clients of the process (KafkaClientHealth)', async () => {
  const { KafkaClientHealth } = await import('../../src/http/health.js');
  const written: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string) => {
    written.push(String(chunk));
    return true;
  }) as typeof process.stderr.write;
  try {
    const producer = new KafkaClientHealth('Kafka producer p');
    const consumer = new KafkaClientHealth('Kafka consumer c');
    producer.connected();
    consumer.connected();
    // Every broker goes away: each client says so, some of them more than once.
    for (let i = 0; i < 5; i++) {
      producer.error({ code: -187, message: 'Local: All broker connections are down' });
      consumer.stats({ brokers: { b1: { state: 'TRY_CONNECT', nodeid: 1 } } });
    }
    producer.stats({ brokers: { b1: { state: 'UP', nodeid: 1 } } });
    consumer.stats({ brokers: { b1: { state: 'CONNECT', nodeid: 1 } } });
    consumer.stats({ brokers: { b1: { state: 'UP', nodeid: 1 } } });
    consumer.stats({ brokers: { b1: { state: 'UP', nodeid: 1 } } });
    consumer.error({ message: 'Local: Fatal error' });
    consumer.error({ message: 'Local: Fatal error' });
  } finally {
    process.stderr.write = write;
  }
  const lines = written.map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(lines.map((l) => [l.role, l.level, l.msg, l.client]), [
    ['kafka', 40, 'Kafka lost', 'Kafka producer p'],
    ['kafka', 30, 'Kafka back', 'Kafka consumer c'],
    ['kafka', 50, 'Kafka client fatal error; the process must be restarted', 'Kafka consumer c'],
  ]);
  assert.equal(typeof lines[1]!.downMs, 'number');
});
