/** ForwarderLog: levels, and at most one rate-limited line per topic per 10 s with the dropped count. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ForwarderLog } from '../../../src/forwarder/forwarder-log.js';
import { testConfig } from '../../helpers/config.js';

function captured(fn: () => void): string[] {
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
  return lines;
}

test('rateLimited: one line per topic per 10 s, then the count of those dropped', () => {
  const log = new ForwarderLog(testConfig(), 'f1');
  const lines = captured(() => {
    for (let i = 0; i < 5; i++) log.rateLimited('dead', `line ${i}`, 1000 + i);
    log.rateLimited('other', 'other 0', 1005);
    log.rateLimited('dead', 'line later', 11_000);
  });
  assert.deepEqual(lines, ['forwarder f1: line 0\n', 'forwarder f1: other 0\n', 'forwarder f1: line later (4 similar lines dropped in the last 10 s)\n']);
});

test('levels: info is dropped at warn, warn at error', () => {
  assert.deepEqual(captured(() => new ForwarderLog(testConfig({ 'log-level': 'warn' }), 'f').info('x')), []);
  assert.deepEqual(captured(() => new ForwarderLog(testConfig({ 'log-level': 'warn' }), 'f').warn('x')), ['forwarder f: x\n']);
  assert.deepEqual(captured(() => new ForwarderLog(testConfig({ 'log-level': 'error' }), 'f').warn('x')), []);
});
