# py-spy for `make profile TARGET=kind`: run as an ephemeral debug container beside a
# service's container (scripts/flamegraph.py says how and why), so that the services' images
# stay lean. `make up` builds it from the repository root for both providers (PROVIDER=host:
# on the host cluster's Debian Python base) and loads it into the cluster:
#   docker build -f deploy/docker/profiler.Dockerfile -t perflab/profiler:py-spy-<version> .
# py-spy's Linux wheel holds one static binary: the runtime stage is the services' base (its
# layers are on the node already, and it has the sh and grep the profile's command uses)
# plus that binary. The version is constraints.txt's, and the tag names it.
ARG PYTHON_IMAGE=python:3.11.16-slim-trixie

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_CONSTRAINT=/src/constraints.txt
WORKDIR /src
COPY constraints.txt ./
RUN --mount=type=cache,target=/root/.cache/pip \
    python -m venv /opt/venv && /opt/venv/bin/pip install --only-binary=:all: py-spy

FROM ${PYTHON_IMAGE} AS runtime
COPY --from=build /opt/venv/bin/py-spy /usr/local/bin/py-spy
ENTRYPOINT ["py-spy"]
