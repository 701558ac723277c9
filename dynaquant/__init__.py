"""Command line and Python client for the dynaquant service."""
