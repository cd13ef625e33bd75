/**
 * `stratus loadgen`: a simulated device fleet against a gateway (ours or any server speaking one
 * of the supported APIs).
 *
 * Exit codes (first matching row wins, so a run that could not connect never reports 3 or 99):
 *
 *   code  meaning
 *   4     stopped early: no device could connect (refused, DNS, TLS, stalled handshake; the hint
 *         line says which and what to do), or the run overran its bound
 *   3     the end-to-end checker found missing, duplicate or wrong results (a correctness
 *         failure outranks a performance one; failed thresholds are still printed)
 *   99    a --threshold failed (k6's code)
 *   0     done, every check passed
 *   2     bad flags (a usage error, src/cli/main.ts); other operating errors exit 1
 *
 * Unacknowledged and held-unsent events are reported but do not fail the run by themselves: they
 * are what a flaky network does to a client, not a wrong answer from the server (use
 * --threshold 'unacked.count==0' if they should).
 */
import { runLoadgen } from '../../loadgen/loadgen.js';
import { APIS, BATCH_MAX, DEVICES_MAX, PROFILES, resolveOptions, WORKERS_MAX } from '../../loadgen/options.js';
import { writeReport } from '../../loadgen/report.js';
import { readReportSummary } from '../../loadgen/compare.js';
import { ErrorCode, StratusError } from '../errors.js';
import { textSummary } from '../../loadgen/text-summary.js';
import type { Command } from './command.js';

export const THRESHOLD_FAILED_EXIT = 99;
export const CHECKER_FAILED_EXIT = 3;
export const ABORTED_EXIT = 4;

/** Shown under Usage in --help. */
const EXIT_CODES_DOC = [
  '',
  'Exit codes (the first that applies): 4 stopped early (no device could connect, with a hint; or the run overran),',
  '  3 the checker found missing, duplicate or wrong results, 99 a --threshold failed, 0 done; bad flags 2.',
].join('\n');

