"""The user-facing error types.

Every mistake a user can make (a YAML key, a CLI flag, a dataset, a checkpoint)
raises one of these with a single line naming the file, key or value and what is
allowed. The command-line entry points print that line and exit with status 2;
anything else is a bug and keeps its traceback.
"""


class RaysearchError(Exception):
    """Base of the errors meant for the user, not for a traceback."""


class ConfigError(RaysearchError, ValueError):
    """A config file, search space, override or CLI flag is invalid."""


class DataError(RaysearchError):
    """A dataset is missing, malformed or cannot be fetched."""


class CheckpointError(RaysearchError):
    """A checkpoint cannot be read or does not match the config."""
