# Apache Kafka (KRaft) from the Maven Central jars scripts/install-infra.sh caches, configured
# like the official image: every KAFKA_* variable becomes a server property
# (KAFKA_LOG_DIRS -> log.dirs; "__" stands for "_", "___" for "-"), CLUSTER_ID formats the
# storage on first start. uid 1000 ("appuser"), as upstream.
ARG BASE
FROM ${BASE}
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 1000 appuser \
    && useradd --uid 1000 --gid appuser --create-home --home-dir /home/appuser appuser \
    && mkdir -p /opt/kafka/config /var/lib/kafka/data && chown -R appuser:appuser /opt/kafka/config /var/lib/kafka
COPY libs/ /opt/kafka/libs/
COPY kafka-run.sh /etc/kafka/docker/run
COPY kafka-log4j2.properties /opt/kafka/log4j2.properties
USER 1000
EXPOSE 9092 9093
ENTRYPOINT ["/etc/kafka/docker/run"]
