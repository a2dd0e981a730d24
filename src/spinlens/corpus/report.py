"""The corpus dashboard as one self-contained HTML page (inline CSS and SVG, no script, no CDN).

``spinlens corpus report`` writes it for a batch folder; the web app serves it at /corpus for
its stored history, with a filter form (``form_action``).
"""

from __future__ import annotations

from functools import lru_cache

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from spinlens.corpus import charts
from spinlens.corpus.queries import Dashboard
from spinlens.version import __version__


@lru_cache(maxsize=1)
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("spinlens.corpus", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )


def render(dashboard: Dashboard, *, title: str, form_action: str | None = None) -> str:
    """The page; untrusted text (titles, sites, narratives) is escaped by the template and by
    the chart code."""
    chart_svgs = {
        "techniques_by_site": charts.heatmap(
            "techniques-by-site", dashboard.techniques_by_site, percent=True
        ),
        "techniques_over_time": charts.stacked_bars(
            "techniques-over-time", dashboard.techniques_over_time
        ),
        "narratives_over_time": charts.stacked_bars(
            "narratives-over-time", dashboard.narratives_over_time
        ),
        "narratives_by_site": charts.heatmap(
            "narratives-by-site", dashboard.narratives_by_site, percent=False
        ),
    }
    template = _environment().get_template("corpus.html.j2")
    return template.render(
        d=dashboard,
        title=title,
        charts={name: Markup(svg) for name, svg in chart_svgs.items()},  # built escaped
        form_action=form_action,
        version=__version__,
    )
