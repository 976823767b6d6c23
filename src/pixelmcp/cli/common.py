"""What every CLI command shares: settings from flags and environment, and clean exits."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from pydantic import ValidationError


class CommandParser(argparse.ArgumentParser):
    """A command's parser whose flags may be made on first use (`pending`): a tool command's come from the tool's
    signature, whose import costs most of a second, so they are made only when that command runs or shows its
    help, never for `pixelmcp serve`."""

    pending: Callable[[argparse.ArgumentParser], None] | None = None

    def parse_known_args(self, args=None, namespace=None):
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending(self)
        return super().parse_known_args(args, namespace)


def add_settings_flags(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """The settings flags, which work before the command (`pixelmcp --profile tiny generate ...`, `top`) and after
    it: a command's own flags leave the value alone unless given, so either place counts."""
    default = None if top else argparse.SUPPRESS
    parser.add_argument("--profile", choices=["default", "tiny"], default=default,
                        help="model profile (env PIXELMCP_PROFILE)")
    parser.add_argument("--config", metavar="TOML", default=default, help="settings file (env PIXELMCP_CONFIG)")
    parser.add_argument("--output-dir", metavar="DIR", default=default,
                        help="where images are saved (env PIXELMCP_OUTPUT_DIR)")
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], default=default,
                        help="env PIXELMCP_LOG_LEVEL")


def load(args: argparse.Namespace, **overrides):
    """Settings from the environment and the TOML file, with the command's flags on top."""
    from pixelmcp.config import load_settings

    if getattr(args, "config", None):
        os.environ["PIXELMCP_CONFIG"] = args.config
    try:
        return load_settings(profile=args.profile, output_dir=args.output_dir, log_level=args.log_level, **overrides)
    except ValidationError as e:
        fail("invalid configuration:\n" + "\n".join(_described(error) for error in e.errors()))
    except ValueError as e:
        fail(str(e))


#: Settings whose values must never be printed, not even when they are refused.
_SECRETS = {"http_token"}


def _described(error: dict) -> str:
    """One refused setting: where, why, and the value given (unless it is a secret)."""
    where = ".".join(str(part) for part in error["loc"]) or "settings"
    message = error["msg"].removeprefix("Value error, ")
    shown = "" if error["loc"][:1] and error["loc"][0] in _SECRETS or "input" not in error else (
        f" (given: {error['input']!r})")
    return f"- {where}: {message}{shown}"


def fail(message: str, code: int = 1):
    """Exit with a message on stderr (no traceback: the message says what to do)."""
    print(f"pixelmcp: {message}", file=sys.stderr)
    sys.exit(code)
