/**
 * nimbus.NimbusService/ProcessEvent: the Go system's API, served on the Stratus pipeline so its
 * clients work unchanged. Client id in metadata "client_id".
 *
 * Each EventRequest becomes an `sq` event of device `nimbus/<client_id>` (value = number, payload =
 * number as int32 LE + event_name). Nimbus clients do not number their requests: the engine does, as
 * it takes each into the device's one order (admission: seq = last seq + 1), so two copies of a
 * client, on any instances, share one sequence. Results come back through the same presence + buffer
 * routing as Connect, so results produced while a client reconnects wait in its buffer and reach
 * its next stream (the Go system dropped them). A client without a cursor (all of them) resumes
 * after what its earlier stream was sent (the takeover handoff, session.ts).
 *
 * Auth on (auth.tokenSecret): the call's token must be for device `nimbus/<client_id>`.
 *
 * int32 overflow: result is number^2 when it fits int32 (|number| <= 46340); otherwise result is 0
 * and the trace's last step says so. result_wide (field 5, added by Stratus) always carries the
 * square as int64, computed exactly with BigInt; it is exact up to 2^53 (|number| <= 94906265) and
 * the nearest double above that, because the codecs carry 64-bit integers as JS numbers.
 */
import type { ServerDuplexStream } from '@grpc/grpc-js';
import { ErrorCode } from '../errors.js';
import type { Downlink, EventRequest, EventResponse, Result, TraceStep } from './protocol.js';
import { authenticatedDevice } from './auth.js';
import { grpcError } from './grpc-status.js';
import { DeviceSession } from './session.js';
import { UplinkSession } from './uplink-session.js';
import type { Gateway } from './gateway.js';

export const CLIENT_ID_KEY = 'client_id';
const SERVICE = 'stratus-gateway';
const INT32_MAX = 2 ** 31 - 1;

function payloadOf(req: EventRequest): Buffer {
  const name = Buffer.from(req.eventName ?? '', 'utf8');
  const buf = Buffer.allocUnsafe(4 + name.length);
  buf.writeInt32LE(req.number ?? 0, 0);
  name.copy(buf, 4);
  return buf;
}

function step(atUs: number, instanceId: string, method: string, message: string, metadata: Record<string, string> = {}): TraceStep {
  return {
    timestamp: { seconds: Math.floor(atUs / 1e6), nanos: Math.round((atUs % 1e6) * 1000) },
    serviceName: SERVICE,
    instanceId,
    methodName: method,
    message,
    metadata,
  };
}

export function toEventResponse(r: Result, instanceId: string): EventResponse {
  const payload = Buffer.from(r.payload);
  const number = payload.length >= 4 ? payload.readInt32LE(0) : 0;
  const eventName = payload.length >= 4 ? payload.toString('utf8', 4) : '';
  const exact = BigInt(number) * BigInt(number);
  const fits = exact <= BigInt(INT32_MAX);
  const steps = [
    step(r.sentAtUs, instanceId, 'ProcessEvent', 'received from client; made durable in Kafka (events topic)', { seq: String(r.seq) }),
    step(r.processedAtUs, instanceId, 'processor.sq', 'squared by the processor; result made durable in Kafka (results topic)'),
    step(Date.now() * 1000, instanceId, 'forwarder+gateway', 'routed through Redis to this gateway and sent to the client'),
  ];
  if (!fits) steps.push(step(Date.now() * 1000, instanceId, 'ProcessEvent', `result ${exact} does not fit int32: result is 0, see result_wide`, { error: 'RESULT_OUT_OF_RANGE' }));
  return { eventName, number, result: fits ? Number(exact) : 0, log: { steps }, resultWide: Number(exact) };
}

export function processEvent(gw: Gateway, call: ServerDuplexStream<EventRequest, EventResponse>): void {
  const v = call.metadata.get(CLIENT_ID_KEY);
  const clientId = v.length === 0 ? '' : String(v[0]);
  if (clientId === '' || Buffer.byteLength(clientId) > 200) {
    call.emit('error', grpcError(ErrorCode.METADATA_INVALID, `metadata "${CLIENT_ID_KEY}" must name the client (1..200 bytes)`));
    return;
  }
  const deviceId = `nimbus/${clientId}`;
  const authed = authenticatedDevice(call.metadata);
  if (authed !== null && authed !== deviceId) {
    call.emit('error', grpcError(ErrorCode.DEVICE_FORBIDDEN, `the token is for device "${authed}"; client "${clientId}" needs a token for device "${deviceId}"`));
    return;
  }
  const session = new DeviceSession(gw, deviceId, {
    write: (msg: Downlink) => {
      let ok = true;
      for (const r of msg.results ?? []) ok = call.write(toEventResponse(r, gw.instanceId));
      for (const rej of msg.rejects ?? []) {
        ok = call.write({ eventName: '', number: 0, result: 0, resultWide: 0, log: { steps: [step(Date.now() * 1000, gw.instanceId, 'ProcessEvent', `rejected: ${rej.message}`, { error: rej.code })] } });
      }
      return ok;
    },
    end: (st) => (st === null ? call.end() : call.emit('error', st)),
  });
  // seq 0: the engine numbers each request as it takes it.
  const uplink = (session.uplink = new UplinkSession(gw, session, { pause: () => call.pause(), resume: () => call.resume() }, true));
  gw.register(session);
  call.on('data', (req: EventRequest) => {
    uplink.onUplink({ events: [{ deviceId: '', seq: 0, type: 'sq', value: req.number ?? 0, payload: payloadOf(req), sentAtUs: Date.now() * 1000 }] });
  });
  call.on('end', () => uplink.onHalfClose());
  call.on('error', () => session.peerGone());
  call.on('cancelled', () => session.peerGone());
  call.on('drain', () => session.onDrain());
}
