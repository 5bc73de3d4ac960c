"""qbench's built-in plugins, written only against the public ``qbench`` API."""
