"""The recipe floor: what a run is asked to do and what identifies it.

Torch-free, so that a configuration error is reported before torch is imported.

  config    typed recipe dataclasses loaded from TOML, ``--set KEY=VALUE`` overrides
  checks    the ranges a recipe's values must lie in, all problems at once
  identity  recipe hash, effective options and plugin provenance: one configuration's hash
  overlay   recipe files that extend another recipe (``extends = BASE``) and merge into it
  per_quantizer  a quantizer's own recipe keys (``optim.*``, ``model.latent_dim``) in its table

Imports the base modules and ``qbench.platform``.
"""
