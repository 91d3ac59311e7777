# syntax=docker/dockerfile:1
# The release image (fly.toml): the web app built in its own stage, the Rust dependencies
# cooked in a layer of their own (cargo-chef: rebuilt only when Cargo.toml or Cargo.lock
# change), then one binary on a slim, non-root runtime with CA certificates and nothing else.
# The commands are the ones CI and the README run: `npm ci && npm run build` in web/,
# `cargo build --locked`. Linted by ops/check.sh (hadolint). Build context: .dockerignore.

# The toolchains CI tests with: bump these with the machine's rustc and node.
ARG RUST_VERSION=1.95
ARG NODE_VERSION=20.20
ARG CARGO_CHEF_VERSION=0.1.78

# ------------------------------------------------------------------ web app
FROM node:${NODE_VERSION}-bookworm-slim AS web
WORKDIR /src/web
COPY web/package.json web/package-lock.json web/.npmrc ./
RUN npm ci
COPY web/ ./
# The pricing pages are prerendered from the plan catalog the server embeds.
COPY plans.toml /src/plans.toml
RUN npm run build

# ------------------------------------------------------------------ Rust toolchain + cargo-chef
FROM rust:${RUST_VERSION}-bookworm AS chef
ARG CARGO_CHEF_VERSION
RUN cargo install --locked cargo-chef --version "${CARGO_CHEF_VERSION}"
WORKDIR /src

# The recipe: every manifest and the lock file, and nothing else, so the next stage's
# layer depends on the dependencies only.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json --bin plinth

FROM chef AS build
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json --bin plinth
COPY . .
# The web app's assets from its stage; the build script embeds them as they are instead of
# running npm itself.
COPY --from=web /src/web/build web/build
ENV PLINTH_WEB_PREBUILT=1
# The commit built, for plinth_build_info (`.git` is not in the build context).
ARG PLINTH_GIT_SHA=unknown
ENV PLINTH_GIT_SHA=${PLINTH_GIT_SHA}
RUN cargo build --release --locked --bin plinth

# ------------------------------------------------------------------ runtime
FROM debian:bookworm-slim AS runtime
# ca-certificates: Stripe, SendGrid, S3 and Redis (rediss://) over TLS. Unpinned so a
# rebuild picks up the distribution's security updates.
# hadolint ignore=DL3008
RUN apt-get update \
  && apt-get install -y --no-install-recommends ca-certificates \
  && rm -rf /var/lib/apt/lists/* \
  && useradd --system --uid 10001 --user-group --home-dir /var/lib/plinth --create-home \
       --shell /usr/sbin/nologin plinth
COPY --from=build /src/target/release/plinth /usr/local/bin/plinth
USER 10001:10001
WORKDIR /var/lib/plinth
ENV PLINTH_ADDR=[::]:8080 \
    PLINTH_DATA_DIR=/var/lib/plinth
# 8080: the API and the web app; 9091: /metrics (PLINTH_METRICS_ADDR, private).
EXPOSE 8080 9091
# The same signal as fly.toml's kill_signal: it starts the graceful drain.
STOPSIGNAL SIGTERM
# fly.toml's [processes] and release_command replace this command line.
CMD ["plinth", "serve"]
