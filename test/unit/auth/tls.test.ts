import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tlsFiles } from '../../../src/auth/tls.js';
import { loadConfig } from '../../../src/config.js';

const config = (env: Record<string, string>) => loadConfig({ envFile: null, env });

test('tls options: off when empty; cert and key go together; a CA needs both; a missing file is named', () => {
  assert.equal(tlsFiles(config({})), null);
  assert.throws(() => tlsFiles(config({ STRATUS_TLS_CERT: '/x.pem' })), /tls\.cert and tls\.key go together/);
  assert.throws(() => tlsFiles(config({ STRATUS_TLS_KEY: '/x.pem' })), /tls\.cert and tls\.key go together/);
  assert.throws(() => tlsFiles(config({ STRATUS_TLS_CA: '/x.pem' })), /tls\.ca \(mutual TLS\) needs tls\.cert and tls\.key/);
  assert.throws(() => tlsFiles(config({ STRATUS_TLS_CERT: '/nonexistent/c.pem', STRATUS_TLS_KEY: '/nonexistent/k.pem' })), /config tls\.cert: cannot read \/nonexistent\/c\.pem/);
});
