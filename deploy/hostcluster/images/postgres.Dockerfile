# PostgreSQL from Debian's packages, with the conventions of the official image the chart
# uses: POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB, PGDATA, /docker-entrypoint-initdb.d,
# pg_isready on PATH, uid 999, SIGINT to stop (a fast shutdown, no crash recovery).
ARG BASE
FROM ${BASE}
ARG PG_MAJOR=15
RUN groupadd --system --gid 999 postgres \
    && useradd --system --uid 999 --gid postgres --home-dir /var/lib/postgresql --shell /bin/bash postgres \
    && mkdir -p /etc/postgresql-common \
    && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf \
    && apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-${PG_MAJOR} \
    && rm -rf /var/lib/apt/lists/*
ENV PATH=/usr/lib/postgresql/${PG_MAJOR}/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENTRYPOINT ["docker-entrypoint.sh"]
STOPSIGNAL SIGINT
USER 999
EXPOSE 5432
CMD ["postgres"]
