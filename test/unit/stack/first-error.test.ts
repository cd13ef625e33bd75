/** firstError (src/stack/processes.ts): the line that says why a server died, not the trace's tail. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { firstError } from '../../../src/stack/processes.js';

test('the first ERROR, FATAL or exception line, with the line after it; empty when there is none', () => {
  const dir = mkdtempSync(join(tmpdir(), 'first-error-'));
  try {
    const log = join(dir, 'kafka.log');
    writeFileSync(log, [
      '[2026-12-05 08:00:00,000] INFO Registered kafka:type=kafka.Log4jController MBean',
      '[2026-12-05 08:00:01,000] INFO [ControllerServer id=1] Starting controller',
      '[2026-12-05 08:00:02,000] ERROR [ControllerServer id=1] Fatal error during controller startup. Prepare to shutdown (kafka.server.ControllerServer)',
      'org.apache.kafka.common.KafkaException: Socket server failed to bind to 127.0.0.1:9093: Address already in use.',
      '\tat kafka.network.Acceptor.openServerSocket(SocketServer.scala:734)',
      '[2026-12-05 08:00:03,000] ERROR later, not the first',
    ].join('\n'));
    assert.equal(firstError(log), [
      '[2026-12-05 08:00:02,000] ERROR [ControllerServer id=1] Fatal error during controller startup. Prepare to shutdown (kafka.server.ControllerServer)',
      'org.apache.kafka.common.KafkaException: Socket server failed to bind to 127.0.0.1:9093: Address already in use.',
    ].join('\n'));
    writeFileSync(log, 'java.lang.OutOfMemoryError: Java heap space\n');
    assert.equal(firstError(log), 'java.lang.OutOfMemoryError: Java heap space');
    writeFileSync(log, '[2026-12-05 08:00:00,000] INFO all fine\n[2026-12-05 08:00:00,000] WARN a warning\n');
    assert.equal(firstError(log), '');
    assert.equal(firstError(join(dir, 'missing.log')), '');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
