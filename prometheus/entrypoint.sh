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
