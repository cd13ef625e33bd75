/** The README is a newcomer's first contact: its configuration table and commands must match the code. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { optionsMarkdown, PROJECT_ROOT } from '../../src/config.js';

const readme = readFileSync(join(PROJECT_ROOT, 'README.md'), 'utf8');

test('the README configuration table is the one the code generates', () => {
  const m = /<!-- config-table:start[^>]*-->\n([\s\S]*?)\n<!-- config-table:end -->/.exec(readme);
  assert.ok(m, 'README.md lacks the config-table markers');
  assert.equal(m[1], optionsMarkdown(), 'README.md config table is stale: paste the output of `stratus config options` between the markers');
});

test('the README shows the two fresh-machine commands, and CI runs the same test command', () => {
  const quick = /## Quick start on a fresh machine\n\n```sh\n([\s\S]*?)```/.exec(readme);
  assert.ok(quick);
  assert.deepEqual(quick[1]!.trim().split('\n'), ['npm run demo', 'npm test']);
  const ci = readFileSync(join(PROJECT_ROOT, '.ci', 'run'), 'utf8');
  assert.match(ci, /^npm test$/m);
});
