# The flowlens image: one static binary (musl) on an empty base. The same
# binary is the agent, the collector and the CLI (deploy/kubernetes).
#   docker build -t ghcr.io/flowlens/flowlens:0.1.0 .
FROM node:20-bookworm-slim AS node

FROM rust:1.95-bookworm AS build
# The console is built by crates/console's build script with npm.
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules /usr/local/lib/node_modules
RUN ln -s /usr/local/lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
    && apt-get update && apt-get install -y --no-install-recommends musl-tools \
    && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
RUN cargo build --release --locked --target x86_64-unknown-linux-musl -p flowlens \
    && cp target/x86_64-unknown-linux-musl/release/flowlens /flowlens

FROM scratch
COPY --from=build /flowlens /flowlens
# The collector runs as 65532 (its StatefulSet says so); the agent as root
# with only the capabilities its DaemonSet adds.
USER 65532:65532
ENTRYPOINT ["/flowlens"]
