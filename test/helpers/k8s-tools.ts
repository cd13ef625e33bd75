/**
 * What the Helm chart's test (test/integration/deploy/helm.test.ts) drives: helm and kubeconform,
 * built from source with `go install` at pinned versions exactly as go-tools.ts builds grpcurl (same
 * cache, same layout), and the Kubernetes JSON schemas kubeconform validates against:
 *
 *   .stratus/cache/go/bin/helm-v3.22.0, kubeconform-v0.8.0     (GOPATH .stratus/cache/go)
 *   .stratus/cache/k8s-schemas/kubernetes-validate-1.37.0/
 *     v1.25.0-local-strict/deployment-apps-v1.json, ..., _definitions.json
 *     v1.37.0-local-strict/...
 *
 * kubeconform downloads its schemas from GitHub by default, which this machine (and CI) cannot
 * reach. The same schemas (generated from Kubernetes's OpenAPI spec, one file per kind and API
 * version, with additionalProperties: false in the `-strict` variants) ship inside the PyPI package
 * kubernetes-validate, for Kubernetes 1.25 to 1.37 in its 1.37.0 release. pip downloads that wheel
 * (version and sha256 pinned, --require-hashes), and the folders of the Kubernetes versions asked for
 * are extracted, each file rewritten once so kubeconform can read it from disk:
 *   - the package's files reference their shared definitions as `/api/_definitions.json#/$defs/...`
 *     under an `$id` of https://kubernetes.io/api/...: kubernetes-validate maps that URL in memory,
 *     kubeconform would fetch it. Dropping `$id` and making the reference relative
 *     (`_definitions.json#/$defs/...`) resolves it to the file beside the schema.
 * kubeconform then reads them through -schema-location with a local path template (what kubernetesSchemas returns).
 *
 * Cold builds on this project's 2-core machine, empty module and build caches: kubeconform 20 s,
 * helm 74 s (then the binary is reused); the schemas (a 22.6 MB wheel, two versions extracted): 1.4 s
 * with pip's HTTP cache warm, about 3 s more without.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PROJECT_ROOT } from '../../src/config.js';
import { goInstall } from './go-tools.js';

const run = promisify(execFile);

/** helm's module version (helm.sh/helm/v3); a change here builds the new one beside the old. */
export const HELM_VERSION = 'v3.22.0';
/** kubeconform's module version. */
export const KUBECONFORM_VERSION = 'v0.8.0';

/** The PyPI package carrying the Kubernetes JSON schemas, and its wheel's sha256. */
export const KUBERNETES_VALIDATE_VERSION = '1.37.0';
const KUBERNETES_VALIDATE_SHA256 = '85136d018a27b50ec7fc049d902bfa5193f5976807e6c0f408e3ab6fe078cad9';

export const SCHEMA_CACHE_DIR = join(PROJECT_ROOT, '.stratus', 'cache', 'k8s-schemas', `kubernetes-validate-${KUBERNETES_VALIDATE_VERSION}`);

/** The real helm at HELM_VERSION, built on first use. */
export function helmPath(): Promise<string> {
  // A large build: 74 s cold on 2 cores, so a slow machine gets room.
  return goInstall('helm.sh/helm/v3/cmd/helm', HELM_VERSION, 'helm', 600_000);
}

/** The real kubeconform at KUBECONFORM_VERSION, built on first use. */
export function kubeconformPath(): Promise<string> {
  return goInstall('github.com/yannh/kubeconform/cmd/kubeconform', KUBECONFORM_VERSION, 'kubeconform');
}

/**
 * Extracts `<version>-local-strict/*.json` of each version from the wheel into `out`, rewritten as
 * the header says. argv: wheel, out, versions...
 */
const EXTRACT_PY = `
import json, os, sys, zipfile
wheel, out, versions = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as z:
    names = z.namelist()
    for v in versions:
        prefix = 'kubernetes_validate/kubernetes-json-schema/%s-local-strict/' % v
        files = [n for n in names if n.startswith(prefix) and n.endswith('.json')]
        if not files:
            sys.exit('no schemas for Kubernetes %s in %s' % (v, os.path.basename(wheel)))
        d = os.path.join(out, v + '-local-strict')
        os.makedirs(d)
        for n in files:
            doc = json.loads(z.read(n))
            doc.pop('$id', None)
            text = json.dumps(doc).replace('"/api/_definitions.json#', '"_definitions.json#')
            with open(os.path.join(d, n[len(prefix):]), 'w') as f:
                f.write(text)
`;

/** `1.37.0` or `v1.37.0` -> `v1.37.0`, kubeconform's NormalizedKubernetesVersion. */
function normalized(version: string): string {
  return version.startsWith('v') ? version : `v${version}`;
}

/**
 * Makes sure the strict schemas of the given Kubernetes versions (e.g. '1.37.0') are in the cache,
 * fetching kubernetes-validate once if any is missing, and returns kubeconform's -schema-location
 * template for them (use it with -strict and -kubernetes-version).
 */
export async function kubernetesSchemas(versions: readonly string[]): Promise<string> {
  const missing = versions.map(normalized).filter((v) => !existsSync(join(SCHEMA_CACHE_DIR, `${v}-local-strict`, '_definitions.json')));
  if (missing.length > 0) {
    await mkdir(SCHEMA_CACHE_DIR, { recursive: true });
    const work = await mkdtemp(join(SCHEMA_CACHE_DIR, '.fetch-'));
    try {
      const requirements = join(work, 'requirements.txt');
      await writeFile(requirements, `kubernetes-validate==${KUBERNETES_VALIDATE_VERSION} --hash=sha256:${KUBERNETES_VALIDATE_SHA256}\n`);
      await run('python3', ['-m', 'pip', 'download', '--no-deps', '--only-binary=:all:', '--require-hashes', '--disable-pip-version-check', '-r', requirements, '-d', work], {
        timeout: 300_000,
        maxBuffer: 16 << 20,
      }).catch((err: NodeJS.ErrnoException & { stderr?: string }) => {
        const hint = err.code === 'ENOENT' ? 'python3 is not on PATH (pip fetches the Kubernetes schemas)' : (err.stderr ?? '').trim();
        throw new Error(`pip download kubernetes-validate==${KUBERNETES_VALIDATE_VERSION} failed: ${hint || err.message}`);
      });
      const wheel = join(work, `kubernetes_validate-${KUBERNETES_VALIDATE_VERSION}-py3-none-any.whl`);
      const out = join(work, 'out');
      await run('python3', ['-c', EXTRACT_PY, wheel, out, ...missing], { timeout: 300_000, maxBuffer: 16 << 20 }).catch((err: Error & { stderr?: string }) => {
        throw new Error(`extracting the Kubernetes schemas from ${wheel} failed: ${(err.stderr ?? '').trim() || err.message}`);
      });
      // One rename per version: a reader sees a complete folder or none.
      for (const v of missing) {
        const target = join(SCHEMA_CACHE_DIR, `${v}-local-strict`);
        await rm(target, { recursive: true, force: true });
        await rename(join(out, `${v}-local-strict`), target);
      }
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }
  return join(SCHEMA_CACHE_DIR, '{{ .NormalizedKubernetesVersion }}-local{{ .StrictSuffix }}', '{{ .ResourceKind }}{{ .KindSuffix }}.json');
}
