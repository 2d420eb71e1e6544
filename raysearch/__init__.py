"""raysearch: hyperparameter search for image-inpainting generators and critics on Ray."""

from raysearch.errors import ConfigError, DataError, RaysearchError

__all__ = ["ConfigError", "DataError", "RaysearchError"]
