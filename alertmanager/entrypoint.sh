#!/bin/sh
# Starts Alertmanager with alertmanager.yml's ${NAME} placeholders filled in from the
# environment, only the channels that are configured, and its secrets in files that only this
# user can read.
#
# At least one channel:
#   Slack:  SLACK_WEBHOOK_URL_FILE (a mounted secret file) or SLACK_WEBHOOK_URL;
#           optional SLACK_CHANNEL_CRITICAL, SLACK_CHANNEL_WARNING (default: the webhook's channel).
#   Email:  ALERT_EMAIL_TO (comma-separated, each an address or "Name <address>"), SMTP_HOST
#           (a host name or an IPv6 address, in brackets to add a port), SMTP_FROM (an address,
#           or "Name <address>"), the SMTP password: SMTP_PASSWORD_FILE or SMTP_PASSWORD (unless
#           SMTP_USERNAME is empty); optional SMTP_PORT (587; or SMTP_HOST=host:port),
#           SMTP_USERNAME (none: no SMTP AUTH), SMTP_REQUIRE_TLS (STARTTLS required: true,
#           except on port 465, which is TLS already).
# Optional:  HEARTBEAT_URL (the Watchdog's dead man's switch webhook; unset: off),
#            GRAFANA_URL (dashboard and silence links in messages; unset: http://localhost:3000;
#            empty or without a host, as Railway's https://${{grafana.RAILWAY_PUBLIC_DOMAIN}} is
#            until Grafana has a public domain: messages go out without them),
#            ALERTMANAGER_EXTERNAL_URL (--web.external-url: Alertmanager's own links).
# Every missing or malformed value is named, one line each, and start-up stops (exit 2).
# Values are checked against strict patterns, so none can change the YAML they land in.
# Secret values are never printed; secrets given as variables are written to files with
# mode 0600 and removed from the environment Alertmanager runs with.
set -eu

config_dir="${ALERTMANAGER_CONFIG_DIR:-/etc/alertmanager}"
runtime_dir="${ALERTMANAGER_RUNTIME_DIR:-/tmp/alertmanager}"
alertmanager="${ALERTMANAGER_BIN:-/bin/alertmanager}"
amtool="${AMTOOL_BIN:-/bin/amtool}"

# Each problem is a line of its own, naming its variable (a log viewer may show one line alone).
problems=""
problem() { problems="$problems
alertmanager entrypoint: cannot start: $*"; }
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
# host:port, [IPv6]:port, [IPv6], or a bare IPv6 address (more than one colon: no port in it).
case "$SMTP_HOST" in
    \[*\]:*)
        SMTP_PORT="${SMTP_PORT:-${SMTP_HOST##*\]:}}"
        SMTP_HOST="${SMTP_HOST%:*}"
        ;;
    \[*\]) ;;
    *:*:*) SMTP_HOST="[$SMTP_HOST]" ;;
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

# "a@x, b@y" is a list as much as "a@x,b@y".
ALERT_EMAIL_TO="$(printf '%s' "$ALERT_EMAIL_TO" | sed -e 's/, */,/g' -e 's/^ *//' -e 's/ *$//')"

slack=false
email=false
if [ -n "${SLACK_WEBHOOK_URL:-}${SLACK_WEBHOOK_URL_FILE:-}" ]; then slack=true; fi
if [ -n "$ALERT_EMAIL_TO$SMTP_HOST$SMTP_FROM" ]; then email=true; fi
if [ "$slack" = false ] && [ "$email" = false ]; then
    echo "alertmanager entrypoint: no channel for alerts: set SLACK_WEBHOOK_URL (or SLACK_WEBHOOK_URL_FILE), or ALERT_EMAIL_TO with SMTP_HOST and SMTP_FROM, or both" >&2
    exit 2
fi

address='[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+'
mailbox="($address|[A-Za-z0-9][A-Za-z0-9 ._()-]* <$address>)"
if [ "$email" = true ]; then
    check ALERT_EMAIL_TO "^$mailbox(,$mailbox)*\$" "a comma-separated list of email addresses (each may be \"Name <address>\")"
    check SMTP_FROM "^$mailbox\$" "an email address or \"Name <address>\""
    check SMTP_HOST '^([A-Za-z0-9][A-Za-z0-9.-]*|\[[0-9A-Fa-f:.]+\])$' "a host name or an IPv6 address"
    check SMTP_PORT '^[0-9]{1,5}$' "a port number"
    check SMTP_REQUIRE_TLS '^(true|false)$' "true or false"
fi
channel='^[#@]?[A-Za-z0-9._-]{1,80}$'
for name in SLACK_CHANNEL_CRITICAL SLACK_CHANNEL_WARNING; do
    eval "value=\${$name:-}"
    if [ -n "$value" ] && ! matches "$value" "$channel"; then
        problem "$name is not a Slack channel name (#alerts, or empty for the webhook's own)"
    fi
