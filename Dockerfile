# syntax=docker/dockerfile:1

# The custom Caddy with piivault, built with xcaddy, and the example legacy app, in a
# small image that runs as a non-root user.
#
#   docker build -t piivault .
#   docker run --rm piivault caddy pii keygen   # a master key: keep it in a secret store
#
# The default configuration is examples/container.Caddyfile: port 8080, the embedded
# vault in the /data volume, the master key from PII_VAULT_MASTER_KEY, and the app at
# 127.0.0.1:9001. examples/docker-compose.yml runs it with the legacy app. Mount
# another Caddyfile at /etc/caddy/Caddyfile to change the policy.

# go.mod requires Go 1.26.8 or later, so the 1.26 tag must be at least that release
FROM golang:1.26-bookworm AS builder

# a static binary runs on any base image
ENV CGO_ENABLED=0

RUN go install github.com/caddyserver/xcaddy/cmd/xcaddy@v0.4.5

WORKDIR /src

# download dependencies in their own layer, so a source change does not repeat it
COPY go.mod go.sum ./
RUN go mod download

COPY . .
RUN examples/build-with-xcaddy.sh /usr/bin/caddy /src
RUN go build -trimpath -ldflags='-s -w' -o /usr/bin/legacyapp ./examples/legacyapp


FROM debian:bookworm-slim

# root certificates for HTTPS to WorkOS Vault, from the builder's ca-certificates package
COPY --from=builder /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=builder /usr/bin/caddy /usr/bin/caddy
COPY --from=builder /usr/bin/legacyapp /usr/bin/legacyapp

# fail the build if the piivault handler is not compiled in
RUN caddy list-modules | grep -q '^http.handlers.pii_vault$'

RUN groupadd --system --gid 10001 piivault \
	&& useradd --system --uid 10001 --gid piivault --no-create-home \
		--home-dir /nonexistent --shell /usr/sbin/nologin piivault \
	&& mkdir -p /data /config /etc/caddy \
	&& chown piivault:piivault /data /config

COPY examples/container.Caddyfile /etc/caddy/Caddyfile

# Caddy keeps its own state under these directories
ENV XDG_DATA_HOME=/data \
	XDG_CONFIG_HOME=/config

# a numeric user, so that Kubernetes can verify runAsNonRoot
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080

CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]
