# streamgate container image. Build: docker build -t streamgate .
# Run:   docker run -p 8080:8080 -v sgdata:/app/data -e EMNIFY_TOKEN=... -e AZION_KEY=... -e APP_TOKEN=... streamgate
# The image listens on 0.0.0.0 (STREAMGATE_HOST), so the embedded default (config/streamgate.yaml) refuses to
# start while any of its tokens is still the change-me placeholder, naming each stream and header.
# It writes under /app/data (its dataDir); mount a volume there so the spool (records already acknowledged
# to vendors) survives the container. Mount your own config and pass --config to change streams and sinks.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# npm ci runs the postinstall check (scripts/ensure-node.sh): node:24 is new enough, so it keeps it.
COPY scripts/ensure-node.sh ./scripts/
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY schemas ./schemas
RUN npm run build && npm prune --omit=dev

FROM node:24-bookworm-slim
ENV NODE_ENV=production
# Reachable from outside the container; config validation then demands real secrets (see above).
ENV STREAMGATE_HOST=0.0.0.0
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY schemas ./schemas
COPY config ./config
RUN mkdir -p /app/data && chown node:node /app/data
USER node
VOLUME ["/app/data"]
EXPOSE 8080
# SIGTERM drains in-flight requests and deliveries (server.shutdownTimeoutMs, 25 s): give it that long.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s CMD node -e "fetch('http://127.0.0.1:8080/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# The node flags of `npm start` (src/runtime-flags.ts): a young generation of 2 x 16 MiB, not 2 x 64.
ENTRYPOINT ["node", "--max-semi-space-size=16", "dist/cli.js"]
CMD ["serve", "--config", "config/streamgate.yaml"]
