#!/bin/sh
# Starts Grafana only with a real admin password, and with the data-source URLs the
# provisioning files read (defaults: the docker compose names).
set -eu

if [ -n "${GF_SECURITY_ADMIN_PASSWORD__FILE:-}" ]; then
    if [ ! -r "$GF_SECURITY_ADMIN_PASSWORD__FILE" ]; then
        echo "grafana entrypoint: GF_SECURITY_ADMIN_PASSWORD__FILE names a file that cannot be read" >&2
        exit 2
    fi
    password="$(cat "$GF_SECURITY_ADMIN_PASSWORD__FILE")"
else
    password="${GF_SECURITY_ADMIN_PASSWORD:-}"
fi
if [ -z "$password" ]; then
    echo "grafana entrypoint: set GF_SECURITY_ADMIN_PASSWORD (a secret; on Railway a reference to the shared variable GRAFANA_ADMIN_PASSWORD) or GF_SECURITY_ADMIN_PASSWORD__FILE; Grafana will not start with its default admin password" >&2
    exit 2
fi
if [ "$password" = "admin" ] || [ "${#password}" -lt 12 ]; then
    echo "grafana entrypoint: the admin password must have at least 12 characters and not be \"admin\"" >&2
    exit 2
fi
unset password

export PROMETHEUS_INTERNAL_URL="${PROMETHEUS_INTERNAL_URL:-http://prometheus:9090}"
export LOKI_INTERNAL_URL="${LOKI_INTERNAL_URL:-http://loki:3100}"
export TEMPO_INTERNAL_URL="${TEMPO_INTERNAL_URL:-http://tempo:3200}"
# scheme://user:password@host/path -> scheme://***@host/path: a URL may carry credentials, the log must not.
redact() {
    case "$1" in
        *://*)
            scheme="${1%%://*}"
            rest="${1#*://}"
            authority="${rest%%/*}"
            path="${rest#"$authority"}"
            case "$authority" in
                *@*) printf '%s://***@%s%s' "$scheme" "${authority##*@}" "$path" ;;
                *) printf '%s' "$1" ;;
            esac
            ;;
        *) printf '%s' "$1" ;;
    esac
}
echo "grafana entrypoint: Prometheus $(redact "$PROMETHEUS_INTERNAL_URL"), Loki $(redact "$LOKI_INTERNAL_URL"), Tempo $(redact "$TEMPO_INTERNAL_URL")"
exec "${GRAFANA_RUN:-/run.sh}" "$@"
