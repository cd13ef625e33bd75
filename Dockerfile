# The Stratus engine image used by docker-compose.yml.
FROM node:20-bookworm
# librdkafka is compiled from source by @confluentinc/kafka-javascript, against these system libraries.
RUN apt-get update \
 && apt-get install -y --no-install-recommends zlib1g-dev libssl-dev libzstd-dev liblz4-dev libsasl2-dev libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN CKJS_LINKING=dynamic npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY bin ./bin
COPY proto ./proto
COPY src ./src
COPY test ./test
COPY bench ./bench
COPY loadgen ./loadgen
RUN npx tsc -b
ENV NODE_ENV=production
# The engine only reads /app; nothing needs root at run time.
USER node
EXPOSE 50051 8080
CMD ["node", "bin/stratus.js", "run"]
