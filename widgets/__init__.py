"""Reusable Textual widgets that know nothing of Azure: they take plain data."""
