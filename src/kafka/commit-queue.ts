/**
 * The offset-commit policy both batch consumers follow (native/consumer.ts, platformatic/consumer.ts):
 * the caller hands over a batch whose output is durable; for each partition the offset after its
 * last message waits here. One commit is in flight at a time; offsets of batches finished meanwhile
 * merge (a later offset covers an earlier one) and go next. A commit that fails is tried again with
 * the next, up to COMMIT_TRIES times, then given up: the batch is read again after a restart or
 * rebalance, which at-least-once allows. Never blocks the event loop.
 *
 * Bounded by the partitions assigned: one entry per topic-partition.
 */
import { drainTally, errorText, RateLimitedLog, roleLog } from '../log.js';
import type { ConsumedMessage } from './types.js';

const COMMIT_TRIES = 5;
const COMMIT_RETRY_MS = 500;
/** Commits refused by a closed client: at most 5 lines a minute per group. */
const refusedLog = new RateLimitedLog(roleLog('kafka'), { linesMax: 5, intervalMs: 60_000 });

export interface OffsetToCommit {
  topic: string;
  partition: number;
  /** The next offset to read: the last message's offset + 1. */
  offset: number;
}

export interface CommitClient {
  /** Sends one commit; `done` once the broker answered (null: committed). Throws if the client is closed. */
  commit(offsets: OffsetToCommit[], done: (err: unknown) => void): void;
  /** A failure that needs no retry and counts as no failure (librdkafka's ERR__NO_OFFSET: nothing to commit). */
  nothingToCommit?(err: unknown): boolean;
  /** A commit failed (counted and logged by the client, which knows its errors); it is retried unless the consumer is closed. */
  failed(err: unknown, partitions: number): void;
  /** A commit was answered with success. */
  committed?(): void;
  /** The consumer was closed on purpose: failed commits are not retried. */
  isClosed(): boolean;
}

export class CommitQueue {
  /** Offsets waiting to be committed, by topic and partition. */
  private readonly waiting = new Map<string, OffsetToCommit & { tries: number }>();
  /** Invariant: at most one commit in flight. */
  private inFlight = false;
  /** Partition offsets committed successfully so far (each commit counts its partitions). */
  committed = 0;

  constructor(
    private readonly groupId: string,
    private readonly client: CommitClient,
  ) {}

  /**
   * Before a consumer leaves its group: commits what waits (up to timeoutMs: a graceful stop should
   * not re-deliver); returns the partition offsets committed meanwhile and those left uncommitted.
   */
  async settleForClose(timeoutMs: number): Promise<{ committed: number; uncommitted: number }> {
    const before = this.committed;
    await this.settle(timeoutMs);
    return { committed: this.committed - before, uncommitted: this.waiting.size + (this.inFlight ? 1 : 0) };
  }

  add(messages: readonly ConsumedMessage[]): void {
    for (const m of messages) {
      const k = `${m.topic}\0${m.partition}`;
      const had = this.waiting.get(k);
      if (had === undefined || had.offset <= m.offset) this.waiting.set(k, { topic: m.topic, partition: m.partition, offset: m.offset + 1, tries: 0 });
    }
    this.kick();
  }

  /** Resolves once nothing waits to be committed (or timeoutMs passed): before a graceful disconnect. */
  async settle(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ((this.inFlight || this.waiting.size > 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  }

  private kick(): void {
    if (this.inFlight || this.waiting.size === 0) return;
    const batch = [...this.waiting.values()];
    this.waiting.clear();
    this.inFlight = true;
    const done = (err: unknown) => {
      this.inFlight = false;
      if (err === null || err === undefined) {
        this.committed += batch.length;
        if (drainTally.startedAtMs !== null) drainTally.offsetsCommitted += batch.length;
        this.client.committed?.();
        return this.kick();
      }
      if (this.client.nothingToCommit?.(err) === true) return this.kick();
      this.client.failed(err, batch.length);
      if (this.client.isClosed()) return;
      // Back in the queue unless a later batch superseded the offset, or it has had its tries.
      for (const c of batch) {
        const k = `${c.topic}\0${c.partition}`;
        if (!this.waiting.has(k) && c.tries + 1 < COMMIT_TRIES) this.waiting.set(k, { ...c, tries: c.tries + 1 });
      }
      setTimeout(() => this.kick(), COMMIT_RETRY_MS).unref();
    };
    try {
      this.client.commit(batch.map(({ topic, partition, offset }) => ({ topic, partition, offset })), done);
    } catch (err) {
      // Disconnected: nothing can be committed any more; the batch is read again by the next owner
      // (at least once), so nothing is lost, but the re-reading is worth a line.
      this.inFlight = false;
      refusedLog.warn(`${this.groupId}\0commit-closed`, { group: this.groupId, partitions: batch.length, err: errorText(err) }, 'offsets not committed: the consumer is closed; they are read again by the next owner');
    }
  }
}

/** The one line a consumer logs when it has left its group (settleForClose's counts, how long it took). */
export function logConsumerLeft(group: string, left: { committed: number; uncommitted: number }, startedAt: number): void {
  const fields = { group, ...left, ms: Date.now() - startedAt };
  if (left.uncommitted > 0) roleLog('kafka').warn(fields, 'consumer left its group with offsets uncommitted (read again by the next owner)');
  else roleLog('kafka').info(fields, 'consumer committed its offsets and left its group');
}
