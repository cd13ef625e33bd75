/**
 * Runs the Kafka client contract (kafka-client.test.ts) against @platformatic/kafka from the Node 20
 * suite: that client needs Node >= 22.22 / 24.6 (factory.ts platformaticRuntimeProblem), so the file
 * runs in a child on the Node 24 that scripts/setup-runtimes.sh installs under
 * .stratus/cache/runtimes/node24 (`bash scripts/setup.sh --for test` runs it), with
 * STRATUS_KAFKA_CLIENT=platformatic, and on Bun (`bun test` runs node:test files). The plain run of kafka-client.test.ts in this suite holds the
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
const bun = join(root, '.stratus/cache/runtimes/bun/bin/bun');

/** Runs the contract file in a child with STRATUS_KAFKA_CLIENT=platformatic; its exit code and output. */
async function runContract(exec: string, args: string[]): Promise<{ code: number | null; output: string }> {
  const child = spawn(exec, args, {
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
  return { code, output };
}

test('the Kafka client contract holds for @platformatic/kafka on Node 24 (kafka-client.test.ts, STRATUS_KAFKA_CLIENT=platformatic)', { timeout: 600_000 }, async (t) => {
  // Not a skip: without Node 24 the platformatic client is untested, and that must show.
  assert.ok(existsSync(node24), `${node24} is missing: run \`bash scripts/setup.sh --for test\` (it runs scripts/setup-runtimes.sh), then the tests again`);
  const { code, output } = await runContract(node24, ['--test', 'dist/test/contract/kafka-client.test.js']);
  const summary = output.split('\n').filter((l) => /^(# |ℹ )(tests|pass|fail|duration_ms)\b/.test(l));
  for (const line of summary) t.diagnostic(line.replace(/^(# |ℹ )/, ''));
  assert.equal(code, 0, `the contract suite failed on @platformatic/kafka (exit ${code}); its output:\n${output}`);
  // A run that tested nothing is no pass: the suite's own count must be there.
  assert.ok(summary.some((l) => /\bpass [1-9]/.test(l)), `no passing test in the child's output:\n${output}`);
});

test('the Kafka client contract holds for @platformatic/kafka on Bun (the engine\'s client there; `bun test` runs the same node:test file)', { timeout: 600_000 }, async (t) => {
  assert.ok(existsSync(bun), `${bun} is missing: run \`bash scripts/setup.sh --for test\` (it runs scripts/setup-runtimes.sh), then the tests again`);
  const { code, output } = await runContract(bun, ['test', 'dist/test/contract/kafka-client.test.js']);
  const pass = /^\s*(\d+) pass$/m.exec(output);
  const fail = /^\s*(\d+) fail$/m.exec(output);
  t.diagnostic(`bun test: ${pass?.[1] ?? '?'} pass, ${fail?.[1] ?? '?'} fail`);
  assert.equal(code, 0, `the contract suite failed on Bun (exit ${code}); its output:\n${output}`);
  assert.ok(pass !== null && Number(pass[1]) >= 1 && fail !== null && fail[1] === '0', `no passing test in bun's output:\n${output}`);
});
