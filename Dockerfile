# One image for both services of the KeyBox dashboard read model. The command picks the service:
#   node --enable-source-maps dist/projector.mjs    (the projector)
#   node --enable-source-maps dist/query-api.mjs    (the query API, the default)
#   node --enable-source-maps dist/dlq.mjs list     (the dead-letter tool: README, "Dead letters")
#   node --enable-source-maps dist/rebuild.mjs      (a rebuild of the read model: README, "Rebuild")
# The services are built once (`npm run build`: esbuild bundles of our own code, npm packages left
# external) and run as plain JavaScript; the image holds production dependencies only.
#
# Debian (glibc) rather than Alpine (musl): lmdb and msgpackr-extract ship prebuilt linux-x64/arm64
# glibc binaries as optional npm packages, so nothing is compiled here.
ARG NODE_IMAGE=node:24-bookworm-slim

# ---- build: all dependencies, then dist/ -------------------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
# Only the manifests first, so the install layer is reused until a dependency changes.
COPY package.json package-lock.json ./
COPY shared/contract/package.json shared/contract/
COPY shared/read-model/package.json shared/read-model/
COPY shared/runtime/package.json shared/runtime/
COPY services/projector/package.json services/projector/
COPY services/query-api/package.json services/query-api/
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY shared shared
COPY services services
COPY scripts scripts
RUN npm run build

# ---- deps: production node_modules only ---------------------------------------------------------
FROM build AS deps
ENV NODE_ENV=production
RUN npm prune --omit=dev --no-audit --no-fund

# ---- runtime ------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    DATA_DIR=/data
WORKDIR /app
# Owned by root: the app cannot modify its code. package.json says the code is ES modules.
COPY --from=deps /app/package.json ./
COPY --from=deps /app/node_modules node_modules
COPY --from=build /app/dist dist

# LMDB's home when MONGODB_URL is unset. No VOLUME here: it would give every container an anonymous
# volume of its own, and LMDB replicas on one host must share one; mount a volume at /data instead.
RUN mkdir -p /data \
 && chown node:node /data

USER node

# 3000: query API (PORT); 9464: projector health and metrics (METRICS_PORT).
EXPOSE 3000 9464

# No HEALTHCHECK here: the image runs two different services; docker-compose.yml defines one each.
CMD ["node", "--enable-source-maps", "dist/query-api.mjs"]
