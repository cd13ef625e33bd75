import assert from 'node:assert/strict';
import { test } from 'node:test';
import { status } from '@grpc/grpc-js';
import { ErrorCode, StratusError } from '../../../src/errors.js';
import { grpcError, INTERNAL_DETAILS, RETRYABLE_CODES, statusName, toGrpcStatus } from '../../../src/gateway/grpc-status.js';

const ALL_CODES = Object.values(ErrorCode);
/** The statuses a client may retry on by itself. */
const RETRY_STATUSES = new Set<status>([status.UNAVAILABLE, status.RESOURCE_EXHAUSTED, status.ABORTED]);

test('the table is total: every ErrorCode maps to a status other than OK, UNKNOWN and INTERNAL, with its message as details', () => {
  for (const code of ALL_CODES) {
    const st = toGrpcStatus(new StratusError(code, `text of ${code}`));
    assert.equal(typeof st.code, 'number', code);
    assert.ok(status[st.code] !== undefined, `${code} maps to a real status (got ${st.code})`);
    assert.ok(![status.OK, status.UNKNOWN, status.INTERNAL].includes(st.code), `${code} maps to ${status[st.code]}`);
    assert.equal(st.details, `text of ${code}`);
  }
});

test('retryable codes map to UNAVAILABLE, RESOURCE_EXHAUSTED or ABORTED; grpcError marks exactly those retryable', () => {
  assert.ok(RETRYABLE_CODES.size > 0);
  for (const code of RETRYABLE_CODES) {
    const st = grpcError(code, 'x');
    assert.ok(RETRY_STATUSES.has(st.code), `${code} is retryable but maps to ${status[st.code]}`);
  }
  // Codes that existing modules raise with retryable: true map to a retry status as well.
  for (const code of [ErrorCode.KAFKA_UNAVAILABLE, ErrorCode.REDIS_UNAVAILABLE, ErrorCode.STACK_START_FAILED]) {
    assert.ok(RETRY_STATUSES.has(toGrpcStatus(new StratusError(code, 'x', { retryable: true })).code), code);
  }
});

test('the conditions that end calls today keep their gRPC status', () => {
  const expected: [ErrorCode, status][] = [
    [ErrorCode.STREAM_SUPERSEDED, status.ABORTED],
    [ErrorCode.DEVICE_NOT_READING, status.RESOURCE_EXHAUSTED],
    [ErrorCode.DEVICE_BEHIND, status.RESOURCE_EXHAUSTED],
    [ErrorCode.INSTANCE_FULL, status.RESOURCE_EXHAUSTED],
    [ErrorCode.CALL_DEVICES_MAX, status.RESOURCE_EXHAUSTED],
    [ErrorCode.QUEUE_FULL, status.RESOURCE_EXHAUSTED],
    [ErrorCode.SHUTTING_DOWN, status.UNAVAILABLE],
    [ErrorCode.KAFKA_UNAVAILABLE, status.UNAVAILABLE],
    [ErrorCode.REDIS_UNAVAILABLE, status.UNAVAILABLE],
    [ErrorCode.METADATA_INVALID, status.INVALID_ARGUMENT],
    [ErrorCode.REQUEST_INVALID, status.INVALID_ARGUMENT],
    [ErrorCode.UNAUTHENTICATED, status.UNAUTHENTICATED],
    [ErrorCode.DEVICE_FORBIDDEN, status.PERMISSION_DENIED],
  ];
  for (const [code, st] of expected) assert.deepEqual(grpcError(code, 'the details'), { code: st, details: 'the details' }, code);
});

test('an error that is not a StratusError maps to INTERNAL with a generic text, nothing of its message or stack', () => {
  const secret = 'password=hunter2 at /srv/stratus/src/x.ts:12';
  for (const err of [new Error(secret), new TypeError(secret), secret, { code: status.ABORTED, details: secret }, null, undefined, 42]) {
    const st = toGrpcStatus(err);
    assert.deepEqual(st, { code: status.INTERNAL, details: INTERNAL_DETAILS });
    assert.ok(!st.details.includes('hunter2') && !st.details.includes('.ts:'));
  }
});

test('statusName gives the name the SSE end event carries', () => {
  assert.equal(statusName(grpcError(ErrorCode.STREAM_SUPERSEDED, 'x').code), 'ABORTED');
  assert.equal(statusName(grpcError(ErrorCode.DEVICE_NOT_READING, 'x').code), 'RESOURCE_EXHAUSTED');
  assert.equal(statusName(grpcError(ErrorCode.SHUTTING_DOWN, 'x').code), 'UNAVAILABLE');
});
