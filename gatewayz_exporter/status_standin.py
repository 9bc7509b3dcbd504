"""A stand-in for the backend's public status API, answering as its ``status_page.py`` routes do.

Used by ``--demo`` and by the tests. It holds rows as the database views
return them (``provider_health_current``, ``model_status_current``, the
``model_health_incidents`` table, the checks of the last 24 h) and formats them
the way each route does: the same keys, the same rounding, ``null`` where the
route passes one through, ``{"status": "unknown", ...}`` without data, and 422
for a ``limit`` over the route's maximum.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

Row = dict[str, Any]

MODELS_LIMIT_MAX = 1000
INCIDENTS_LIMIT_MAX = 100


def iso(seconds: float) -> str:
    """A timestamp as PostgREST sends a ``timestamptz``."""
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat()


def provider_view_row(provider: str, gateway: str | None, **values: Any) -> Row:
    """A ``provider_health_current`` row; ``status_indicator`` follows the view's cut-offs unless given."""
    row: Row = {
        "provider": provider,
        "gateway": gateway,
        "total_models": 10,
        "healthy_models": 10,
        "offline_models": 0,
        "avg_uptime_24h": 99.5,
        "avg_uptime_7d": 99.8,
        "avg_response_time_ms": 250.4,
        "last_checked_at": "2026-11-30T10:00:00.123456+00:00",
        "total_usage_24h": 100,
    }
    row.update(values)
    if "status_indicator" not in values:
        uptime = row["avg_uptime_24h"] or 0
        row["status_indicator"] = (
            "operational" if uptime >= 99 else "degraded" if uptime >= 95 else "major_outage"
        )
    return row


def model_view_row(provider: str, gateway: str | None, model: str, **values: Any) -> Row:
    """A ``model_status_current`` row; ``status_indicator`` follows the view's CASE unless given."""
    row: Row = {
        "provider": provider,
        "model": model,
        "gateway": gateway,
        "monitoring_tier": "standard",
        "last_status": "success",
        "uptime_percentage_24h": 100.0,
        "uptime_percentage_7d": 99.95,
        "uptime_percentage_30d": 99.9,
        "average_response_time_ms": 300.0,
        "last_called_at": "2026-11-30T10:00:00+00:00",
        "last_success_at": "2026-11-30T10:00:00+00:00",
        "last_failure_at": None,
        "circuit_breaker_state": "closed",
        "consecutive_failures": 0,
        "usage_count_24h": 5,
        "is_enabled": True,
        "active_incidents_count": 0,
    }
    row.update(values)
    if "status_indicator" not in values:
        uptime = row["uptime_percentage_24h"]
        row["status_indicator"] = (
            "offline"
            if row["circuit_breaker_state"] == "open"
            else "operational"
            if uptime is not None and uptime >= 99.9
            else "degraded"
            if uptime is not None and uptime >= 95
            else "partial_outage"
            if uptime is not None and uptime >= 50
            else "major_outage"
        )
    return row


def incident_row(number: int, provider: str, started: float, **values: Any) -> Row:
    """A ``model_health_incidents`` row."""
    row: Row = {
        "id": number,
        "provider": provider,
        "model": f"{provider}-model",
        "gateway": "openrouter",
        "incident_type": "outage",
        "severity": "high",
        "status": "active",
        "started_at": iso(started),
        "resolved_at": None,
        "duration_seconds": None,
        "error_message": "upstream 503",
        "error_count": 3,
        "resolution_notes": None,
    }
    row.update(values)
    return row


@dataclass
class StatusData:
    """What the backend's database holds, as the status routes read it."""

    providers: list[Row] = field(default_factory=list)  # provider_health_current
    models: list[Row] = field(default_factory=list)  # model_status_current, in any order
    incidents: list[Row] = field(default_factory=list)  # model_health_incidents, every status
    checks_total: int = 0  # model_health_history rows of the last 24 h
    checks_successful: int = 0
    tier_counts: dict[str, int] = field(default_factory=dict)


def _validation_error(limit: int, maximum: int, raw: str) -> tuple[int, object]:
    """FastAPI's 422 for a query parameter over its ``le``."""
    return 422, {
        "detail": [
            {
                "type": "less_than_equal",
                "loc": ["query", "limit"],
                "msg": f"Input should be less than or equal to {maximum}",
                "input": raw,
                "ctx": {"le": maximum},
            }
        ]
    }


def _int_query(query: dict[str, list[str]], name: str, default: int) -> tuple[int, str]:
    raw = query.get(name, [str(default)])[-1]
    return int(raw), raw


def answer(data: StatusData, path: str, query_string: str, now: float) -> tuple[int, object] | None:
    """The status and JSON body a status route answers, or None for a path that is not one."""
    query = parse_qs(query_string)
    if path == "/v1/status/":
        return 200, _overall(data, now)
    if path == "/v1/status/providers":
        return 200, [_provider(p) for p in sorted(data.providers, key=lambda p: p["provider"])]
    if path == "/v1/status/models":
        limit, raw = _int_query(query, "limit", 100)
        if limit > MODELS_LIMIT_MAX:
            return _validation_error(limit, MODELS_LIMIT_MAX, raw)
        offset, _ = _int_query(query, "offset", 0)
        rows = sorted(data.models, key=lambda m: -m["usage_count_24h"])[offset : offset + limit]
        return 200, [_model(m) for m in rows]
    if path == "/v1/status/incidents":
        limit, raw = _int_query(query, "limit", 50)
        if limit > INCIDENTS_LIMIT_MAX:
            return _validation_error(limit, INCIDENTS_LIMIT_MAX, raw)
        offset, _ = _int_query(query, "offset", 0)
        rows = [i for i in data.incidents if "status" not in query or i["status"] == query["status"][-1]]
        rows.sort(key=lambda i: i["started_at"], reverse=True)
        return 200, [_incident(i, now) for i in rows[offset : offset + limit]]
    if path == "/v1/status/stats":
        return 200, _stats(data, now)
    return None


