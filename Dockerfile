# GatewayZ provider metrics exporter.
# Python 3.11 (the hash-pinned requirements carry its wheels), pinned by version and digest.
FROM python:3.11.7-slim-bookworm@sha256:d11b9bd5e49ea7401753d78f4d3b56f3aec952b85b49bcae88981f0452818e0b

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, from the hash-pinned list, so source edits reuse this layer.
COPY requirements.txt ./
RUN pip install --no-cache-dir --require-hashes -r requirements.txt \
    && groupadd --system --gid 10001 exporter \
    && useradd --system --uid 10001 --gid exporter --no-create-home --shell /usr/sbin/nologin exporter

# pyproject.toml holds the version the exporter reports.
COPY pyproject.toml config.py provider_metrics_exporter.py ./
COPY gatewayz_exporter/ ./gatewayz_exporter/
# Bytecode compiled once here, as pip did for the dependencies, not on every start
# (PYTHONDONTWRITEBYTECODE keeps the running exporter from writing any).
RUN python -m compileall -q config.py gatewayz_exporter

USER 10001:10001
EXPOSE 8001

# No curl in a slim image: the exporter ships its own probe of /healthz. It finds the server
# for any METRICS_ADDR (:: is IPv6 only) and TLS set up by WEB_CONFIG_FILE or by
# --web.config.file in the CMD (read from PID 1's command line), within 4 s.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-m", "gatewayz_exporter.healthcheck"]

# Exec form: Python is PID 1 and receives SIGTERM directly.
ENTRYPOINT ["python", "provider_metrics_exporter.py"]
