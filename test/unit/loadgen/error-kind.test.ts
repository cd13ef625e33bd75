/** errorKind: grpc-js's words for a transport failure, turned into the kinds the report counts. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { errorKind } from '../../../loadgen/drivers/driver.js';

function err(code: status, details: string): ServiceError {
  return Object.assign(new Error(`${code} ${status[code]}: ${details}`), { code, details, metadata: new Metadata() });
}

test('each way grpc-js words a refused, reset, unresolvable or TLS-failed connection has its kind', () => {
  const cases: [string, string][] = [
    ['No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1. Resolution note: ', 'REFUSED'],
    ['No connection established. Last error: Error: connect ECONNRESET 127.0.0.1:40000. Resolution note: ', 'RESET'],
    ['No connection established. Last error: Failed to connect (2026-12-05T02:40:00.000Z). Resolution note: ', 'RESET'],
    ['No connection established. Last error: Connection closed before starting HTTP/2 handshake. Resolution note: ', 'RESET'],
    ['Connection dropped', 'RESET'],
    ['Name resolution failed for target dns:nowhere.invalid:1', 'DNS'],
    ['No connection established. Last error: Error: 40F8:error:0A00010B:SSL routines:ssl3_get_record:wrong version number', 'TLS'],
    ['No connection established. Last error: Error: self-signed certificate', 'TLS'],
  ];
  for (const [details, kind] of cases) assert.equal(errorKind(err(status.UNAVAILABLE, details)), kind, details);
  assert.equal(errorKind(err(status.UNAVAILABLE, 'something else')), 'UNAVAILABLE');
  assert.equal(errorKind(err(status.RESOURCE_EXHAUSTED, 'Connection dropped')), 'RESOURCE_EXHAUSTED');
});
