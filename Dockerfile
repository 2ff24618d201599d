# syntax=docker/dockerfile:1
# attentive-connector image: the same entry point as a source install, run as a non-root user on a
# read-only root filesystem (the Helm chart mounts an emptyDir at /tmp, the only writable path).
#   docker build -t attentive-connector:0.1.0 .
#   docker run --rm attentive-connector:0.1.0 --version

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Dependencies ship as wheels (confluent-kafka bundles librdkafka), so no compiler is needed.
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY connector ./connector
# Byte-compile now: at run time the root filesystem is read-only.
RUN /opt/venv/bin/pip install . \
    && /opt/venv/bin/python -m compileall -q /opt/venv

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="attentive-connector" \
      org.opencontainers.image.description="Kafka (Avro) to Attentive REST APIs connector" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    METRICS_PORT=9400
# uid/gid 10001 match the chart's securityContext; no home directory, no login shell.
RUN groupadd --system --gid 10001 connector \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin connector
COPY --from=build /opt/venv /opt/venv
# Avro schemas and the sample config/rule table: the chart's default config points at these schemas.
COPY schemas/ /opt/attentive-connector/schemas/
COPY config/ /opt/attentive-connector/config/
USER 10001:10001
WORKDIR /tmp
EXPOSE 9400
ENTRYPOINT ["attentive-connector"]
CMD ["run", "--config", "/opt/attentive-connector/config/connector.yaml"]
