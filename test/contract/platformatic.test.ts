/**
 * Runs the Kafka client contract (kafka-client.test.ts) against @platformatic/kafka from the Node 20
 * suite: that client needs Node >= 22.22 / 24.6 (factory.ts platformaticRuntimeProblem), so the file
 * runs in a child on the Node 24 that scripts/setup-runtimes.sh installs under
 * .stratus/cache/runtimes/node24 (`bash scripts/setup.sh --for test` runs it), with
 * STRATUS_KAFKA_CLIENT=platformatic. The plain run of kafka-client.test.ts in this suite holds the
 * native client to the same file.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

/** The repository: this file runs as dist/test/contract/platformatic.test.js. */
const root = fileURLToPath(new URL('../../../', import.meta.url));
const node24 = join(root, '.stratus/cache/runtimes/node24/bin/node');

test('the Kafka client contract holds for @platformatic/kafka (kafka-client.test.ts on Node 24, STRATUS_KAFKA_CLIENT=platformatic)', { timeout: 600_000 }, async (t) => {
  // Not a skip: without Node 24 the platformatic client is untested, and that must show.
  assert.ok(existsSync(node24), `${node24} is missing: run \`bash scripts/setup.sh --for test\` (it runs scripts/setup-runtimes.sh), then the tests again`);
  const child = spawn(node24, ['--test', 'dist/test/contract/kafka-client.test.js'], {
    cwd: root,
    // Without NODE_TEST_CONTEXT: node:test sets it for the files it runs, and a child `node --test`
    // that inherits it runs nothing ("run() is being called recursively") and exits 0.
    env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_TEST_CONTEXT')), STRATUS_KAFKA_CLIENT: 'platformatic' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const summary = output.split('\n').filter((l) => /^(# |ℹ )(tests|pass|fail|duration_ms)\b/.test(l));
  for (const line of summary) t.diagnostic(line.replace(/^(# |ℹ )/, ''));
  assert.equal(code, 0, `the contract suite failed on @platformatic/kafka (exit ${code}); its output:\n${output}`);
  // A run that tested nothing is no pass: the suite's own count must be there.
  assert.ok(summary.some((l) => /\bpass [1-9]/.test(l)), `no passing test in the child's output:\n${output}`);
});
