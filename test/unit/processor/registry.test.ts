import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { PROCESSORS, SHA_ROUNDS_MAX } from '../../../src/processor/registry.js';

const ev = (type: string, value: number, payload = Buffer.alloc(0)) => ({ deviceId: 'd', seq: 1, value, sentAtUs: 0, receivedAtUs: 0, type, payload });

test('sq squares without wrapping, echo echoes, sha256 chains the digest', () => {
  const sq = PROCESSORS.get('sq')!;
  assert.equal(sq.run(ev('sq', -7)).value, 49);
  assert.equal(sq.run(ev('sq', 46341)).value, 2147488281); // past int32: no overflow
  assert.equal(sq.run(ev('sq', 2 ** 31 - 1)).value, (2 ** 31 - 1) ** 2);
  const echo = PROCESSORS.get('echo')!.run(ev('echo', 3.5, Buffer.from('p')));
  assert.deepEqual([echo.value, Buffer.from(echo.payload).toString()], [3.5, 'p']);
  const sha = PROCESSORS.get('sha256')!;
  const two = createHash('sha256').update(createHash('sha256').update(Buffer.from('x')).digest()).digest();
  const out = sha.run(ev('sha256', 2, Buffer.from('x')));
  assert.equal(out.value, 2);
  assert.deepEqual(Buffer.from(out.payload), two);
  assert.equal(sha.run(ev('sha256', 1e12)).value, SHA_ROUNDS_MAX);
  assert.equal(sha.run(ev('sha256', -3)).value, 1);
});
