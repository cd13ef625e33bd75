/**
 * /metrics of `stratus run --threads N`: the primary serves one exposition for itself and its
 * gateway shards, worker processes (--shard processes) or worker threads (--shard threads). On a
 * scrape it asks each shard for its registry as JSON, over the cluster IPC channel or the worker
 * thread's MessagePort, and merges them with its own (prom-client's AggregatorRegistry: counters
 * and histograms summed, gauges by each metric's aggregator). A shard that does not answer within
 * 2 s is left out of that scrape, which `stratus_cluster_workers_scraped` shows;
 * `stratus_gateway_shard_devices_connected{shard}` keeps each shard's device streams apart.
 *
 * A thread shares the process with the primary: its `stratus_process_*` series (CPU, RSS, file
 * descriptors: the whole process's) are left out of its reply, or the merge would count the
 * process once per thread.
 */
import type { Worker } from 'node:cluster';
import type { MessagePort } from 'node:worker_threads';
import type { Worker as ThreadWorker } from 'node:worker_threads';
import { AggregatorRegistry } from 'prom-client';
import { metrics, registry } from './metrics.js';

const REQUEST = 'stratus:metrics-request';
const REPLY = 'stratus:metrics-reply';
const REPLY_TIMEOUT_MS = 2000;

type metric = Awaited<ReturnType<typeof registry.getMetricsAsJSON>>[number];

interface Reply { type: typeof REPLY; id: number; json: metric[] }

/** In a worker process: answer the primary's requests with this process's registry. */
export function answerMetricsRequests(): void {
  process.on('message', (m: { type?: string; id?: number }) => {
    if (m?.type !== REQUEST || m.id === undefined) return;
    const id = m.id;
    void registry.getMetricsAsJSON().then((json) => process.send?.({ type: REPLY, id, json } satisfies Reply));
  });
}

/** In a worker thread: answer the primary's requests on `port` (parentPort) with this thread's registry, less the process-wide series. */
export function answerThreadMetricsRequests(port: MessagePort): void {
  port.on('message', (m: { type?: string; id?: number }) => {
    if (m?.type !== REQUEST || m.id === undefined) return;
    const id = m.id;
    void registry.getMetricsAsJSON().then((json) => port.postMessage({ type: REPLY, id, json: json.filter((j) => !j.name.startsWith('stratus_process_')) } satisfies Reply));
  });
}

/** A gateway shard as a scrape sees it: a name for its label, a way to ask, a way to hear. */
interface Shard {
  readonly name: string;
  readonly alive: boolean;
  send(m: unknown): void;
  on(f: (m: Partial<Reply>) => void): void;
  off(f: (m: Partial<Reply>) => void): void;
}

let nextId = 1;

/** In the primary: its own metrics and every answering worker process's, merged, as Prometheus text. */
export function clusterMetricsText(workers: readonly Worker[]): Promise<string> {
  return shardMetricsText(workers.map((w) => ({
    name: `w${w.id}`,
    alive: !w.isDead(),
    send: (m) => w.send(m as object),
    on: (f) => w.on('message', f),
    off: (f) => w.off('message', f),
  })));
}

/** In the primary: its own metrics and every answering gateway thread's (`names[i]` labels `threads[i]`), merged. */
export function threadMetricsText(threads: readonly { name: string; worker: ThreadWorker; alive: boolean }[]): Promise<string> {
  return shardMetricsText(threads.map(({ name, worker, alive }) => ({
    name,
    alive,
    send: (m) => worker.postMessage(m),
    on: (f) => worker.on('message', f),
    off: (f) => worker.off('message', f),
  })));
}

async function shardMetricsText(shards: readonly Shard[]): Promise<string> {
  const live = shards.filter((s) => s.alive);
  const replies = await Promise.all(live.map((s) => ask(s)));
  const answered = replies.filter((r): r is metric[] => r !== null);
  metrics.clusterWorkersScraped.set(answered.length);
  metrics.gatewayShardDevices.reset();
  live.forEach((s, i) => {
    const devices = replies[i]?.find((m) => m.name === 'stratus_devices_connected')?.values[0]?.value;
    if (devices !== undefined) metrics.gatewayShardDevices.set({ shard: s.name }, devices);
  });
  const merged = AggregatorRegistry.aggregate([await registry.getMetricsAsJSON(), ...answered]);
  return merged.metrics();
}

function ask(s: Shard): Promise<metric[] | null> {
  const id = nextId++;
  return new Promise((resolve) => {
    const onMessage = (m: Partial<Reply>) => {
      if (m?.type !== REPLY || m.id !== id) return;
      done(m.json ?? null);
    };
    const timer = setTimeout(() => done(null), REPLY_TIMEOUT_MS);
    const done = (v: metric[] | null) => {
      clearTimeout(timer);
      s.off(onMessage);
      resolve(v);
    };
    s.on(onMessage);
    try {
      s.send({ type: REQUEST, id });
    } catch {
      // The shard is gone (its exit is logged): its series are left out of this scrape.
      done(null);
    }
  });
}
