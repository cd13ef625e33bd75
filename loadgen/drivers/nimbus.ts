/**
 * nimbus.NimbusService/ProcessEvent, the Go system's API (github.com/learningfun-dev/NimbusGRPC):
 * a bidi stream per client (metadata client_id), EventRequest {event_name, number} in,
 * EventResponse {event_name, number, result} out. What that server does with a request:
 * - it processes only event_name "sq" (case-insensitive): the request goes to Kafka, its event
 *   consumer computes result = number * number (int32), and the result comes back through Redis
 *   as an EventResponse echoing event_name and number. Any other event_name is logged and dropped:
 *   no response at all (older versions answered it with result 0);
 * - the API has no seq and no ack: a response is the event's result.
 * So the load generator sends event_name "sq" (--type; the default) and carries the seq in
 * `number`, which the response echoes: number = ((seq - 1) mod NIMBUS_NUMBER_MAX) + 1, so that
 * number^2 always fits int32 (46340^2 < 2^31) and the result can be checked exactly on both the Go
 * server and Stratus's nimbus service (which answers result 0 beyond int32). The fleet maps the
 * echoed number back to the device's unsettled seq with that residue (Driver.seqModulo): unique
 * while a device has fewer than NIMBUS_NUMBER_MAX events unsettled.
 */
import type { ClientDuplexStream } from '@grpc/grpc-js';
import { codecs, type EventRequest, type EventResponse } from '../../src/gateway/protocol.js';
import { deviceMetadata, streamSession, type Driver } from './driver.js';

/** Largest number whose square fits int32: the Go server's result field (and ours) is int32. */
export const NIMBUS_NUMBER_MAX = 46_340;

/** The `number` a seq is sent as: 1..NIMBUS_NUMBER_MAX, never 0 (proto3's "not set"). */
export function nimbusNumber(seq: number): number {
  return ((seq - 1) % NIMBUS_NUMBER_MAX) + 1;
}

/** The request for one event: what goes on the wire (exported for the unit test). */
export function nimbusRequest(eventName: string, seq: number): EventRequest {
  return { eventName, number: nimbusNumber(seq) };
}

export function nimbusDriver(eventName: string): Driver {
  return {
    streaming: true,
    headersOnAccept: false,
    acks: false,
    results: true,
    // The server numbers nimbus events itself: a resent request would be a second event.
    resendsUnacked: false,
    seqModulo: NIMBUS_NUMBER_MAX,
    open(client, device, _cursor, ev) {
      const md = deviceMetadata(device, 'client_id');
      const call: ClientDuplexStream<EventRequest, EventResponse> = client.makeBidiStreamRequest('/nimbus.NimbusService/ProcessEvent', codecs.EventRequest.serialize, codecs.EventResponse.decodeRaw, md);
      call.on('data', (r: EventResponse) => {
        const number = r.number ?? 0;
        if (number >= 1 && number <= NIMBUS_NUMBER_MAX) {
          // The seq's residue; the fleet resolves it to the seq. The input is the number itself.
          ev.result(number, { value: r.result ?? 0, input: number });
          return;
        }
        // Stratus's nimbus service answers a rejected request with number 0 and the reason in the
        // trace's last step (metadata.error); the Go server has no way to say no.
        const steps = r.log?.steps ?? [];
        const code = steps.length > 0 ? steps[steps.length - 1]!.metadata?.error : undefined;
        ev.rejected(0, typeof code === 'string' && code !== '' ? code : 'UNKNOWN_RESPONSE');
      });
      return streamSession(call, ev, (events) => {
        let ok = true;
        for (const e of events) ok = call.write(nimbusRequest(eventName, e.seq));
        return ok;
      });
    },
  };
}
