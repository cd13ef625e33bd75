/**
 * Events taken in one turn of the event loop -> one Kafka record per partition
 * (stratus.v1.kafka.EventRecord), emitted at the end of the turn (setImmediate: after the turn's
 * socket reads and Redis replies). Fewer, larger records cost the broker and librdkafka per record,
 * not per event; a device's events are all in its partition (partitioner.ts), in the order taken.
 *
 * Limits: a record closes at kafka.recordEventsMax events or kafka.recordBytesMax bytes (the next
 * event starts another); at most one open record per partition, so what waits for the end of the
 * turn is bounded by what the turn took.
 */
import { partitionOf } from '../kafka/partitioner.js';
import { encodeEventRecord, eventRecordBytes, type AcceptedEvent } from '../wire/event-record.js';

interface OpenRecord<P> {
  events: AcceptedEvent[];
  pendings: P[];
  bytes: number;
}

export class RecordBatcher<P> {
  /** Open records by partition; null where none is open. */
  private readonly open: (OpenRecord<P> | null)[];
  /** Partitions with an open record, in the order they opened. */
  private readonly dirty: number[] = [];
  private scheduled = false;

  constructor(
    readonly partitions: number,
    private readonly eventsMax: number,
    private readonly bytesMax: number,
    /** Called with each closed record: its partition, value and the pendings of its events, in order. */
    private readonly emit: (partition: number, value: Buffer, pendings: P[]) => void,
  ) {
    this.open = new Array<OpenRecord<P> | null>(partitions).fill(null);
  }

  add(event: AcceptedEvent, pending: P): void {
    const partition = partitionOf(event.deviceId, this.partitions);
    const size = eventRecordBytes(event);
    let rec: OpenRecord<P> | null = this.open[partition] ?? null;
    if (rec !== null && (rec.events.length >= this.eventsMax || rec.bytes + size > this.bytesMax)) {
      this.open[partition] = null;
      this.emit(partition, encodeEventRecord(rec.events), rec.pendings);
      rec = null;
    }
    if (rec === null) {
      rec = { events: [], pendings: [], bytes: 0 };
      if (!this.dirty.includes(partition)) this.dirty.push(partition);
      this.open[partition] = rec;
    }
    rec.events.push(event);
    rec.pendings.push(pending);
    rec.bytes += size;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Emits every open record now. */
  flush(): void {
    this.scheduled = false;
    const dirty = this.dirty.splice(0);
    for (const partition of dirty) {
      const rec = this.open[partition];
      if (rec === null || rec === undefined) continue;
      this.open[partition] = null;
      this.emit(partition, encodeEventRecord(rec.events), rec.pendings);
    }
  }

  /** Events waiting for the end of the turn. */
  get waiting(): number {
    let n = 0;
    for (const rec of this.open) if (rec !== null) n += rec.events.length;
    return n;
  }
}
