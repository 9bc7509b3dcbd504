#!/bin/sh
# Starts Prometheus with prom.yml's scrape and alerting targets taken from the environment.
#
# Prometheus cannot expand environment variables in targets, so this renders a copy of
# prom.yml next to the rule files, replacing the docker compose names with
#   EXPORTER_INTERNAL_URL      e.g. http://provider-metrics-exporter.railway.internal:8001
#   ALERTMANAGER_INTERNAL_URL  e.g. http://alertmanager.railway.internal:9093
#   PROMETHEUS_INTERNAL_URL, LOKI_INTERNAL_URL, TEMPO_INTERNAL_URL, GRAFANA_INTERNAL_URL
#                              the stack's own services, scraped for their health
# when they are set (unset: the compose names stay), ENVIRONMENT (default production) as the
# `environment` external label, and PROMETHEUS_EXTERNAL_URL (the address people open, for the
# "Source" links in notifications) as --web.external-url. It checks the result with promtool
# and execs Prometheus with it. A malformed value stops start-up with a message naming it.
set -eu

config_dir="${PROMETHEUS_CONFIG_DIR:-/etc/prometheus}"
prometheus="${PROMETHEUS_BIN:-/bin/prometheus}"
promtool="${PROMTOOL_BIN:-/bin/promtool}"
rendered="$config_dir/prom.rendered.yml"

fail() {
    echo "prometheus entrypoint: $*" >&2
    exit 2
}

newline='
'

# http://host:port[/] -> host:port. Only characters a host name, an IPv6 literal in brackets
# and a port can hold get through, so the value cannot change the YAML around it. grep matches
# line by line, so a value with a line break is refused first: one line could match while the
# others reached sed as commands of their own.
host_port() {
    name="$1"
    value="$2"
    address="${value#http://}"
    address="${address%/}"
    case "$address" in *"$newline"*) fail "$name must be one line: http://host:port" ;; esac
    if ! printf '%s' "$address" | grep -Eq '^([A-Za-z0-9][A-Za-z0-9.-]*|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}$'; then
        fail "$name must look like http://host:port (got an unusable value)"
    fi
    printf '%s' "$address"
}

# target NAME DEFAULT: host:port from the variable NAME, or DEFAULT when it is unset or empty.
target() {
    eval "value=\${$1:-}"
    if [ -n "$value" ]; then
        host_port "$1" "$value"
    else
        printf '%s' "$2"
    fi
}
exporter="$(target EXPORTER_INTERNAL_URL provider-metrics-exporter:8001)"
alertmanager="$(target ALERTMANAGER_INTERNAL_URL alertmanager:9093)"
self="$(target PROMETHEUS_INTERNAL_URL localhost:9090)"
loki="$(target LOKI_INTERNAL_URL loki:3100)"
tempo="$(target TEMPO_INTERNAL_URL tempo:3200)"
grafana="$(target GRAFANA_INTERNAL_URL grafana:3000)"

environment="${ENVIRONMENT:-production}"
case "$environment" in *"$newline"*) fail "ENVIRONMENT must be one line" ;; esac
if ! printf '%s' "$environment" | grep -Eq '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$'; then
    fail "ENVIRONMENT must be a short name: letters, digits, '.', '_' or '-' (e.g. production, staging)"
fi

sed -e "s/provider-metrics-exporter:8001/$exporter/g" \
    -e "s/alertmanager:9093/$alertmanager/g" \
    -e "s/'localhost:9090'/'$self'/g" \
    -e "s/'loki:3100'/'$loki'/g" \
    -e "s/'tempo:3200'/'$tempo'/g" \
    -e "s/'grafana:3000'/'$grafana'/g" \
    -e "s/^    environment: production\$/    environment: $environment/" \
    "$config_dir/prom.yml" > "$rendered"

