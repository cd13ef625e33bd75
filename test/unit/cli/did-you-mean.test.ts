/**
 * src/cli/did-you-mean.ts: the distance, the cut-off, and that every real command, subcommand and
 * flag is found again from its likely typos.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { closest, didYouMean, distanceMax, editDistance, orList } from '../../../src/cli/did-you-mean.js';
import { allCommands } from '../../../src/cli/main.js';
import { configFlagOptions } from '../../../src/config.js';

test('editDistance: insertions, deletions, substitutions and neighbour swaps each cost 1', () => {
  const cases: [string, string, number][] = [
    ['', '', 0],
    ['', 'abc', 3],
    ['loadgen', 'loadgen', 0],
    ['lodgen', 'loadgen', 1], // insertion
    ['loaddgen', 'loadgen', 1], // deletion
    ['loadgan', 'loadgen', 1], // substitution
    ['grpc-prot', 'grpc-port', 1], // swap
    ['ab', 'ba', 1],
    ['kitten', 'sitting', 3],
    // Optimal string alignment: a swapped pair is not edited again (true Damerau-Levenshtein says 2).
    ['ca', 'abc', 3],
  ];
  for (const [a, b, d] of cases) {
    assert.equal(editDistance(a, b), d, `${a} -> ${b}`);
    assert.equal(editDistance(b, a), d, `${b} -> ${a}`);
  }
});

test('the cut-off: a third of the typed word, rounded up, from 1 to 3', () => {
  assert.deepEqual(['a', 'abc', 'abcd', 'abcdef', 'abcdefg', 'abcdefghijklmnop'].map(distanceMax), [1, 1, 2, 2, 3, 3]);
});

test('closest: the nearest names only, case ignored, nothing when nothing is near', () => {
  const commands = ['stack', 'run', 'worker', 'loadgen', 'bench', 'token', 'config', 'demo'];
  assert.deepEqual(closest('lodgen', commands), ['loadgen']);
  assert.deepEqual(closest('LOADGEN', commands), ['loadgen']);
  assert.deepEqual(closest('rnu', commands), ['run']);
  assert.deepEqual(closest('frobnicate', commands), []);
  assert.deepEqual(closest('x', commands), []);
  // Ties keep the order given, at most 3.
  assert.deepEqual(closest('ab', ['aa', 'bb', 'ac', 'ad', 'ae']), ['aa', 'bb', 'ac']);
  assert.deepEqual(closest('grpc-prot', Object.keys(configFlagOptions())), ['grpc-port']);
  assert.equal(didYouMean('duraton', ['duration', 'drain'], (n) => `--${n}`), '; did you mean --duration?');
  assert.equal(didYouMean('zzzzzz', ['duration']), '');
  assert.deepEqual([orList([]), orList(['a']), orList(['a', 'b']), orList(['a', 'b', 'c'])], ['', 'a', 'a or b', 'a, b or c']);
});

/** Typos of `word`: each letter dropped, each neighbour pair swapped. */
function typos(word: string): string[] {
  const out = new Set<string>();
  for (let i = 0; i < word.length; i++) out.add(word.slice(0, i) + word.slice(i + 1));
  for (let i = 0; i + 1 < word.length; i++) out.add(word.slice(0, i) + word[i + 1] + word[i] + word.slice(i + 2));
  out.delete(word);
  return [...out];
}

test('every command, subcommand and flag is suggested for each of its one-letter typos', async () => {
  const commands = await allCommands();
  const names = commands.map((c) => c.name);
  const check = (word: string, known: string[]) => {
    for (const typo of typos(word)) {
      if (known.includes(typo)) continue; // a typo that is itself a name (none today) is not one
      assert.ok(closest(typo, known).includes(word), `${typo} does not suggest ${word} (got ${closest(typo, known).join(', ') || 'nothing'})`);
    }
  };
  for (const n of names) if (n.length > 2) check(n, names);
  let checked = 0;
  for (const c of commands) {
    const flags = [...Object.keys(c.flags), ...(c.usesConfig ? Object.keys(configFlagOptions()) : []), 'help', 'version'];
    for (const f of flags) {
      check(f, flags);
      checked++;
    }
    const subs = Object.keys(c.words?.subcommands ?? {});
    for (const s of subs) if (s.length > 2) check(s, subs);
  }
  assert.ok(checked > 300, `only ${checked} flags checked`);
});
