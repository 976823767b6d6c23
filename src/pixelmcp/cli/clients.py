"""`pixelmcp config CLIENT`: the configuration snippet for an MCP client, and where it goes."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
from pathlib import Path

from pixelmcp.cli.common import fail

CLIENTS = ("claude-desktop", "claude-code", "cursor", "vscode")


def add_commands(sub) -> None:
    config = sub.add_parser("config", help="print the MCP configuration snippet for a client")
    config.add_argument("client", choices=CLIENTS)
    config.add_argument("--profile", choices=["default", "tiny"], help="put PIXELMCP_PROFILE in the snippet")
    config.add_argument("--output-dir", metavar="DIR", help="put PIXELMCP_OUTPUT_DIR in the snippet")
    config.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="more environment variables")
    config.set_defaults(run=_config)


def command_path() -> str:
    """Absolute path of the installed `pixelmcp` command (clients do not inherit your shell's PATH)."""
    found = shutil.which("pixelmcp")
    if found:
        return str(Path(found).resolve())
    script = Path(sys.argv[0])
    if script.name == "pixelmcp" and script.exists():
        return str(script.resolve())
    return str(Path(sys.executable).with_name("pixelmcp"))


def config_file(client: str) -> str:
    system = platform.system()
    home = Path.home()
    if client == "claude-desktop":
        if system == "Darwin":
            return str(home / "Library/Application Support/Claude/claude_desktop_config.json")
        if system == "Windows":
            return str(Path(os.environ.get("APPDATA", home / "AppData/Roaming")) / "Claude/claude_desktop_config.json")
        return str(home / ".config/Claude/claude_desktop_config.json")
    if client == "cursor":
        return f"{home / '.cursor/mcp.json'} (all projects) or .cursor/mcp.json (this project)"
    if client == "vscode":
        return ".vscode/mcp.json in your workspace (or the user settings' mcp section)"
    return "(none: run the command below)"


def snippet(client: str, command: str, env: dict[str, str]) -> str:
    server = {"command": command, "args": ["serve"], **({"env": env} if env else {})}
    if client == "claude-code":
        flags = " ".join(f"-e {k}={v}" for k, v in env.items())
        return f"claude mcp add pixelmcp {flags + ' ' if flags else ''}-- {command} serve"
    if client == "vscode":
        return json.dumps({"servers": {"pixelmcp": {"type": "stdio", **server}}}, indent=2)
    return json.dumps({"mcpServers": {"pixelmcp": server}}, indent=2)


def _config(args: argparse.Namespace) -> None:
    env = {}
    if args.profile:
        env["PIXELMCP_PROFILE"] = args.profile
    if args.output_dir:
        env["PIXELMCP_OUTPUT_DIR"] = str(Path(args.output_dir).expanduser().resolve())
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            fail(f"--env {item!r}: use NAME=VALUE", 2)
        env[name] = value
    print(f"# {args.client}: {config_file(args.client)}", file=sys.stderr)
    if args.client in ("claude-desktop", "cursor", "vscode"):
        print("# merge this into the file (keep any servers already there), then restart the client", file=sys.stderr)
    print(snippet(args.client, command_path(), env))
