"""Beam's counters for ualm's units: a unit summary as counters, the totals a finished pipeline
reports, and the one line per stage printed from them."""

from __future__ import annotations

from typing import Any


def counters_of(summary: dict[str, Any]) -> dict[str, int]:
    """A unit summary as integer counters: counts as they are, seconds as milliseconds, and
    rejection reasons as `rejected:<reason>`."""
    counters: dict[str, int] = {}
    for name, value in summary.items():
        if isinstance(value, bool) or name in ("unit", "bucket", "shard"):
            continue
        if isinstance(value, int):
            counters[name] = value
        elif isinstance(value, float) and name.endswith("seconds"):
            counters[f"{name}_ms"] = round(value * 1000)
        elif name == "reasons" and isinstance(value, dict):
            counters.update({f"rejected:{reason}": int(n) for reason, n in value.items()})
    return counters


def query_counters(result: Any, label: str) -> dict[str, int]:
    from apache_beam.metrics.metric import MetricsFilter

    try:
        query = result.metrics().query(MetricsFilter().with_namespace(label))
    except (NotImplementedError, AttributeError):  # runners without metric queries
        return {}
    totals: dict[str, int] = {}
    for counter in query["counters"]:
        value = counter.committed if counter.committed is not None else counter.attempted
        totals[counter.key.metric.name] = totals.get(counter.key.metric.name, 0) + int(value or 0)
    return totals


def format_metrics(label: str, counters: dict[str, int]) -> str:
    """One line per stage: units, kept and rejected inputs (by reason), hours kept."""
    parts = [f"{counters.get('units', 0)} units"]
    if counters.get("failed_units"):
        parts.append(f"{counters['failed_units']} failed")
    if "inputs" in counters:
        parts.append(f"inputs kept {counters.get('kept_inputs', 0)}, "
                     f"rejected {counters.get('rejected_inputs', 0)}")
    reasons = sorted((k.split(":", 1)[1], v) for k, v in counters.items()
                     if k.startswith("rejected:"))
    if reasons:
        parts.append("(" + ", ".join(f"{r} {n}" for r, n in reasons) + ")")
    for name in ("kept_seconds_ms", "seconds_ms"):
        if name in counters:
            parts.append(f"{counters[name] / 3.6e6:.3f} h kept")
            break
    for name in ("samples", "duplicates", "frames"):
        if name in counters:
            parts.append(f"{name} {counters[name]}")
    return f"[beam metrics · {label.split('-', 1)[0]}] " + " · ".join(parts)
