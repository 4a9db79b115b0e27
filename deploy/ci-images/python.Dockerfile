# Stand-in for python:3.12-slim-bookworm: Debian's Python (3.11) with venv and a `python` command.
ARG BASE
FROM ${BASE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python-is-python3 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
# The venv's pip (from Debian's wheel) verifies TLS with the system bundle, which holds the machine's proxy CA.
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt
CMD ["python3"]
