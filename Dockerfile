# syntax=docker/dockerfile:1
#
#   docker build -t strata .
#   docker run -p 6379:6379 -v strata-data:/data strata
#   docker run -p 6379:6379 strata --bind 0.0.0.0 --dir /data --requirepass s3cret

# ---- build -----------------------------------------------------------------
FROM rust:1-bookworm AS build
WORKDIR /src

# Only what the release binary needs. benches/ is here because Cargo.toml
# declares the `codec` bench and cargo checks that every declared target exists.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches

# The cache mounts keep downloaded crates and compiled dependencies between
# builds; the binary is copied out because the target mount is not kept.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && cp target/release/strata /usr/local/bin/strata

# ---- run -------------------------------------------------------------------
FROM debian:bookworm-slim

# redis-tools for the HEALTHCHECK's redis-cli; ca-certificates for TLS to a
# remote source of truth.
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-tools ca-certificates \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system strata \
    && useradd --system --gid strata --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin strata \
    && mkdir /data \
    && chown strata:strata /data

COPY --from=build /usr/local/bin/strata /usr/local/bin/strata

# The warm tier (sled) lives here; mount a volume to keep it across containers.
VOLUME /data
WORKDIR /data
USER strata
EXPOSE 6379

# With --requirepass set, give the health check the password through the
# container's environment: -e REDISCLI_AUTH=<password>.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD redis-cli -p 6379 ping | grep -q PONG

ENTRYPOINT ["/usr/local/bin/strata"]
# Like the official redis image: listen on every interface of the container
# with protected mode off, so that published ports work out of the box.
# In production set a password: --requirepass <password> (and REDISCLI_AUTH).
CMD ["--bind", "0.0.0.0", "--protected-mode", "no", "--dir", "/data"]
