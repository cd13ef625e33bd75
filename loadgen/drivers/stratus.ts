/**
 * The Stratus API: one DeviceGateway.Connect stream per device session. Uplinks carry the events;
 * downlinks carry the cumulative acked_seq, results and rejects. On a new stream the device sends
 * x-last-result-seq (its last result), so results are not delivered twice, and resends the events
 * whose ack it did not see: one refused DUPLICATE was taken and is durable (its ack was lost with the
 * old stream), so it counts as acknowledged (README "Delivery contract").
 */
import type { ClientDuplexStream } from '@grpc/grpc-js';
import { codecs, type Downlink, type Uplink } from '../../src/gateway/protocol.js';
import { deviceMetadata, streamSession, type Driver } from './driver.js';

export function stratusDriver(type: string): Driver {
  // One zero-filled buffer shared by every payload of a size: payload bytes cost nothing per event.
  const payloads = new Map<number, Buffer>();
  const payload = (n: number) => {
    let b = payloads.get(n);
    if (b === undefined) payloads.set(n, (b = Buffer.alloc(n)));
    return b;
  };
  return {
    streaming: true,
    headersOnAccept: true,
    acks: true,
    results: true,
    resendsUnacked: true,
    open(client, device, cursor, ev) {
      const md = deviceMetadata(device, 'x-device-id');
      // Always, 0 included: a device that keeps a cursor says so, and gets exactly what it lacks.
      // Without one the server resumes after what it last wrote to the device, and results written
      // into a connection that was dying are lost to it (README "Delivery contract").
      md.set('x-last-result-seq', String(cursor));
      const call: ClientDuplexStream<Uplink, Downlink> = client.makeBidiStreamRequest('/stratus.v1.DeviceGateway/Connect', codecs.Uplink.serialize, codecs.Downlink.decodeRaw, md);
      call.on('metadata', () => ev.connected());
      call.on('data', (d: Downlink) => {
        // Rejects, then the ack, then results: an ack never covers a seq whose reject is still unread.
        if (d.rejects) {
          for (const r of d.rejects) {
            if (r.code === 'DUPLICATE') ev.ackedSeqs([Number(r.seq)]);
            else ev.rejected(Number(r.seq), r.code);
          }
        }
        if (d.ackedSeq) ev.ackedUpTo(Number(d.ackedSeq));
        if (d.results) for (const r of d.results) ev.result(Number(r.seq), { value: r.value ?? 0 });
      });
      return streamSession(call, ev, (events) =>
        call.write({ events: events.map((e) => ({ deviceId: '', seq: e.seq, type, value: e.value, payload: payload(e.payloadBytes), sentAtUs: 0 })) }),
      );
    },
  };
}
