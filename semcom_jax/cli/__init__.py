"""The ``semcom-jax`` command (``main``) and its quick benchmark (``bench``)."""

from semcom_jax.cli.main import main

__all__ = ["main"]
