"""The corpus dashboard as one self-contained HTML page (inline CSS and SVG, no script, no CDN).

``spinlens corpus report`` writes it for a batch folder (``render``); the web app shows the same
section in its own page at /corpus, for its stored history, with a filter form
(``render_section``, ``stylesheet``; see ``history``).
"""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from spinlens.corpus import charts
from spinlens.corpus.queries import Dashboard
from spinlens.version import __version__

# What stands for a missing published date (queries.py: the day the article was crawled).
CRAWL_DATE = "the day it was crawled"


@lru_cache(maxsize=1)
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("spinlens.corpus", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )


def render(dashboard: Dashboard, *, title: str) -> str:
    """The self-contained page (its styles inline)."""
    return _template("corpus.html.j2", dashboard, title)


def render_section(
    dashboard: Dashboard,
    *,
    title: str,
    form_action: str | None = None,
    notice: str | None = None,
    error: str | None = None,
    date_fallback: str = CRAWL_DATE,
) -> Markup:
    """The dashboard as a section of another page, which links ``stylesheet()``: a filter form
    that submits to ``form_action``, a ``notice`` (what was left out) or an ``error`` (the
    filters were refused: the form alone is shown); ``date_fallback`` says which date stands
    for a missing published date."""
    html = _template(
        "dashboard.html.j2", dashboard, title, form_action, notice, error, date_fallback
    )
    return Markup(html)  # built escaped


def stylesheet() -> str:
    """The dashboard's CSS, for a page that links it rather than inlining it."""
    return (files("spinlens.corpus") / "templates" / "corpus.css").read_text(encoding="utf-8")


def _template(
    name: str,
    dashboard: Dashboard,
    title: str,
    form_action: str | None = None,
    notice: str | None = None,
    error: str | None = None,
    date_fallback: str = CRAWL_DATE,
) -> str:
    """Untrusted text (titles, sites, narratives) is escaped by the templates and by the chart
    code."""
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
    return (
        _environment()
        .get_template(name)
        .render(
            d=dashboard,
            charts={name: Markup(svg) for name, svg in chart_svgs.items()},  # built escaped
            title=title,
            form_action=form_action,
            notice=notice,
            error=error,
            date_fallback=date_fallback,
            version=__version__,
        )
    )
