# Tempo with compose/tempo.yaml baked in. Build: docker build -f compose/tempo.Dockerfile compose
FROM grafana/tempo:2.6.1@sha256:ef4384fce6e8ad22b95b243d8fc165628cda655376fd50e7850536ad89d71d50

COPY tempo.yaml /etc/tempo/tempo.yaml

# The base image runs as tempo (10001); /var/tempo (WAL and blocks) is a volume.
USER 10001
# 3200 queries (Grafana), 4318 OTLP over HTTP and 4317 OTLP over gRPC (the exporter).
EXPOSE 3200 4317 4318
CMD ["-config.file=/etc/tempo/tempo.yaml"]
