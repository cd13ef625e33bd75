#!/usr/bin/env bash
# Makes a fresh Debian machine ready to run Stratus (and, with --for test, to test it). Called by
# `npm run demo`, `npm test` and `npm run setup`. Idempotent: every step checks first and is skipped
# when already done, so a second run takes seconds.
#
#   bash scripts/setup.sh               what `stratus run`, `stratus demo` and `stratus loadgen` need
#   bash scripts/setup.sh --for test    also what only the tests need: chromium (the browser test of
#                                       loadgen's report.html), prometheus and promtool (the metrics,
#                                       rules and dashboard tests) and the bench's extra runtimes (the
#                                       bench --quick test runs the runtimes scenario)
#   bash scripts/setup.sh --runtimes    also the bench's extra runtimes (see step 5)
#   bash scripts/setup.sh --for bun     what `stratus run` needs, plus Bun (from the npm registry, into
#                                       .stratus/cache/runtimes/bun) to run the engine on: only the Bun
#                                       binary (the engine's Kafka client on Bun, @platformatic/kafka,
#                                       is plain JavaScript installed by npm ci like every package)
#
#   1. Debian packages: redis-server, redis-tools, kcat, postgresql (the archive's store, which
#      `stratus stack up --postgres` runs on its own port and data dir; Debian's own cluster on 5432
#      is not used), Java 17+, Maven, a C++ toolchain and the
#      headers librdkafka is built against (@confluentinc/kafka-javascript has no prebuilt binary
#      here); with --for test also chromium (driven through playwright-core, which downloads no
#      browser of its own) and prometheus (Debian's package ships promtool beside it).
#   2. The Kafka jars, resolved by mvn from src/stack/kafka-pom.xml into .stratus/cache/kafka/libs,
#      in the background while step 3 runs (mvn mostly waits on the network, step 3 on the CPU).
#   3. npm ci (--ignore-scripts), then its install scripts (npm rebuild) with CKJS_LINKING=dynamic
#      in the background, when package-lock.json changed since the last install: librdkafka is
#      built from source. Its own make runs with -j already; node-gyp's JOBS must stay unset: with
#      it the addon's generated Makefile races its librdkafka configure step ("No rule to make
#      target '../deps/librdkafka/config.h'").
#   4. The TypeScript build (tsc -b, incremental), beside step 3's native build.
#   5. With --for bun: Bun alone (scripts/setup-runtimes.sh --bun-only, seconds).
#      Only with --runtimes or --for test: Node 24 LTS and Bun from the npm registry, and the
#      librdkafka addon rebuilt for Node 24 (scripts/setup-runtimes.sh, about two and a half minutes
#      once). Nothing else uses them: the bench's runtimes scenario runs setup-runtimes.sh itself
#      when they are missing.
#
# Each step's output goes to .stratus/setup.log; on failure the script prints the log's tail and one
# line saying what is wrong and what to do.
set -euo pipefail

usage() { echo "usage: bash scripts/setup.sh [--for run|test|bun] [--runtimes]" >&2; exit 2; }
for_test=0
runtimes=0
bun_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --for) [ $# -ge 2 ] || usage
      case "$2" in run) ;; test) for_test=1; runtimes=1 ;; bun) bun_only=1 ;; *) usage ;; esac
      shift 2 ;;
    --for=run) shift ;;
    --for=test) for_test=1; runtimes=1; shift ;;
    --for=bun) bun_only=1; shift ;;
    --runtimes) runtimes=1; shift ;;
    -h|--help) sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) usage ;;
  esac
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
mkdir -p .stratus/cache
log="$root/.stratus/setup.log"
: >"$log"
t_all=$(date +%s.%N)

say() { printf 'setup: %s\n' "$*" >&2; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f s", b - a }'; }
fail() {
  echo >&2
  tail -n 15 "$log" | sed 's/^/  | /' >&2
  say "FAILED: $*"
  exit 1
}
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else fail "need root to run '$*': run setup as root or install sudo"; fi
}

# --- 1. Debian packages --------------------------------------------------------------------------
# postgresql: the metapackage of Debian's current major (15 on Debian 12); `stack up --postgres`
# finds the newest /usr/lib/postgresql/<major>/bin and runs it as the postgres user it creates.
apt_packages=(redis-server redis-tools kcat postgresql zlib1g-dev libssl-dev libzstd-dev liblz4-dev libsasl2-dev
  libcurl4-openssl-dev)
# chromium and what it pulls in is the largest download here, and only the report.html browser test uses it.
# prometheus ships promtool too: the metrics lint, the alert rules check and the test that scrapes a
# loaded engine with a real Prometheus use them.
if [ "$for_test" = 1 ]; then apt_packages+=(chromium prometheus); fi
java_ok() { command -v java >/dev/null 2>&1 && java -version 2>&1 | grep -Eq 'version "(1[7-9]|[2-9][0-9])'; }
# Tools may come from elsewhere than Debian (a JDK in /opt, Maven from a tarball): ask for the command.
java_ok || apt_packages+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || apt_packages+=(maven)
command -v g++ >/dev/null 2>&1 || apt_packages+=(g++)
command -v make >/dev/null 2>&1 || apt_packages+=(make)
command -v python3 >/dev/null 2>&1 || apt_packages+=(python3)

missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null 2>&1 || fail "missing ${missing[*]} and there is no apt-get: install them with your package manager"
  t=$(date +%s.%N)
  say "installing Debian packages: ${missing[*]}"
  # An apt index older than a day (or none) may not know current package versions.
  if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
    as_root apt-get update -qq >>"$log" 2>&1 || fail "apt-get update failed: is the Debian package mirror reachable?"
  fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$log" 2>&1 \
    || fail "apt-get install ${missing[*]} failed: is the Debian package mirror reachable? (see $log)"
  say "Debian packages installed in $(elapsed "$t")"
