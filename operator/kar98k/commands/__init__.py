"""The `kar98k` sub-commands, one module each (listed in kar98k.cli.COMMANDS).

Each module defines `register(subparsers: Subparsers) -> None`, which adds a parser and sets
`handler` (a `Handler`) as a default. Exit codes: 0 success, 1 the input is wrong or the run
failed, 2 usage errors or unreadable input.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeAlias

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Handler: TypeAlias = Callable[[argparse.Namespace], int]

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
