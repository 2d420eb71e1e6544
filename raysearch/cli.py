"""What every `python -m raysearch.*` command shares: a parser whose errors are one line.

argparse prints its usage block before an error; the project promises one
line per mistake (`error: ...`, exit status 2), so the usage stays behind
`--help`.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn


class ArgumentParser(argparse.ArgumentParser):
    """argparse.ArgumentParser whose errors are one line, `error: MESSAGE (see --help)`, and exit status 2."""

    def error(self, message: str) -> NoReturn:
        one_line = " ".join(message.split())
        self.exit(2, f"error: {one_line} (see {self.prog} --help)\n")
