#!/bin/sh
# Starts Prometheus with prom.yml's scrape and alerting targets taken from the environment.
#
# Prometheus cannot expand environment variables in targets, so this renders a copy of
# prom.yml next to the rule files, replacing the docker compose names with
#   EXPORTER_INTERNAL_URL      e.g. http://provider-metrics-exporter.railway.internal:8001
#   ALERTMANAGER_INTERNAL_URL  e.g. http://alertmanager.railway.internal:9093
# when they are set (unset: the compose names stay), checks the result with promtool and
# execs Prometheus with it. A malformed value stops start-up with a message naming it.
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

exporter="provider-metrics-exporter:8001"
alertmanager="alertmanager:9093"
if [ -n "${EXPORTER_INTERNAL_URL:-}" ]; then
    exporter="$(host_port EXPORTER_INTERNAL_URL "$EXPORTER_INTERNAL_URL")"
fi
if [ -n "${ALERTMANAGER_INTERNAL_URL:-}" ]; then
    alertmanager="$(host_port ALERTMANAGER_INTERNAL_URL "$ALERTMANAGER_INTERNAL_URL")"
fi

sed -e "s/provider-metrics-exporter:8001/$exporter/g" \
    -e "s/alertmanager:9093/$alertmanager/g" \
    "$config_dir/prom.yml" > "$rendered"

if ! "$promtool" check config "$rendered" > /dev/null; then
    fail "the rendered configuration $rendered is invalid (promtool output above)"
fi
echo "prometheus entrypoint: scraping $exporter, alerting $alertmanager"
exec "$prometheus" "--config.file=$rendered" "$@"
