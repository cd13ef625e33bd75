/**
 * event.EventService/StreamEvents, the old Node collector's API, which feeds the list queue: one
 * client-streaming call per uplink (B events), acknowledged by the StreamSummary when every event
 * is stored (success and events_received == B). No results come back on this API.
 */
import { Metadata, type ClientWritableStream, type ServiceError } from '@grpc/grpc-js';
import { loadSeedService } from '../../src/gateway/seed-service.js';
import { deviceMetadata, UNARY_API, unarySession, type Driver } from './driver.js';

interface Summary { success: boolean; events_received: number }

export function eventStreamDriver(queue: string | null, type: string, deadlineMs: number): Driver {
  const def = loadSeedService('event/event.proto', 'event.EventService');
  const m = def.StreamEvents!;
  return {
    ...UNARY_API,
    open(client, device, _cursor, ev) {
      return unarySession((events) => {
        const md: Metadata = deviceMetadata(device, 'x-device-id');
        if (queue !== null) md.set('x-queue', queue);
        const seqs = events.map((e) => e.seq);
        const call: ClientWritableStream<unknown> = client.makeClientStreamRequest(
          m.path,
          m.requestSerialize,
          m.responseDeserialize,
          md,
          { deadline: Date.now() + deadlineMs },
          (err: ServiceError | null, res?: unknown) => {
            const s = res as Summary | undefined;
            if (err !== null) ev.callFailed(err, seqs);
            else if (s !== undefined && s.success && s.events_received === events.length) ev.ackedSeqs(seqs);
            else {
              // A partial store: the first events_received events are in the queue, in order.
              const n = s?.events_received ?? 0;
              if (n > 0) ev.ackedSeqs(seqs.slice(0, n));
              for (const seq of seqs.slice(n)) ev.rejected(seq, 'NOT_STORED');
            }
          },
        );
        const now = String(Date.now() * 1000);
        for (const e of events) call.write({ event_id: `${device.id}:${e.seq}`, type, timestamp: now });
        call.end();
      });
    },
  };
}
