/**
 * nimbus.NimbusService/ProcessEvent, the Go system's API: a bidi stream per client (metadata
 * client_id), EventRequest {event_name, number} in, EventResponse {number, result = number^2} out.
 * The API has no seq and no ack, so the load generator puts the seq in event_name, which the
 * response echoes, and a response is the event's result.
 */
import type { ClientDuplexStream } from '@grpc/grpc-js';
import { codecs, type EventRequest, type EventResponse } from '../../src/gateway/protocol.js';
import { deviceMetadata, streamSession, type Driver } from './driver.js';

export function nimbusDriver(): Driver {
  return {
    streaming: true,
    headersOnAccept: false,
    acks: false,
    results: true,
    // The server numbers nimbus events itself: a resent request would be a second event.
    resendsUnacked: false,
    open(client, device, _cursor, ev) {
      const md = deviceMetadata(device, 'client_id');
      const call: ClientDuplexStream<EventRequest, EventResponse> = client.makeBidiStreamRequest('/nimbus.NimbusService/ProcessEvent', codecs.EventRequest.serialize, codecs.EventResponse.decodeRaw, md);
      call.on('data', (r: EventResponse) => {
        const seq = Number(r.eventName);
        if (Number.isSafeInteger(seq) && seq > 0) ev.result(seq, { value: r.result ?? 0, input: r.number ?? 0 });
        else ev.rejected(0, 'UNKNOWN_RESPONSE');
      });
      return streamSession(call, ev, (events) => {
        let ok = true;
        for (const e of events) ok = call.write({ eventName: String(e.seq), number: e.value });
        return ok;
      });
    },
  };
}
