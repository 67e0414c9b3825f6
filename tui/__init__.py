"""The Textual application and the command-line entry point.

Kept import-light on purpose: ``aumwatch --help`` and the scriptable commands must not pay
for importing Textual or the Azure SDKs.
"""
