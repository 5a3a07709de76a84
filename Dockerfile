# syntax=docker/dockerfile:1
# Keyhole container image: build with the dev toolchain, run with production
# dependencies only, as the unprivileged `node` user (uid 1000), on a read-only root.
#
#   docker build -t keyhole .
#   docker run --read-only --tmpfs /tmp \
#     -v "$PWD/keyhole.yaml:/etc/keyhole/keyhole.yaml:ro" -v "$PWD/tls:/etc/keyhole/tls:ro" \
#     -e KEYHOLE_HS256_SECRET -e KEYHOLE_ADMIN_TOKEN -p 8443:8443 keyhole
#
# Read-only root filesystem: with a mounted config Keyhole writes nothing (logs go to
# stdout). The embedded development default (`serve` without --config) writes its dev CA,
# HS256 secret and admin token under a cert folder and listens on 127.0.0.1 only, so in a
# container it is only useful for a quick look from inside:
#   docker run --read-only --tmpfs /tmp keyhole serve --cert-dir /tmp/certs
# Production: mount the YAML (and certificates, secrets under /run/secrets) read-only,
# set server.listen.host: 0.0.0.0 there, and reference secrets with ${env:…}/${file:…}.

FROM node:24-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would compile before the sources are copied.
# --omit=optional: the image's own Node 24 runs Keyhole; the node-linux-* packages that
# bring Node 24 to machines whose system node is older are not needed here.
RUN npm ci --ignore-scripts --omit=optional --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npx tsc -p tsconfig.build.json \
 && npm prune --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund

FROM node:24-slim
# The commit this image is built from, for `keyhole --version` and keyhole_build_info (the image
# has no .git): docker build --build-arg KEYHOLE_COMMIT=$(git rev-parse HEAD) .
ARG KEYHOLE_COMMIT=unknown
ENV NODE_ENV=production KEYHOLE_COMMIT=${KEYHOLE_COMMIT}
WORKDIR /app
COPY --from=build --chown=root:root /app/package.json ./
COPY --from=build --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /app/dist ./dist
COPY --chown=root:root samples ./samples
# No package managers at run time: nothing in the image can fetch or build code.
RUN rm -rf /usr/local/lib/node_modules /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
      /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-*
# Files stay root-owned and read-only to the process; it runs as `node`.
USER node
EXPOSE 8443 9091
# /healthz is on the admin listener (loopback, port 9091 unless the config moves it: then
# run with -e KEYHOLE_ADMIN_PORT=<port>).
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.KEYHOLE_ADMIN_PORT || 9091) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# SIGTERM drains: in-flight requests finish (server.drainTimeout), then exit 0. Give
# `docker stop -t` more than drainTimeout.
STOPSIGNAL SIGTERM
# One core per process (workers: auto runs one per core): V8's GC helper threads would only
# take that core from the event loop. docs/performance.md has the measurements.
ENTRYPOINT ["node", "--single-threaded-gc", "--max-semi-space-size=8", "dist/cli.js"]
CMD ["serve", "--config", "/etc/keyhole/keyhole.yaml"]
