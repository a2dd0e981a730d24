"""Corpus runs: many documents analysed into Parquet tables that a killed run can resume.

``tables`` holds the schemas and the rows of an analysis, ``shards`` the output folder and its
manifest, ``local`` the multiprocess engine behind ``spinlens batch``.
"""
