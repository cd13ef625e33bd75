/**
 * The load generator against the real engine (every API it speaks) and against servers that
 * misbehave on purpose (test/helpers/fake-gateway.ts): every figure it reports is checked against
 * what the server knows it did. No speed is asserted; the stall test compares the open-loop and
 * closed-loop views of one deliberate 500 ms stall.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import * as hdr from 'hdr-histogram-js';
import { PROJECT_ROOT } from '../../../src/config.js';
import { runLoadgen, secondHistogram, type LoadgenRun } from '../../../loadgen/loadgen.js';
import { resolveOptions, type RawFlags } from '../../../loadgen/options.js';
import { writeReport } from '../../../loadgen/report.js';
import { textSummary } from '../../../loadgen/text-summary.js';
import { renderedPlots } from '../../helpers/browser.js';
import { testConfig } from '../../helpers/config.js';
import { startFakeGateway } from '../../helpers/fake-gateway.js';
import { startPipeline, type TestPipeline } from '../../helpers/pipeline.js';
import { unusedPort } from '../../helpers/ports.js';

const run = (target: string, flags: RawFlags): Promise<LoadgenRun> => {
  // A run ends as soon as everything is settled; the long drain and connect timeout only matter on a
  // machine so loaded that the engine falls seconds behind (CI runs three test files at once).
  const opts = resolveOptions({ warmup: '1s', drain: '30s', 'connect-timeout': '15s', ...flags }, target);
  return runLoadgen(opts, { progress: new PassThrough().resume() });
};

function assertExact(r: LoadgenRun, what: string): void {
  const c = r.summary.counts;
  assert.ok(c.sent > 0, `${what}: nothing sent`);
  assert.deepEqual(
    { acked: c.acked, results: c.results, missing: c.missing, duplicates: c.duplicates, wrong: c.wrong, unacked: c.unacked, heldUnsent: c.heldUnsent, rejected: c.rejected, errors: c.errors },
    { acked: c.sent, results: c.sent, missing: 0, duplicates: 0, wrong: 0, unacked: 0, heldUnsent: 0, rejected: {}, errors: {} },
    what,
  );
}

describe('against the real engine', () => {
  const config = testConfig({ 'kafka-partitions': '4', 'redis-device-state-ttl-ms': '600000' });
  let pipeline: TestPipeline;
  let target = '';
  before(async () => {
    pipeline = await startPipeline(config, ['lg-gw']);
    target = `127.0.0.1:${pipeline.gateways[0]!.port}`;
  });
  after(() => pipeline.stop());

  test('stratus API, iot: every (device, seq) acked once with one correct result; report written', async () => {
    const r = await run(target, { devices: '60', connections: '3', rate: '10', duration: '3s', seed: '11' });
    assertExact(r, 'iot');
    const s = r.summary;
    assert.equal(s.fleet.connectedPeak, 60);
    assert.equal(s.latency.connect!.count, 60);
    // Every event intended inside the measured window has exactly one ack and one result sample.
    assert.equal(s.latency.ack!.count, s.latency.result!.count);
    assert.equal(s.latency.ack!.count, s.latency.sendLag!.count);
    assert.ok(s.latency.ack!.count > 0 && s.latency.ack!.count < s.counts.sent);
    assert.ok(s.series.sentPerS.reduce((a, b) => a + b, 0) === s.counts.sent, 'per-second sends add up to the total');
    const dir = mkdtempSync(join(tmpdir(), 'lg-report-'));
    const files = writeReport(dir, r);
    assert.deepEqual(files.sort(), ['ack.hgrm', 'connect.hgrm', 'intervals.hlog', 'report.html', 'result.hgrm', 'sendLag.hgrm', 'summary.json']);
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8')).counts, s.counts);
    const hgrm = readFileSync(join(dir, 'ack.hgrm'), 'utf8');
    assert.match(hgrm, new RegExp(`Total count\\s*=\\s*${s.latency.ack!.count}\\]`));
    const hlog = readFileSync(join(dir, 'intervals.hlog'), 'utf8');
    assert.match(hlog, /^Tag=ack,\d+\.\d+,1\.000,/m);
    // Read back with HdrHistogram's own log reader: the ack intervals add up to the whole window.
    const reader = new hdr.HistogramLogReader(hlog);
    let ackInLog = 0;
    for (let h = reader.nextIntervalHistogram(); h !== null; h = reader.nextIntervalHistogram()) if (h.tag === 'ack') ackInLog += h.totalCount;
    assert.equal(ackInLog, s.latency.ack!.count);
    // The real run's report, rendered in headless Chromium: every plot draws data.
    const plots = await renderedPlots(join(dir, 'report.html'));
    assert.deepEqual(plots.map((p) => p.id).sort(), ['plot-ack-over-time', 'plot-connected', 'plot-errors', 'plot-latency', 'plot-result-over-time', 'plot-throughput']);
    for (const p of plots.filter((p) => p.id !== 'plot-errors')) {
      assert.ok(p.series.length > 0 && p.series.every((x) => x.points > 1 && x.pathLength > 0), `${p.id}: ${JSON.stringify(p.series)}`);
    }
    assert.deepEqual(plots.find((p) => p.id === 'plot-latency')!.series.map((x) => x.name).sort(), ['ack', 'connect', 'result', 'sendLag']);
    rmSync(dir, { recursive: true, force: true });
  });

  test('mobile profile with churn (1 device per connection): reconnects, still exactly once', async () => {
    const r = await run(target, { devices: '40', connections: '40', rate: '5', duration: '8s', profile: 'mobile', seed: '5', 'slow-readers': '0.2' });
    const c = r.summary.counts;
    assert.ok(c.reconnects > 0, `no device dropped its session (seed 5 has drops within 8 s)`);
    assert.ok(r.summary.latency.reconnect!.count > 0);
    assert.ok(r.summary.fleet.slowReaders > 0);
    assert.ok((r.summary.latency.ackSlow?.count ?? 0) > 0, 'slow readers are measured apart');
    assertExact(r, 'mobile');
  });

  test('burst profile with batches', async () => {
    const r = await run(target, { devices: '30', rate: '5', batch: '5', duration: '6s', profile: 'burst', seed: '3' });
    assertExact(r, 'burst');
    // Synchronized spikes: most seconds send nothing, the spike seconds everything.
    const busy = r.summary.series.sentPerS.filter((n) => n > 0).length;
    assert.ok(busy < r.summary.series.sentPerS.length, `sends in every second: ${r.summary.series.sentPerS.join(',')}`);
  });

  test('nimbus API: every request answered once with number squared', async () => {
    const r = await run(target, { api: 'nimbus', devices: '10', rate: '20', duration: '3s', seed: '2' });
    assertExact(r, 'nimbus');
    assert.equal(r.summary.latency.connect, undefined, 'nimbus sends no headers before its first answer: no connect time');
    assert.ok(r.summary.latency.result!.count > 0);
  });

  test('event-stream API: every StreamEvents call stored all its events', async () => {
    const r = await run(target, { api: 'event-stream', devices: '10', rate: '20', batch: '4', duration: '3s', seed: '2', queue: `lg-${Date.now()}` });
    const c = r.summary.counts;
    assert.ok(c.sent > 0);
    assert.deepEqual({ acked: c.acked, results: c.results, unacked: c.unacked, errors: c.errors, rejected: c.rejected }, { acked: c.sent, results: 0, unacked: 0, errors: {}, rejected: {} });
  });

  test('metrics API: every IngestMetrics call got one entry id per metric', async () => {
    const r = await run(target, { api: 'metrics', devices: '10', rate: '20', batch: '10', duration: '3s', seed: '2' });
    const c = r.summary.counts;
    assert.ok(c.sent > 0);
    assert.deepEqual({ acked: c.acked, unacked: c.unacked, errors: c.errors, rejected: c.rejected }, { acked: c.sent, unacked: 0, errors: {}, rejected: {} });
  });
});

describe('against servers that misbehave on purpose', () => {
  test('a 500 ms stall: the open-loop p99 shows it, a closed-loop count hides it', async () => {
    const measure = async (closed: boolean) => {
      const fake = await startFakeGateway();
      // Mid-window: the window starts at 2 s (fleet connected within the first second, then 1 s of
      // warm-up), measured 6 s; the stall starts about 2 s into it.
      const timer = setTimeout(() => fake.pause(500), 4_000);
      try {
        return await run(fake.address, { devices: '10', rate: '50', duration: '6s', seed: '9', ...(closed ? { 'closed-loop': true } : {}) });
      } finally {
        clearTimeout(timer);
        await fake.stop();
      }
    };
    const open = await measure(false);
    const closed = await measure(true);
    assertExact(open, 'open loop');
    // 1/60 of the open-loop events were due during the last 100 ms of the stall or earlier in it
    // and waited >= 400 ms: more than 1%, so p99 >= 400 ms.
    assert.ok(open.summary.latency.ack!.p99Ms >= 400, `open-loop ack p99 ${open.summary.latency.ack!.p99Ms} ms does not show the 500 ms stall`);
    // Closed loop: each device had one uplink waiting through the stall and sent nothing else, so
    // the stall is one sample per device in ~300: below the 99th percentile.
    assert.ok(closed.summary.latency.ack!.maxMs >= 400, `the closed-loop run did hit the stall (max ${closed.summary.latency.ack!.maxMs} ms)`);
    assert.ok(closed.summary.latency.ack!.p99Ms < 400, `closed-loop ack p99 ${closed.summary.latency.ack!.p99Ms} ms`);
    assert.ok(closed.summary.counts.sent < open.summary.counts.sent, 'the closed loop sent less: it waited');
  });

  test('a server that stops reading: the generator holds uplinks (write backpressure) instead of buffering them, and sends them when it reads again', async () => {
    const fake = await startFakeGateway();
    // 4 devices x 300 uplinks/s x 4 KiB: 3.5 MiB per device during the 3 s the server does not
    // read, beyond the HTTP/2 windows and the loopback socket's buffers, so every stream's writes block.
    const timer = setTimeout(() => fake.stopReading(3_000), 2_000);
    try {
      const r = await run(fake.address, { devices: '4', connections: '1', rate: '300', 'payload-bytes': '4096', duration: '6s', seed: '5' });
      assertExact(r, 'stopped reader');
      assert.equal(fake.counts.events, r.summary.counts.sent);
      // Held uplinks went on the wire when the stream drained: their send was late by most of the
      // stop. (Without backpressure they would be written at once into an unbounded buffer, with
      // sendLag near 0.)
      assert.ok(r.summary.latency.sendLag!.maxMs >= 1_500, `sendLag max ${r.summary.latency.sendLag!.maxMs} ms: uplinks were not held`);
    } finally {
      clearTimeout(timer);
      await fake.stop();
    }
  });

  test('--ack-only against the bare grpc-js ceiling server (bench/baselines): every event acked, nothing counted missing', async () => {
    const child = spawn(process.execPath, [join(PROJECT_ROOT, 'dist', 'bench', 'baselines', 'grpc-ceiling.js')], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const address = await new Promise<string>((resolve, reject) => {
        child.stdout!.once('data', (b: Buffer) => {
          const m = /listening on (\S+)/.exec(b.toString());
          if (m) resolve(m[1]!);
          else reject(new Error(`grpc-ceiling said ${b.toString()}`));
        });
        child.once('exit', (code) => reject(new Error(`grpc-ceiling exited with ${code}`)));
      });
      const r = await run(address, { devices: '20', rate: '20', duration: '2s', seed: '6', 'ack-only': true });
      const c = r.summary.counts;
      assert.ok(c.sent > 0);
      assert.deepEqual({ acked: c.acked, results: c.results, missing: c.missing, unacked: c.unacked, errors: c.errors }, { acked: c.sent, results: 0, missing: 0, unacked: 0, errors: {} });
      assert.equal(r.summary.latency.result, undefined);
      assert.ok(r.summary.latency.ack!.count > 0);
    } finally {
      child.kill('SIGTERM');
    }
  });

  test('missing, duplicate and wrong results are counted exactly', async () => {
    const fake = await startFakeGateway({ dropEvery: 10, repeatEvery: 7, wrongEvery: 13 });
    try {
      // A dropped result never settles: the drain waits its whole length, kept short here.
      const r = await run(fake.address, { devices: '25', rate: '15', duration: '3s', drain: '2s', seed: '4' });
      const c = r.summary.counts;
      assert.equal(c.sent, fake.counts.events);
      assert.ok(fake.counts.dropped > 0 && fake.counts.repeated > 0 && fake.counts.wrong > 0);
      assert.deepEqual({ missing: c.missing, duplicates: c.duplicates, wrong: c.wrong, acked: c.acked }, { missing: fake.counts.dropped, duplicates: fake.counts.repeated, wrong: fake.counts.wrong, acked: c.sent });
      assert.equal(c.results, c.sent - fake.counts.dropped);
    } finally {
      await fake.stop();
    }
  });

  test('--workers 2 merges histograms to the same counts as one worker', async () => {
    const fake = await startFakeGateway();
    try {
      const one = await run(fake.address, { devices: '40', rate: '10', duration: '3s', seed: '21', workers: '1' });
      const two = await run(fake.address, { devices: '40', rate: '10', duration: '3s', seed: '21', workers: '2' });
      assert.equal(two.summary.fleet.workers, 2);
      // Same seed: the same events are due in the measured window, whoever sends them.
      for (const m of ['ack', 'result', 'sendLag', 'connect']) {
        assert.equal(two.summary.latency[m]!.count, one.summary.latency[m]!.count, `${m} count`);
        assert.equal(two.histograms.get(m as 'ack')!.totalCount, one.histograms.get(m as 'ack')!.totalCount);
      }
      assert.equal(two.summary.counts.sent, one.summary.counts.sent);
      // The merged histogram is the sum of its per-second parts.
      const perSecond = two.seconds.reduce((a, s) => a + (secondHistogram(s, 'ack')?.totalCount ?? 0), 0);
      assert.equal(perSecond, two.summary.latency.ack!.count);
      assertExact(two, 'two workers');
    } finally {
      await fake.stop();
    }
  });

  test('device tokens: every stream carries a valid token for its own device', async () => {
    const fake = await startFakeGateway({ tokenSecret: 's3cret' });
    try {
      const good = await run(fake.address, { devices: '15', rate: '10', duration: '2s', 'token-secret': 's3cret', seed: '1' });
      assertExact(good, 'tokens');
      assert.equal(fake.counts.tokensOk, 15);
      const bad = await run(fake.address, { devices: '5', rate: '10', duration: '1s', drain: '0s', 'token-secret': 'wrong', seed: '1' });
      assert.ok((bad.summary.counts.errors.UNAUTHENTICATED ?? 0) >= 5, JSON.stringify(bad.summary.counts.errors));
    } finally {
      await fake.stop();
    }
  });

  test('TLS with a CA file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lg-tls-'));
    try {
      await promisify(execFile)('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')]);
      const fake = await startFakeGateway({ tls: { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) } });
      try {
        const r = await run(fake.address, { devices: '10', rate: '10', duration: '2s', 'tls-ca': join(dir, 'cert.pem'), seed: '1' });
        assertExact(r, 'tls');
        const plain = await run(fake.address, { devices: '2', rate: '5', duration: '1s', drain: '0s', 'connect-timeout': '2s', seed: '1' });
        assert.equal(plain.summary.counts.acked, 0, 'plaintext against a TLS port gets nothing acked');
        assert.ok(Object.keys(plain.summary.counts.errors).length > 0);
      } finally {
        await fake.stop();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  for (const kind of ['REFUSED', 'RESET', 'STALLED'] as const) {
    test(`a target that ${kind === 'REFUSED' ? 'refuses' : kind === 'RESET' ? 'resets' : 'stalls'}: errors by kind, report still written`, async () => {
      let server: NetServer | null = null;
      const sockets: Socket[] = [];
      let port: number;
      if (kind === 'REFUSED') port = await unusedPort();
      else {
        server = createServer((s) => {
          sockets.push(s);
          s.on('error', () => {});
          if (kind === 'RESET') s.resetAndDestroy();
        });
        await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
        port = (server.address() as { port: number }).port;
      }
      const dir = mkdtempSync(join(tmpdir(), 'lg-bad-'));
      try {
        const r = await run(`127.0.0.1:${port}`, { devices: '5', rate: '5', duration: '2s', drain: '0s', 'connect-timeout': '1s', seed: '1' });
        const c = r.summary.counts;
        assert.equal(c.acked, 0);
        assert.ok((c.errors[kind] ?? 0) > 0, `errors by kind: ${JSON.stringify(c.errors)}`);
        assert.equal(r.summary.fleet.fleetConnectS, null);
        // Nothing ever answered: the run stopped early (fail fast) and says why.
        assert.match(r.summary.aborted ?? 'not aborted', new RegExp(`^no device could connect to 127\\.0\\.0\\.1:${port} \\(${kind}: `));
        assert.deepEqual(r.summary.window, { startS: 0, endS: 0 });
        writeReport(dir, r);
        assert.ok(existsSync(join(dir, 'report.html')) && existsSync(join(dir, 'summary.json')));
      } finally {
        for (const s of sockets) s.destroy();
        server?.close();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});

describe('the measured window starts after the fleet has connected', () => {
  test('a fleet ramping in for ~2 s: the window starts after the last device connected plus --warmup, no warning', async () => {
    const fake = await startFakeGateway();
    try {
      // Device i joins at i/15 s: the last of 30 at 1.93 s, well after a 1 s warm-up from t0.
      const r = await run(fake.address, { devices: '30', ramp: '15', rate: '10', duration: '2s', seed: '8' });
      assertExact(r, 'ramp');
      const s = r.summary;
      assert.ok(s.fleet.fleetConnectS !== null && s.fleet.fleetConnectS >= 29 / 15, `fleet connected at ${s.fleet.fleetConnectS} s`);
      // On the next whole second after connected + warm-up.
      assert.equal(s.window.startS, Math.ceil(s.fleet.fleetConnectS + 1));
      assert.equal(s.window.endS, s.window.startS + 2);
      assert.equal(s.measuredS, 2);
      assert.equal(s.fleet.connectedAtWindowStart, 30);
      assert.deepEqual(s.warnings, []);
      // The samples are the window's events only: 30 devices x 10/s (periodic, jittered) x 2 s,
      // give or take one event per device at each edge; none of the connect phase.
      assert.equal(s.latency.ack!.count, s.latency.sendLag!.count);
      assert.ok(s.latency.ack!.count >= 30 * 18 && s.latency.ack!.count <= 30 * 22, `ack samples ${s.latency.ack!.count}`);
    } finally {
      await fake.stop();
    }
  });

  test('a fleet still connecting at --warmup-max: measured anyway, with a loud warning carrying the figures', async () => {
    const fake = await startFakeGateway();
    try {
      // 40 devices at 10/s take 3.9 s to join; the warm-up may last 1 s at most.
      const r = await run(fake.address, { devices: '40', ramp: '10', rate: '5', duration: '4s', warmup: '0.5s', 'warmup-max': '1s', seed: '8' });
      const s = r.summary;
      assert.equal(s.window.startS, 1);
      const n = s.fleet.connectedAtWindowStart!;
      assert.ok(n >= 1 && n < 40, `connected at window start: ${n}`);
      assert.equal(s.warnings!.length, 1, JSON.stringify(s.warnings));
      assert.match(s.warnings![0]!, new RegExp(`^measuring started at 1\\.0 s with ${n} of 40 devices connected \\(--warmup-max 1 s\\); the fleet finished connecting at \\d+\\.\\d s, connect p99 \\d+ ms: the measured latencies include the connect storm`));
      const text = textSummary(s);
      assert.match(text, /^ {2}WARNING: measuring started at 1\.0 s/m);
      assert.match(text, new RegExp(`fleet connected: [\\d.]+ s; ${n} of 40 when measuring started`));
      assertExact(r, 'late fleet');
    } finally {
      await fake.stop();
    }
  });
});

describe('the command', () => {
  const cli = (args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [join(PROJECT_ROOT, 'bin', 'stratus.js'), 'loadgen', ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
        resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr });
      });
    });

  test('a failed threshold exits 99 and names it; passing ones exit 0', async () => {
    const fake = await startFakeGateway();
    try {
      const base = ['--target', fake.address, '--devices', '5', '--rate', '10', '--duration', '1s', '--warmup', '0s', '--drain', '2s'];
      const failed = await cli([...base, '--threshold', 'ack.p99<0.001ms', '--threshold', 'missing.count==0']);
      assert.equal(failed.code, 99, failed.stderr);
      assert.match(failed.stderr, /1 threshold\(s\) failed: ack\.p99<0\.001ms \(measured [\d.]+\)/);
      assert.match(failed.stdout, /FAIL {2}ack\.p99<0\.001ms/);
      assert.match(failed.stdout, /pass {2}missing\.count==0/);
      const passed = await cli([...base, '--threshold', 'ack.p99<60s', '--threshold', 'errors.rate<0.1%', '--json']);
      assert.equal(passed.code, 0, passed.stderr);
      const summary = JSON.parse(passed.stdout);
      assert.deepEqual(summary.thresholds.map((t: { ok: boolean }) => t.ok), [true, true]);
    } finally {
      await fake.stop();
    }
  });

  test('nothing listening: exit 4 within seconds (not the 30 s run), with the one-line hint', async () => {
    const port = await unusedPort();
    const t0 = Date.now();
    const r = await cli(['--target', `127.0.0.1:${port}`, '--devices', '20', '--duration', '30s']);
    const elapsedMs = Date.now() - t0;
    assert.equal(r.code, 4, r.stderr);
    // Every device is refused at its first attempt: the run stops then, well inside the 10 s
    // connect timeout (the bound asserted; it takes about a second).
    assert.ok(elapsedMs < 10_000, `ran ${elapsedMs} ms`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.at(-1), `stratus loadgen: no device could connect to 127.0.0.1:${port} (REFUSED: connect ECONNREFUSED 127.0.0.1:${port}; all 20 devices failed): is the engine running? start it with \`npx stratus run\`, or set --target`);
    const dns = await cli(['--target', 'nohost.invalid:50051', '--devices', '5', '--duration', '30s', '--json']);
    assert.equal(dns.code, 4, dns.stderr);
    assert.match(dns.stderr, /no device could connect to nohost\.invalid:50051 \(DNS: .*\): the host name does not resolve: check --target\n$/);
    const summary = JSON.parse(dns.stdout);
    assert.match(summary.aborted, /^no device could connect/);
  });

  test('missing, duplicate or wrong results exit 3, ahead of a failed threshold (both named)', async () => {
    const fake = await startFakeGateway({ dropEvery: 10, repeatEvery: 7 });
    try {
      const base = ['--target', fake.address, '--devices', '5', '--rate', '10', '--duration', '2s', '--warmup', '0s', '--drain', '1s', '--seed', '3'];
      const r = await cli([...base, '--threshold', 'ack.p99<0.001ms', '--json']);
      assert.equal(r.code, 3, r.stderr);
      const c = JSON.parse(r.stdout).counts;
      assert.ok(c.missing > 0 && c.duplicates > 0, JSON.stringify(c));
      assert.match(r.stderr, new RegExp(`the checker found wrong results: missing ${c.missing}, duplicates ${c.duplicates}, wrong values 0 \\(of ${c.sent} events sent\\)`));
      assert.match(r.stderr, /1 threshold\(s\) failed: ack\.p99<0\.001ms/);
      const text = await cli(base);
      assert.equal(text.code, 3, text.stderr);
      assert.match(text.stdout, /^Checker: missing \d+, duplicates \d+, wrong values 0: FAIL \(exit 3\)$/m);
    } finally {
      await fake.stop();
    }
  });

  test('--help documents the exit codes', async () => {
    const r = await cli(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /Exit codes \(the first that applies\): 4 stopped early .* 3 the checker found missing, duplicate or wrong results, 99 a --threshold failed, 0 done/s);
  });

  test('bad flags name the flag and what is allowed, before anything starts', async () => {
    const cases: [string[], RegExp][] = [
      [['--devices', '0'], /--devices must be an integer from 1 to/],
      [['--rate=-5'], /--rate must be a number above 0/],
      [['--total-rate', 'x'], /--total-rate must be a number above 0/],
      [['--rate', '1', '--total-rate', '5'], /alternatives/],
      [['--api', 'soap'], /--api must be one of stratus, nimbus, event-stream, metrics/],
      [['--profile', 'car'], /--profile must be one of iot, mobile, burst/],
      [['--duration', '0s'], /--duration must be a duration like 30s/],
      [['--target', 'nohost'], /--target must be host:port/],
      [['--threshold', 'ack.p77<3ms'], /--threshold "ack\.p77<3ms": latency stat must be one of/],
      [['--threshold', 'cpu.max<3'], /unknown metric "cpu"/],
      [['--slow-readers', '2'], /--slow-readers must be a fraction from 0 to 1/],
      [['--workers', '0'], /--workers must be an integer from 1 to 64/],
      [['--api', 'nimbus', '--ack-only'], /--ack-only needs an API with acknowledgements/],
      [['--warmup', '5s', '--warmup-max', '2s'], /--warmup-max must be at least --warmup \(5 s\)/],
    ];
    for (const [args, re] of cases) {
      const r = await cli(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`); // a usage error (src/cli/main.ts)
      assert.match(r.stderr, re, args.join(' '));
      assert.doesNotMatch(r.stderr, /devices ->/, `${args.join(' ')} started a run`);
    }
  });
});
