/** ForwarderLog: levels, and at most one rate-limited line per topic per 10 s with the dropped count. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ForwarderLog } from '../../../src/forwarder/forwarder-log.js';
import { testConfig } from '../../helpers/config.js';

/** The log lines written to stderr while fn runs, parsed (the log is JSON when stderr is not a TTY). */
function captured(fn: () => void): Record<string, unknown>[] {
  const lines: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string) => {
    lines.push(String(chunk));
    return true;
  }) as typeof process.stderr.write;
  try {
    fn();
  } finally {
    process.stderr.write = write;
  }
  return lines.map((l) => JSON.parse(l) as Record<string, unknown>);
}

test('rateLimited: one line per topic per 10 s, then the count of those dropped', () => {
  const log = new ForwarderLog(testConfig(), 'f1');
  const lines = captured(() => {
    for (let i = 0; i < 5; i++) log.rateLimited('dead', `line ${i}`, 1000 + i);
    log.rateLimited('other', 'other 0', 1005);
    log.rateLimited('dead', 'line later', 11_000);
  });
  assert.deepEqual(
    lines.map((l) => [l.level, l.role, l.instance, l.msg, l.dropped]),
    [
      [40, 'forwarder', 'f1', 'line 0', undefined],
      [40, 'forwarder', 'f1', 'other 0', undefined],
      [40, 'forwarder', 'f1', 'line later (4 similar lines dropped in the last 10 s)', 4],
    ],
  );
});

test('levels: info is dropped at warn, warn at error', () => {
  assert.deepEqual(captured(() => new ForwarderLog(testConfig({ 'log-level': 'warn' }), 'f').info('x')), []);
  assert.deepEqual(captured(() => new ForwarderLog(testConfig({ 'log-level': 'warn' }), 'f').warn('x')).map((l) => [l.level, l.msg]), [[40, 'x']]);
  assert.deepEqual(captured(() => new ForwarderLog(testConfig({ 'log-level': 'error' }), 'f').warn('x')), []);
});
