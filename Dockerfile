# syntax=docker/dockerfile:1
# Rampart image: `rampart ca` and `rampart agent` (see docs/deploy-kubernetes.md).
#   docker build -t ghcr.io/rampart/rampart:0.1.0 .

# ---- build: compile TypeScript to dist/ ----
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the "prepare" script compiles, and sources are not copied yet.
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# npm run build bundles the agent with scripts/bundle-agent.mjs (and the files it substitutes in).
COPY scripts ./scripts
RUN npm run build

# ---- deps: production node_modules only ----
FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# No runtime dependency needs an install script; "prepare" would need the dev-only compiler.
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force

# ---- runtime ----
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
# package.json carries "type": "module", which bin/rampart.js and dist/ need.
COPY --chown=0:0 package.json ./
COPY --chown=0:0 --from=deps /app/node_modules ./node_modules
COPY --chown=0:0 --from=build /app/dist ./dist
# bin/agent-node is the agent containers' command: node with the agent's runtime flags, on
# bin/rampart-agent.cjs, the agent bundled into dist/rampart-agent.cjs by `npm run build`
# (docs/deploy-kubernetes.md, "Agent runtime settings"); the CA uses the ENTRYPOINT as is.
COPY --chown=0:0 bin ./bin
# Code is root-owned and read-only to the process; it runs as the distroless "nonroot" UID.
USER 65532:65532
EXPOSE 8443 9090 15006 15020
ENTRYPOINT ["node", "/app/bin/rampart.js"]
