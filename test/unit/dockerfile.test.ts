/**
 * The Dockerfile cannot be built here (no Docker engine), so it is checked against the code and the
 * machine instead: its stages, that the last one holds production dependencies only and nothing of
 * test/, that the files it copies are every file the commands import (walked from bin/stratus.js
 * over the dist/ that `npx tsc -b` wrote, and run: the help and each command's --help from a copy of
 * exactly that tree), that its runtime libraries are what the built librdkafka addon links
 * against (readelf), and that its HEALTHCHECK, run as written, tells a ready engine from one that is
 * not (a real HTTP surface).
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { loadConfig, PROJECT_ROOT } from '../../src/config.js';
import { HttpSurface, type ReadinessProbe } from '../../src/http/server.js';

const execFileP = promisify(execFile);

interface Instruction {
  op: string;
  args: string;
}
interface Stage {
  name: string | null;
  from: string;
  instructions: Instruction[];
}

/**
 * Dockerfile -> stages of instructions: comment lines dropped (also inside a continued line, as
 * Docker does), `\` continuations joined, `${ARG}` in FROM replaced by the ARG's default.
 */
export function parseDockerfile(text: string): Stage[] {
  const logical: string[] = [];
  let current = '';
  for (const raw of text.split('\n')) {
    if (/^\s*#/.test(raw)) continue;
    const line = raw.replace(/\s+$/, '');
    if (line.endsWith('\\')) {
      current += line.slice(0, -1) + ' ';
      continue;
    }
    current += line;
    if (current.trim() !== '') logical.push(current.trim());
    current = '';
  }
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  for (const l of logical) {
    const m = /^([A-Za-z]+)\s+([\s\S]*)$/.exec(l);
    assert.ok(m, `Dockerfile line ${JSON.stringify(l)} has no instruction`);
    const op = m[1]!.toUpperCase();
    const rest = m[2]!.replace(/\s+/g, ' ').trim();
    if (op === 'ARG' && stages.length === 0) {
      const [k, v = ''] = rest.split('=');
      args.set(k!, v);
      continue;
    }
    if (op === 'FROM') {
      const f = /^(\S+)(?: AS (\S+))?$/i.exec(rest);
      assert.ok(f, `FROM ${rest}`);
      const from = f[1]!.replace(/\$\{(\w+)\}/g, (_, k: string) => args.get(k) ?? assert.fail(`FROM uses \${${k}}, which no ARG before it sets`));
      stages.push({ name: f[2] ?? null, from, instructions: [] });
      continue;
    }
    assert.ok(stages.length > 0, `${op} before the first FROM`);
    stages.at(-1)!.instructions.push({ op, args: rest });
  }
  return stages;
}

const dockerfile = readFileSync(join(PROJECT_ROOT, 'Dockerfile'), 'utf8');
const stages = parseDockerfile(dockerfile);
const final = stages.at(-1)!;
const stage = (name: string): Stage => stages.find((s) => s.name === name) ?? assert.fail(`the Dockerfile has no stage ${name}`);
const runs = (s: Stage) => s.instructions.filter((i) => i.op === 'RUN').map((i) => i.args);
const pkg = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { engines: { node: string }; dependencies: Record<string, string>; devDependencies: Record<string, string> };

/** `COPY [--from=x] [--chown=...] src... dest` */
function copies(s: Stage): { from: string | null; sources: string[]; dest: string }[] {
  return s.instructions.filter((i) => i.op === 'COPY').map((i) => {
    const words = i.args.split(' ');
    const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length) ?? null;
    const paths = words.filter((w) => !w.startsWith('--'));
    return { from, sources: paths.slice(0, -1), dest: paths.at(-1)! };
  });
}

/** Debian packages an `apt-get install` of the stage names. */
function aptPackages(s: Stage): string[] {
  return runs(s).flatMap((r) => [...r.matchAll(/apt-get install ((?:-\S+ )*)([^&|;]+)/g)].flatMap((m) => m[2]!.trim().split(' ').filter((w) => !w.startsWith('-'))));
}

/** An exec-form (JSON array) instruction argument. */
function execForm(args: string, what: string): string[] {
  const v = JSON.parse(args) as unknown;
  assert.ok(Array.isArray(v) && v.every((w) => typeof w === 'string'), `${what} must be in exec form (a JSON array): ${args}`);
  return v as string[];
}

