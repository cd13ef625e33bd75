/**
 * UplinkSession (src/gateway/uplink-session.ts) with a fake host and fake transport, beside a real
 * DeviceSession: flow control (pause at gateway.inflightMax, resume at half), half-close, rejects
 * and the cumulative ack in one Downlink, a failed report ending the stream, outcomes after close,
 * Nimbus numbering (seq 0), rate limiting.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { status } from '@grpc/grpc-js';
import { testConfig } from '../../helpers/config.js';
import { DeviceSession, type SessionHost } from '../../../src/gateway/session.js';
import { UplinkSession, type EventSink, type UplinkHost } from '../../../src/gateway/uplink-session.js';
import { RejectCode } from '../../../src/gateway/validate.js';
import type { DeliveryLink } from '../../../src/gateway/delivery.js';
import type { Downlink, Event, Reject } from '../../../src/gateway/protocol.js';

interface Fake {
  uplink: UplinkSession;
  session: DeviceSession;
  submitted: { sink: EventSink; event: Event }[];
  writes: Downlink[];
  ends: ({ code: status; details: string } | null)[];
  io: { pauses: number; resumes: number };
  /** Whether the host's rate limiter lets the next event through. */
  rate: { allow: boolean };
}

function fake(overrides: Record<string, string> = {}, assignSeqs = false): Fake {
  const config = testConfig(overrides);
  const writes: Downlink[] = [];
  const ends: ({ code: status; details: string } | null)[] = [];
  const sessionHost: SessionHost = {
    config,
    link: {} as DeliveryLink,
    markDirty: () => {},
    closed: () => {},
  };
  const session = new DeviceSession(sessionHost, 'dev-1', {
    write: (msg) => {
      // A copy: the session may reuse its arrays.
      writes.push(structuredClone(msg));
      return true;
    },
    end: (st) => ends.push(st),
  });
  const submitted: { sink: EventSink; event: Event }[] = [];
  const rate = { allow: true };
  const host: UplinkHost = {
    config,
    types: new Set(['echo']),
    admit: () => rate.allow,
    submit: (sink, _deviceId, event) => submitted.push({ sink, event }),
  };
  const io = { pauses: 0, resumes: 0 };
  const uplink = new UplinkSession(host, session, { pause: () => io.pauses++, resume: () => io.resumes++ }, assignSeqs);
  session.uplink = uplink;
  return { uplink, session, submitted, writes, ends, io, rate };
}

const ev = (seq: number, extra: Partial<Event> = {}): Event => ({ deviceId: '', seq, type: 'echo', value: 1, payload: new Uint8Array(0), sentAtUs: 0, ...extra });
const events = (...seqs: number[]) => ({ events: seqs.map((s) => ev(s)) });
const reject = (seq: number, code: string): Reject => ({ seq, code, message: `${code} ${seq}`, lastSeq: 9 });

test('pauses when gateway.inflightMax events are pending, resumes once at most half are', () => {
  const f = fake({ 'gateway-inflight-max': '4' });
  f.uplink.onUplink(events(1, 2, 3));
  assert.deepEqual(f.io, { pauses: 0, resumes: 0 });
  f.uplink.onUplink(events(4));
  assert.equal(f.uplink.pending, 4);
  assert.deepEqual(f.io, { pauses: 1, resumes: 0 });
  // A stream's Uplink is read whole: more than the limit in one message are all submitted.
  f.uplink.onUplink(events(5, 6));
  assert.equal(f.submitted.length, 6);
  assert.deepEqual(f.io, { pauses: 1, resumes: 0 }, 'paused once');
  f.uplink.onDurable(1, null);
  f.uplink.onDurable(2, null);
  f.uplink.onRejected(reject(3, RejectCode.DUPLICATE));
  assert.equal(f.uplink.pending, 3);
  assert.deepEqual(f.io, { pauses: 1, resumes: 0 }, '3 > 4 / 2: still paused');
  f.uplink.onDurable(4, null);
  assert.equal(f.uplink.pending, 2);
  assert.deepEqual(f.io, { pauses: 1, resumes: 1 });
  f.uplink.onDurable(5, null);
  assert.deepEqual(f.io, { pauses: 1, resumes: 1 }, 'resumed once');
  f.uplink.onUplink(events(7, 8));
  assert.deepEqual(f.io, { pauses: 1, resumes: 1 }, '3 pending: no pause');
  f.uplink.onUplink(events(9));
  assert.deepEqual(f.io, { pauses: 2, resumes: 1 });
});

