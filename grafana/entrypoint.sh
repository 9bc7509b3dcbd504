#!/bin/sh
# Starts Grafana only with a real admin password, and with the data-source URLs the
# provisioning files read (defaults: the docker compose names).
#
# The password: GF_SECURITY_ADMIN_PASSWORD, or a file named by GF_SECURITY_ADMIN_PASSWORD__FILE.
# With neither, one is generated on the first start, kept in the data volume
# ($GF_PATHS_DATA/generated-admin-password, readable only by Grafana's user) and printed once,
# so `docker compose up` works without secrets; set your own to replace it.
set -eu

data_dir="${GF_PATHS_DATA:-/var/lib/grafana}"
generated="$data_dir/generated-admin-password"
if [ -n "${GF_SECURITY_ADMIN_PASSWORD__FILE:-}" ]; then
    if [ ! -r "$GF_SECURITY_ADMIN_PASSWORD__FILE" ]; then
        echo "grafana entrypoint: GF_SECURITY_ADMIN_PASSWORD__FILE names a file that cannot be read" >&2
        exit 2
    fi
    password="$(cat "$GF_SECURITY_ADMIN_PASSWORD__FILE")"
elif [ -n "${GF_SECURITY_ADMIN_PASSWORD:-}" ]; then
    password="$GF_SECURITY_ADMIN_PASSWORD"
elif [ -s "$generated" ]; then
    password="$(cat "$generated")"
    echo "grafana entrypoint: admin password: the one generated on the first start (printed then; also in $generated)"
    export GF_SECURITY_ADMIN_PASSWORD="$password"
else
    password="$(od -An -N18 -tx1 /dev/urandom | tr -d ' \n')"
    (umask 077 && mkdir -p "$data_dir" && printf '%s\n' "$password" > "$generated")
    echo "grafana entrypoint: no admin password was set (GF_SECURITY_ADMIN_PASSWORD); generated one, printed only this once (also in $generated): user admin, password $password"
    export GF_SECURITY_ADMIN_PASSWORD="$password"
fi
if [ "$password" = "admin" ] || [ "${#password}" -lt 12 ]; then
    echo "grafana entrypoint: the admin password must have at least 12 characters and not be \"admin\"" >&2
    exit 2
fi
unset password

export PROMETHEUS_INTERNAL_URL="${PROMETHEUS_INTERNAL_URL:-http://prometheus:9090}"
export LOKI_INTERNAL_URL="${LOKI_INTERNAL_URL:-http://loki:3100}"
export TEMPO_INTERNAL_URL="${TEMPO_INTERNAL_URL:-http://tempo:3200}"
export ALERTMANAGER_INTERNAL_URL="${ALERTMANAGER_INTERNAL_URL:-http://alertmanager:9093}"
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
echo "grafana entrypoint: Prometheus $(redact "$PROMETHEUS_INTERNAL_URL"), Loki $(redact "$LOKI_INTERNAL_URL"), Tempo $(redact "$TEMPO_INTERNAL_URL"), Alertmanager $(redact "$ALERTMANAGER_INTERNAL_URL")"
exec "${GRAFANA_RUN:-/run.sh}" "$@"
