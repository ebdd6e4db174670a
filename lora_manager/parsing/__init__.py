"""Sidecar dialects behind one interface; ``parse_sidecar`` is the entry point.

This package never imports SQLAlchemy: it turns bytes into pydantic records.
"""
