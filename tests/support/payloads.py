"""Hypothesis strategies for what the API may answer: any JSON, and provider records whose
known fields take odd values as often as good ones."""

from __future__ import annotations

from hypothesis import strategies as st

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.integers(10**300, 10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)
field_values = {
    "slug": st.text(min_size=0, max_size=20) | json_scalars,
    "name": st.text(max_size=20) | json_scalars,
    "base_url": st.text(max_size=20) | st.none(),
    "health_status": st.sampled_from(["healthy", "DOWN", "degraded", "unknown", "weird"]) | json_scalars,
    "is_active": json_scalars,
    "average_response_time_ms": json_scalars,
    "supports_vision": json_scalars,
    "last_health_check_at": st.sampled_from(["2025-12-17T04:09:11.817Z", "2025-12-17T04:09:11+00:00"])
    | json_scalars,
    "metadata": json_values
    | st.fixed_dictionaries(
        {"rate_limit": json_scalars, "max_tokens": json_scalars, "supported_models": json_values}
    ),
}
provider_records = st.fixed_dictionaries({}, optional=field_values) | json_values
provider_payloads = st.lists(provider_records, max_size=12)
