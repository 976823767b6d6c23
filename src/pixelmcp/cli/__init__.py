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

    root = argparse.ArgumentParser(prog="pixelmcp", description="MCP server and CLI for making and understanding "
                                                               "images on your own GPU.")
    root.add_argument("--version", action="version", version=f"pixelmcp {__version__}")
    sub = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve.add_commands(sub)
    tools.add_commands(sub)
    catalog.add_commands(sub)
    doctor.add_commands(sub)
    clients.add_commands(sub)
    return root


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    args.run(args)
