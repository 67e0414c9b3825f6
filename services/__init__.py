"""Everything in aumwatch that is not UI: domain rules, Azure sources, the local stand-in.

Nothing under this package imports Textual, Rich, ``tui`` or ``widgets`` (an import-linter
contract in pyproject.toml enforces it).
"""
