"""The `pixelmcp` command.

    serve        run the MCP server (stdio, or streamable HTTP)
    generate     control  style  edit  extend  upscale  cutout
    ask          classify compare                         the tools, from a terminal
    models       pull     doctor  config                  set-up and housekeeping

Logs go to stderr only: on stdio, stdout belongs to the protocol.
"""

from __future__ import annotations

import argparse

from pixelmcp import __version__


def parser() -> argparse.ArgumentParser:
    from pixelmcp.cli import catalog, clients, doctor, serve, tools
    from pixelmcp.cli.common import CommandParser, add_settings_flags

    root = argparse.ArgumentParser(prog="pixelmcp", allow_abbrev=False,
                                   description="MCP server and CLI for making, editing and understanding images on "
                                               "your own GPU.")
    root.add_argument("--version", action="version", version=f"pixelmcp {__version__}")
    add_settings_flags(root, top=True)
    sub = root.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=CommandParser)
    serve.add_commands(sub)
    tools.add_commands(sub)
    catalog.add_commands(sub)
    doctor.add_commands(sub)
    clients.add_commands(sub)
    for command in sub.choices.values():
        command.allow_abbrev = False  # `--guid 5` is an error, not a guess; aliases are declared (--guidance)
    return root


def main(argv: list[str] | None = None) -> None:
    root = parser()
    args, unknown = root.parse_known_args(argv)
    if unknown:  # the command's own usage, not the top level's
        commands = next(a for a in root._actions if isinstance(a, argparse._SubParsersAction)).choices
        commands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    args.run(args)
