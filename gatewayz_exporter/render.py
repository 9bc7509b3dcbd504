"""Families to exposition text: the one renderer for /metrics and ``--once``.

Writes the text format 0.0.4 or OpenMetrics 1.0 (without ``# EOF``) exactly as
prometheus_client's ``generate_latest`` would for the same families (the tests
hold it as the oracle, and ``tests/golden/`` holds the seed's exposition).
``render_providers`` writes the per-provider families column by column, each
distinct value formatted once and each slug escaped once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from operator import itemgetter

from .collector import INFO_DOC, INFO_NAME, PROVIDER_GAUGES, Family
from .model import Provider


def format_value(value: float) -> str:
    """A sample value as prometheus_client spells it: Python's repr, except the infinities, NaN,
    and positive numbers of 10**6 or more, which go to exponent form sooner, as Go does."""
    value = float(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    text = repr(value)
    dot = text.find(".")
    if value > 0 and dot > 6:
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1 :]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return text


def escape(value: str) -> str:
    """A label value (or OpenMetrics HELP text) with backslash, newline and quote escaped."""
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value


class ValueText(dict[float, str]):
    """Sample value -> its exposition text, each distinct value formatted once per render.

    Keys compare as numbers, so ``True``, ``1`` and ``1.0`` share "1.0", as
    they should. ``-0.0`` would share "0.0"; the parser never produces it.
    """

    def __missing__(self, value: float) -> str:
        text = self[value] = format_value(value)
        return text


class LabelText(dict[str, str]):
    """Label value -> its escaped text, each distinct value escaped once per render."""

    def __missing__(self, value: str) -> str:
        text = self[value] = escape(value)
        return text


def header(name: str, sample: str, kind: str, documentation: str, openmetrics: bool) -> str:
    """The ``# HELP`` and ``# TYPE`` lines of one family."""
    if openmetrics:
        return f"# HELP {name} {escape(documentation)}\n# TYPE {name} {kind}\n"
    return f"# HELP {sample} {documentation}\n# TYPE {sample} {'gauge' if kind == 'info' else kind}\n"


def render_families(families: Sequence[Family], *, openmetrics: bool) -> bytes:
    """Families to exposition text, as UTF-8.

    Each family is encoded as soon as it is written, so the peak memory is
    one family's lines on top of the result.
    """
    chunks: list[bytes] = []
    lines: list[str] = []
    append = lines.append
    escaped: dict[str, str] = {}
    labels = LabelText()
    values = ValueText()
    for family in families:
        name, kind = family.name, family.kind
        sample = name + "_total" if kind == "counter" else name + "_info" if kind == "info" else name
        append(header(name, sample, kind, family.documentation, openmetrics))
        names = family.label_names
        if not names:
            for _, value in family.rows:
                append(f"{sample} {values[value]}\n")
        elif names == ("provider",):
            prefix = sample + '{provider="'
            for (slug,), value in family.rows:
                label = escaped.get(slug)
                if label is None:
                    label = escaped[slug] = escape(slug)
                append(f'{prefix}{label}"}} {values[value]}\n')
        else:
            # One template per family (label names sorted, as prometheus_client writes them);
            # each distinct label value escaped once.
            order = sorted(range(len(names)), key=names.__getitem__)
            template = sample + "{" + ",".join(f'{names[i]}="%s"' for i in order) + "} %s\n"
            pick: Callable[[tuple[str, ...]], tuple[str, ...]] = (
                itemgetter(*order) if len(order) > 1 else tuple  # itemgetter of one index is no tuple
            )
            label_text = labels.__getitem__
            for label_values, value in family.rows:
                append(template % (*map(label_text, pick(label_values)), values[value]))
        chunks.append("".join(lines).encode("utf-8"))
        lines.clear()
    return b"".join(chunks)


def render_providers(providers: Sequence[Provider], *, openmetrics: bool) -> tuple[bytes, ...]:
    """The per-provider families (the info family, then ``PROVIDER_GAUGES``), one bytes object each.

    The pieces are never joined: the server sends them one after another, so
    the exposition is not held twice while it is built.
    """
    values = ValueText()
    labels = [escape(p.slug) for p in providers]
    info = INFO_NAME + "_info"
    lines = [
        f'{info}{{base_url="{escape(p.base_url)}",name="{escape(p.name)}",provider="{label}",'
        f'site_url="{escape(p.site_url)}",status_page_url="{escape(p.status_page_url)}"}} 1.0\n'
        for p, label in zip(providers, labels, strict=True)
    ]
    chunks = [(header(INFO_NAME, info, "info", INFO_DOC, openmetrics) + "".join(lines)).encode("utf-8")]
    for gauge in PROVIDER_GAUGES:
        name = gauge.name
        column = [getattr(p, gauge.field) for p in providers]
        if gauge.item is not None:
            item = gauge.item
            column = [v[item] for v in column]
        prefix = name + '{provider="'
        lines = [
            f'{prefix}{label}"}} {values[value]}\n'
            for label, value in zip(labels, column, strict=True)
            if value is not None
        ]
        head = header(name, name, "gauge", gauge.documentation, openmetrics)
        chunks.append((head + "".join(lines)).encode("utf-8"))
    return tuple(chunks)
