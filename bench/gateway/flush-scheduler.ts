/**
 * src/gateway/flush-scheduler.ts FlushScheduler (batching of writes to devices): a turn of the
 * event loop brings many delivery reports (librdkafka hands them over in batches); each marks its
 * session dirty, and each dirty session is flushed once at the end of the turn, so a device gets
 * one Downlink with its cumulative ack per turn, not one per report.
 *
 * One turn here: 1,024 delivery reports for 64 devices (16 each, interleaved as a batch across
 * partitions comes), through real DeviceSessions and UplinkSessions (uplink-session.ts onDurable,
 * session.ts flush) whose stream
 * serializes each Downlink with the service's codec, as grpc-js does on write. Compared with an
 * array pushed per report and deduplicated at the end of the turn (same writes, other structure),
 * and with flushing on every report (no batching: 1,024 Downlinks). Every task awaits the end of
 * the turn (setImmediate), so that cost is in all of them.
 *
 *   node dist/bench/gateway/flush-scheduler.js [--quick]
 */
import { loadConfig } from '../../src/config.js';
import { FlushScheduler } from '../../src/gateway/flush-scheduler.js';
import { codecs, type Downlink } from '../../src/gateway/protocol.js';
import { DeviceSession, type SessionHost, type SessionIO } from '../../src/gateway/session.js';
import { UplinkSession, type UplinkHost } from '../../src/gateway/uplink-session.js';
import { microBench } from '../micro-bench.js';

const DEVICES = 64;
const REPORTS_PER_DEVICE = 16;
const config = loadConfig({ envFile: null, env: {} });

interface Turn {
  /** One event-loop turn of delivery reports; resolves after the turn's flushes. */
  run(): Promise<void>;
  writes: number;
}

/** DEVICES real sessions whose host marks them dirty with `markDirty`; `endOfTurn` runs in the turn's setImmediate. */
function turn(markDirty: (s: DeviceSession) => void, endOfTurn: () => void = () => {}): Turn {
  const t: Turn = { writes: 0, run: async () => {} };
  const host = { config, types: new Set(['sq']), link: null as never, admit: () => true, submit: () => {}, markDirty, closed: () => {} } satisfies SessionHost & UplinkHost;
  const io: SessionIO = {
    write: (msg: Downlink) => {
      codecs.Downlink.serialize(msg);
      t.writes++;
      return true;
    },
    end: () => {},
  };
  const sessions = Array.from({ length: DEVICES }, (_, i) => {
    const s = new DeviceSession(host, `device-${i}`, io);
    s.uplink = new UplinkSession(host, s, { pause: () => {}, resume: () => {} });
    return s;
  });
  let seq = 0;
  t.run = async () => {
    for (const s of sessions) s.uplink!.pending += REPORTS_PER_DEVICE;
    for (let r = 0; r < REPORTS_PER_DEVICE; r++) {
      seq++;
      for (const s of sessions) s.uplink!.onDurable(seq, null);
    }
    await new Promise<void>((resolve) =>
      setImmediate(() => {
        endOfTurn();
        resolve();
      }),
    );
  };
  return t;
}

const scheduler = new FlushScheduler();
const batched = turn((s) => scheduler.mark(s));
const pushed: DeviceSession[] = [];
const arrayDedupe = turn(
  (s) => pushed.push(s),
  () => {
    for (const s of new Set(pushed)) s.flush();
    pushed.length = 0;
  },
);
const perReport = turn((s) => s.flush());

// The three write what the comparison says: one Downlink per device per turn, or one per report.
for (const [t, expected] of [[batched, DEVICES], [arrayDedupe, DEVICES], [perReport, DEVICES * REPORTS_PER_DEVICE]] as const) {
  t.writes = 0;
  await t.run();
  if (t.writes !== expected) throw new Error(`a turn wrote ${t.writes} Downlinks, expected ${expected}`);
}

await microBench(`gateway/flush-scheduler: a turn of ${DEVICES * REPORTS_PER_DEVICE} delivery reports for ${DEVICES} devices`, [
  { name: `FlushScheduler (${DEVICES} Downlinks per turn)`, fn: () => batched.run() },
  { name: 'array push per report, Set dedupe at turn end', fn: () => arrayDedupe.run() },
  { name: `flush on every report (${DEVICES * REPORTS_PER_DEVICE} Downlinks)`, fn: () => perReport.run() },
]);