done
SLACK_CHANNEL_CRITICAL="${SLACK_CHANNEL_CRITICAL:-}"
SLACK_CHANNEL_WARNING="${SLACK_CHANNEL_WARNING:-}"
HEARTBEAT_URL="${HEARTBEAT_URL:-}"
# A URL's characters except quotes, spaces and a user:password@ part (the start-up line prints
# the host). "&" and "$" are harmless in YAML's single quotes; "&" is escaped for sed below.
if [ -n "$HEARTBEAT_URL" ] && ! matches "$HEARTBEAT_URL" '^https?://([A-Za-z0-9][A-Za-z0-9.-]*|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?([/?#][][A-Za-z0-9._~:/?#!$&()*+,;=%@-]*)?$'; then
    problem "HEARTBEAT_URL is not an http(s) URL with a host and no user:password@ (a healthchecks-style ping URL)"
fi
heartbeat_replacement="$(printf '%s' "$HEARTBEAT_URL" | sed 's/&/\\&/g')"
# The webhook URL is a secret (never printed) but must still be a URL: Alertmanager reads it
# only when a message is due, too late to learn of a typo.
if [ -n "${SLACK_WEBHOOK_URL:-}" ] && ! matches "$SLACK_WEBHOOK_URL" '^https?://[A-Za-z0-9[][^[:space:]]*$'; then
    problem "SLACK_WEBHOOK_URL is not an http(s) URL (value not shown)"
fi
if [ -n "$GRAFANA_URL" ]; then
    check GRAFANA_URL '^https?://[A-Za-z0-9][A-Za-z0-9.:/_-]*$' "an http(s) URL with a host"
fi
if [ -n "${ALERTMANAGER_EXTERNAL_URL:-}" ]; then
    check ALERTMANAGER_EXTERNAL_URL '^https?://[A-Za-z0-9][A-Za-z0-9.:/_-]*$' "an http(s) URL with a host"
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
if [ "$slack" = true ]; then
    secret SLACK_WEBHOOK_URL "the Slack incoming webhook URL"
else
    SLACK_WEBHOOK_URL_FILE=""
fi
if [ "$email" = true ] && [ -n "$SMTP_USERNAME" ]; then
    secret SMTP_PASSWORD "the SMTP password for SMTP_USERNAME"
else
    # No SMTP AUTH: an empty password file keeps the configuration valid.
    SMTP_PASSWORD_FILE="$runtime_dir/secrets/smtp_password"
    : > "$SMTP_PASSWORD_FILE"
    unset SMTP_PASSWORD
fi

if [ -n "$problems" ]; then
    printf '%s\n' "${problems#"$newline"}" >&2
    exit 2
fi

# Blocks between "# [name]" and "# [/name]" of the channels that are off are left out.
blocks="$runtime_dir/blocks.sed"
: > "$blocks"
off() { printf '/# \\[%s\\]$/,/# \\[\\/%s\\]$/d\n' "$1" "$1" >> "$blocks"; }
if [ "$slack" = false ]; then off slack; fi
if [ "$email" = false ]; then off email; fi
if [ "$slack" = true ] || [ "$email" = false ]; then off no-slack; fi
if [ -z "$HEARTBEAT_URL" ]; then off heartbeat; fi

render() {
    sed -f "$blocks" \
        -e "s|https://heartbeat.invalid/\${HEARTBEAT_URL}|$heartbeat_replacement|g" \
        -e "s|\${SLACK_CHANNEL_CRITICAL}|$SLACK_CHANNEL_CRITICAL|g" \
        -e "s|\${SLACK_CHANNEL_WARNING}|$SLACK_CHANNEL_WARNING|g" \
        -e "s|\${ALERT_EMAIL_TO}|$ALERT_EMAIL_TO|g" \
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
    links="dashboard links to $GRAFANA_URL (silence links too)"
else
    links="dashboard links are off: GRAFANA_URL is empty or has no host (on Railway: generate a public domain for Grafana, then redeploy Alertmanager)"
fi
channels=""
if [ "$slack" = true ]; then
    channels="Slack (webhook from a file; critical to ${SLACK_CHANNEL_CRITICAL:-its channel}, warnings to ${SLACK_CHANNEL_WARNING:-its channel})"
fi
if [ "$email" = true ]; then
    channels="${channels:+$channels, }email to $ALERT_EMAIL_TO via $SMTP_HOST:$SMTP_PORT"
fi
if [ -n "$HEARTBEAT_URL" ]; then
    heartbeat="Watchdog heartbeat to $(printf '%s' "$HEARTBEAT_URL" | sed -E 's|^(https?://[^/]*).*|\1/...|')"
else
    heartbeat="no Watchdog heartbeat (HEARTBEAT_URL unset)"
fi
echo "alertmanager entrypoint: $channels; $heartbeat; $links"

set -- "--config.file=$runtime_dir/alertmanager.yml" "$@"
if [ -n "${ALERTMANAGER_EXTERNAL_URL:-}" ]; then
    set -- "$@" "--web.external-url=$ALERTMANAGER_EXTERNAL_URL"
fi
exec "$alertmanager" "$@"
