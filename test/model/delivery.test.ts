/**
 * The delivery contract's model test (/work/notes/contract.md): generated schedules of devices,
 * takeovers, restarts, half-open links, concurrent calls, SSE, Nimbus and kill -9 of roles, run
 * against a real engine (two gateways, a processor and a forwarder as processes), checked by the
 * reference model (model.ts). A failure prints the shrunk schedule and a replay line.
 *
 * Bounded for `npm test`: STRATUS_MODEL_RUNS schedules (default 20), no new one after
 * STRATUS_MODEL_BUDGET_S seconds (default 120). STRATUS_MODEL_SEED replays one seed,
 * STRATUS_MODEL_OPS keeps only the listed operations of it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ModelEngine } from '../helpers/model-engine.js';
import { campaign, formatSummary, MODEL_ENV, optionsFromEnv } from './campaign.js';
import { summarize } from './model.js';
import { runSchedule } from './runner.js';
import type { Schedule } from './schedule.js';

test('delivery contract: model vs engine', { timeout: 600_000 }, async (t) => {
  const engine = await ModelEngine.start();
  t.after(() => engine.stop());

  await t.test('plain behaviour (one Connect stream per device, increasing seqs) passes: the harness is sound', async () => {
    const plain: Schedule = {
      seed: 0,
      devices: [{ keepsCursor: true }, { keepsCursor: false }, { keepsCursor: true }],
      nimbusClients: 0,
      ops: [
        { op: 'connect', d: 0, on: 'a' },
        { op: 'connect', d: 1, on: 'b' },
        { op: 'connect', d: 2, on: 'a' },
        { op: 'send', d: 0, n: 3, batch: false, on: 'a' },
        { op: 'send', d: 1, n: 2, batch: true, on: 'b' },
        { op: 'wait', ms: 50 },
        { op: 'send', d: 2, n: 4, batch: false, on: 'a' },
        { op: 'send', d: 0, n: 2, batch: true, on: 'a' },
      ],
    };
    const r = await runSchedule(engine, plain);
    assert.deepEqual(r.violations, [], summarize(r.violations));
    // 11 events and 3 sentinels, every one acked, every one with its one result.
    assert.equal(r.stats.events, 14);
    assert.equal(r.stats.acked, 14);
    assert.equal(r.stats.results, 14);
  });

  await t.test('kill -9 of each role under plain sends (devices keep a cursor) passes', async () => {
    for (const role of ['processor', 'forwarder', 'a'] as const) {
      const s: Schedule = {
        seed: 0,
        devices: [{ keepsCursor: true }, { keepsCursor: true }, { keepsCursor: true }],
        nimbusClients: 0,
        ops: [
          { op: 'connect', d: 0, on: 'a' },
          { op: 'connect', d: 1, on: 'b' },
          { op: 'connect', d: 2, on: 'a' },
          { op: 'send', d: 0, n: 3, batch: false, on: 'a' },
          { op: 'send', d: 1, n: 3, batch: true, on: 'a' },
          { op: 'kill', role },
          { op: 'send', d: 0, n: 2, batch: false, on: 'a' },
          { op: 'send', d: 2, n: 2, batch: false, on: 'a' },
        ],
      };
      const r = await runSchedule(engine, s);
      assert.deepEqual(r.violations, [], `kill ${role}: ${summarize(r.violations)}`);
      // Events cut by the kill are unacked (at most one result each, checked by the model), so
      // results may exceed acks; every event has an outcome and the sentinels got through.
      assert.ok(r.stats.acked >= 3 && r.stats.results >= r.stats.acked, `kill ${role}: ${JSON.stringify(r.stats)}`);
    }
  });

  await t.test('generated plain schedules pass', async () => {
    const s = await campaign(engine, { runs: 5, budgetMs: 30_000, shrinkReruns: 0, opsMax: 20, kills: false, plain: true, replayEntry: 'node dist/test/model/run.js --plain', print: (text) => t.diagnostic(text) });
    assert.ok(s.runs > 0);
    assert.equal(s.violations, 0, `plain seeds ${s.seeds.join(',')}: ${s.failures.map((f) => summarize(f.violations)).join(' | ')}`);
    assert.equal(s.acked, s.events);
    assert.equal(s.results, s.events);
  });

  await t.test('generated schedules keep the contract', async () => {
    const opts = optionsFromEnv(MODEL_ENV, {
      runs: 20,
      budgetMs: Number(MODEL_ENV.STRATUS_MODEL_BUDGET_S ?? 120) * 1000,
      shrinkReruns: 8,
      shrinkTries: 2,
      opsMax: 30,
      kills: true,
      replayEntry: 'node --test dist/test/model/delivery.test.js',
      print: (text) => { for (const line of text.split('\n')) t.diagnostic(line); },
    });
    const s = await campaign(engine, opts);
    t.diagnostic(formatSummary(s));
    assert.ok(s.runs > 0);
    const first = s.failures[0];
    assert.equal(s.violations, 0, first === undefined ? '' : `seed ${first.seed}: ${summarize(first.violations)}\n${first.shrunk?.text ?? ''}\nreplay: ${first.replay}`);
  });
});
