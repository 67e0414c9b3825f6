"""Scenario files for the local Azure stand-in (package data; see README.md here)."""