# --- Remote write -----------------------------------------------------------------------------
# With REMOTE_WRITE_URL set (e.g. http://mimir:9009/api/v1/push), every sample is also sent to
# that long-term store. Optional: REMOTE_WRITE_USERNAME and REMOTE_WRITE_PASSWORD (basic auth, the
# password kept in a 0600 file beside the config, never in it) and REMOTE_WRITE_TENANT (sent as
# X-Scope-OrgID, Mimir's and Cortex's tenant). Each value is checked against the characters it
# may hold, so it cannot change the YAML around it; unset or empty, nothing is written anywhere.
remote_write_password_file="$config_dir/remote-write-password"
rm -f "$remote_write_password_file"
remote_write=""
if [ -n "${REMOTE_WRITE_URL:-}" ]; then
    url="$REMOTE_WRITE_URL"
    case "$url" in *"$newline"*) fail "REMOTE_WRITE_URL must be one line" ;; esac
    # Credentials first: "@" is outside the characters below, and the message must say where
    # they go instead.
    address="${url#*://}"
    case "${address%%[/?#]*}" in *@*) fail "REMOTE_WRITE_URL must not hold credentials: set REMOTE_WRITE_USERNAME and REMOTE_WRITE_PASSWORD" ;; esac
    if ! printf '%s' "$url" | grep -Eq '^https?://[][A-Za-z0-9._~:/?#!$&()*+,;=%-]+$'; then
        fail "REMOTE_WRITE_URL must be an http:// or https:// URL without spaces or quotes"
    fi
    remote_write="$newline$newline# Added by the entrypoint from REMOTE_WRITE_*.${newline}remote_write:$newline  - url: '$url'"
    if [ -n "${REMOTE_WRITE_TENANT:-}" ]; then
        case "$REMOTE_WRITE_TENANT" in *"$newline"*) fail "REMOTE_WRITE_TENANT must be one line" ;; esac
        if ! printf '%s' "$REMOTE_WRITE_TENANT" | grep -Eq '^[A-Za-z0-9!_.*()-]{1,150}$'; then
            fail "REMOTE_WRITE_TENANT may hold only letters, digits and !_.*()- (at most 150)"
        fi
        remote_write="$remote_write$newline    headers:$newline      X-Scope-OrgID: '$REMOTE_WRITE_TENANT'"
    fi
    if [ -n "${REMOTE_WRITE_USERNAME:-}" ] || [ -n "${REMOTE_WRITE_PASSWORD:-}" ]; then
        [ -n "${REMOTE_WRITE_USERNAME:-}" ] || fail "REMOTE_WRITE_PASSWORD is set without REMOTE_WRITE_USERNAME"
        [ -n "${REMOTE_WRITE_PASSWORD:-}" ] || fail "REMOTE_WRITE_USERNAME is set without REMOTE_WRITE_PASSWORD"
        case "$REMOTE_WRITE_USERNAME" in *"$newline"*) fail "REMOTE_WRITE_USERNAME must be one line" ;; esac
        if ! printf '%s' "$REMOTE_WRITE_USERNAME" | grep -Eq '^[A-Za-z0-9._@+-]+$'; then
            fail "REMOTE_WRITE_USERNAME may hold only letters, digits and ._@+-"
        fi
        (umask 077 && printf '%s' "$REMOTE_WRITE_PASSWORD" > "$remote_write_password_file")
        remote_write="$remote_write$newline    basic_auth:$newline      username: '$REMOTE_WRITE_USERNAME'$newline      password_file: '$remote_write_password_file'"
    fi
    printf '%s\n' "$remote_write" >> "$rendered"
    echo "prometheus entrypoint: remote_write to ${url%%[?#]*}"
fi
unset REMOTE_WRITE_PASSWORD
# --- end of remote write ----------------------------------------------------------------------

if ! "$promtool" check config "$rendered" > /dev/null; then
    fail "the rendered configuration $rendered is invalid (promtool output above)"
fi
set -- "--config.file=$rendered" "$@"
if [ -n "${PROMETHEUS_EXTERNAL_URL:-}" ]; then
    case "$PROMETHEUS_EXTERNAL_URL" in *"$newline"*) fail "PROMETHEUS_EXTERNAL_URL must be one line" ;; esac
    if ! printf '%s' "$PROMETHEUS_EXTERNAL_URL" | grep -Eq '^https?://[A-Za-z0-9][A-Za-z0-9.:/_-]*$'; then
        fail "PROMETHEUS_EXTERNAL_URL must be an http(s) URL with a host, e.g. https://prometheus.example.com"
    fi
    set -- "$@" "--web.external-url=$PROMETHEUS_EXTERNAL_URL"
fi
echo "prometheus entrypoint: environment $environment, scraping $exporter, alerting $alertmanager"
exec "$prometheus" "$@"
