# One image for both services of the KeyBox dashboard read model. The command picks the service:
#   node --import tsx services/projector/src/main.ts    (the projector)
#   node --import tsx services/query-api/src/main.ts    (the query API, the default)
# The TypeScript runs as it is through tsx (a production dependency): there is no build step.
#
# Debian (glibc) rather than Alpine (musl): lmdb, msgpackr-extract and esbuild ship prebuilt
# linux-x64/arm64 glibc binaries as optional npm packages, so nothing is compiled here.
ARG NODE_IMAGE=node:20-bookworm-slim

# ---- deps: production node_modules only ---------------------------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
ENV NODE_ENV=production
# Only the manifests first, so the install layer is reused until a dependency changes.
COPY package.json package-lock.json ./
COPY shared/contract/package.json shared/contract/
COPY shared/read-model/package.json shared/read-model/
COPY shared/runtime/package.json shared/runtime/
COPY services/projector/package.json services/projector/
COPY services/query-api/package.json services/query-api/
RUN npm ci --omit=dev --no-audit --no-fund

# ---- runtime ------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    DATA_DIR=/data
WORKDIR /app

# Manifests and node_modules (the workspace links node_modules/@keybox/* -> ../../shared, ...
# resolve once the sources below are in place). Owned by root: the app cannot modify its code.
COPY --from=deps /app ./
# tsx reads tsconfig.json for how to transpile; then only what runs: shared/ and the two services.
COPY tsconfig.json ./
COPY shared/contract/src shared/contract/src
COPY shared/read-model/src shared/read-model/src
COPY shared/runtime/src shared/runtime/src
COPY services/projector/src services/projector/src
COPY services/query-api/src services/query-api/src

# LMDB's default home (the read model when MONGODB_URL is unset). Created and chowned before
# VOLUME so a new named volume starts out owned by node.
RUN mkdir -p /data \
 && chown node:node /data
VOLUME ["/data"]

USER node

# 3000: query API (PORT); 9464: projector health and metrics (METRICS_PORT).
EXPOSE 3000 9464

# No HEALTHCHECK here: the image runs two different services; docker-compose.yml defines one each.
CMD ["node", "--import", "tsx", "services/query-api/src/main.ts"]
