/**
 * Go tools the tests drive as users do (grpcurl, ghz), built from source with `go install` at a pinned
 * version into the project's cache, once per version:
 *
 *   .stratus/cache/go/
 *     bin/grpcurl-v1.9.4   the binary (its name carries the version: a new pin builds anew)
 *     pkg/mod/             GOMODCACHE (GOPATH is .stratus/cache/go)
 *     build/               GOCACHE
 *
 * Everything Go needs is under the project, so CI's clean clone builds it the same way; the module
 * proxy is whatever this machine's `go env GOPROXY` says (not overridden). A cold build of grpcurl
 * (empty module and build caches) took 52 s on a 2-core machine.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PROJECT_ROOT } from '../../src/config.js';

const run = promisify(execFile);

/** grpcurl's module version; a change here builds the new one beside the old. */
export const GRPCURL_VERSION = 'v1.9.4';

export const GO_CACHE_DIR = join(PROJECT_ROOT, '.stratus', 'cache', 'go');

/**
 * Builds `module/cmd@version` unless built already, and returns the binary's path (also used for
 * helm and kubeconform: k8s-tools.ts). `timeoutMs`: the build's bound (a cold helm build took 74 s).
 */
export async function goInstall(pkg: string, version: string, binary: string, timeoutMs = 300_000): Promise<string> {
  const bin = join(GO_CACHE_DIR, 'bin');
  const target = join(bin, `${binary}-${version}`);
  if (existsSync(target)) return target;
  await mkdir(bin, { recursive: true });
  // go install writes GOBIN/<binary>; a fresh GOBIN per build, then one rename, so a second test
  // process never sees a half-written binary under the final name.
  const gobin = await mkdtemp(join(bin, `.${binary}-`));
  try {
    await run('go', ['install', '-modcacherw', `${pkg}@${version}`], {
      env: {
        ...process.env,
        GOPATH: GO_CACHE_DIR,
        GOMODCACHE: join(GO_CACHE_DIR, 'pkg', 'mod'),
        GOCACHE: join(GO_CACHE_DIR, 'build'),
        GOBIN: gobin,
      },
      timeout: timeoutMs,
      maxBuffer: 16 << 20,
    }).catch((err: NodeJS.ErrnoException & { stderr?: string }) => {
      const hint = err.code === 'ENOENT' ? `the go command is not on PATH (Go is needed to build ${binary})` : (err.stderr ?? '').trim();
      throw new Error(`go install ${pkg}@${version} failed: ${hint || err.message}`);
    });
    await rename(join(gobin, binary), target);
  } finally {
    await rm(gobin, { recursive: true, force: true });
  }
  return target;
}

/** The real grpcurl at GRPCURL_VERSION, built on first use. */
export function grpcurlPath(): Promise<string> {
  return goInstall('github.com/fullstorydev/grpcurl/cmd/grpcurl', GRPCURL_VERSION, 'grpcurl');
}

/** ghz's module version (the load tester many gRPC users already run). */
export const GHZ_VERSION = 'v0.120.0';

/** The real ghz at GHZ_VERSION, built on first use. */
export function ghzPath(): Promise<string> {
  return goInstall('github.com/bojand/ghz/cmd/ghz', GHZ_VERSION, 'ghz');
}
