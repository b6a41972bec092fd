# Locust with the lab's scenarios, for the chart's in-cluster load generator
# (locust.enabled=true). Build from the repository root:
#   docker build -f deploy/docker/locust.Dockerfile -t perflab/locust:0.1.0 .
ARG PYTHON_IMAGE=python:3.11.16-slim-trixie

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_CONSTRAINT=/src/constraints.txt
WORKDIR /src
COPY constraints.txt ./
RUN --mount=type=cache,target=/root/.cache/pip \
    python -m venv /opt/venv && /opt/venv/bin/pip install locust
# The scenarios, and whatever extra packages they declare.
COPY loadtests/ /loadtests/
RUN --mount=type=cache,target=/root/.cache/pip \
    if [ -f /loadtests/requirements.txt ]; then /opt/venv/bin/pip install -r /loadtests/requirements.txt; fi

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
RUN groupadd --system --gid 10001 locust \
    && useradd --system --uid 10001 --gid locust --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin locust
COPY --from=build /opt/venv /opt/venv
COPY --from=build /loadtests/ /loadtests/
WORKDIR /loadtests
USER 10001:10001
EXPOSE 8089 5557
ENTRYPOINT ["locust"]
