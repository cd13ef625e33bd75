#!/usr/bin/env bash
# The contract on the local clusters (issue 19): the integration tests of the pipeline (the delivery
# contract included), the list queue and the Streams paths, and the randomized model test, against
# a three-broker Kafka (topics with replication 3, min.insync.replicas 2) and a six-node Redis
# Cluster (redis.mode=cluster), both started by `stack up --kafka-nodes 3 --redis-cluster`.
# Called by `npm run test:cluster` and at the end of `npm run test:faults`. Stops the clusters at the
# end if it started them. Tests that put a proxy in front of the one Redis address skip here (a
# cluster client reaches every node directly); the cluster's own faults are test/faults/cluster.test.ts.
set -euo pipefail
cd "$(dirname "$0")/.."
flags=(--kafka-nodes 3 --redis-cluster)
if node bin/stratus.js stack status "${flags[@]}" >/dev/null 2>&1; then started=0; else started=1; fi
node bin/stratus.js stack up "${flags[@]}"
if [ "$started" = 1 ]; then trap 'node bin/stratus.js stack down "${flags[@]}" >/dev/null 2>&1 || true' EXIT; fi
export STRATUS_REDIS_MODE=cluster
export STRATUS_REDIS_PORT=17001
export STRATUS_KAFKA_BROKERS=127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096
export STRATUS_KAFKA_REPLICATION_FACTOR=3
export STRATUS_KAFKA_MIN_INSYNC_REPLICAS=2
node --test --test-concurrency=2 dist/test/integration/pipeline dist/test/integration/queue dist/test/integration/streams dist/test/model
