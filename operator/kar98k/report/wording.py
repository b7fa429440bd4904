"""Sentences for figures that carry a bound, shared by the HTML report and the console summary,
so both say the same thing: a figure is never shown more exact than it is."""

from __future__ import annotations

from kar98k.results import RunSummary


def delivered_text(s: RunSummary) -> str:
    """E.g. '101.0 % (±2σ of Poisson arrivals: ±1.4 %)'; '–' when nothing was asked."""
    if s.delivered is None:
        return "–"
    return f"{s.delivered.ratio * 100:.1f} % ({delivered_bound_text(s)})"


def delivered_bound_text(s: RunSummary) -> str:
    """How exact the delivered ratio is: what the arrivals alone put on it, and whether dead
    pods' unreported sends make it a lower bound."""
    d = s.delivered
    if d is None:
        return "the curve asked for nothing"
    if d.arrival == "poisson":
        bound = f"±2σ of Poisson arrivals: ±{d.bound * 100:.1f} %"
    else:
        bound = f"uniform arrivals: exact to ±{d.bound * 100:.2f} %"
    return bound + ("; a lower bound" if s.unaccounted_max else "")


def unaccounted_text(s: RunSummary) -> str | None:
    """Why and by how much the totals are a lower bound; None when they are complete."""
    if not s.unaccounted_max:
        return None
    who = ", ".join(s.unaccounted_pods)
    return (
        f"totals are a lower bound: up to {s.unaccounted_max:,} more requests may have been "
        f"sent unreported by {who} (died after its last stats pull)"
    )
