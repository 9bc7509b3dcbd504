# The mail and webhook catcher for docker compose (compose/catcher.py): stands in for SMTP and
# Slack so the stack runs without secrets. The exporter's base image; the standard library only.
# Build: docker build -f compose/catcher.Dockerfile compose
FROM python:3.11.7-slim-bookworm

COPY catcher.py /usr/local/bin/catcher.py

USER 65534:65534
EXPOSE 1025 8025
ENTRYPOINT ["python3", "-u", "/usr/local/bin/catcher.py"]
