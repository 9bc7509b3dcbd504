# Loki with compose/loki.yaml baked in. Build: docker build -f compose/loki.Dockerfile compose
FROM grafana/loki:3.1.1@sha256:e689cc634841c937de4d7ea6157f17e29cf257d6a320f1c293ab18d46cfea986

COPY loki.yaml /etc/loki/loki.yaml

# The base image runs as loki (10001); /loki (chunks, index, compactor) is a volume.
USER 10001
EXPOSE 3100
CMD ["-config.file=/etc/loki/loki.yaml"]