test('half-close ends the stream only when every event has its outcome; the last Downlink carries ack and rejects', () => {
  const f = fake();
  f.uplink.onUplink(events(1, 2, 3));
  f.uplink.onHalfClose();
  assert.deepEqual(f.ends, []);
  f.uplink.onDurable(1, null);
  f.uplink.onRejected(reject(2, RejectCode.OUT_OF_ORDER));
  assert.deepEqual(f.ends, []);
  assert.equal(f.session.closed, false);
  f.uplink.onDurable(3, null);
  assert.deepEqual(f.ends, [null]);
  assert.equal(f.session.closed, true);
  assert.deepEqual(f.writes, [{ ackedSeq: 3, rejects: [reject(2, RejectCode.OUT_OF_ORDER)] }]);
});

test('half-close with nothing pending ends at once (after a final flush of what is settled)', () => {
  const f = fake();
  f.uplink.onUplink(events(1));
  f.uplink.onDurable(1, null);
  f.uplink.onHalfClose();
  assert.deepEqual(f.ends, [null]);
  assert.deepEqual(f.writes, [{ ackedSeq: 1 }]);
});

test('rejects (validation, rate and verdicts) are collected and flushed in one Downlink with the cumulative ack', () => {
  const f = fake();
  f.uplink.onUplink({ events: [ev(1), ev(2), ev(-1), ev(3, { type: 'nope' }), ev(4, { deviceId: 'other' }), ev(5, { value: Number.NaN }), ev(6)] });
  assert.deepEqual(f.submitted.map((s) => s.event.seq), [1, 2, 6]);
  f.rate.allow = false;
  f.uplink.onUplink(events(7));
  assert.equal(f.uplink.pending, 3, 'rejected events are not pending');
  f.uplink.onDurable(2, null);
  f.uplink.onDurable(1, null);
  f.uplink.onRejected(reject(6, RejectCode.DUPLICATE));
  assert.equal(f.writes.length, 0, 'nothing written before the host flushes');
  f.session.flush();
  assert.equal(f.writes.length, 1);
  const w = f.writes[0]!;
  assert.equal(w.ackedSeq, 2);
  assert.equal(w.results, undefined);
  assert.deepEqual(w.rejects!.map((r) => [r.seq, r.code]), [
    [-1, RejectCode.INVALID_SEQ],
    [3, RejectCode.UNKNOWN_TYPE],
    [4, RejectCode.DEVICE_MISMATCH],
    [5, RejectCode.INVALID_VALUE],
    [7, RejectCode.RATE_LIMITED],
    [6, RejectCode.DUPLICATE],
  ]);
  // Nothing new: nothing written; the ack is sent once.
  f.session.flush();
  assert.equal(f.writes.length, 1);
  assert.equal(f.uplink.takeAck(), undefined);
});

test('the ack is cumulative: an older report after a newer one does not lower it', () => {
  const f = fake();
  f.uplink.onUplink(events(1, 2, 3));
  f.uplink.onDurable(3, null);
  f.session.flush();
  f.uplink.onDurable(2, null);
  f.session.flush();
  assert.deepEqual(f.writes, [{ ackedSeq: 3 }]);
  assert.equal(f.uplink.ackedSeq, 3);
});

