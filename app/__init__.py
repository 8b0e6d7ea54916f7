"""Rapport, a headless CRM."""

__version__ = "0.1.0"
