"""BEAD: Background Enrichment for Anomaly Detection."""

__version__ = "0.1.0"
