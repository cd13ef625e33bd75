/**
 * The real ghz (built at a pinned version by test/helpers/go-tools.ts) against a real gateway with
 * no .proto files on its side, as README shows it: unary IngestBatch calls whose JSON uses the
 * .proto's names and ghz's template data, every call answered OK, every event acknowledged.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { testConfig } from '../../helpers/config.js';
import { ghzPath } from '../../helpers/go-tools.js';
import { startPipeline, type TestPipeline } from '../../helpers/pipeline.js';

const config = testConfig({ 'kafka-partitions': '1' });
let pipeline: TestPipeline;
let ghz: string;

before(async () => {
  ghz = await ghzPath();
  pipeline = await startPipeline(config, ['gw-ghz']);
}, { timeout: 300_000 });
after(() => pipeline?.stop(), { timeout: 60_000 });

interface GhzReport {
  count: number;
  statusCodeDistribution: Record<string, number>;
  errorDistribution?: Record<string, number>;
}

function runGhz(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(ghz, args, { timeout: 120_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : null, stdout, stderr }));
  });
}

test('ghz with reflection: 200 IngestBatch calls over 10 connections, .proto names and per-call devices, all OK and acknowledged', { timeout: 180_000 }, async () => {
  const prefix = `ghz-${randomUUID().slice(0, 8)}`;
  const data = JSON.stringify({ events: [{ device_id: `${prefix}-{{.RequestNumber}}`, seq: 1, type: 'sq', value: 3 }] });
  const r = await runGhz(['--insecure', '--call', 'stratus.v1.DeviceGateway.IngestBatch', '-d', data, '-n', '200', '-c', '10', '--connections', '10', '--format', 'json', `127.0.0.1:${pipeline.gateways[0]!.port}`]);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout) as GhzReport;
  assert.equal(report.count, 200);
  assert.deepEqual(report.statusCodeDistribution, { OK: 200 }, JSON.stringify(report.errorDistribution));
});

test('ghz: a field the .proto does not have is refused by ghz before any call', { timeout: 60_000 }, async () => {
  const r = await runGhz(['--insecure', '--call', 'stratus.v1.DeviceGateway.IngestBatch', '-d', '{"events":[{"device":"x","seq":1}]}', '-n', '1', `127.0.0.1:${pipeline.gateways[0]!.port}`]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr + r.stdout, /device/);
});
