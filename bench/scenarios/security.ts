/**
 * Security's price: the same closed-loop fleet as the durable-ack scenario against three gateways,
 * (a) plaintext without auth, (b) TLS with device tokens (auth.tokenSecret: every stream's Bearer
 * token checked by the server interceptor), (c) mutual TLS with device tokens. Acks/s and the
 * gateway's CPU per ack, as ratios to (a). Certificates are made by openssl for the run.
 */
import { randomBytes } from 'node:crypto';
import type { LoadgenSummary } from '../../loadgen/summary.js';
import { loadgen, perSInWindow, startEngine, withCpu, type Fleet } from '../engine.js';
import { ratio, type Scenario, type Side } from '../scenario.js';
import { makeCerts } from '../tls-certs.js';

export const security: Scenario = {
  id: 'security',
  title: 'TLS and device tokens vs plaintext',
  async run(ctx) {
    const fleet: Fleet = ctx.quick
      ? { devices: 100, totalRate: 4000, durationS: 2, warmupS: 1, drainS: 5, workers: 1, extra: ['--ack-only', '--closed-loop'] }
      : { devices: 1000, totalRate: 50000, durationS: 15, warmupS: 5, workers: 2, extra: ['--ack-only', '--closed-loop'] };
    const certs = makeCerts();
    const secret = randomBytes(32).toString('hex');
    const variants: { name: string; env: Record<string, string>; extra: string[] }[] = [
      { name: 'plaintext, no auth', env: {}, extra: [] },
      { name: 'TLS + device tokens', env: { STRATUS_TLS_CERT: certs.serverCert, STRATUS_TLS_KEY: certs.serverKey, STRATUS_AUTH_TOKEN_SECRET: secret }, extra: ['--tls-ca', certs.caCert, '--token-secret', secret] },
      {
        name: 'mutual TLS + device tokens',
        env: { STRATUS_TLS_CERT: certs.serverCert, STRATUS_TLS_KEY: certs.serverKey, STRATUS_TLS_CA: certs.caCert, STRATUS_AUTH_TOKEN_SECRET: secret },
        extra: ['--tls-ca', certs.caCert, '--tls-cert', certs.clientCert, '--tls-key', certs.clientKey, '--token-secret', secret],
      },
    ];
    const sides: Side[] = [];
    const summaries: LoadgenSummary[] = [];
    try {
      for (const v of variants) {
        const engine = await startEngine({ roles: 'gateway', env: v.env });
        try {
          const { result: s, cpuS } = await withCpu([engine.service.child.pid!], () => loadgen(ctx, engine.target, { ...fleet, extra: [...fleet.extra!, ...v.extra] }));
          summaries.push(s);
          const figures: Record<string, number> = {
            ackedPerS: perSInWindow(s, 'ackedPerS'),
            ackP50Ms: s.latency.ack?.p50Ms ?? NaN,
            ackP99Ms: s.latency.ack?.p99Ms ?? NaN,
            gatewayCpuUsPerAck: Math.round((cpuS[0]! / Math.max(s.counts.acked, 1)) * 1e7) / 10,
            loadgenCores: Math.round(s.footprint.cpuShare * 100) / 100,
            errors: Object.values(s.counts.errors).reduce((a, b) => a + b, 0),
          };
          for (const [k, x] of Object.entries(figures)) if (!Number.isFinite(x)) delete figures[k];
          sides.push({ name: v.name, figures });
        } finally {
          await engine.stop();
        }
      }
    } finally {
      certs.remove();
    }
    const [plain, tls, mtls] = sides as [Side, Side, Side];
    const rel = (s: Side, k: string) => s.figures[k]! / plain.figures[k]!;
    return {
      id: this.id,
      title: this.title,
      params: { loop: 'closed (one uplink outstanding per device)', devices: fleet.devices, schedulePerS: fleet.totalRate, durationS: fleet.durationS, warmupS: fleet.warmupS, roles: 'gateway' },
      sides,
      plots: [{ id: 'ack', title: 'Ack latency by percentile: plaintext, TLS + tokens, mutual TLS + tokens', series: sides.map((s, i) => ({ name: s.name, distribution: summaries[i]!.latency.ack?.distribution ?? [] })) }],
      ratios: [
        ratio('acked/s: TLS + tokens / plaintext', rel(tls, 'ackedPerS')),
        ratio('acked/s: mutual TLS + tokens / plaintext', rel(mtls, 'ackedPerS')),
        ratio('gateway CPU per ack: TLS + tokens / plaintext', rel(tls, 'gatewayCpuUsPerAck')),
        ratio('gateway CPU per ack: mutual TLS + tokens / plaintext', rel(mtls, 'gatewayCpuUsPerAck')),
      ],
      reading: [
        `Each side acknowledged durably (Kafka) as fast as ${fleet.devices.toLocaleString('en-US')} devices with one uplink outstanding each allowed.`,
        `TLS with token checks ran at ${(rel(tls, 'ackedPerS') * 100).toFixed(0)}% of plaintext's acks/s and mutual TLS at ${(rel(mtls, 'ackedPerS') * 100).toFixed(0)}%, using ${rel(tls, 'gatewayCpuUsPerAck').toFixed(2)}× and ${rel(mtls, 'gatewayCpuUsPerAck').toFixed(2)}× the gateway CPU per ack.`,
        'A token is checked once per stream (HMAC-SHA256, in the interceptor before the handler), not per event, so its cost shrinks with stream length; the TLS record layer is paid on every byte, by the server and by the load generator on the same cores.',
      ].join(' '),
    };
  },
};
