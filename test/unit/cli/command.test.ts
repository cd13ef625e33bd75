/**
 * src/cli/command.ts: parseCommand finds every problem of a command line before a command runs,
 * as StratusError(USAGE) with one line. Fake commands without config, so neither the environment
 * nor a .env file can change an outcome; main.test.ts runs the real commands as a user does.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { commandHelp, parseCommand, type Command } from '../../../src/cli/command.js';
import { ErrorCode, StratusError } from '../../../src/errors.js';

const run = async () => 0;

const plain: Command = {
  name: 'plain',
  summary: 'options only',
  usage: 'plain [--duration D] [--fast]',
  flags: {
    duration: { type: 'string', doc: 'how long' },
    drain: { type: 'string', doc: 'after' },
    fast: { type: 'boolean', short: 'f', doc: 'quick' },
    lines: { type: 'string', short: 'n', doc: 'how many' },
    threshold: { type: 'string', multiple: true, doc: 'repeatable' },
  },
  usesConfig: false,
  run,
};

const withSubs: Command = {
  name: 'svc',
  summary: 'subcommands',
  usage: 'svc up|down|logs [NAME]',
  flags: {},
  usesConfig: false,
  words: { subcommands: { up: 0, down: 0, logs: 1 } },
  run,
};

const withDefault: Command = { ...withSubs, name: 'cfg', words: { subcommands: { print: 0, options: 0 }, defaultSubcommand: 'print' } };

function usage(cmd: Command, argv: string[], message: string): void {
  assert.throws(
    () => parseCommand(cmd, argv),
    (err: unknown) => err instanceof StratusError && err.code === ErrorCode.USAGE && err.message === message,
    `${argv.join(' ')} -> ${message}`,
  );
}

test('every usage problem of a command line is one line naming the word and the fix', () => {
  usage(plain, ['--duraton', '5s'], 'unknown option --duraton; did you mean --duration?');
  usage(plain, ['--Fast'], 'unknown option --Fast; did you mean --fast?');
  usage(plain, ['--bogus'], 'unknown option --bogus; see `stratus plain --help`');
  usage(plain, ['-x'], 'unknown option -x; see `stratus plain --help`');
  usage(plain, ['--duration'], '--duration needs a value; see `stratus plain --help`');
  usage(plain, ['-n'], '-n needs a value; see `stratus plain --help`');
  usage(plain, ['--duration', '--fast'], '--duration needs a value (got the option "--fast" next; for a value that starts with "-" write --duration=--fast); see `stratus plain --help`');
  usage(plain, ['--fast=yes'], '--fast takes no value (got "yes"); see `stratus plain --help`');
  usage(plain, ['--threshold', 'a', '--threshold'], '--threshold needs a value; see `stratus plain --help`');
  usage(plain, ['extra'], 'unexpected argument "extra" (plain takes options only); see `stratus plain --help`');
  // The first problem on the line is the one reported.
  usage(plain, ['--duraton', '5s', 'extra'], 'unknown option --duraton; did you mean --duration?');
  usage(withSubs, [], 'a subcommand is needed: up, down or logs; see `stratus svc --help`');
  usage(withSubs, ['dwon'], 'unknown subcommand "dwon"; did you mean down?');
  usage(withSubs, ['frobnicate'], 'unknown subcommand "frobnicate": use up, down or logs; see `stratus svc --help`');
  usage(withSubs, ['constructor'], 'unknown subcommand "constructor": use up, down or logs; see `stratus svc --help`');
  usage(withSubs, ['up', 'now'], 'unexpected argument "now" after `svc up`; see `stratus svc --help`');
  usage(withSubs, ['logs', 'a', 'b'], 'unexpected argument "b" after `svc logs a`; see `stratus svc --help`');
  usage(withDefault, ['print', 'x'], 'unexpected argument "x" after `cfg print`; see `stratus cfg --help`');
});

test('a good command line gives its flags and words; help and version win over anything else on it', () => {
  const ok = (cmd: Command, argv: string[]) => {
    const p = parseCommand(cmd, argv);
    assert.equal(p.kind, 'run', argv.join(' '));
    return (p as Extract<typeof p, { kind: 'run' }>).ctx;
  };
  const a = ok(plain, ['--duration', '1h30m', '-f', '--threshold', 'x', '--threshold=y', '-n', '5', '--drain=-1s']);
  assert.deepEqual({ ...a.flags }, { duration: '1h30m', fast: true, threshold: ['x', 'y'], lines: '5', drain: '-1s' });
  assert.deepEqual(a.positionals, []);
  assert.deepEqual(ok(withSubs, ['logs', 'kafka']).positionals, ['logs', 'kafka']);
  assert.deepEqual(ok(withDefault, []).positionals, []);
  assert.deepEqual(ok(plain, ['--']).positionals, []);
  for (const argv of [['--help'], ['-h'], ['--bogus', '--help'], ['extra', '-h']]) assert.deepEqual(parseCommand(plain, argv), { kind: 'help' }, argv.join(' '));
  for (const argv of [['--version'], ['-V'], ['--duraton', '-V']]) assert.deepEqual(parseCommand(plain, argv), { kind: 'version' }, argv.join(' '));
  assert.deepEqual(parseCommand(withSubs, ['--help']), { kind: 'help' });
  assert.match(commandHelp(plain), /-V, --version prints the version/);
});
