/**
 * `--api nimbus` against a server that does what the real NimbusGRPC server does
 * (github.com/learningfun-dev/NimbusGRPC; the behaviour is restated here, not its code):
 * - nimbus/cmd/server/events.go: only event_name "sq" (case-insensitive) is processed; any other
 *   name is logged and dropped, with no response;
 * - nimbus/kafkaconsumer/event_consumer.go: result = number * number in Go int32 (wraps);
 * - nimbus/redisclient/subscriber.go: the EventResponse echoes event_name and number, with result;
 * - no response headers before the first response (grpc-go sends them with it).
 * Kafka and Redis in between are left out: they change when a response comes, not what it says.
 * (Stratus's own nimbus service is driven in loadgen.test.ts, against the real engine.)
 */
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { Server, ServerCredentials, type ServerDuplexStream } from '@grpc/grpc-js';
import { runLoadgen, type LoadgenRun } from '../../../loadgen/loadgen.js';
import { resolveOptions, type RawFlags } from '../../../loadgen/options.js';
import { NimbusService, type EventRequest, type EventResponse } from '../../../src/gateway/protocol.js';

interface GoNimbus {
  address: string;
  counts: { requests: number; processed: number; dropped: number; names: Set<string>; clients: Set<string> };
  stop(): Promise<void>;
}

async function startGoNimbus(): Promise<GoNimbus> {
  const counts = { requests: 0, processed: 0, dropped: 0, names: new Set<string>(), clients: new Set<string>() };
  const server = new Server();
  server.addService(NimbusService, {
    ProcessEvent(call: ServerDuplexStream<EventRequest, EventResponse>) {
      const clientId = String(call.metadata.get('client_id')[0] ?? '');
      if (clientId === '') {
        call.emit('error', { code: 3, details: 'client_id not received or empty in metadata' });
        return;
      }
      counts.clients.add(clientId);
      call.on('data', (req: EventRequest) => {
        counts.requests++;
        counts.names.add(req.eventName);
        if (req.eventName.toLowerCase() !== 'sq') {
          counts.dropped++;
          return;
        }
        counts.processed++;
        // Answer later, as a result that went through Kafka and Redis would.
        setImmediate(() => call.write({ eventName: req.eventName, number: req.number, result: Math.imul(req.number, req.number), log: { steps: [] }, resultWide: 0 }));
      });
      call.on('end', () => call.end());
      call.on('error', () => {});
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  return { address: `127.0.0.1:${port}`, counts, stop: () => new Promise<void>((r) => server.tryShutdown(() => r())) };
}

const run = (target: string, flags: RawFlags): Promise<LoadgenRun> =>
  runLoadgen(resolveOptions({ api: 'nimbus', warmup: '0s', drain: '20s', 'connect-timeout': '15s', ...flags }, target), { progress: new PassThrough().resume() });

describe('--api nimbus against a NimbusGRPC-like server', () => {
  let go: GoNimbus;
  before(async () => {
    go = await startGoNimbus();
  });
  after(() => go.stop());

  test('every event is an "sq" request, answered once with number squared, matched to its (device, seq)', async () => {
    const before = go.counts.requests;
    const r = await run(go.address, { devices: '10', rate: '20', duration: '2s', seed: '4' });
    const c = r.summary.counts;
    assert.ok(c.sent > 0);
    assert.equal(go.counts.requests - before, c.sent);
    assert.deepEqual([...go.counts.names], ['sq']);
    assert.equal(go.counts.clients.size, 10);
    assert.deepEqual(
      { results: c.results, missing: c.missing, duplicates: c.duplicates, wrong: c.wrong, unacked: c.unacked, errors: c.errors, rejected: c.rejected },
      { results: c.sent, missing: 0, duplicates: 0, wrong: 0, unacked: 0, errors: {}, rejected: {} },
    );
    assert.ok(r.summary.latency.result!.count > 0);
    assert.equal(r.summary.aborted, null);
  });

  test('another --type is dropped by the server, as the real one does: nothing answered, every event missing', async () => {
    const r = await run(go.address, { devices: '3', rate: '10', duration: '1s', drain: '1s', type: 'cube', seed: '4' });
    const c = r.summary.counts;
    assert.ok(c.sent > 0);
    assert.deepEqual({ results: c.results, missing: c.missing }, { results: 0, missing: c.sent });
  });
});
