/**
 * /metrics of `stratus run --threads N`: the cluster primary serves one exposition for itself and
 * its gateway worker processes. On a scrape it asks each worker for its registry as JSON over the
 * cluster IPC channel and merges them with its own (prom-client's AggregatorRegistry: counters and
 * histograms summed, gauges by each metric's aggregator). A worker that does not answer within
 * 2 s is left out of that scrape, which `stratus_cluster_workers_scraped` shows.
 */
import type { Worker } from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import { metrics, registry } from './metrics.js';

const REQUEST = 'stratus:metrics-request';
const REPLY = 'stratus:metrics-reply';
const REPLY_TIMEOUT_MS = 2000;

type metric = Awaited<ReturnType<typeof registry.getMetricsAsJSON>>[number];

interface Reply { type: typeof REPLY; id: number; json: metric[] }

/** In a worker: answer the primary's requests with this process's registry. */
export function answerMetricsRequests(): void {
  process.on('message', (m: { type?: string; id?: number }) => {
    if (m?.type !== REQUEST || m.id === undefined) return;
    const id = m.id;
    void registry.getMetricsAsJSON().then((json) => process.send?.({ type: REPLY, id, json } satisfies Reply));
  });
}

let nextId = 1;

/** In the primary: its own metrics and every answering worker's, merged, as Prometheus text. */
export async function clusterMetricsText(workers: readonly Worker[]): Promise<string> {
  const live = workers.filter((w) => !w.isDead());
  const replies = await Promise.all(live.map((w) => ask(w)));
  const answered = replies.filter((r): r is metric[] => r !== null);
  metrics.clusterWorkersScraped.set(answered.length);
  const merged = AggregatorRegistry.aggregate([await registry.getMetricsAsJSON(), ...answered]);
  return merged.metrics();
}

function ask(w: Worker): Promise<metric[] | null> {
  const id = nextId++;
  return new Promise((resolve) => {
    const onMessage = (m: Partial<Reply>) => {
      if (m?.type !== REPLY || m.id !== id) return;
      done(m.json ?? null);
    };
    const timer = setTimeout(() => done(null), REPLY_TIMEOUT_MS);
    const done = (v: metric[] | null) => {
      clearTimeout(timer);
      w.off('message', onMessage);
      resolve(v);
    };
    w.on('message', onMessage);
    try {
      w.send({ type: REQUEST, id });
    } catch {
      // The worker is gone (its exit is logged by cluster): its series are left out of this scrape.
      done(null);
    }
  });
}
