"""Nexus: audits identity and device drift across enterprise systems."""

__version__ = "0.1.0"
