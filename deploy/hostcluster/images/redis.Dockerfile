# Redis from Debian's packages, as the official image the chart uses: uid 999, redis-server
# and redis-cli on PATH, no entrypoint of its own (the chart's args start with redis-server).
ARG BASE
FROM ${BASE}
RUN groupadd --system --gid 999 redis \
    && useradd --system --uid 999 --gid redis --home-dir /data --shell /usr/sbin/nologin redis \
    && apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data && chown redis:redis /data
WORKDIR /data
USER 999
EXPOSE 6379
CMD ["redis-server"]
