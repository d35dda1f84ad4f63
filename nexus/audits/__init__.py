"""Audit requests, their storage in Redis, and the reports they produce."""
