"""aumwatch benchmarks (issue 6): ``python -m bench`` or ``make bench``.

Each figure of the issue is one module (``fig_*.py``) exposing ``run(quick: bool) ->
FigureResult``. :mod:`bench.__main__` runs them, writes ``bench/results/<timestamp>.json`` and
``bench/results/latest.json`` and prints a table. Nothing here is imported by the product.
"""
