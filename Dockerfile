# The Stratus engine image: every role of `stratus run --roles ...` (gateway, processor, forwarder,
# exporter) and the list-queue worker (`stratus worker`) run from this one image; docker-compose.yml
# builds it once as stratus:local.
#
#   build      the C++ toolchain (in node:*-bookworm) and the headers librdkafka is compiled against,
#              every dependency, the TypeScript build (src, loadgen, bench and test all compile, as
#              tsconfig.json says; test/ does not ship)
#   prod-deps  the same node_modules without the dev dependencies, and without librdkafka's sources
#              and static archives (280 MB -> 18 MB for @confluentinc/kafka-javascript)
#   runtime    node:*-bookworm-slim, the shared libraries librdkafka links against, production
#              dependencies only, the compiled src/, loadgen/ and bench/, run as the unprivileged
#              `node` user
#
# test/unit/dockerfile.test.ts checks this file: the stages, what the last one copies (no dev
# dependency, nothing under test/, every file the shipped commands import), the runtime libraries
# against the built addon's own DT_NEEDED entries, the HEALTHCHECK and the USER.

# One Node major for both stages: the addon built in `build` is loaded by the Node of `runtime`.
ARG NODE_MAJOR=20

FROM node:${NODE_MAJOR}-bookworm AS build
# librdkafka is compiled from source by @confluentinc/kafka-javascript, against these system libraries
# (the same headers scripts/setup.sh installs on a machine without Docker).
RUN apt-get update \
 && apt-get install -y --no-install-recommends zlib1g-dev libssl-dev libzstd-dev liblz4-dev libsasl2-dev libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
# Dynamic linking: the addon uses the Debian libraries above (and their security updates) instead of
# copies built into it. Its own make runs with -j; node-gyp's JOBS stays unset (see scripts/setup.sh).
RUN CKJS_LINKING=dynamic npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY bin ./bin
COPY proto ./proto
COPY src ./src
COPY test ./test
COPY bench ./bench
COPY loadgen ./loadgen
RUN npx tsc -b

FROM build AS prod-deps
# `npm prune` keeps the addon built above (a second `npm ci --omit=dev` would compile librdkafka
# again). At run time the addon needs build/Release/*.node and build/deps/librdkafka*.so.1 (its
# RUNPATH is $ORIGIN/../deps); the sources, objects and static archives are build leftovers.
RUN npm prune --omit=dev --no-audit --no-fund \
 && cd node_modules/@confluentinc/kafka-javascript \
 && rm -rf deps build/Release/obj.target build/deps/include build/deps/pkgconfig build/deps/*.a

FROM node:${NODE_MAJOR}-bookworm-slim AS runtime
# The shared libraries librdkafka and the addon link against (DT_NEEDED: libssl.so.3, libcrypto.so.3,
# libz.so.1, libzstd.so.1, liblz4.so.1, libsasl2.so.2, libcurl.so.4; libstdc++ and libgcc_s are in
# every Debian image), and the CA bundle OpenSSL reads when a broker is reached over TLS.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl3 zlib1g libzstd1 liblz4-1 libsasl2-2 libcurl4 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production
# package.json: "type": "module" (dist/ is ESM) and the version `stratus --version` prints; proto/:
# read at start by the gateway (its services and reflection).
COPY package.json ./
COPY bin ./bin
COPY proto ./proto
COPY --from=prod-deps /app/node_modules ./node_modules
# What the commands import, and nothing else (dockerfile.test.ts walks the import graph): loadgen/
# for `stratus loadgen`, bench/ because `stratus --help` loads every command, `bench` included
# (running the bench needs the local stack, Java and redis-server, which the image does not have).
COPY --from=build /app/dist/src ./dist/src
COPY --from=build /app/dist/loadgen ./dist/loadgen
COPY --from=build /app/dist/bench ./dist/bench
# Everything above belongs to root and is read-only to the engine; it writes nothing under /app
# (loadgen writes a report only where --report says).
USER node
# gRPC (grpc.port) and HTTP (http.port: /metrics, /livez, /readyz, SSE, /metrics/ingested).
EXPOSE 50051 8080
# /readyz, not /livez: 200 only once every role of the process is up, while its Kafka and Redis
# clients are connected, and not while it drains after SIGTERM; otherwise 503 with the reason.
# Compose's `service_healthy` and `docker ps` then mean "this engine is doing its work", and a Kafka
# or Redis outage shows on every engine as unhealthy. Docker and Compose never restart a container
# for being unhealthy, so this cannot turn an outage into a restart loop; an orchestrator that does
# (Swarm) should ask /livez instead. The port is read from STRATUS_HTTP_PORT (8080, http.port's
# default, when unset), so set http.port by that variable rather than --http-port; the check speaks
# plain HTTP: with tls.cert set, override it.
# `stratus worker` serves no HTTP: docker-compose.yml gives its service a check of its own.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.STRATUS_HTTP_PORT || '8080') + '/readyz', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "bin/stratus.js"]
CMD ["run"]
