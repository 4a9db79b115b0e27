# One image for the four services; docker-compose.yml picks the command for each.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY ingress ./ingress
COPY consumers ./consumers
COPY shared ./shared
COPY simulator ./simulator
COPY ops ./ops
RUN pip install . \
 && useradd --create-home --uid 10001 pipeline \
 && mkdir -p /var/lib/invoice-pipeline \
 && chown pipeline /var/lib/invoice-pipeline

USER pipeline
# The spool must outlive the container: mount a volume here (docker-compose.yml does).
ENV SPOOL_DIR=/var/lib/invoice-pipeline/spool \
    IDEMPOTENCY_URL=sqlite:////var/lib/invoice-pipeline/idempotency.sqlite3 \
    LOG_FORMAT=json
EXPOSE 3000
CMD ["python", "-m", "ingress"]
