#!/usr/bin/env bash
# Part of the gRPC-path fault suite (test/faults/grpc-path.test.ts) again, with the engine's
# processes on Bun (their Kafka client there is @platformatic/kafka): the faults that test what
# differs from Node, the Kafka client and the runtime. The load generator stays on Node. Run at the
# end of `npm run test:faults`; the whole suite on Bun is
#   FAULTS_ENGINE_RUNTIME=bun node --test dist/test/faults/grpc-path.test.js
# (about 12 minutes here).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup-runtimes.sh --bun-only
FAULTS_ENGINE_RUNTIME=bun \
FAULTS_ONLY='kill -9 processor + forwarder|kill -9 gateway a (devices move to b)|kill -9 Kafka + forwarder|Kafka link: connections reset' \
  node --test dist/test/faults/grpc-path.test.js