def _overall(data: StatusData, now: float) -> object:
    providers = data.providers
    if not providers:
        return {"status": "unknown", "message": "Status data not available", "timestamp": iso(now)}
    total = sum(p["total_models"] for p in providers)
    healthy = min(sum(p["healthy_models"] for p in providers), total)
    offline = sum(p["offline_models"] for p in providers)
    if total == 0:
        status, message = "unknown", "No models monitored"
    elif offline == 0:
        status, message = "operational", "All Systems Operational"
    elif offline < total * 0.1:
        status, message = "degraded", "Partial Service Degradation"
    else:
        status, message = "major_outage", "Major Service Disruption"
    gateways: dict[str, bool] = {}
    for p in providers:
        gateway = p.get("gateway")
        if gateway and gateway.strip():
            gateways[gateway] = gateways.get(gateway, False) or p.get("status_indicator") == "operational"
    healthy_gateways = sum(gateways.values())
    return {
        "status": status,
        "status_message": message,
        "uptime_percentage": round((healthy / total * 100) if total > 0 else 0, 2),
        "total_models": total,
        "healthy_models": healthy,
        "offline_models": offline,
        "total_providers": len(providers),
        "total_gateways": len(gateways),
        "healthy_gateways": healthy_gateways,
        "gateway_health_percentage": round(healthy_gateways / len(gateways) * 100, 1) if gateways else 0.0,
        "active_incidents": sum(1 for i in data.incidents if i["status"] == "active"),
        "last_updated": iso(now),
    }


def _provider(p: Row) -> Row:
    return {
        "name": p["provider"],
        "gateway": p["gateway"],
        "status": p["status_indicator"],
        "uptime_24h": round(p["avg_uptime_24h"] or 0, 2),
        "uptime_7d": round(p["avg_uptime_7d"] or 0, 2),
        "total_models": p["total_models"],
        "healthy_models": min(p["healthy_models"], p["total_models"]),
        "offline_models": p["offline_models"],
        "avg_response_time_ms": round(p["avg_response_time_ms"] or 0, 0),
        "last_checked": p["last_checked_at"],
    }


def _model(m: Row) -> Row:
    return {
        "model_id": m["model"],
        "provider": m["provider"],
        "gateway": m["gateway"],
        "status": m["status_indicator"],
        "tier": m["monitoring_tier"],
        "uptime_24h": round(m["uptime_percentage_24h"] or 0, 2),
        "uptime_7d": round(m["uptime_percentage_7d"] or 0, 2),
        "uptime_30d": round(m["uptime_percentage_30d"] or 0, 2),
        "avg_response_time_ms": round(m["average_response_time_ms"] or 0, 0),
        "last_checked": m["last_called_at"],
        "last_success": m["last_success_at"],
        "last_failure": m["last_failure_at"],
        "circuit_breaker_state": m["circuit_breaker_state"],
        "active_incidents": m["active_incidents_count"],
    }


def _duration_human(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h {(seconds % 3600) // 60}m"
    return f"{seconds // 86400}d {(seconds % 86400) // 3600}h"


def _incident(i: Row, now: float) -> Row:
    if i["resolved_at"]:
        duration = i["duration_seconds"]
    else:
        duration = int(now - datetime.fromisoformat(i["started_at"]).timestamp())
    return {
        "id": i["id"],
        "provider": i["provider"],
        "model": i["model"],
        "gateway": i["gateway"],
        "type": i["incident_type"],
        "severity": i["severity"],
        "status": i["status"],
        "started_at": i["started_at"],
        "resolved_at": i["resolved_at"],
        "duration_seconds": duration,
        "duration_human": _duration_human(duration) if duration else None,
        "error_message": i["error_message"],
        "error_count": i["error_count"],
        "resolution_notes": i.get("resolution_notes"),
    }


def _stats(data: StatusData, now: float) -> Row:
    total_incidents = len(data.incidents)
    active = sum(1 for i in data.incidents if i.get("status") == "active")
    total, successful = data.checks_total, data.checks_successful
    return {
        "monitoring": {
            "total_models": sum(data.tier_counts.values()),
            "critical_tier": data.tier_counts.get("critical", 0),
            "popular_tier": data.tier_counts.get("popular", 0),
            "standard_tier": data.tier_counts.get("standard", 0),
            "on_demand_tier": data.tier_counts.get("on_demand", 0),
        },
        "incidents": {
            "total_all_time": total_incidents,
            "active": active,
            "resolved": total_incidents - active,
        },
        "checks_24h": {
            "total": total,
            "successful": successful,
            "failed": total - successful,
            "success_rate": round(successful / total * 100, 2) if total > 0 else None,
            "monitoring_active": total > 0,
        },
        "last_updated": iso(now),
    }
