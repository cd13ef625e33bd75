/**
 * The reference model of the delivery contract (/work/notes/contract.md, issue 14).
 *
 * The runner records what the clients saw (Observations); check() says which promises of the
 * contract those observations break. The model knows nothing about how the engine works: only
 * what a device sent, what it was told (ack, reject, call status) and what it received.
 *
 * Events: every event is an `sq` event whose value is a small integer unique in the schedule, so
 * a result's value (value squared, src/processor/registry.ts) names the one send attempt it came
 * from. A (device, seq) can be sent more than once (a restarted device that resends seq 1..3, a
 * resend after UNAVAILABLE), so the unit is the attempt, not the seq.
 *
 * Promises checked, per device:
 *   (i)   every acked attempt has exactly one result at the device (all its Connect and SSE
 *         channels together), with that attempt's value squared;
 *   (ii)  every (device, seq) has at most one result, only for a seq that was sent, and the value
 *         is that of an attempt that was not rejected;
 *   (iii) on each channel results arrive in increasing seq order, and a channel opened with a
 *         cursor gets only results above it;
 *   (iv)  every attempt ends with one outcome: acked, rejected with a code, or its call/stream
 *         failed with a status (unacked: at most one result, by (ii)).
 * Nimbus clients: each request gets one response (a result or a rejected response); a response's
 * number names its request (unique per schedule), result = number squared; no number answered twice.
 */

export type Outcome =
  | { kind: 'acked' }
  | { kind: 'rejected'; code: string; lastSeq?: number }
  /** The call or stream ended with this status before the attempt's ack: unacked. */
  | { kind: 'failed'; status: string }
  /** The device cut the stream itself (restart, half-open, end) before the ack: unacked. */
  | { kind: 'abandoned' }
  /** Ingest's summary counts rejects but does not say which: each of its events is unacked. */
  | { kind: 'partial'; accepted: number; rejected: number };

export interface Attempt {
  id: number;
  device: string;
  seq: number;
  value: number;
  via: 'connect' | 'ingest' | 'batch';
  /** The channel (Connect stream) or call it was sent on. */
  channel: string;
  /** Index of the schedule operation that sent it (-1: the quiesce sentinel). */
  op: number;
  outcome: Outcome | null;
  /** Set when an outcome arrived after another: a conflict is itself a violation. */
  conflict?: string;
  /**
   * Its result may have been written into a stream the device lost or dropped (half-open
   * connection, reboot) and, without a cursor, counts as delivered: (i) is excused.
   */
  excused?: boolean;
}

/** `at`: the harness's logical clock (clients.ts tick()) when it arrived; atMs: the wall clock. */
export interface Delivery { seq: number; value: number; at: number; atMs: number }

/** A gateway instance killed with SIGKILL: at (logical clock) and atMs (wall clock) of the kill. */
export interface Kill { instance: string; at: number; atMs: number }

/**
 * The contract's one allowance after a crash: a client without a cursor may be sent again what the
 * killed instance wrote to it in its last moment (positions of cursorless sessions are recorded
 * every 100 ms, src/gateway/delivery.ts noteSent). A copy delivered earlier than this before the
 * kill and sent again is a violation.
 */
export const CRASH_WINDOW_MS = 1000;

export interface Channel {
  id: string;
  device: string;
  kind: 'connect' | 'sse';
  /** The cursor sent when it opened (x-last-result-seq / Last-Event-ID); null: none. */
  cursor: number | null;
  op: number;
  /** The harness's logical clock when it was opened. */
  openedAt: number;
  results: Delivery[];
}

export interface NimbusRequest { client: string; number: number; channel: string; op: number }
export interface NimbusChannel {
  id: string;
  client: string;
  op: number;
  responses: { number: number; result: number; resultWide: number; at: number; atMs: number }[];
  rejects: string[];
  /** null while open or ended OK; otherwise the status it failed with (or 'CANCELLED' by us). */
  failed: string | null;
  /** Ended with status OK after our half-close, or still open after its last request was answered. */
  settled: boolean;
}

