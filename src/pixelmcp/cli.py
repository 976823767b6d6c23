"""The `pixelmcp` command: `serve` runs the MCP server, `models` lists the catalog.

Logs go to stderr only: on stdio, stdout belongs to the protocol.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import sys

from pydantic import ValidationError

from pixelmcp import __version__

LOOPBACK_NAMES = {"localhost"}
logger = logging.getLogger("pixelmcp")


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pixelmcp", description="MCP server for image generation and understanding.")
    parser.add_argument("--version", action="version", version=f"pixelmcp {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--profile", choices=["default", "tiny"], help="model profile (env PIXELMCP_PROFILE)")
    common.add_argument("--config", metavar="TOML", help="settings file (env PIXELMCP_CONFIG)")
    common.add_argument("--output-dir", metavar="DIR", help="where images are saved (env PIXELMCP_OUTPUT_DIR)")
    common.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="env PIXELMCP_LOG_LEVEL")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", parents=[common], help="run the MCP server (stdio by default)")
    serve.add_argument("--transport", choices=["stdio", "http"], default="stdio",
                       help="stdio (default) or streamable HTTP at /mcp")
    serve.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default 127.0.0.1, loopback only)")
    serve.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    serve.add_argument("--insecure-allow-remote", action="store_true",
                       help="allow binding a non-loopback address; anyone who reaches it can use your GPU and disk")

    models = sub.add_parser("models", parents=[common], help="list the model catalog of the profile")
    models.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def _settings(args: argparse.Namespace):
    from pixelmcp.config import load_settings

    if args.config:
        os.environ["PIXELMCP_CONFIG"] = args.config
    try:
        return load_settings(profile=args.profile, output_dir=args.output_dir, log_level=args.log_level)
    except ValidationError as e:
        sys.exit(f"pixelmcp: invalid configuration:\n{e}")
    except ValueError as e:
        sys.exit(f"pixelmcp: {e}")


def _serve(args: argparse.Namespace) -> None:
    settings = _settings(args)
    if args.transport == "http" and not _is_loopback(args.host) and not args.insecure_allow_remote:
        sys.exit(
            f"pixelmcp: refusing to bind {args.host}: the HTTP transport has no authentication yet, so anyone who "
            "can reach that address could use this server. Bind 127.0.0.1 (the default) and tunnel, or pass "
            "--insecure-allow-remote if you accept that."
        )
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from pixelmcp.server.app import build_server

    server = build_server(settings)
    if args.transport == "stdio":
        server.run("stdio")
    else:
        logger.info("pixelmcp listening on http://%s:%d/mcp", args.host, args.port)
        server.run("streamable-http", host=args.host, port=args.port)


def _models(args: argparse.Namespace) -> None:
    settings = _settings(args)
    specs = list(settings.catalog.values())
    if args.json:
        print(json.dumps([s.model_dump() | {"task": s.task, "tiny": s.tiny} for s in specs], indent=2))
        return
    print(f"profile: {settings.profile}")
    for spec in specs:
        if spec.task == "generate":
            detail = (f"{spec.default_width}x{spec.default_height}, {spec.default_steps} steps, "
                      f"guidance {spec.default_guidance}")
        else:
            detail = {"rewrite": "prompt rewriter", "preprocess": "depth estimator", "classify": "zero-shot labels",
                      "answer": f"vision-language ({spec.family})"}[spec.task]
        print(f"  {spec.alias:24} {spec.kind:9} {detail:34} {'(built locally)' if spec.tiny else spec.source}")


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    {"serve": _serve, "models": _models}[args.command](args)


if __name__ == "__main__":
    main()
