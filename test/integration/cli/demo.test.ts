/**
 * `stratus demo` end to end against the local stack (the one `npm test` started: the demo finds it
 * through config.dataDir's pid files and reuses it): a small fleet, a short window, and what the
 * command says. Speeds are not asserted (the machine is shared); the stages, the check and the
 * report are. Its own topic and key prefixes and free ports, so nothing else on the stack is touched.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect } from 'node:net';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { PROJECT_ROOT } from '../../../src/config.js';
import { deleteTopics } from '../../../src/kafka/admin.js';
import { withAdmin } from '../../../src/kafka/native/client.js';
import { topology } from '../../../src/topology.js';
import { testConfig } from '../../helpers/config.js';
import { unusedPort } from '../../helpers/ports.js';

test('stratus demo: one sentence per stage, every event checked, a report written, its engine and topics gone after', { timeout: 240_000 }, async (t) => {
  const config = testConfig();
  const report = mkdtempSync(join(tmpdir(), 'demo-report-'));
  t.after(async () => {
    rmSync(report, { recursive: true, force: true });
    // `stack up` (inside the demo) made the events and results topics of the test's prefix.
    const tp = topology(config);
    await deleteTopics(config, [tp.topics.events, tp.topics.results]).catch(() => {});
  });
  const grpcPort = await unusedPort();
  const child = spawn(process.execPath, [join(PROJECT_ROOT, 'bin', 'stratus.js'), 'demo', '--devices', '40', '--rate', '2', '--duration', '3s', '--warmup-max', '8s', '--report', report], {
    env: {
      ...process.env,
      STRATUS_KAFKA_TOPIC_PREFIX: config.kafka.topicPrefix,
      STRATUS_REDIS_KEY_PREFIX: config.redis.keyPrefix,
      STRATUS_KAFKA_PARTITIONS: '3',
      STRATUS_GRPC_PORT: String(grpcPort),
      STRATUS_HTTP_PORT: String(await unusedPort()),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const kill = setTimeout(() => child.kill('SIGKILL'), 200_000);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(kill);
  assert.equal(code, 0, `stdout:\n${stdout}\nstderr:\n${stderr}`);

  const lines = stdout.trim().split('\n');
  // One sentence per stage, in order; the optional ones only when they apply.
  const stages = lines.map((l) => /^(Stack|Engine|Fleet|Warm-up|Measuring|Measured fleet|Throughput|Latency|Machine|Check|Report|Next)\b/.exec(l)?.[1] ?? `?${l}`);
  assert.deepEqual(
    stages.filter((s) => s !== 'Measured fleet' && s !== 'Machine'),
    ['Stack', 'Engine', 'Fleet', 'Warm-up', 'Measuring', 'Throughput', 'Latency', 'Check', 'Report', 'Engine', 'Next'],
    stdout,
  );
  assert.match(lines[0]!, /^Stack: Redis \(\S+\) and Kafka \(\S+\) were already running\.$|^Stack: .*started/);
  const engine = lines.find((l) => l.startsWith('Engine: `stratus run`'))!;
  const events = `${config.kafka.topicPrefix}demo-`;
  assert.ok(engine.includes(`Kafka topics ${events}`), engine);
  assert.match(stdout, /^Fleet: 40 simulated devices on 1 HTTP\/2 connections connected in [\d.]+ s; each sends 2 `sq` events per second .* 80 events\/s in all\.$/m);
  assert.match(stdout, /^Warm-up: latency (settled after \d+ s: .*|had not settled after [\d.]+ s .*measuring anyway.*)$/m);
  assert.match(stdout, /^Measuring: 3 s with a fresh fleet of 40 devices, which gets 3 s to connect before the window begins\.$/m);
  assert.match(stdout, /^Throughput: the fleet offered 80 events\/s and sent [\d,]+\/s; the engine made [\d,]+ events\/s durable in Kafka and acknowledged them, and [\d,]+ results\/s came back to the devices: (it kept up|it fell behind|more than was sent)/m);
  assert.match(stdout, /^Latency, from each event's scheduled send time: acknowledged \(durable in Kafka\) p50 [\d.,]+ ms, p99 [\d.,]+ ms, p99\.9 [\d.,]+ ms; result back at the device p50 [\d.,]+ ms/m);
  // Exit 0 means the checker found nothing missing, duplicated or wrong; the sentence says it in full.
  const check = /^Check \(warm-up and measured runs\): ([\d,]+) events sent, ([\d,]+) acknowledged, ([\d,]+) results received: (.*)$/m.exec(stdout);
  assert.ok(check, stdout);
  assert.ok(Number(check[1]!.replace(/,/g, '')) > 0);
  assert.match(check[4]!, /^every event was acknowledged and got exactly one result with the right value \(0 missing, 0 duplicates, 0 wrong\)\.$|0 acknowledged events got no result, 0 results were duplicates, 0 had a wrong value, 0 events were never/);
  // The histograms' files come in the order each metric was first recorded: a result can be
  // recorded before the first ack, so ack.hgrm and result.hgrm may come either way round.
  const reportLine = lines.find((l) => l.startsWith('Report: '));
  const prefix = `Report: ${join(report, 'report.html')}, one self-contained page (the tables and latency plots of the measured run; it needs no network): open it in a browser, e.g. \`xdg-open ${join(report, 'report.html')}\`. Beside it: `;
  assert.ok(reportLine?.startsWith(prefix) && reportLine.endsWith('.'), stdout);
  assert.deepEqual(reportLine!.slice(prefix.length, -1).split(', ').sort(), ['ack.hgrm', 'connect.hgrm', 'intervals.hlog', 'result.hgrm', 'sendLag.hgrm', 'summary.json'], stdout);
  for (const f of ['report.html', 'summary.json', 'ack.hgrm', 'result.hgrm', 'intervals.hlog']) assert.ok(existsSync(join(report, f)), f);
  const summary = JSON.parse(readFileSync(join(report, 'summary.json'), 'utf8')) as { options: { devices: number; durationS: number; warmupS: number }; counts: { missing: number; duplicates: number; wrong: number } };
  assert.deepEqual([summary.options.devices, summary.options.durationS, summary.options.warmupS], [40, 3, 3]);
  assert.deepEqual([summary.counts.missing, summary.counts.duplicates, summary.counts.wrong], [0, 0, 0]);
  // Nothing untrue about what is built (test/unit/claims.test.ts checks the source's strings too).
  assert.doesNotMatch(stdout, /not built|has not landed|open issue|not implemented|does not check device tokens/i);

  // The engine is gone (its port answers no more) and so are its topics.
  const socket = connect(grpcPort, '127.0.0.1');
  const [err] = (await once(socket, 'error')) as [NodeJS.ErrnoException];
  assert.equal(err.code, 'ECONNREFUSED');
  const topics = await withAdmin(config, 'demo-test', (admin) => admin.listTopics({ timeout: 10_000 }));
  assert.deepEqual(topics.filter((n) => n.startsWith(events)), []);
});
