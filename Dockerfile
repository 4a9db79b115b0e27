# The pipeline's images. docker-compose.yml picks the target and the command for each service.
#   runtime: the pipeline's processes and the invoice-pipeline command, nothing else (build with --target runtime)
#   demo:    runtime + the outside-world stand-ins (DocSpace simulator, mail catcher, pipeline receiver); the last
#            stage, so a plain `docker build .` builds it
# Dependencies come from the hashed lock files in requirements/ (make lock refreshes them); no BuildKit features,
# so the legacy builder builds it too.
ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
COPY requirements/build.txt requirements/runtime.txt /tmp/requirements/
RUN /opt/venv/bin/pip install --require-hashes -r /tmp/requirements/build.txt -r /tmp/requirements/runtime.txt
COPY pyproject.toml README.md /src/
COPY ingress /src/ingress
COPY consumers /src/consumers
COPY shared /src/shared
COPY ops /src/ops
COPY console /src/console
# The project itself, without its dependencies (all came from the lock above); then the build tools go.
RUN /opt/venv/bin/pip install --no-deps --no-build-isolation /src \
 && /opt/venv/bin/pip uninstall -y setuptools wheel \
 && find /opt/venv -name __pycache__ -prune -exec rm -rf {} +

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /opt/venv /opt/venv
RUN useradd --create-home --uid 10001 pipeline \
 && mkdir -p /var/lib/invoice-pipeline \
 && chown pipeline /var/lib/invoice-pipeline
USER pipeline
WORKDIR /home/pipeline
# The spool must outlive the container: mount a volume here (docker-compose.yml does).
ENV SPOOL_DIR=/var/lib/invoice-pipeline/spool \
    IDEMPOTENCY_URL=sqlite:////var/lib/invoice-pipeline/idempotency.sqlite3 \
    JOURNAL_URL=sqlite:////var/lib/invoice-pipeline/journal.sqlite3 \
    LOG_FORMAT=json
EXPOSE 3000
CMD ["python", "-m", "ingress"]

FROM runtime AS demo
USER root
COPY requirements/demo.txt /tmp/requirements/
RUN pip install --no-cache-dir --disable-pip-version-check --require-hashes -r /tmp/requirements/demo.txt \
 && rm -rf /tmp/requirements
COPY simulator /opt/demo/simulator
COPY standins /opt/demo/standins
ENV PYTHONPATH=/opt/demo
USER pipeline
CMD ["python", "-m", "simulator", "--host", "0.0.0.0", "--seed-demo"]