test('three stages: build (toolchain, all dependencies, tsc), prod-deps, runtime on the same Node and Debian', () => {
  assert.deepEqual(stages.map((s) => s.name), ['build', 'prod-deps', 'runtime']);
  const build = stage('build');
  const major = /^node:(\d+)-bookworm$/.exec(build.from)?.[1];
  assert.ok(major, `build is FROM node:<major>-bookworm (the toolchain is in it), not ${build.from}`);
  assert.equal(final.from, `node:${major}-bookworm-slim`, 'the runtime runs the Node major and Debian release the addon was built for');
  assert.ok(Number(major) >= Number(/\d+/.exec(pkg.engines.node)![0]), `node ${major} does not satisfy engines.node ${pkg.engines.node}`);
  assert.equal(stage('prod-deps').from, 'build', 'prod-deps starts from the built node_modules (the native addon is not compiled twice)');

  // The same librdkafka build headers as scripts/setup.sh installs on a machine without Docker.
  const setup = readFileSync(join(PROJECT_ROOT, 'scripts', 'setup.sh'), 'utf8');
  const devPackages = (list: string[]) => [...new Set(list.filter((p) => p.endsWith('-dev')))].sort();
  const apt = (/apt_packages=\(([^)]*)\)/.exec(setup)?.[1] ?? '').split(/\s+/);
  assert.ok(devPackages(apt).length >= 6);
  assert.deepEqual(devPackages(aptPackages(build)), devPackages(apt));
  assert.ok(runs(build).some((r) => /^CKJS_LINKING=dynamic npm ci\b/.test(r) && !r.includes('--omit')), 'build: CKJS_LINKING=dynamic npm ci (every dependency: tsc is one)');

  // tsc -b runs after everything tsconfig.json includes has been copied in.
  const tsconfig = JSON.parse(readFileSync(join(PROJECT_ROOT, 'tsconfig.json'), 'utf8')) as { include: string[] };
  const copied = copies(build).flatMap((c) => c.sources);
  for (const need of [...tsconfig.include, 'bin', 'proto', 'package.json', 'package-lock.json', 'tsconfig.json']) assert.ok(copied.includes(need), `build does not copy ${need}`);
  const tscAt = build.instructions.findIndex((i) => i.op === 'RUN' && i.args === 'npx tsc -b');
  assert.ok(tscAt > 0 && build.instructions.every((i, k) => i.op !== 'COPY' || k < tscAt), 'npx tsc -b must run after every COPY');
});

