"""The comparison floor: ``qbench run``, several quantizers under one recipe.

  runner     train and score each quantizer, write its run directory, print the table
  preflight  the one validation pass before training: every user error, one line each
  tracking   the loggers a recipe names, fed by the engine's callbacks

Imports the engine, the run directory, the recipe and the platform; ``qbench.sweeps`` sits above it.
"""
