/** The README is a newcomer's first contact: its configuration table and commands must match the code. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { configDocsMarkdown } from '../../src/config-docs.js';
import { PROJECT_ROOT } from '../../src/config.js';

const readme = readFileSync(join(PROJECT_ROOT, 'README.md'), 'utf8');

test('docs/configuration.md is the one the code generates, and README links it', () => {
  const docs = readFileSync(join(PROJECT_ROOT, 'docs', 'configuration.md'), 'utf8');
  assert.equal(docs, configDocsMarkdown(), 'docs/configuration.md is stale: run `npx tsc -b && node scripts/config-docs.js`');
  assert.match(readme, /\(docs\/configuration\.md\)/);
});

test('the README shows the two fresh-machine commands, and CI runs the same test command', () => {
  const quick = /## Quick start on a fresh machine\n\n```sh\n([\s\S]*?)```/.exec(readme);
  assert.ok(quick);
  assert.deepEqual(quick[1]!.trim().split('\n'), ['npm run demo', 'npm test']);
  const ci = readFileSync(join(PROJECT_ROOT, '.ci', 'run'), 'utf8');
  assert.match(ci, /^npm test$/m);
});
