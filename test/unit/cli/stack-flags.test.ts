/**
 * `stratus stack up --kafka-brokers 3` (the count, as issue 19 spells it) means --kafka-nodes 3;
 * a bootstrap list stays the kafka.brokers option.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseCommand } from '../../../src/cli/command.js';
import { stackCommand } from '../../../src/cli/stack-command.js';

function parsed(argv: string[]) {
  const p = parseCommand(stackCommand, argv);
  assert.equal(p.kind, 'run');
  return p.kind === 'run' ? p.ctx : assert.fail();
}

test('--kafka-brokers N (a count) is --kafka-nodes N; a host:port list is still kafka.brokers', () => {
  for (const argv of [['up', '--kafka-brokers', '3', '--redis-cluster'], ['up', '--kafka-brokers=3', '--redis-cluster'], ['up', '--kafka-nodes', '3', '--redis-cluster']]) {
    const ctx = parsed(argv);
    assert.equal(ctx.flags['kafka-nodes'], '3', argv.join(' '));
    assert.equal(ctx.flags['redis-cluster'], true);
    assert.deepEqual(ctx.config.kafka.brokers, ['127.0.0.1:9092']);
  }
  const list = parsed(['status', '--kafka-brokers', '127.0.0.1:9192']);
  assert.equal(list.flags['kafka-nodes'], undefined);
  assert.deepEqual(list.config.kafka.brokers, ['127.0.0.1:9192']);
});