export interface Observations {
  attempts: Attempt[];
  channels: Channel[];
  nimbusRequests: NimbusRequest[];
  nimbusChannels: NimbusChannel[];
  kills: Kill[];
  /** Things the harness itself could not do (a quiesce that timed out): reported, counted as violations. */
  harness: { device: string; detail: string }[];
}

export interface Violation {
  kind:
    | 'acked-no-result'
    | 'acked-wrong-value'
    | 'duplicate-result'
    | 'duplicate-stale-cursor'
    | 'duplicate-after-crash'
    | 'duplicate-no-result'
    | 'result-for-unsent-seq'
    | 'result-of-rejected-event'
    | 'out-of-order'
    | 'below-cursor'
    | 'no-outcome'
    | 'conflicting-outcome'
    | 'nimbus-no-response'
    | 'nimbus-duplicate-response'
    | 'nimbus-wrong-result'
    | 'nimbus-unknown-number'
    | 'harness';
  device: string;
  seq?: number;
  detail: string;
}

/**
 * Kinds reported but not failing a schedule. duplicate-stale-cursor: a result came again on a
 * stream the device opened with a cursor below it (it asked for it: the contract says a client's
 * cursor wins; README "Delivery contract" tells a device reading two streams to drop a result not
 * above its last). duplicate-after-crash: the allowance after a gateway was killed.
 */
export const ADVISORY: ReadonlySet<Violation['kind']> = new Set(['duplicate-stale-cursor', 'duplicate-after-crash']);

/**
 * A copy that came on a channel of `instance` at (at, atMs) and was sent again after that instance
 * was killed: within CRASH_WINDOW_MS of the kill, the contract's allowance for cursorless clients.
 */
function crashAllowance(kills: readonly Kill[], instance: string, at: number, atMs: number, laterOpenedAt: number): boolean {
  return kills.some((k) => k.instance === instance && k.at > at && k.atMs - atMs <= CRASH_WINDOW_MS && laterOpenedAt > k.at);
}

const instanceOf = (channelId: string) => channelId.slice(channelId.lastIndexOf('@') + 1).replace('(proxy)', '');

export function emptyObservations(): Observations {
  return { attempts: [], channels: [], nimbusRequests: [], nimbusChannels: [], kills: [], harness: [] };
}

const isAcked = (a: Attempt) => a.outcome?.kind === 'acked';

