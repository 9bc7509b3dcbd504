"""Railway Infrastructure as Code for the whole GatewayZ provider stack.

Six services, each built from this repository's Dockerfiles with its configuration baked in:
the exporter (Dockerfile), Prometheus (prometheus/), Alertmanager (alertmanager/), Grafana
(grafana/), Loki and Tempo (compose/). They find each other on Railway's private network
through references to each other's RAILWAY_PRIVATE_DOMAIN; the stateful ones keep their data
on volumes. Secrets are references to shared variables set in the Railway dashboard; this file
holds no secret value.

The repository to build from is a parameter, so a fork deploys itself without editing this
file: ``RAILWAY_SOURCE_REPO=owner/name`` (or GitHub Actions' ``GITHUB_REPOSITORY``), and
``RAILWAY_SOURCE_BRANCH`` (default ``main``). Evaluated by the Railway CLI and by
tests/unit/test_deploy.py. See README.md, "Deploy on Railway".
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from railway_sdk import (  # type: ignore[import-untyped]  # railway-sdk ships no type information
    Project,
    RailwayContext,
    create_railway_context,
    define_railway,
    github,
    project,
    service,
    volume,
)

# Names a fork may keep: they are the private-network host names (<name>.railway.internal).
EXPORTER = "provider-metrics-exporter"
PROMETHEUS = "prometheus"
ALERTMANAGER = "alertmanager"
GRAFANA = "grafana"
LOKI = "loki"
TEMPO = "tempo"

# Railway mounts volumes owned by root; the images run as non-root users, so services with a
# volume run as root on Railway only (Railway's documented switch). Compose keeps them non-root.
RUN_AS_ROOT_FOR_VOLUME = {"RAILWAY_RUN_UID": "0"}

# Watch patterns: a push rebuilds a service only when a file its image is built from changed.
# They are gitignore-style and always start at the repository root, also for a service with a
# root directory. The exporter's are the files its Dockerfile copies (the same as railway.toml).
EXPORTER_WATCH = [
    "/Dockerfile",
    "/.dockerignore",
    "/requirements.txt",
    "/pyproject.toml",
    "/config.py",
    "/provider_metrics_exporter.py",
    "/gatewayz_exporter/**",
]


def source_repository(ctx: Mapping[str, Any]) -> tuple[str, str]:
    """The GitHub repository and branch to build from: the context, else the environment."""
    repo = (
        ctx.get("repository") or os.environ.get("RAILWAY_SOURCE_REPO") or os.environ.get("GITHUB_REPOSITORY")
    )
    if not repo or repo.count("/") != 1:
        raise SystemExit(
            "Set RAILWAY_SOURCE_REPO=owner/name: the GitHub repository Railway builds this stack from."
        )
    branch = ctx.get("branch") or os.environ.get("RAILWAY_SOURCE_BRANCH") or "main"
    return repo, branch


def private_url(name: str, port: int, scheme: str = "http") -> str:
    """A URL on Railway's private network, resolved by Railway from the service's variable."""
    return f"{scheme}://${{{{{name}.RAILWAY_PRIVATE_DOMAIN}}}}:{port}"


def public_url(name: str) -> str:
    """The service's public https URL (generate a domain for it in the Railway dashboard).

    Until the domain exists Railway resolves the reference to "", so the value is "https://";
    whoever reads it must treat a URL without a host as "not configured yet", not as an error.
    """
    return f"https://${{{{{name}.RAILWAY_PUBLIC_DOMAIN}}}}"


@define_railway
def main(ctx: RailwayContext | None = None) -> Project:
    ctx = ctx or create_railway_context()
    repo, branch = source_repository(ctx)
    shared = ctx.shared
    deploy = {"restartPolicyType": "ON_FAILURE", "restartPolicyMaxRetries": 10}

    def built(directory: str | None, watch: list[str], dockerfile: str = "Dockerfile") -> dict[str, Any]:
        options = {"branch": branch}
        if directory:
            options["rootDirectory"] = directory
        return {
            "source": github(repo, **options),
            "build": {"builder": "DOCKERFILE", "dockerfilePath": dockerfile, "watchPatterns": watch},
        }

    exporter = service(
        EXPORTER,
        **built(None, EXPORTER_WATCH),
        deploy={**deploy, "drainingSeconds": 15},
        healthcheck="/healthz",
        healthcheckTimeout=60,
        env={
            "GATEWAY_API_URL": "https://api.gatewayz.ai",
            "SCRAPE_INTERVAL": "60",
            # Railway routes and health-checks PORT; the exporter listens on it when
            # METRICS_PORT is unset. Pinned to the seed's port so Prometheus finds it.
            "PORT": "8001",
            "ADMIN_KEY": shared.ADMIN_KEY,
            "LOKI_URL": private_url(LOKI, 3100),
            "OTEL_EXPORTER_OTLP_ENDPOINT": private_url(TEMPO, 4318),
        },
    )

    prometheus_data = volume("prometheus-data")
    prometheus = service(
        PROMETHEUS,
        **built("prometheus", ["/prometheus/**"]),
        deploy=deploy,
        healthcheck="/-/ready",
        healthcheckTimeout=120,
        volumeMounts={"/prometheus": prometheus_data},
        env={
            "PORT": "9090",
            "EXPORTER_INTERNAL_URL": private_url(EXPORTER, 8001),
            "ALERTMANAGER_INTERNAL_URL": private_url(ALERTMANAGER, 9093),
            # The stack's own services, scraped for their health.
            "LOKI_INTERNAL_URL": private_url(LOKI, 3100),
            "TEMPO_INTERNAL_URL": private_url(TEMPO, 3200),
            "GRAFANA_INTERNAL_URL": private_url(GRAFANA, 3000),
            # Optional, from shared variables: an unset one resolves to empty, which the
            # entrypoint treats as unset (ENVIRONMENT: production; no external URL).
            "ENVIRONMENT": shared.ENVIRONMENT,
            "PROMETHEUS_EXTERNAL_URL": shared.PROMETHEUS_EXTERNAL_URL,
            # Optional long-term store (prometheus/entrypoint.sh): shared variables left unset
            # resolve to empty, and an empty REMOTE_WRITE_URL writes nowhere.
            "REMOTE_WRITE_URL": shared.REMOTE_WRITE_URL,
            "REMOTE_WRITE_USERNAME": shared.REMOTE_WRITE_USERNAME,
            "REMOTE_WRITE_PASSWORD": shared.REMOTE_WRITE_PASSWORD,
            "REMOTE_WRITE_TENANT": shared.REMOTE_WRITE_TENANT,
            **RUN_AS_ROOT_FOR_VOLUME,
        },
    )

    alertmanager_data = volume("alertmanager-data")
    alertmanager = service(
        ALERTMANAGER,
        **built("alertmanager", ["/alertmanager/**"]),
        deploy=deploy,
        healthcheck="/-/ready",
        healthcheckTimeout=60,
        volumeMounts={"/alertmanager": alertmanager_data},
        env={
            "PORT": "9093",
            # Secrets: shared variables, set in the Railway dashboard.
            "SLACK_WEBHOOK_URL": shared.SLACK_WEBHOOK_URL,
            "SLACK_CHANNEL_CRITICAL": shared.SLACK_CHANNEL_CRITICAL,
            "SLACK_CHANNEL_WARNING": shared.SLACK_CHANNEL_WARNING,
            "SMTP_PASSWORD": shared.SMTP_PASSWORD,
            # Where mail goes and how: shared variables too, so nothing here names a person.
            "ALERT_EMAIL_TO": shared.ALERT_EMAIL_TO,
            "SMTP_HOST": shared.SMTP_HOST,
            "SMTP_PORT": shared.SMTP_PORT,
            "SMTP_FROM": shared.SMTP_FROM,
            "SMTP_USERNAME": shared.SMTP_USERNAME,
            "SMTP_REQUIRE_TLS": shared.SMTP_REQUIRE_TLS,
            # Links in messages. "https://" until Grafana has a public domain: Alertmanager then
            # starts and sends its alerts without links (alertmanager/entrypoint.sh); redeploy it
            # after generating the domain.
            "GRAFANA_URL": public_url(GRAFANA),
            # Optional shared variables: the Watchdog's dead man's switch, Alertmanager's own address.
            "HEARTBEAT_URL": shared.HEARTBEAT_URL,
            "ALERTMANAGER_EXTERNAL_URL": shared.ALERTMANAGER_EXTERNAL_URL,
            **RUN_AS_ROOT_FOR_VOLUME,
        },
    )

    grafana_data = volume("grafana-data")
    grafana = service(
        GRAFANA,
        **built("grafana", ["/grafana/**"]),
        deploy=deploy,
        healthcheck="/api/health",
        healthcheckTimeout=120,
        volumeMounts={"/var/lib/grafana": grafana_data},
        env={
            "PORT": "3000",
            "GF_SECURITY_ADMIN_PASSWORD": shared.GRAFANA_ADMIN_PASSWORD,
            "PROMETHEUS_INTERNAL_URL": private_url(PROMETHEUS, 9090),
            "LOKI_INTERNAL_URL": private_url(LOKI, 3100),
            "TEMPO_INTERNAL_URL": private_url(TEMPO, 3200),
            "ALERTMANAGER_INTERNAL_URL": private_url(ALERTMANAGER, 9093),  # silences from Grafana
            **RUN_AS_ROOT_FOR_VOLUME,
        },
    )

    loki_data = volume("loki-data")
    loki = service(
        LOKI,
        **built("compose", ["/compose/loki.Dockerfile", "/compose/loki.yaml"], "loki.Dockerfile"),
        deploy=deploy,
        healthcheck="/ready",
        healthcheckTimeout=120,
        volumeMounts={"/loki": loki_data},
        env={"PORT": "3100", **RUN_AS_ROOT_FOR_VOLUME},
    )

    tempo_data = volume("tempo-data")
    tempo = service(
        TEMPO,
        **built("compose", ["/compose/tempo.Dockerfile", "/compose/tempo.yaml"], "tempo.Dockerfile"),
        deploy=deploy,
        healthcheck="/ready",
        healthcheckTimeout=120,
        volumeMounts={"/var/tempo": tempo_data},
        env={"PORT": "3200", **RUN_AS_ROOT_FOR_VOLUME},
    )

    return project(
        "gatewayz-observability",
        resources=[
            exporter,
            prometheus_data,
            prometheus,
            alertmanager_data,
            alertmanager,
            grafana_data,
            grafana,
            loki_data,
            loki,
            tempo_data,
            tempo,
        ],
    )
