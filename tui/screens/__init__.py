"""Screens pushed over the dashboard: a run's machines, an event's JSON."""
