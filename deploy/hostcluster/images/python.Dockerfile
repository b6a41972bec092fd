# The Python base the services' Dockerfiles build on here (their PYTHON_IMAGE build argument;
# users keep the official python image): Debian's Python 3.11, with the host's CA bundle so
# that pip inside a build trusts what pip on the host trusts.
ARG BASE
FROM ${BASE}
COPY host-ca-certificates.crt /etc/ssl/certs/perflab-host-ca.crt
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s /usr/bin/python3 /usr/local/bin/python
ENV PIP_CERT=/etc/ssl/certs/perflab-host-ca.crt
