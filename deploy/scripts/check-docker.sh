#!/usr/bin/env bash
# Exits non-zero with one sentence when there is no usable Docker engine (kind runs the
# cluster's node as a Docker container, and the images are built with Docker).
set -euo pipefail
if ! command -v docker >/dev/null 2>&1; then
  echo "make up needs Docker (kind runs the cluster inside it), and no 'docker' command was found: install Docker Desktop or Docker Engine, give it 4 CPUs and 8 GiB, and run 'make up' again." >&2
  exit 1
fi
if ! docker info >/dev/null 2>&1; then
  echo "make up needs a running Docker engine (kind runs the cluster inside it), and 'docker info' could not reach one: start Docker Desktop or the docker service, and run 'make up' again." >&2
  exit 1
fi
