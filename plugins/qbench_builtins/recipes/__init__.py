"""Named recipes shipped with qbench (TOML files read as package data)."""