export function check(obs: Observations): Violation[] {
  const out: Violation[] = [];
  const devices = new Set([...obs.attempts.map((a) => a.device), ...obs.channels.map((c) => c.device)]);
  for (const device of devices) {
    const attempts = obs.attempts.filter((a) => a.device === device);
    const channels = obs.channels.filter((c) => c.device === device);
    const bySeq = new Map<number, Attempt[]>();
    for (const a of attempts) bySeq.set(a.seq, [...(bySeq.get(a.seq) ?? []), a]);
    const bySquare = new Map(attempts.map((a) => [a.value * a.value, a] as const));
    // Every result the device received, on any channel.
    const received = new Map<number, { value: number; channel: string; at: number; atMs: number; ch: Channel }[]>();
    for (const ch of channels) {
      const name = `${ch.id}(${ch.cursor === null ? 'no cursor' : `cursor ${ch.cursor}`}, op ${ch.op})`;
      for (const r of ch.results) received.set(r.seq, [...(received.get(r.seq) ?? []), { value: r.value, channel: name, at: r.at, atMs: r.atMs, ch }]);
    }

    // (iv) one outcome per attempt
    for (const a of attempts) {
      if (a.outcome === null) out.push({ kind: 'no-outcome', device, seq: a.seq, detail: `attempt value ${a.value} via ${a.via} on ${a.channel} (op ${a.op}) got no ack, no reject and no failed status` });
      if (a.conflict !== undefined) out.push({ kind: 'conflicting-outcome', device, seq: a.seq, detail: `attempt value ${a.value} via ${a.via} (op ${a.op}): ${a.conflict}` });
    }

    // (i) exactly one result per acked attempt, with its value
    for (const a of attempts.filter(isAcked)) {
      const got = received.get(a.seq) ?? [];
      const mine = got.filter((r) => r.value === a.value * a.value);
      if (mine.length === 0) {
        if (got.length > 0) out.push({ kind: 'acked-wrong-value', device, seq: a.seq, detail: `acked attempt value ${a.value} (op ${a.op}, via ${a.via}) expected result ${a.value * a.value}, got ${got.map((r) => r.value).join(',')}` });
        else if (!a.excused) out.push({ kind: 'acked-no-result', device, seq: a.seq, detail: `acked attempt value ${a.value} (op ${a.op}, via ${a.via} on ${a.channel}) got no result` });
      }
    }

    // (i') DUPLICATE says an event with that seq was taken and is durable: its one result comes.
    for (const a of attempts.filter((x) => x.outcome?.kind === 'rejected' && x.outcome.code === 'DUPLICATE')) {
      const got = received.get(a.seq) ?? [];
      const earlier = (bySeq.get(a.seq) ?? []).filter((x) => x !== a && x.outcome?.kind !== 'rejected');
      // Excused like the attempt it names: the seq's earlier attempt had its result eaten (see excused).
      if (got.length === 0 && !a.excused && !earlier.some((x) => x.excused)) out.push({ kind: 'duplicate-no-result', device, seq: a.seq, detail: `attempt value ${a.value} (op ${a.op}) was refused DUPLICATE, yet seq ${a.seq} got no result (earlier attempts: ${earlier.map((x) => `${x.value} ${x.outcome?.kind ?? 'none'}`).join(', ') || 'none'})` });
    }

    // (ii) at most one result per (device, seq), only for a sent seq, never of a rejected attempt
    for (const [seq, got] of received) {
      if (got.length > 1) {
        // Stale cursor: every later copy came on a channel opened with a cursor before the
        // earlier copy arrived (on another channel), so the device could not have told it.
        const byTime = [...got].sort((x, y) => x.at - y.at);
        // Requested: every later copy came on a channel the device opened with a cursor below the
        // seq (the contract: a cursor's client never gets a result at or below it; what is above
        // it is what the client asked for, e.g. a rebooted device that remembers nothing, or one
        // that opened a new stream while its old one was still delivering).
        const stale = new Set(got.map((q) => q.ch)).size === got.length && got.some((q) => q.ch.cursor !== null && q.ch.cursor < seq);
        const first = byTime[0]!;
        const crash = first.ch.cursor === null && byTime.slice(1).every((q) => q.ch.cursor === null && crashAllowance(obs.kills, instanceOf(first.ch.id), first.at, first.atMs, q.ch.openedAt));
        out.push({ kind: stale ? 'duplicate-stale-cursor' : crash ? 'duplicate-after-crash' : 'duplicate-result', device, seq, detail: `${got.length} results: ${got.map((r) => `${r.value} on ${r.channel}`).join('; ')}` });
      }
      const sent = bySeq.get(seq);
      if (sent === undefined) {
        out.push({ kind: 'result-for-unsent-seq', device, seq, detail: `result value ${got[0]!.value} for a seq never sent` });
        continue;
      }
      for (const r of got) {
        const a = bySquare.get(r.value);
        if (a === undefined || a.seq !== seq) out.push({ kind: 'result-for-unsent-seq', device, seq, detail: `result value ${r.value} is no attempt of seq ${seq} (attempts: ${sent.map((x) => x.value).join(',')})` });
        else if (a.outcome?.kind === 'rejected') out.push({ kind: 'result-of-rejected-event', device, seq, detail: `result of attempt value ${a.value} (op ${a.op}) which was rejected ${a.outcome.code}` });
      }
    }

    // (iii) order per channel, and nothing at or below a channel's cursor
    for (const ch of channels) {
      let prev = 0;
      for (const r of ch.results) {
        if (r.seq <= prev) out.push({ kind: 'out-of-order', device, seq: r.seq, detail: `on ${ch.id} (${ch.kind}, op ${ch.op}) seq ${r.seq} after ${prev}` });
        if (ch.cursor !== null && r.seq <= ch.cursor) out.push({ kind: 'below-cursor', device, seq: r.seq, detail: `on ${ch.id} opened with cursor ${ch.cursor}` });
        prev = Math.max(prev, r.seq);
      }
    }
  }

  // Nimbus
  const clients = new Set(obs.nimbusRequests.map((r) => r.client));
  for (const client of clients) {
    const device = `nimbus/${client}`;
    const requests = obs.nimbusRequests.filter((r) => r.client === client);
    const chans = obs.nimbusChannels.filter((c) => c.client === client);
    const numbers = new Set(requests.map((r) => r.number));
    const answered = new Map<number, number>();
    const copies = new Map<number, { ch: NimbusChannel; at: number; atMs: number }[]>();
    for (const ch of chans) {
      for (const r of ch.responses) {
        answered.set(r.number, (answered.get(r.number) ?? 0) + 1);
        copies.set(r.number, [...(copies.get(r.number) ?? []), { ch, at: r.at, atMs: r.atMs }]);
        if (!numbers.has(r.number)) out.push({ kind: 'nimbus-unknown-number', device, detail: `response number ${r.number} on ${ch.id} names no request` });
        if (r.resultWide !== r.number * r.number || r.result !== r.number * r.number) out.push({ kind: 'nimbus-wrong-result', device, detail: `number ${r.number}: result ${r.result}, result_wide ${r.resultWide}` });
      }
    }
    for (const [n, count] of answered) {
      if (count <= 1) continue;
      const byTime = [...copies.get(n)!].sort((x, y) => x.at - y.at);
      const first = byTime[0]!;
      // A Nimbus client has no cursor: the crash allowance applies (its next stream opened after the kill).
      const crash = byTime.slice(1).every((q) => q.ch !== first.ch && crashAllowance(obs.kills, instanceOf(first.ch.id), first.at, first.atMs, q.at));
      out.push({ kind: crash ? 'duplicate-after-crash' : 'nimbus-duplicate-response', device, detail: `number ${n} answered ${count} times (${byTime.map((q) => q.ch.id).join(', ')})` });
    }
    // A channel that did not fail: every request on it is answered (on any of the client's
    // channels) or covered by one of its rejected responses.
    for (const ch of chans.filter((c) => c.failed === null && c.settled)) {
      const unanswered = requests.filter((r) => r.channel === ch.id && !answered.has(r.number));
      if (unanswered.length > ch.rejects.length) {
        out.push({ kind: 'nimbus-no-response', device, detail: `${unanswered.length - ch.rejects.length} request(s) on ${ch.id} (op ${ch.op}) got no response: numbers ${unanswered.map((r) => r.number).join(',')} (rejected responses: ${ch.rejects.length})` });
      }
    }
  }

  for (const h of obs.harness) out.push({ kind: 'harness', device: h.device, detail: h.detail });
  return out;
}

/** One line per kind: `acked-no-result x3 (dev-2 seq 4, ...)`. */
export function summarize(violations: readonly Violation[]): string {
  const kinds = new Map<string, Violation[]>();
  for (const v of violations) kinds.set(v.kind, [...(kinds.get(v.kind) ?? []), v]);
  return [...kinds].map(([k, vs]) => `${k} x${vs.length} (${vs.slice(0, 3).map((v) => `${v.device}${v.seq !== undefined ? ` seq ${v.seq}` : ''}`).join(', ')}${vs.length > 3 ? ', ...' : ''})`).join('; ');
}
