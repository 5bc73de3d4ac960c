"""The run-directory floor: what one run leaves on disk, and how it is read back.

  directory   ``RunDirectory``: config.toml, metrics.json, log.csv, recon.png, all written atomically
              (torch-free)
  checkpoint  training checkpoints: everything needed to continue a run bit for bit
  grid        reconstruction grids (PIL), shared by the run directory and the report

Imports ``qbench.recipe``, ``qbench.platform`` and the base modules; never the engine or the report.
"""