export const loadgenCommand: Command = {
  name: 'loadgen',
  summary: 'Simulate a device fleet against a gateway: open-loop load, HdrHistogram latencies, end-to-end check.',
  usage: 'loadgen [--target HOST:PORT] [--api NAME] [--devices N] [--rate R | --total-rate R] [--duration D] [--report DIR] [--threshold EXPR ...] [...]' + EXIT_CODES_DOC,
  flags: {
    target: { type: 'string', doc: 'gateway to load (default: 127.0.0.1 and grpc.port from the configuration)' },
    api: { type: 'string', doc: `API to speak: ${APIS.join(', ')} (default stratus)` },
    devices: { type: 'string', doc: `simulated devices, 1..${DEVICES_MAX} (default 10000)` },
    connections: { type: 'string', doc: 'HTTP/2 connections the devices are multiplexed over, 1..devices (default devices/100; = devices: one each)' },
    ramp: { type: 'string', doc: 'devices connected per second (default 0: all at once)' },
    profile: { type: 'string', doc: `${PROFILES.join(' | ')}: periodic with jitter | churn, bursts, variable payloads | synchronized spikes (default iot)` },
    rate: { type: 'string', doc: 'mean events per second per device (default 1)' },
    'total-rate': { type: 'string', doc: 'mean events per second for the whole fleet (instead of --rate)' },
    batch: { type: 'string', doc: `events per uplink, 1..${BATCH_MAX} (default 1)` },
    'payload-bytes': { type: 'string', doc: 'payload per event (default 32; mobile: log-normal around it)' },
    duration: { type: 'string', doc: 'measured time, e.g. 30s, 2m (default 30s)' },
    warmup: { type: 'string', doc: 'load after the whole fleet has connected, before measuring starts (default 5s)' },
    'warmup-max': { type: 'string', doc: 'longest warm-up, connecting included: measuring then starts anyway, with a warning (default ramp time + connect-timeout + warmup)' },
    drain: { type: 'string', doc: 'after the last send, wait this long at most for acks and results (default 10s)' },
    workers: { type: 'string', doc: `worker threads, each driving a slice of the fleet, 1..${WORKERS_MAX} (default 1)` },
    seed: { type: 'string', doc: 'schedule seed: the same seed gives the same schedule (default random, printed)' },
    'slow-readers': { type: 'string', doc: 'fraction 0..1 of devices that read their downlink slowly (default 0)' },
    'ack-only': { type: 'boolean', doc: 'the target only acknowledges (no results expected): a gateway without processor and forwarder, a bare server' },
    'closed-loop': { type: 'boolean', doc: 'wait for each ack before the next uplink, latency from the real send (ghz-style; for comparison)' },
    type: { type: 'string', doc: 'processor named in each event; nimbus: the event_name (default sq; results are checked for sq)' },
    queue: { type: 'string', doc: 'event-stream API: list queue (metadata x-queue; default the server\'s)' },
    'device-prefix': { type: 'string', doc: 'device ids are PREFIX d<i> (default lg-<time>-<random>-, fresh per run)' },
    'connect-timeout': { type: 'string', doc: 'a stream with no answer after this counts as STALLED; if no device has reached the target by then, the run stops (exit 4) (default 10s)' },
    tls: { type: 'boolean', doc: 'connect with TLS (system roots unless --tls-ca)' },
    'tls-ca': { type: 'string', doc: 'PEM file of the CA that signed the server certificate (implies --tls)' },
    'tls-cert': { type: 'string', doc: 'PEM client certificate for mutual TLS, with --tls-key (implies --tls)' },
    'tls-key': { type: 'string', doc: 'PEM private key of --tls-cert' },
    'token-secret': { type: 'string', doc: 'mint an HMAC device token per device (authorization: Bearer)' },
    report: { type: 'string', doc: 'write summary.json, <metric>.hgrm, intervals.hlog and report.html into this folder' },
    baseline: { type: 'string', doc: 'an earlier --report folder (needs --report; checked before the run): report.html overlays both runs\' latency curves with a table of deltas, and compare.html is written' },
    threshold: { type: 'string', multiple: true, doc: 'pass/fail, repeatable: ack.p99<20ms, result.p999<100ms, errors.rate<0.1%, missing.count==0; a failure exits 99' },
    json: { type: 'boolean', doc: 'print the summary as JSON instead of text' },
  },
  usesConfig: true,
  async run({ flags, config }) {
    const host = config.grpc.host === '0.0.0.0' || config.grpc.host === '::' ? '127.0.0.1' : config.grpc.host;
    const opts = resolveOptions(flags, `${host}:${config.grpc.port}`);
    // A baseline is checked before any load: a run must not end in a comparison that cannot be made.
    const baselineDir = typeof flags.baseline === 'string' ? flags.baseline : null;
    if (baselineDir !== null) {
      if (opts.reportDir === null) throw new StratusError(ErrorCode.USAGE, '--baseline needs --report DIR: the comparison is written into the report (or compare two folders with `stratus report compare A B`)');
      try {
        readReportSummary(baselineDir);
      } catch (err) {
        throw new StratusError(ErrorCode.USAGE, `--baseline: ${(err as Error).message}`);
      }
    }
    process.stderr.write(`stratus loadgen: ${opts.devices} devices -> ${opts.target} (${opts.api}, ${opts.profile}), seed ${opts.seed}\n`);
    const run = await runLoadgen(opts, { progress: process.stderr });
    const s = run.summary;
    if (opts.reportDir !== null) {
      const files = writeReport(opts.reportDir, run, baselineDir);
      process.stderr.write(`stratus loadgen: report in ${opts.reportDir}: ${files.join(', ')}\n`);
    }
    process.stdout.write(opts.json ? JSON.stringify(s, null, 2) + '\n' : textSummary(s));
    // The text summary shows its warnings itself; with --json they would be easy to miss.
    if (opts.json) for (const w of s.warnings ?? []) if (w !== `the run was stopped early: ${s.aborted}`) process.stderr.write(`stratus loadgen: WARNING: ${w}\n`);
    if (s.aborted) {
      // The one line a user needs: what failed, where, and what to do (fail-fast.ts).
      process.stderr.write(`stratus loadgen: ${s.aborted}\n`);
      return ABORTED_EXIT;
    }
    const c = s.counts;
    const failed = s.thresholds.filter((t) => !t.ok);
    if (failed.length > 0) {
      process.stderr.write(`stratus loadgen: ${failed.length} threshold(s) failed: ${failed.map((t) => `${t.expr} (measured ${t.actual ?? 'nothing'})`).join('; ')}\n`);
    }
    if (c.missing + c.duplicates + c.wrong > 0) {
      process.stderr.write(`stratus loadgen: the checker found wrong results: missing ${c.missing}, duplicates ${c.duplicates}, wrong values ${c.wrong} (of ${c.sent} events sent)\n`);
      return CHECKER_FAILED_EXIT;
    }
    return failed.length > 0 ? THRESHOLD_FAILED_EXIT : 0;
  },
};
