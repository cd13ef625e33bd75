/**
 * nimbus.NimbusService/ProcessEvent: the Go system's API, served on the Stratus pipeline so its
 * clients work unchanged. Client id in metadata "client_id".
 *
 * Each EventRequest becomes an `sq` event of device `nimbus/<client_id>` (value = number, payload =
 * number as int32 LE + event_name), with a seq from a per-client counter in Redis, reserved in blocks
 * so seqs keep increasing across reconnects. Results come back through the same presence + buffer
 * routing as Connect, so results produced while a client reconnects wait in its buffer and reach
 * its next stream (the Go system dropped them).
 *
 * Auth on (auth.tokenSecret): the call's token must be for device `nimbus/<client_id>`.
 *
 * int32 overflow: result is number^2 when it fits int32 (|number| <= 46340); otherwise result is 0
 * and the trace's last step says so. result_wide (field 5, added by Stratus) always carries the
 * square as int64, computed exactly with BigInt; it is exact up to 2^53 (|number| <= 94906265) and
 * the nearest double above that, because the codecs carry 64-bit integers as JS numbers.
 */
import { status, type ServerDuplexStream } from '@grpc/grpc-js';
import type { Downlink, EventRequest, EventResponse, Result, TraceStep } from './protocol.js';
import { authenticatedDevice } from './auth.js';
import { DeviceSession } from './session.js';
import type { Gateway } from './gateway.js';

export const CLIENT_ID_KEY = 'client_id';
const SEQ_BLOCK = 1024;
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
    call.emit('error', { code: status.INVALID_ARGUMENT, details: `metadata "${CLIENT_ID_KEY}" must name the client (1..200 bytes)` });
    return;
  }
  const deviceId = `nimbus/${clientId}`;
  const authed = authenticatedDevice(call.metadata);
  if (authed !== null && authed !== deviceId) {
    call.emit('error', { code: status.PERMISSION_DENIED, details: `the token is for device "${authed}"; client "${clientId}" needs a token for device "${deviceId}"` });
    return;
  }
  // The call is paused while the session holds too many unacknowledged events (its pause/resume)
  // or while too many requests wait for seqs (the queue below): read again only when neither does.
  let sessionPaused = false;
  let queuePaused = false;
  let paused = false;
  const applyPause = () => {
    const want = sessionPaused || queuePaused;
    if (want === paused) return;
    paused = want;
    if (want) call.pause();
    else call.resume();
  };
  const session = new DeviceSession(gw, deviceId, {
    write: (msg: Downlink) => {
      let ok = true;
      for (const r of msg.results ?? []) ok = call.write(toEventResponse(r, gw.instanceId));
      for (const rej of msg.rejects ?? []) {
        ok = call.write({ eventName: '', number: 0, result: 0, resultWide: 0, log: { steps: [step(Date.now() * 1000, gw.instanceId, 'ProcessEvent', `rejected: ${rej.message}`, { error: rej.code })] } });
      }
      return ok;
    },
    pause: () => {
      sessionPaused = true;
      applyPause();
    },
    resume: () => {
      sessionPaused = false;
      applyPause();
    },
    end: (st) => (st === null ? call.end() : call.emit('error', st)),
  });
  gw.register(session);

  // Seqs come from a per-client counter in Redis, a block at a time; requests wait for a block.
  let next = 0;
  let top = 0;
  let reserving: Promise<void> | null = null;
  const queue: EventRequest[] = [];
  let halfClosed = false;
  const reserve = async () => {
    const t = await gw.link.commands.hincrby(gw.link.deviceStateKey(deviceId), 's', SEQ_BLOCK);
    top = t;
    next = t - SEQ_BLOCK + 1;
  };
  const pump = () => {
    if (reserving !== null || session.closed) return;
    const events = [];
    while (queue.length > 0 && next <= top && next > 0) {
      const req = queue.shift()!;
      events.push({ deviceId: '', seq: next++, type: 'sq', value: req.number ?? 0, payload: payloadOf(req), sentAtUs: Date.now() * 1000 });
    }
    if (events.length > 0) session.onUplink({ events });
    if (queuePaused && queue.length <= gw.config.gateway.inflightMax / 2) {
      queuePaused = false;
      applyPause();
    }
    if (queue.length === 0 && halfClosed) session.onHalfClose();
    if (queue.length > 0) {
      reserving = reserve().then(
        () => {
          reserving = null;
          pump();
        },
        () => session.end({ code: status.UNAVAILABLE, details: 'Redis did not answer while numbering events; reconnect' }),
      );
    }
  };
  call.on('data', (req: EventRequest) => {
    queue.push(req);
    if (queue.length > gw.config.gateway.inflightMax && !queuePaused) {
      queuePaused = true;
      applyPause();
    }
    pump();
  });
  call.on('end', () => {
    // Requests still waiting for seqs are produced first; the session then ends once they are durable.
    halfClosed = true;
    pump();
  });
  call.on('error', () => session.peerGone());
  call.on('cancelled', () => session.peerGone());
  call.on('drain', () => session.onDrain());
}