test('the runtime stage: production dependencies only, no toolchain, nothing of test/', () => {
  const prod = stage('prod-deps');
  assert.ok(runs(prod).some((r) => /\bnpm (?:prune|ci)\b[^&]*--omit=dev\b/.test(r)), 'prod-deps drops the dev dependencies (npm prune --omit=dev)');
  const modules = copies(final).filter((c) => c.dest.replace(/^\.\//, '') === 'node_modules');
  assert.deepEqual(modules.map((c) => [c.from, c.sources]), [['prod-deps', ['/app/node_modules']]], 'node_modules comes from prod-deps, once');
  for (const r of runs(final)) assert.doesNotMatch(r, /\bnpm (?:ci|install|i)\b(?![^&]*--omit=dev)/, `the runtime stage installs dependencies itself: ${r}`);
  assert.deepEqual(aptPackages(final).filter((p) => p.endsWith('-dev') || /^(?:g\+\+|gcc|make|python3|build-essential)$/.test(p)), [], 'no headers or compilers in the runtime stage');

  for (const c of copies(final)) {
    for (const src of c.sources) {
      const path = src.replace(/^\/app\/?/, '').replace(/^\.\/?/, '');
      assert.doesNotMatch(path, /(?:^|\/)test(?:\/|$)/, `the runtime stage copies ${src}`);
      // A whole tree that holds test/ (the context, /app, dist) would bring it in.
      assert.ok(!['', 'dist'].includes(path), `the runtime stage copies all of ${src}, test/ included`);
    }
  }
});

test('the runtime stage has the shared libraries the built librdkafka addon links against', (t) => {
  const need = ['libssl3', 'libzstd1', 'liblz4-1', 'libsasl2-2', 'libcurl4', 'zlib1g'];
  const installed = aptPackages(final);
  for (const p of need) assert.ok(installed.includes(p), `the runtime stage does not install ${p}`);

  // The addon this machine built (CKJS_LINKING=dynamic, Debian bookworm like the image): every
  // DT_NEEDED library of it and of its own librdkafka must come from a package the stage installs
  // or from the base image (libc, libstdc++ and libgcc_s are in every Debian image: apt needs them).
  const addon = join(PROJECT_ROOT, 'node_modules', '@confluentinc', 'kafka-javascript', 'build');
  const tools = ['readelf', 'dpkg'].every((tool) => {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  });
  if (!tools || !existsSync(join(addon, 'deps'))) {
    t.skip('no readelf/dpkg or no dynamically linked addon on this machine: the list above is checked by name only');
    return;
  }
  const own = new Set(readdirSync(join(addon, 'deps')));
  const objects = [join(addon, 'Release', 'confluent-kafka-javascript.node'), ...[...own].filter((f) => /^librdkafka.*\.so\.\d+$/.test(f)).map((f) => join(addon, 'deps', f))];
  const needed = new Set(objects.flatMap((o) => [...execFileSync('readelf', ['-d', o], { encoding: 'utf8' }).matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]!)));
  const base = new Set(['libc6', 'libstdc++6', 'libgcc-s1']);
  const packages = new Set<string>();
  for (const lib of needed) {
    if (own.has(lib)) continue; // shipped inside the package (build/deps, found through RUNPATH $ORIGIN/../deps)
    const owner = execFileSync('dpkg', ['-S', `*/${lib}`], { encoding: 'utf8' }).split('\n').map((l) => /^([^:\s]+)(?::[a-z0-9]+)?: /.exec(l)?.[1]).find((p) => p !== undefined);
    assert.ok(owner, `no Debian package holds ${lib}`);
    packages.add(owner);
  }
  assert.ok(packages.has('libcurl4') && packages.has('libssl3'), `readelf found ${[...needed].join(', ')}`);
  for (const p of packages) assert.ok(base.has(p) || installed.includes(p), `the addon links ${p} (readelf -d), which the runtime stage does not install`);
});

test('the runtime stage runs as a user that is not root, with a HEALTHCHECK and the stratus entry point', () => {
  const users = final.instructions.filter((i) => i.op === 'USER').map((i) => i.args);
  assert.ok(users.length > 0, 'the runtime stage sets no USER (it would run as root)');
  assert.ok(!/^(?:root|0)(?::|$)/.test(users.at(-1)!), `USER ${users.at(-1)}`);
  const workdir = final.instructions.filter((i) => i.op === 'WORKDIR').at(-1)?.args;
  assert.equal(workdir, '/app');
  assert.deepEqual(execForm(final.instructions.find((i) => i.op === 'ENTRYPOINT')!.args, 'ENTRYPOINT'), ['node', 'bin/stratus.js']);
  assert.deepEqual(execForm(final.instructions.find((i) => i.op === 'CMD')!.args, 'CMD'), ['run']);

  const checks = final.instructions.filter((i) => i.op === 'HEALTHCHECK');
  assert.equal(checks.length, 1, 'one HEALTHCHECK');
  const command = healthcheckCommand();
  assert.equal(command[0], 'node', 'the check runs node (the image has no curl or wget)');
  assert.match(command.join(' '), /process\.env\.STRATUS_HTTP_PORT/);
  assert.match(command.join(' '), /\/readyz/);
  const timing = /--timeout=(\d+)s/.exec(checks[0]!.args);
  const fetchTimeout = /AbortSignal\.timeout\((\d+)\)/.exec(command.join(' '));
  assert.ok(timing && fetchTimeout && Number(fetchTimeout[1]) < Number(timing[1]) * 1000, 'the fetch gives up before Docker kills the check, so a hung engine reads as unhealthy with a reason');
});

/** The HEALTHCHECK's exec-form command. */
function healthcheckCommand(): string[] {
  const args = final.instructions.find((i) => i.op === 'HEALTHCHECK')!.args;
  const m = /^(?:--\S+ )*CMD (\[.*\])$/.exec(args);
  assert.ok(m, `HEALTHCHECK ${args}`);
  return execForm(m[1]!, 'HEALTHCHECK CMD');
}

test('the HEALTHCHECK, run as written, passes on a ready engine and fails on one that is not', async (t) => {
  const [cmd, ...args] = healthcheckCommand();
  const probe = async (port: number): Promise<number> => {
    try {
      await execFileP(cmd === 'node' ? process.execPath : cmd!, args, { env: { PATH: process.env.PATH ?? '', STRATUS_HTTP_PORT: String(port) }, timeout: 20_000 });
      return 0;
    } catch (err) {
      return (err as { code?: number }).code ?? -1;
    }
  };
  // The engine's own HTTP surface, with a readiness probe the test sets.
  let problem: string | null = 'starting: roles are still coming up';
  const readiness: ReadinessProbe = { check: async () => problem };
  const surface = await HttpSurface.start(loadConfig({ envFile: null, env: {} }), readiness, { port: 0 });
  t.after(() => surface.close());
  assert.equal(await probe(surface.port), 1, 'starting');
  problem = null;
  assert.equal(await probe(surface.port), 0, 'ready');
  problem = 'Kafka producer stratus-gateway: not connected';
  assert.equal(await probe(surface.port), 1, 'Kafka lost');
  problem = null;
  surface.draining = true;
  assert.equal(await probe(surface.port), 1, 'draining after SIGTERM');
  surface.draining = false;
  assert.equal(await probe(surface.port), 0, 'ready again');
  const port = surface.port;
  await surface.close();
  assert.equal(await probe(port), 1, 'nothing listening');
});

/**
 * What the runtime stage copies: each source (relative to the context, or to /app of the stage it
 * comes from) and where it lands, relative to WORKDIR /app.
 */
function runtimeCopies(): { from: string | null; source: string; dest: string }[] {
  const rel = (p: string) => p.replace(/^\/app(?:\/|$)/, '').replace(/^\.(?:\/|$)/, '');
  return copies(final).flatMap((c) =>
    c.sources.map((src) => {
      const source = rel(src).replace(/\/$/, '');
      const dest = rel(c.dest);
      return { from: c.from, source, dest: dest === '' || dest.endsWith('/') ? join(dest, basename(source)) : dest };
    }),
  );
}
/** Where the runtime stage puts what it copies, relative to WORKDIR /app. */
function shippedPaths(): string[] {
  return runtimeCopies().map((c) => c.dest);
}
const isShipped = (rel: string) => shippedPaths().some((p) => rel === p || rel.startsWith(p + '/'));

/**
 * The import graph of the compiled code from `file`: static imports and re-exports, import(),
 * `new URL('./x.js', import.meta.url)` (worker threads) and require() / require.resolve(), by a
 * regex over the emitted JavaScript. Relative specifiers are followed (but not into `stopAt`); bare
 * ones collected.
 */
function importGraph(entries: string[], stopAt: ReadonlySet<string> = new Set()): { files: Set<string>; packages: Map<string, string> } {
  const files = new Set<string>();
  const packages = new Map<string, string>();
  const todo = [...entries];
  const re = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|\brequire(?:\.resolve)?\s*\(\s*|\bnew URL\(\s*)(['"])([^'"\n]+)\1/g;
  while (todo.length > 0) {
    const file = todo.pop()!;
    if (files.has(file) || stopAt.has(file)) continue;
    files.add(file);
    for (const m of readFileSync(file, 'utf8').matchAll(re)) {
      const spec = m[2]!;
      if (spec.startsWith('.')) {
        if (!spec.endsWith('.js')) continue; // new URL('.', import.meta.url): a folder, not a module
        const target = resolve(dirname(file), spec);
        assert.ok(existsSync(target), `${relative(PROJECT_ROOT, file)} imports ${spec}, which tsc -b did not emit`);
        todo.push(target);
      } else if (!spec.startsWith('node:') && !spec.startsWith('bun:') && !builtinModules.includes(spec)) {
        // bun: modules are Bun's own, loaded only on Bun (archive/sqlite-db.ts: bun:sqlite), like node: ones.
        const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
        if (!packages.has(name)) packages.set(name, relative(PROJECT_ROOT, file));
      }
    }
  }
  return { files, packages };
}

const mainJs = join(PROJECT_ROOT, 'dist', 'src', 'cli', 'main.js');

/** The commands main.js loads, each with the module it imports for it. */
function commandModules(): { name: string; module: string }[] {
  const text = readFileSync(mainJs, 'utf8');
  const out = [...text.matchAll(/\{ name: '([a-z]+)', load: async \(\) => \(await import\('(\.\/[a-z-]+\.js)'\)\)/g)].map((m) => ({ name: m[1]!, module: resolve(dirname(mainJs), m[2]!) }));
  assert.ok(out.length >= 8, `found ${out.length} commands in dist/src/cli/main.js`);
  return out;
}

test('every file the commands import is in the runtime stage; none is under test/ or a dev dependency', () => {
  assert.ok(existsSync(mainJs), 'run `npx tsc -b` first');
  const shipped = shippedPaths();
  // /app of the image is laid out as this checkout (and the build stage's /app): the walk below
  // reads the checkout's dist/ for the image's.
  for (const c of runtimeCopies()) assert.equal(c.dest, c.source, `COPY ${c.source} lands at ${c.dest}`);
  for (const need of ['package.json', 'bin', 'proto', 'node_modules', 'dist/src']) assert.ok(shipped.includes(need), `the runtime stage does not copy ${need} (${shipped.join(', ')})`);
  const bin = join(PROJECT_ROOT, 'bin', 'stratus.js');
  assert.match(readFileSync(bin, 'utf8'), /new URL\('\.\.\/dist\/src\/cli\/main\.js', import\.meta\.url\)/, 'bin/stratus.js runs dist/src/cli/main.js');
  const dev = new Set(Object.keys(pkg.devDependencies));
  const prod = new Set(Object.keys(pkg.dependencies));

  // main.js without the commands it loads, then each command on its own.
  const commands = commandModules();
  const core = importGraph([bin, mainJs], new Set(commands.map((c) => c.module)));
  for (const { name, module } of commands) {
    const graph = importGraph([module]);
    for (const f of graph.files) {
      const rel = relative(PROJECT_ROOT, f);
      assert.doesNotMatch(rel, /^dist\/test\//, `stratus ${name} imports ${rel}`);
      assert.ok(isShipped(rel), `stratus ${name} imports ${rel}, which the runtime stage does not copy`);
    }
    for (const [p, from] of graph.packages) {
      assert.ok(!dev.has(p), `stratus ${name}: ${from} imports ${p}, a devDependency (not in the image)`);
      assert.ok(prod.has(p), `stratus ${name}: ${from} imports ${p}, which package.json does not list in dependencies`);
    }
  }
  for (const f of core.files) assert.ok(f === bin || isShipped(relative(PROJECT_ROOT, f)), relative(PROJECT_ROOT, f));
  // Only what some command needs: a dist/ folder no command reaches is not copied.
  const reached = new Set(commands.flatMap((c) => [...importGraph([c.module]).files].map((f) => relative(PROJECT_ROOT, f).split('/').slice(0, 2).join('/'))));
  for (const p of shipped.filter((s) => s.startsWith('dist/'))) assert.ok(reached.has(p), `the runtime stage copies ${p}, which no command imports`);
});

/**
 * The runtime stage's /app, assembled from this checkout: package.json, bin/, proto/, the dist/
 * folders it copies (copied, so a relative import cannot reach back into the checkout), and a
 * node_modules holding only the production packages of package-lock.json (links to the installed ones).
 */
function assembleRuntimeTree(): string {
  const root = mkdtempSync(join(tmpdir(), 'stratus-image-'));
  for (const p of shippedPaths()) {
    if (p === 'node_modules') continue;
    mkdirSync(dirname(join(root, p)), { recursive: true });
    cpSync(join(PROJECT_ROOT, p), join(root, p), { recursive: true });
  }
  const lock = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
  for (const [key, entry] of Object.entries(lock.packages)) {
    if (!/^node_modules\/(?:@[^/]+\/)?[^/]+$/.test(key) || entry.dev === true) continue;
    const installed = join(PROJECT_ROOT, key);
    if (!existsSync(installed)) continue; // an optional package for another platform
    mkdirSync(dirname(join(root, key)), { recursive: true });
    symlinkSync(installed, join(root, key));
  }
  return root;
}

test('each command, and the help that lists them all, loads from exactly the files the runtime stage holds', async (t) => {
  const root = assembleRuntimeTree();
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const stratus = (...argv: string[]) =>
    execFileP(process.execPath, [join(root, 'bin', 'stratus.js'), ...argv], { cwd: root, env: { PATH: process.env.PATH ?? '', NODE_ENV: 'production' }, timeout: 60_000 });
  assert.match((await stratus('--version')).stdout, /^stratus \d+\.\d+\.\d+ \(node v/);
  // main.ts loads every command's module for the top-level help.
  const help = (await stratus('--help')).stdout;
  for (const { name } of commandModules()) {
    assert.match(help, new RegExp(`^  ${name} `, 'm'), `stratus --help lists ${name}`);
    // --help loads the command's module and everything it imports (the librdkafka addon for run).
    const { stdout } = await stratus(name, '--help');
    assert.match(stdout, new RegExp(`^Usage: stratus ${name}\\b`, 'm'), name);
  }
  // The engine's full configuration resolves in the image's layout (PROJECT_ROOT is /app there).
  assert.match((await stratus('config', 'print')).stdout, /^http\.port\s+8080$/m);
});

test('.dockerignore keeps what the build makes, local state, secrets and history out of the context', () => {
  const ignored = readFileSync(join(PROJECT_ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  for (const entry of ['node_modules', 'dist', '.stratus', '.git', '.env']) assert.ok(ignored.includes(entry), `.dockerignore lacks ${entry}`);
  // Nothing a stage copies from the context is ignored.
  const fromContext = stages.flatMap((s) => copies(s).filter((c) => c.from === null).flatMap((c) => c.sources));
  for (const src of fromContext) assert.ok(!ignored.some((i) => src === i || src.startsWith(i + '/')), `the Dockerfile copies ${src}, which .dockerignore leaves out`);
});
