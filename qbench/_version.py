"""qbench's version: one place, imported by the facade and by what records provenance."""

__version__ = "0.2.0"
