"""The local Azure stand-in: Resource Manager, Resource Graph and events into Azurite.

Its extra dependencies (duckdb-kql, trustme) come with ``pip install aumwatch[standin]``.
"""
