/**
 * src/kafka/platformatic/errors.ts on the errors @platformatic/kafka itself builds (its own classes,
 * nested as a failed call nests them: MultipleErrors of attempts, ResponseError of ProtocolErrors).
 *
 * Runs on Node 20 too: constructing the library's errors calls nothing that needs Node 22 (the
 * library's Promise.withResolvers is in its callbacks, not its errors).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MultipleErrors, NetworkError, ProtocolError, ResponseError, TimeoutError, UserError } from '@platformatic/kafka';
import { bounded, DeadlineError, failureOf, platformaticFailure } from '../../../../src/kafka/platformatic/errors.js';
import { KafkaClientError } from '../../../../src/kafka/types.js';

/** What a failed CreateTopics answer looks like after the library's retries: MULTIPLE -> RESPONSE -> PROTOCOL. */
function createTopicsFailure(apiCode: number): MultipleErrors {
  const response = new ResponseError(19, 7, { '/topics/0': [apiCode, 'broker says no'] }, {});
  return new MultipleErrors('Creating topics failed.', [response]);
}

test('broker error codes nested MULTIPLE -> RESPONSE -> PROTOCOL map to the failure they stand for', () => {
  // Kafka's codes: 36 TOPIC_ALREADY_EXISTS, 38 INVALID_REPLICATION_FACTOR, 3 UNKNOWN_TOPIC_OR_PARTITION,
  // 19 NOT_ENOUGH_REPLICAS, 29 TOPIC_AUTHORIZATION_FAILED, 37 INVALID_PARTITIONS.
  const cases: [number, string][] = [
    [36, 'topic-exists'],
    [38, 'replication-factor'],
    [3, 'unknown-topic'],
    [19, 'unavailable'],
    [29, 'refused'],
    [37, 'refused'],
  ];
  for (const [code, failure] of cases) {
    const err = createTopicsFailure(code);
    assert.equal(failureOf(err), failure, `code ${code}`);
    const mapped = platformaticFailure(err, 'createTopics x');
    assert.ok(mapped instanceof KafkaClientError);
    assert.equal(mapped.failure, failure);
    assert.equal(mapped.client, 'platformatic');
    assert.equal(mapped.cause, err);
    assert.equal(mapped.retryable, failure === 'unknown-topic' || failure === 'unavailable');
    // The broker's own words reach the message, with its error id.
    assert.match(mapped.message, /^createTopics x: Creating topics failed\.: /);
    assert.match(mapped.message, /broker says no|[A-Z_]{5,}: /);
  }
  // By id as the library also builds them.
  assert.equal(failureOf(new ProtocolError('TOPIC_ALREADY_EXISTS')), 'topic-exists');
  assert.equal(failureOf(new ProtocolError('INVALID_REPLICATION_FACTOR')), 'replication-factor');
  assert.equal(failureOf(new ProtocolError('LEADER_NOT_AVAILABLE')), 'unavailable');
});

test('one topic existing among several failures: the specific one wins over a generic one, whatever the order', () => {
  const mixed = new MultipleErrors('Creating topics failed.', [new ResponseError(19, 7, { '/topics/0': [29, null], '/topics/1': [36, null] }, {})]);
  assert.equal(failureOf(mixed), 'topic-exists');
});

test('network failures and timeouts, also nested in retries, are unavailable', () => {
  const refused = new NetworkError('Connection to 127.0.0.1:1 failed.', { cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }) });
  assert.equal(failureOf(refused), 'unavailable');
  assert.equal(failureOf(new TimeoutError('Request timed out.')), 'unavailable');
  const retried = new MultipleErrors('metadata failed 4 times.', [refused, new TimeoutError('Request timed out.'), refused]);
  assert.equal(failureOf(retried), 'unavailable');
  const mapped = platformaticFailure(retried);
  assert.equal(mapped.retryable, true);
  assert.match(mapped.message, /ECONNREFUSED|Connection to 127\.0\.0\.1:1 failed/);
});

test('the library\'s "Unknown topic" from metadata() is unknown-topic; any other user error is refused', () => {
  assert.equal(failureOf(new UserError('Unknown topic contract.x.')), 'unknown-topic');
  assert.equal(failureOf(new UserError('Cannot specify producerId or producerEpoch when using idempotent producer.')), 'refused');
  assert.equal(platformaticFailure(new UserError('bad')).retryable, false);
});

test('a KafkaClientError passes through unchanged; errors not from the library are unavailable', async () => {
  const own = new KafkaClientError('unknown-topic', 'x', 'platformatic');
  assert.equal(platformaticFailure(own), own);
  assert.equal(failureOf(new Error('socket hang up')), 'unavailable');
  // The late promise keeps the event loop up (bounded()'s own timer is unref'd, as in the engine).
  const deadline = await bounded(new Promise((resolve) => setTimeout(resolve, 300)), 20, 'listTopics').catch((err: unknown) => err);
  assert.ok(deadline instanceof DeadlineError);
  assert.equal(deadline.message, 'listTopics: no answer within 20 ms');
  assert.equal(failureOf(deadline), 'unavailable');
  assert.equal(await bounded(Promise.resolve(7), 1000, 'x'), 7);
});
