import assert from 'node:assert/strict';
import { test } from 'node:test';
import { codecs, type Event } from '../../../src/gateway/protocol.js';
import { RejectCode, validateEvent, type ValidationContext } from '../../../src/gateway/validate.js';

const ctx: ValidationContext = { streamDeviceId: 'dev-1', payloadBytesMax: 8, types: new Set(['sq', 'echo']) };
const ev = (o: Partial<Event>): Event => ({ deviceId: '', seq: 6, type: 'sq', value: 1, payload: Buffer.alloc(0), sentAtUs: 0, ...o });

test('every reject code comes from the input that should produce it', () => {
  const cases: [Partial<Event>, Partial<ValidationContext>, RejectCode | null][] = [
    [{}, {}, null],
    [{ deviceId: 'dev-1' }, {}, null],
    [{ deviceId: 'dev-2' }, {}, RejectCode.DEVICE_MISMATCH],
    [{ deviceId: '' }, { streamDeviceId: null }, RejectCode.DEVICE_MISMATCH],
    [{ seq: 0 }, {}, RejectCode.INVALID_SEQ],
    // Order (seq at or below the device's last) is the admission's (DUPLICATE), not validation's.
    [{ seq: 5 }, {}, null],
    [{ seq: 0 }, { assignSeq: true }, null],
    [{ seq: 2 ** 53 }, {}, RejectCode.INVALID_SEQ],
    [{ seq: 1.5e19 }, {}, RejectCode.INVALID_SEQ],
    [{ value: Number.NaN }, {}, RejectCode.INVALID_VALUE],
    [{ value: Number.NEGATIVE_INFINITY }, {}, RejectCode.INVALID_VALUE],
    [{ type: 'cube' }, {}, RejectCode.UNKNOWN_TYPE],
    [{ type: '' }, {}, RejectCode.UNKNOWN_TYPE],
    [{ payload: Buffer.alloc(9) }, {}, RejectCode.PAYLOAD_TOO_LARGE],
    [{ payload: Buffer.alloc(8) }, {}, null],
  ];
  for (const [e, c, want] of cases) {
    const got = validateEvent(ev(e), { ...ctx, ...c });
    assert.equal(got?.code ?? null, want, JSON.stringify({ ...e, payload: e.payload?.length }));
    if (got) assert.ok(got.message.length > 10);
  }
});

test('messages name the field and the fix', () => {
  assert.match(validateEvent(ev({ seq: 0 }), ctx)!.message, /seq must be an integer from 1 to 2\^53-1 \(got 0\)/);
  assert.match(validateEvent(ev({ deviceId: 'x' }), ctx)!.message, /stream's device "dev-1"/);
  assert.match(validateEvent(ev({ payload: Buffer.alloc(20) }), ctx)!.message, /20 bytes; the limit is 8 \(gateway\.payloadBytesMax\)/);
});

test('uint64 seq 2^64-1 on the wire decodes above 2^53-1 and is rejected, never rounded into range', () => {
  // Event { seq: 2^64-1 } encoded by hand: field 2, varint of ten bytes.
  const bytes = Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
  const e = codecs.Event.deserialize(bytes);
  assert.ok(e.seq > Number.MAX_SAFE_INTEGER);
  assert.equal(validateEvent({ ...e, type: 'sq' }, ctx)!.code, RejectCode.INVALID_SEQ);
  assert.throws(() => codecs.Uplink.deserialize(Buffer.from([0x0a, 0xff, 0x01])));
});
