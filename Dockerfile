# syntax=docker/dockerfile:1
# The trusted-proxy-sidecar image: `make image` (needs a Docker engine).
# Build stage: the same scripts/build-runtime-tree.sh that `make test` starts the sidecar
# from, so the image holds exactly the tested tree: dist/, package.json and production
# node_modules; the command is dist/sidecar.js, one bundled file.
FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm install --no-audit --no-fund --ignore-scripts --loglevel=error
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY scripts/build-runtime-tree.sh scripts/bundle.mjs scripts/bundle-options.mjs ./scripts/
RUN scripts/build-runtime-tree.sh /out

# Runtime: distroless Node 24 (no shell, no package manager), a fixed non-root UID, and
# nothing it needs to write: it runs with a read-only root filesystem.
FROM gcr.io/distroless/nodejs24-debian12:nonroot
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="trusted-proxy-sidecar" \
      org.opencontainers.image.description="Kubernetes sidecar that admits only trusted proxies with a valid identity and forwards an HMAC-signed identity assertion to the gateway on localhost" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV NODE_ENV=production
# glibc's malloc raises its trim threshold (to 2 MB) when start-up frees the buffer the 1 MB
# bundle was read into, and from then on keeps up to that much freed memory: 2 MB of idle
# RSS (docs/performance.md). Set, the threshold stays at glibc's default of 128 KiB. One
# pair per ENV line: scripts/build-image-oci.sh and the benchmark read these lines.
ENV MALLOC_TRIM_THRESHOLD_=131072
WORKDIR /app
# Owned by root and not writable by the runtime user.
COPY --from=build --chown=0:0 /out /app
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/nodejs/bin/node", "/app/dist/sidecar.js"]
CMD ["serve", "--config", "/etc/trusted-proxy-sidecar/config/sidecar.yaml"]
