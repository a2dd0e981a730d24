"""Corpus dashboards: what a batch folder (or the web app's history) says, by site and over time.

``data`` reads the tables, ``queries`` aggregates them, ``charts`` draws inline SVG and
``report`` renders the self-contained page.
"""