test('an onDurable error ends the stream UNAVAILABLE, naming the seq and acked_seq', () => {
  const f = fake();
  f.uplink.onUplink(events(1, 2, 3));
  f.uplink.onDurable(1, null);
  f.uplink.onDurable(2, new Error('broker down'));
  assert.equal(f.ends.length, 1);
  assert.equal(f.ends[0]!.code, status.UNAVAILABLE);
  assert.match(f.ends[0]!.details, /event seq 2 was not acknowledged \(broker down\)/);
  assert.match(f.ends[0]!.details, /acked_seq 1\b/);
  assert.equal(f.session.endedWith?.code, status.UNAVAILABLE);
  assert.deepEqual(f.writes, [], 'a stream ended with a status writes no last Downlink');
});

test('an event Redis did not order in time ends the stream UNAVAILABLE (it may still be taken), not a Reject', () => {
  const f = fake();
  f.uplink.onUplink(events(1, 2));
  f.uplink.onDurable(1, null);
  f.uplink.onRejected({ seq: 2, code: 'UNAVAILABLE', message: 'Redis did not order this event in time (gateway.admitTimeoutMs)', lastSeq: 0 });
  assert.equal(f.ends.length, 1);
  assert.equal(f.ends[0]!.code, status.UNAVAILABLE);
  assert.match(f.ends[0]!.details, /did not order this event in time.*acked_seq 1\b/);
  assert.deepEqual(f.writes, [], 'no Reject is written');
});

test('onRejected / onDurable after the stream closed only decrement pending', () => {
  const f = fake({ 'gateway-inflight-max': '2' });
  f.uplink.onUplink(events(1, 2, 3, 4));
  assert.equal(f.io.pauses, 1);
  f.session.peerGone();
  f.uplink.onDurable(1, null);
  f.uplink.onRejected(reject(2, RejectCode.BUSY));
  f.uplink.onDurable(3, new Error('late'));
  f.uplink.onDurable(4, null);
  assert.equal(f.uplink.pending, 0);
  assert.equal(f.uplink.ackedSeq, 0);
  assert.equal(f.uplink.takeRejects(), undefined);
  assert.deepEqual(f.ends, []);
  assert.deepEqual(f.writes, []);
  assert.equal(f.io.resumes, 0);
  // And a closed stream ignores new uplinks.
  f.uplink.onUplink(events(5));
  assert.equal(f.submitted.length, 4);
});

test('assignSeqs (Nimbus) lets seq 0 through validation; without it seq 0 is INVALID_SEQ', () => {
  const n = fake({}, true);
  n.uplink.onUplink(events(0, 0));
  assert.deepEqual(n.submitted.map((s) => s.event.seq), [0, 0]);
  assert.equal(n.uplink.takeRejects(), undefined);
  const c = fake();
  c.uplink.onUplink(events(0));
  assert.deepEqual(c.submitted, []);
  assert.deepEqual(c.uplink.takeRejects()!.map((r) => r.code), [RejectCode.INVALID_SEQ]);
});

test('rejects held for a device that does not read pause the stream past gateway.outboundMax; drain resumes it', () => {
  const writes: Downlink[] = [];
  const f = fake({ 'gateway-outbound-max': '2' });
  // Make the transport full: the next write returns false.
  (f.session as unknown as { io: { write(m: Downlink): boolean } }).io.write = (m) => (writes.push(m), false);
  f.uplink.onUplink(events(-1));
  f.session.flush();
  assert.equal(f.session.blocked, true);
  f.uplink.onUplink({ events: [ev(-2)] });
  assert.equal(f.io.pauses, 0, 'one reject held');
  f.uplink.onUplink({ events: [ev(-3)] });
  assert.equal(f.io.pauses, 1, 'two rejects held while blocked');
  // The transport drained: the rejects can be written, so the stream is read again.
  f.session.onDrain();
  assert.equal(f.io.resumes, 1);
  f.session.flush();
  assert.equal(writes.length, 2);
  assert.deepEqual(writes[1]!.rejects!.map((r) => r.seq), [-2, -3]);
});
