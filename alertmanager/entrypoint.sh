#!/bin/sh
# Starts Alertmanager with alertmanager.yml's ${NAME} placeholders filled in from the
# environment and its secrets in files that only this user can read.
#
# Required:  ALERT_EMAIL_TO (comma-separated addresses), SMTP_HOST, SMTP_FROM,
#            the Slack webhook URL: SLACK_WEBHOOK_URL_FILE (a mounted secret file) or SLACK_WEBHOOK_URL,
#            the SMTP password:     SMTP_PASSWORD_FILE or SMTP_PASSWORD (unless SMTP_USERNAME is empty).
# Optional:  SMTP_PORT (587; or SMTP_HOST=host:port), SMTP_USERNAME (none: no SMTP AUTH),
#            SMTP_REQUIRE_TLS (STARTTLS required: true, except on port 465, which is TLS already),
#            GRAFANA_URL (dashboard links in messages; unset: http://localhost:3000; empty or
#            without a host, as Railway's https://${{grafana.RAILWAY_PUBLIC_DOMAIN}} is until
#            Grafana has a public domain: messages go out without links), ALERTMANAGER_EXTERNAL_URL.
# Every missing or malformed value is named in one message and start-up stops (exit 2).
# Values are checked against strict patterns, so none can change the YAML they land in.
# Secret values are never printed; secrets given as variables are written to files with
# mode 0600 and removed from the environment Alertmanager runs with.
set -eu

config_dir="${ALERTMANAGER_CONFIG_DIR:-/etc/alertmanager}"
runtime_dir="${ALERTMANAGER_RUNTIME_DIR:-/tmp/alertmanager}"
alertmanager="${ALERTMANAGER_BIN:-/bin/alertmanager}"
amtool="${AMTOOL_BIN:-/bin/amtool}"

problems=""
problem() { problems="$problems
  - $*"; }
newline='
'

# matches VALUE REGEX: VALUE is one line and matches. grep matches line by line, so a value
# with a line break could pass with one good line while the others reached sed as commands.
matches() {
    case "$1" in *"$newline"*) return 1 ;; esac
    printf '%s' "$1" | grep -Eq "$2"
}

# check NAME REGEX DESCRIPTION: the variable must be set and match.
check() {
    eval "value=\${$1:-}"
    if [ -z "$value" ]; then
        problem "$1 is not set ($3)"
    elif ! matches "$value" "$2"; then
        problem "$1 is not $3"
    fi
}

# The names the GatewayZ team's running Alertmanager already uses are understood too:
# SMTP_HOST=host:port, SMTP_USER, ALERT_EMAIL_OPS (and Grafana's GF_SMTP_* ones).
ALERT_EMAIL_TO="${ALERT_EMAIL_TO:-${ALERT_EMAIL_OPS:-${ALERT_EMAIL:-}}}"
SMTP_FROM="${SMTP_FROM:-${GF_SMTP_FROM_ADDRESS:-}}"
SMTP_USERNAME="${SMTP_USERNAME:-${SMTP_USER:-${GF_SMTP_USER:-}}}"
if [ -z "${SMTP_PASSWORD:-}" ] && [ -z "${SMTP_PASSWORD_FILE:-}" ] && [ -n "${GF_SMTP_PASSWORD:-}" ]; then
    SMTP_PASSWORD="$GF_SMTP_PASSWORD"
fi
unset GF_SMTP_PASSWORD
SMTP_HOST="${SMTP_HOST:-}"
case "$SMTP_HOST" in
    *:*)
        SMTP_PORT="${SMTP_PORT:-${SMTP_HOST##*:}}"
        SMTP_HOST="${SMTP_HOST%:*}"
        ;;
esac
SMTP_PORT="${SMTP_PORT:-587}"
# Port 465 is TLS from the first byte (no STARTTLS to require); elsewhere STARTTLS is required.
if [ "$SMTP_PORT" = 465 ]; then
    SMTP_REQUIRE_TLS="${SMTP_REQUIRE_TLS:-false}"
else
    SMTP_REQUIRE_TLS="${SMTP_REQUIRE_TLS:-true}"
fi
# Alerts first, dashboard links second: a GRAFANA_URL that is empty or has no host turns the links
# off (the start-up line says so) instead of stopping Alertmanager. Anything else must be a URL.
GRAFANA_URL="${GRAFANA_URL-http://localhost:3000}"
case "$GRAFANA_URL" in
    "" | http:// | https:// | http:/// | https:///) GRAFANA_URL="" ;;
    *) GRAFANA_URL="${GRAFANA_URL%/}" ;;
