"""The report floor: tables, statistics and figures from finished run directories.

Torch-free: ``qbench report`` reads files, it never builds a model.

  tables    ``qbench report``: runs grouped into comparison tables, ``build_report``
  rows      one run directory -> one table row (also behind ``qbench.load_runs``)
  sections  a report's parts: comparison tables, baseline and fit sections (dataclasses)
  columns   which metric columns a table shows, number formats
  curves    runs -> rate-distortion curves and comparable cells
  stats     seed means with t intervals, paired differences
  multiplicity  Holm's correction within a family, and the verdict word of a comparison
  studies   what a study declares it will claim: families of comparisons and criteria (``[report]``)
  contrasts the comparisons a family names, computed from the runs
  criteria  a study's criteria, evaluated on its families' adjusted results
  agreement criteria across two readings: verdicts that flip, rank correlation of two sides' means
  claim     one claim: a row of ``claims.csv``, the only source of verdict words
  claims    every claim of a report, and the sections that print them
  runinfo   what a run directory records beyond its row (the full recipe, the evaluation set)
  baseline  ``--baseline``: paired differences and Bjøntegaard deltas against one quantizer
  bd        the Bjøntegaard delta itself
  ceiling   the gap from the unquantized ceiling (``identity``) to each curve
  noise     evaluation noise (standard error over images) against seed noise
  scaling   the GSQ paper's scaling law and its fit
  lawcheck  what a law fit knows: bootstrap, rival optima, lack of fit, a simpler rival model
  fit       ``--fit``: the law fitted to each D x V grid
  figures   which figures a table gets; plots draws them (matplotlib, Agg)
  legend    how a plot names and styles its series (one label, colour and line style each)
  publish   summary.csv, README.md and the figures; output stages them atomically

Imports ``qbench.rundir``, ``qbench.recipe`` and ``qbench.platform``; never the engine.
"""
