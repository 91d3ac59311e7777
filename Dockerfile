# Release image for fly.toml: build with the workspace, run the single binary.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bin plinth

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/plinth /usr/local/bin/plinth
USER nobody
EXPOSE 8080
CMD ["plinth", "serve"]