fi
java_ok || fail "Java 17+ is still not the default java: put a JDK 17+ first on PATH"

# A step run in the background: its output in its own log while it runs (appended to setup.log by
# bg_join), the time it took on that log's last line; bg_start leaves its pid in $bg_pid.
bg_start() { # log label command...
  local out=$1 label=$2
  shift 2
  (
    t=$(date +%s.%N)
    rc=0
    "$@" >"$out" 2>&1 || rc=$?
    echo "$label took $(elapsed "$t")" >>"$out"
    exit "$rc"
  ) &
  bg_pid=$!
}
# Waits for a bg_start step: its time in $took, its log moved into setup.log; fails as it did.
bg_join() { # pid log label
  local rc=0
  wait "$1" || rc=$?
  took=$(tail -n 1 "$2" | sed -n "s/.*$3 took //p")
  cat "$2" >>"$log" && rm -f "$2"
  return "$rc"
}

# --- 2. Kafka jars, in the background -------------------------------------------------------------
libs=.stratus/cache/kafka/libs
pom=src/stack/kafka-pom.xml
pom_hash=$(sha256sum "$pom" | cut -c1-16)
mvn_pid=
mvn_log="$root/.stratus/setup-mvn.log"
if [ "$(cat "$libs/.pom-hash" 2>/dev/null)" != "$pom_hash" ]; then
  say "fetching the Kafka jars with mvn ($(grep -o '<kafka.version>[^<]*' "$pom" | cut -d'>' -f2)), in the background"
  rm -rf "$libs.tmp"
  bg_start "$mvn_log" mvn mvn -B -q -f "$pom" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$root/$libs.tmp"
  mvn_pid=$bg_pid
fi
# A failure below must not leave mvn running on its own.
# (mvn runs as a child of the background subshell: both are stopped.) The native build started in
# step 3 is waited for instead: stopping npm would leave make and the compilers running on their own.
native_pid=
trap 'if [ -n "$mvn_pid" ]; then pkill -P "$mvn_pid" 2>/dev/null; kill "$mvn_pid" 2>/dev/null; fi; if [ -n "$native_pid" ]; then wait "$native_pid" 2>/dev/null; fi; true' EXIT

# --- 3. node_modules, and 4. the TypeScript build beside librdkafka's ------------------------------
lock_hash=$( (sha256sum package-lock.json; node --version) | sha256sum | cut -c1-16)
stamp=node_modules/.stratus-install
native_pid=
native_log="$root/.stratus/setup-native.log"
if [ "$(cat "$stamp" 2>/dev/null)" != "$lock_hash" ]; then
  t_npm=$(date +%s.%N)
  say "npm ci, then librdkafka built for @confluentinc/kafka-javascript (one to two minutes) while tsc builds the TypeScript"
  # The packages first, their install scripts held back; then the same scripts npm ci would run
  # (npm rebuild runs them) in the background: tsc needs the packages' types, not the native addon,
  # and librdkafka's configure step and the addon's C++ files build on one core.
  npm ci --ignore-scripts --no-audit --no-fund >>"$log" 2>&1 \
    || fail "npm ci failed: is the npm registry reachable? (see $log)"
  # There is no prebuilt binary for this platform to download: build from source, linking the
  # system's zlib/ssl/zstd/lz4/sasl/curl dynamically.
  bg_start "$native_log" "native build" env CKJS_LINKING=dynamic npm rebuild --no-audit --no-fund
  native_pid=$bg_pid
fi

t=$(date +%s.%N)
tsc_ok=1
npx --no-install tsc -b >>"$log" 2>&1 || tsc_ok=0
t_build=$(elapsed "$t")

if [ -n "$native_pid" ]; then
  native_ok=1
  bg_join "$native_pid" "$native_log" "native build" || native_ok=0
  native_pid=
  [ "$native_ok" = 1 ] || fail "the install scripts (the librdkafka build) failed: are the Debian packages above installed? (see $log)"
  node -e "require('@confluentinc/kafka-javascript')" >>"$log" 2>&1 \
    || fail "@confluentinc/kafka-javascript was installed but its native addon does not load (see $log)"
  echo "$lock_hash" >"$stamp"
  say "node modules installed in $(elapsed "$t_npm") (the librdkafka build took ${took:-?}, the TypeScript build $t_build beside it)"
fi
[ "$tsc_ok" = 1 ] || { grep -E 'error TS' "$log" | head -20 >&2; fail "the TypeScript build failed"; }

if [ -n "$mvn_pid" ]; then
  t=$(date +%s.%N)
  mvn_ok=1
  bg_join "$mvn_pid" "$mvn_log" mvn || mvn_ok=0
  mvn_pid=
  [ "$mvn_ok" = 1 ] || fail "mvn could not fetch the Kafka jars: is Maven Central reachable? (see $log)"
  rm -rf "$libs" && mv "$libs.tmp" "$libs"
  echo "$pom_hash" >"$libs/.pom-hash"
  say "Kafka jars fetched in ${took:-?} beside npm ci (then waited $(elapsed "$t") for them)"
fi

# --- 5. Node 24 and Bun for the bench's runtimes scenario (only when asked) -------------------------
if [ "$runtimes" = 1 ]; then bash "$root/scripts/setup-runtimes.sh"
elif [ "$bun_only" = 1 ]; then bash "$root/scripts/setup-runtimes.sh" --bun-only; fi

say "ready in $(elapsed "$t_all") (build $t_build)"
