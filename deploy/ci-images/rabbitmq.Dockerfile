# Stand-in for rabbitmq:4-management: Debian's RabbitMQ (3.10) with the management and Prometheus plugins.
ARG BASE
FROM ${BASE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends rabbitmq-server \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && rabbitmq-plugins enable --offline rabbitmq_management rabbitmq_prometheus
# Debian's wrapper logs to a file; "-" sends the log to stdout, so `docker logs` shows it.
ENV RABBITMQ_LOGS=- HOME=/var/lib/rabbitmq
USER rabbitmq
EXPOSE 5672 15672 15692
CMD ["/usr/lib/rabbitmq/bin/rabbitmq-server"]