esac

address='[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+'
check ALERT_EMAIL_TO "^$address(,$address)*\$" "a comma-separated list of email addresses"
check SMTP_FROM "^$address\$" "an email address"
check SMTP_HOST '^[A-Za-z0-9][A-Za-z0-9.-]*$' "a host name"
check SMTP_PORT '^[0-9]{1,5}$' "a port number"
check SMTP_REQUIRE_TLS '^(true|false)$' "true or false"
if [ -n "$GRAFANA_URL" ]; then
    check GRAFANA_URL '^https?://[A-Za-z0-9][A-Za-z0-9.:/_-]*$' "an http(s) URL with a host"
fi
if [ -n "$SMTP_USERNAME" ] && ! matches "$SMTP_USERNAME" '^[A-Za-z0-9._%+@-]+$'; then
    problem "SMTP_USERNAME has characters an SMTP user name does not need"
fi

umask 077
mkdir -p "$runtime_dir/secrets" "$runtime_dir/templates"

# secret NAME: NAME_FILE (a path) wins; else NAME's value is written to a private file.
secret() {
    eval "file=\${$1_FILE:-}; value=\${$1:-}"
    if [ -n "$file" ]; then
        if ! matches "$file" '^/[A-Za-z0-9._/-]+$'; then
            problem "$1_FILE is not an absolute path"
        elif [ ! -r "$file" ]; then
            problem "$1_FILE names a file that cannot be read"
        fi
    elif [ -n "$value" ]; then
        file="$runtime_dir/secrets/$(echo "$1" | tr 'A-Z' 'a-z')"
        printf '%s' "$value" > "$file"
        eval "$1_FILE=\$file"
    else
        problem "neither $1_FILE nor $1 is set ($2)"
    fi
    unset "$1"
}
secret SLACK_WEBHOOK_URL "the Slack incoming webhook URL"
if [ -n "$SMTP_USERNAME" ]; then
    secret SMTP_PASSWORD "the SMTP password for SMTP_USERNAME"
else
    # No SMTP AUTH: an empty password file keeps the configuration valid.
    SMTP_PASSWORD_FILE="$runtime_dir/secrets/smtp_password"
    : > "$SMTP_PASSWORD_FILE"
    unset SMTP_PASSWORD
fi

if [ -n "$problems" ]; then
    echo "alertmanager entrypoint: cannot start, fix these variables:$problems" >&2
    exit 2
fi

render() {
    sed -e "s|\${ALERT_EMAIL_TO}|$ALERT_EMAIL_TO|g" \
        -e "s|\${SMTP_FROM}|$SMTP_FROM|g" \
        -e "s|\${SMTP_HOST}|$SMTP_HOST|g" \
        -e "s|\${SMTP_PORT}|$SMTP_PORT|g" \
        -e "s|\${SMTP_USERNAME}|$SMTP_USERNAME|g" \
        -e "s|smtp_require_tls: true|smtp_require_tls: $SMTP_REQUIRE_TLS|" \
        -e "s|\${GRAFANA_URL}|$GRAFANA_URL|g" \
        -e "s|\${SLACK_WEBHOOK_URL_FILE}|$SLACK_WEBHOOK_URL_FILE|g" \
        -e "s|\${SMTP_PASSWORD_FILE}|$SMTP_PASSWORD_FILE|g" \
        "$1" > "$2"
}
render "$config_dir/alertmanager.yml" "$runtime_dir/alertmanager.yml"
for template in "$config_dir"/templates/*.tmpl; do
    render "$template" "$runtime_dir/templates/$(basename "$template")"
done

if ! "$amtool" check-config "$runtime_dir/alertmanager.yml" > /dev/null; then
    echo "alertmanager entrypoint: the rendered configuration is invalid (amtool output above)" >&2
    exit 2
fi
if [ -n "$GRAFANA_URL" ]; then
    links="dashboard links to $GRAFANA_URL"
else
    links="dashboard links are off: GRAFANA_URL is empty or has no host (on Railway: generate a public domain for Grafana, then redeploy Alertmanager)"
fi
echo "alertmanager entrypoint: email to $ALERT_EMAIL_TO via $SMTP_HOST:$SMTP_PORT, Slack webhook from a file, $links"

set -- "--config.file=$runtime_dir/alertmanager.yml" "$@"
if [ -n "${ALERTMANAGER_EXTERNAL_URL:-}" ]; then
    set -- "$@" "--web.external-url=$ALERTMANAGER_EXTERNAL_URL"
fi
exec "$alertmanager" "$@"
