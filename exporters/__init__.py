"""Exporters: one module per format, registered by name and aliases."""
