"""The platform floor: plugin loading and the generic machinery every layer above uses.

Torch-free: listing plugins and checking options never imports torch.

  plugins      a fresh pluggy manager per call, hook checks, provenance, the registries it feeds
  registry     a registry of specs with ``create``/``names``/``list`` (timm-style), lazy factories
  options      plugin options checked against the factory's annotations before anything is built
  progress     progress bars that suit a terminal and a log file
  strict_json  JSON without bare NaN/Infinity

Imports only the public base modules (``qbench.errors``, ``qbench.specs``, ``qbench.hookspecs``).
"""
