"""Railway Infrastructure as Code for the provider metrics exporter.

The same service as railway.toml, for Railway's IaC (evaluated by the Railway
CLI, and by tests/test_deploy.py). ADMIN_KEY is a reference to a shared
variable set in the Railway dashboard: it has no value here.
"""

from railway_sdk import create_railway_context, define_railway, github, project, service

REPOSITORY = "gatewayz/provider-metrics-exporter"


@define_railway
def main(ctx=None):
    ctx = ctx or create_railway_context()
    exporter = service(
        "provider-metrics-exporter",
        source=github(REPOSITORY, branch="main"),
        build={"builder": "DOCKERFILE", "dockerfilePath": "Dockerfile"},
        deploy={
            "restartPolicyType": "ON_FAILURE",
            "restartPolicyMaxRetries": 10,
            "drainingSeconds": 15,
        },
        healthcheck="/healthz",
        healthcheckTimeout=60,
        env={
            "GATEWAY_API_URL": "https://api.gatewayz.ai",
            "SCRAPE_INTERVAL": "60",
            # Railway routes and health-checks PORT; the exporter listens on it when
            # METRICS_PORT is unset. Pinned to the seed's port so Prometheus finds it.
            "PORT": "8001",
            "ADMIN_KEY": ctx.shared.ADMIN_KEY,
        },
    )
    return project("gatewayz-observability", resources=[exporter])
