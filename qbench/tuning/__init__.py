"""``qbench tune``: every quantizer gets the same hyperparameter-search budget, selected on validation data.

The pieces, each in its own module (docs/tuning.md is the protocol):
  spec      the tune file (TOML): its keys and their shape
  space     one study's parameters: the quantizer's declared space at a rate plus the shared knobs
  plan      one study per (quantizer, rate), every space checked; trial recipes (scored on val)
  studies   Optuna: storage, sampler, pruner, studies, trial counts
  trial     one trial: a training process, its held-out curve reported, pruned or told
  claim     the next trial to start, under a lock: stale trials failed and resumed, exact counts
  slots     a worker's loop: N trials at a time until every study is settled
  progress  finished / planned trials and the best so far
  run       the command end to end
  worker    the loop as a Slurm job runs it
  slurm     the Slurm launcher (submitit; imported only when used)
  best      the best configurations as recipe overlays, a tuned ladder and a re-training sweep
  declare   the re-training sweep's [report] table: vs GSQ, the tuning gain, verdict flips, rank agreement
  report    the tuning report: chosen options, trial states, spread, importance, plots
  cost      what a study cost, from its storage: trials, steps, trial-hours, busy wall time
  command   ``qbench tune`` itself: plan listing, checks, run, summary (the CLI imports it on use)

The declaration side (what a plugin writes) is ``qbench.search_space``.
"""

from qbench.tuning.plan import TunePlan, build_plan
from qbench.tuning.spec import TuneSpec, load_tune

__all__ = ["TunePlan", "TuneSpec", "build_plan", "load_tune"]
