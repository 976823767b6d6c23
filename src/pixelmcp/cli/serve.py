"""`pixelmcp serve`: the MCP server on stdio (default) or streamable HTTP."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal

from pixelmcp.cli.common import add_settings_flags, fail, load

logger = logging.getLogger("pixelmcp")


def add_commands(sub) -> None:
    serve = sub.add_parser("serve", help="run the MCP server (stdio by default)")
    add_settings_flags(serve)
    serve.add_argument("--transport", choices=["stdio", "http"], default="stdio",
                       help="stdio (default) or streamable HTTP at /mcp")
    serve.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default 127.0.0.1, loopback only)")
    serve.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    serve.add_argument("--insecure-allow-remote", action="store_true",
                       help="allow binding a non-loopback address WITHOUT a token: anyone who reaches it can use "
                            "your GPU and disk (set PIXELMCP_HTTP_TOKEN instead)")
    serve.add_argument("--preload", nargs="+", metavar="ALIAS",
                       help="download and load these models in the background at start (PIXELMCP_PRELOAD)")
    serve.set_defaults(run=_serve)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _serve(args: argparse.Namespace) -> None:
    # A weak token is refused here; an empty or blank one reads as no token.
    settings = load(args, preload=args.preload)
    remote = args.transport == "http" and not is_loopback(args.host)
    if remote and settings.http_token is None and not args.insecure_allow_remote:
        fail(
            f"refusing to bind {args.host} without a token (PIXELMCP_HTTP_TOKEN is unset or empty): anyone who can "
            "reach that address could use this server. Set PIXELMCP_HTTP_TOKEN to a random string of 16 or more "
            "characters (clients then send 'Authorization: Bearer <token>'), bind 127.0.0.1 (the default) and "
            "tunnel, or pass --insecure-allow-remote if you accept the risk."
        )
    if remote and settings.http_token is None:
        logger.warning("INSECURE: serving %s without authentication (--insecure-allow-remote)", args.host)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from pixelmcp.server.app import build_server

    server = build_server(settings)
    if args.transport == "stdio":
        from pixelmcp.server.stdio import run_stdio

        run_stdio(server)
    else:
        import uvicorn

        from pixelmcp.server.http import BearerTokenGate, http_app

        app = http_app(server, settings, args.host)
        gated = isinstance(app, BearerTokenGate)
        logger.info("pixelmcp listening on http://%s:%d/mcp (%s)", args.host, args.port,
                    "bearer token required" if gated else "no token: loopback only" if not remote else "NO TOKEN")
        from pixelmcp.server import shutdown

        class Server(uvicorn.Server):
            def handle_exit(self, sig: int, frame) -> None:  # SIGTERM / SIGINT: dropped calls are logged as such
                shutdown.reason = signal.Signals(sig).name
                super().handle_exit(sig, frame)
                # uvicorn raises the signal again once it has shut down (so the process "dies" of it, exit code
                # -15); a stop that went as asked is exit code 0, as on stdio.
                self._captured_signals.clear()

        # log_config=None: uvicorn's access and error lines go through pixelmcp's stderr handler, not to stdout.
        # A stop waits half of STOP_DEADLINE_S for calls in progress to finish, then cancels them at their next step.
        Server(uvicorn.Config(app, host=args.host, port=args.port, log_config=None,
                              log_level=settings.log_level.lower(),
                              timeout_graceful_shutdown=int(shutdown.STOP_DEADLINE_S // 2))).run()
