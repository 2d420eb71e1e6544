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


def first_line(error: BaseException, limit: int = 300) -> str:
    """The first line of an error's message, or its type's name; cut at `limit` characters.

    Library errors (pyarrow's, a missing libjvm's) can run to pages; a user's one-line error quotes this.
    """
    lines = str(error).strip().splitlines()
    line = lines[0] if lines else type(error).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."
