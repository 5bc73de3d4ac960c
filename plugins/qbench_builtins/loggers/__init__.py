"""The built-in loggers: ``csv`` (log.csv, the default), ``tensorboard``, ``wandb``, ``mlflow``.

Each tracker's package is imported in ``start`` only, so listing loggers or
running without them never imports it.
"""
