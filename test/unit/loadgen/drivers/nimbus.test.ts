/**
 * The nimbus driver speaks what a real NimbusGRPC server processes: event_name "sq" (its server
 * drops any other name, nimbus/cmd/server/events.go), the seq carried in `number`, which the
 * server echoes in its EventResponse with result = number * number (int32).
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { Client, credentials, Server, ServerCredentials, type ServerDuplexStream } from '@grpc/grpc-js';
import { NimbusService, type EventRequest, type EventResponse } from '../../../../src/gateway/protocol.js';
import { NIMBUS_NUMBER_MAX, nimbusDriver, nimbusNumber, nimbusRequest } from '../../../../loadgen/drivers/nimbus.js';
import type { SessionEvents } from '../../../../loadgen/drivers/driver.js';
import { seqOfResidue } from '../../../../loadgen/fleet.js';

test('a request is event_name "sq" with the seq in number, 1..46340 so that number^2 fits int32', () => {
  assert.deepEqual(nimbusRequest('sq', 1), { eventName: 'sq', number: 1 });
  assert.deepEqual(nimbusRequest('sq', 46_340), { eventName: 'sq', number: 46_340 });
  assert.deepEqual(nimbusRequest('sq', 46_341), { eventName: 'sq', number: 1 });
  assert.equal(NIMBUS_NUMBER_MAX ** 2 <= 2 ** 31 - 1, true);
  assert.equal((NIMBUS_NUMBER_MAX + 1) ** 2 > 2 ** 31 - 1, true);
  for (const seq of [1, 2, 46_339, 46_340, 46_341, 92_680, 92_681, 1_000_000]) {
    const n = nimbusNumber(seq);
    assert.ok(n >= 1 && n <= NIMBUS_NUMBER_MAX && (seq - n) % NIMBUS_NUMBER_MAX === 0, `seq ${seq} -> ${n}`);
  }
});

test('on the wire: a real grpc-js server receives event_name "sq" and numbers 1, 2, 3 with client_id, and the echo comes back as results', async () => {
  const received: { clientId: string; req: EventRequest }[] = [];
  const server = new Server();
  server.addService(NimbusService, {
    ProcessEvent(call: ServerDuplexStream<EventRequest, EventResponse>) {
      const clientId = String(call.metadata.get('client_id')[0] ?? '');
      call.on('data', (req: EventRequest) => {
        received.push({ clientId, req });
        call.write({ eventName: req.eventName, number: req.number, result: Math.imul(req.number, req.number), log: { steps: [] }, resultWide: 0 });
      });
      call.on('end', () => call.end());
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  after(() => server.forceShutdown());
  const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
  after(() => client.close());
  const results: [number, number, number | undefined][] = [];
  let done!: () => void;
  const allBack = new Promise<void>((r) => (done = r));
  const ev: SessionEvents = {
    connected() {},
    ackedUpTo() {},
    ackedSeqs() {},
    result(seq, check) {
      results.push([seq, check.value, check.input]);
      if (results.length === 3) done();
    },
    rejected(seq, code) {
      assert.fail(`rejected ${seq} ${code}`);
    },
    callFailed() {},
    ended() {},
    writable() {},
  };
  const session = nimbusDriver('sq').open(client, { id: 'dev-7', index: 7, token: null }, 0, ev);
  session.send([
    { seq: 1, value: 999, payloadBytes: 32 },
    { seq: 2, value: 999, payloadBytes: 32 },
    { seq: 3, value: 999, payloadBytes: 32 },
  ]);
  await allBack;
  session.close();
  assert.deepEqual(received, [
    { clientId: 'dev-7', req: { eventName: 'sq', number: 1 } },
    { clientId: 'dev-7', req: { eventName: 'sq', number: 2 } },
    { clientId: 'dev-7', req: { eventName: 'sq', number: 3 } },
  ]);
  // The seq residue, the result, the echoed input.
  assert.deepEqual(results, [
    [1, 1, 1],
    [2, 4, 2],
    [3, 9, 3],
  ]);
});

test('a wrapped number maps back to the device\'s unsettled seq with that residue; a late copy is a duplicate', () => {
  const m = NIMBUS_NUMBER_MAX;
  // Nothing wrapped yet.
  assert.equal(seqOfResidue(5, 1, 100, m), 5);
  // Seqs m+1.. went out as 1..: with the window at base m - 10, number 3 is seq m + 3.
  assert.equal(seqOfResidue(3, m - 10, m + 20, m), m + 3);
  assert.equal(seqOfResidue(m - 2, m - 10, m + 20, m), m - 2);
  // Number 50 with everything below m + 50 settled and only m + 20 sent: a late copy of seq 50.
  assert.equal(seqOfResidue(50, m + 21, m + 20, m), 0);
  // Number 50 on a device that never sent 50: not a duplicate; the fleet counts it wrong (never sent).
  assert.equal(seqOfResidue(50, 1, 20, m), 50);
  // Far along: the 3rd time round.
  const seq = 2 * m + 777;
  assert.equal(seqOfResidue(nimbusNumber(seq), seq - 5, seq + 5, m), seq);
});
