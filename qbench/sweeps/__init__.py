"""``qbench sweep``: a study as a grid of runs, planned, checked, run in parallel or on Slurm, resumable.

The pieces, each in its own module:
  spec      the sweep file (TOML): its keys and their shape
  ladder    rate ladders: each quantizer's options at common rates
  points    the Cartesian product of grid, zip groups, ladder rates and seeds, per quantizer
  plan      every point's recipe, identity and bits per position, checked before anything trains
  existing  run directories already in the output folder: done, failed, interrupted; point locks
  estimate  time estimates from finished runs, else a rough constant
  render    the dry-run listing
  launch    points -> tasks -> a launcher
  worker    one point in one process: skip, resume or train it
  local     the local launcher: parallel subprocesses, cores divided between them
  slurm     the Slurm launcher through submitit (imported only when used)
  slurm_request  asking Slurm before submitting (sbatch --test-only, accounting) and about requeues
  progress  one progress display for the whole sweep

Every point becomes an ordinary run directory written by
``qbench.comparison.runner.run_comparison(..., sweep={"name", "file", "point"})``.
"""

from qbench.sweeps.plan import Plan, build_plan
from qbench.sweeps.spec import SweepSpec, load_sweep

__all__ = ["Plan", "SweepSpec", "build_plan", "load_sweep"]
