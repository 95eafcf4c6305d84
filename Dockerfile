# sessiongate in a container: the proxy with the demo CGI site, ready to run.
#
#     docker build -t sessiongate .
#     docker run --rm -p 8080:8080 -e SESSIONGATE_KEY="$(docker run --rm sessiongate gen-key)" sessiongate
#
# Arguments after the image name are sessiongate's own (`check`, `gen-key`,
# `hash-password`, `--config PATH`). The config is read from
# /etc/sessiongate/sessiongate.toml (docker/sessiongate.toml unless you mount
# your own); the memory store's snapshot lives in the volume
# /var/lib/sessiongate.

# The toolchain the project is tested with; any release at or above
# Cargo.toml's rust-version builds it. Both stages use the same Debian
# release (bookworm), so the binary finds the glibc it was linked against:
# move them together.
ARG RUST_VERSION=1.95

# ---------------------------------------------------------------- build stage
FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /build

# Dependencies first, against placeholder sources: this layer is rebuilt
# only when Cargo.toml or Cargo.lock change, not on every source edit.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src

# COPY keeps the files' own modification times, which may be older than the
# placeholder build: touch them so that cargo rebuilds the crate itself.
COPY src ./src
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked \
    && cp target/release/sessiongate /usr/local/bin/sessiongate

# -------------------------------------------------------------- runtime stage
# Debian slim rather than distroless: a `cgi:` route runs scripts, which need
# /bin/sh and their interpreters. python3 is here only because the demo
# site's login and survey pages are Python; an image for your own site needs
# whatever its scripts need, and no python3 if none is Python. tini runs as
# PID 1 to reap the processes a timed-out CGI script leaves behind (the
# gateway kills a script's whole process group) and to pass SIGTERM on.
FROM debian:bookworm-slim AS runtime

# Versions are not pinned: Debian replaces a package version in place when it
# ships a security fix, so pinned versions stop resolving and the build breaks.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 tini \
    && rm -rf /var/lib/apt/lists/*

# A fixed uid/gid outside the system range, so that files in a mounted volume
# belong to a predictable owner. --no-log-init: no sparse lastlog entry the
# size of the uid.
RUN groupadd --gid 10001 sessiongate \
    && useradd --no-log-init --uid 10001 --gid sessiongate \
        --home-dir /var/lib/sessiongate --no-create-home \
        --shell /usr/sbin/nologin sessiongate \
    && mkdir -p /etc/sessiongate /var/lib/sessiongate \
    && chown sessiongate:sessiongate /var/lib/sessiongate

COPY --from=build /usr/local/bin/sessiongate /usr/local/bin/sessiongate
# Owned by root and read-only for the proxy: a compromised script cannot
# rewrite the site, the config or the users file.
COPY examples/legacy-site /srv/sessiongate/examples/legacy-site
COPY config/users /etc/sessiongate/users
COPY docker/sessiongate.toml /etc/sessiongate/sessiongate.toml

# Relative paths in a config (cgi:DIR, users_file, snapshot) resolve here.
WORKDIR /srv/sessiongate
ENV SESSIONGATE_CONFIG=/etc/sessiongate/sessiongate.toml

# Numeric, so that a runtime can tell it is not root without reading
# /etc/passwd (Kubernetes' runAsNonRoot needs that).
USER 10001:10001
VOLUME /var/lib/sessiongate
EXPOSE 8080

# No curl in the image: sessiongate probes its own listener.
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
    CMD ["sessiongate", "healthcheck"]

# SIGTERM: stop accepting, finish in-flight requests within shutdown_grace,
# save the snapshot, exit 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/sessiongate"]
# No default arguments: run the proxy. (Also clears the base image's CMD.)
CMD []
