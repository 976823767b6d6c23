"""build_server(settings) -> MCPServer: tools, resources, and the lifespan that owns the image store, the
model pool and the router (made when the server starts, released when it stops).

Importing this module must stay cheap: torch, diffusers and transformers are imported by the
engine on the first call that needs them, so `initialize` and `tools/list` answer at once.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import ToolAnnotations

from pixelmcp import __version__
from pixelmcp.config import Settings
from pixelmcp.engine.pool import ModelPool
from pixelmcp.errors import GenerationCancelled, PixelError, StoreError, first_line
from pixelmcp.media.store import ImageStore, UnknownImageError
from pixelmcp.prompts import templates
from pixelmcp.registry import provider_infos, provider_rows
from pixelmcp.router import Router
from pixelmcp.server import apps, budget, shutdown, tasks
from pixelmcp.server.logs import configure_logging
from pixelmcp.server.schemas import portable_schema
from pixelmcp.server.validation import CheckedTool
from pixelmcp.service.jobs import JobBoard, JobStatusResult, owner_of
from pixelmcp.service.state import AppState
from pixelmcp.tools import check, control, editing, gallery, generate, models, understanding
from pixelmcp.tools.context import AppContext

logger = logging.getLogger(__name__)

INSTRUCTIONS = """\
pixelmcp makes and edits images on a local GPU, or with a remote provider when a tool's model \
argument is provider:model (list_models shows which are ready). Tool results carry a small \
preview plus a pixelmcp://images/<id> link to the full PNG; pass that uri as the image argument \
of another tool to chain work without re-sending bytes. Same seed and arguments give the same \
image on local models."""


class _Resources:
    """The store, pool and router of a running server: made when the first session enters the lifespan,
    released when the last one leaves (models unloaded, provider clients closed). In-memory clients each
    enter the lifespan and share them, as clients of one process share its GPU."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._state: AppState | None = None
        self._users = 0

    def current(self) -> AppState:
        if self._state is None:
            raise PixelError("The server is not running (its lifespan has not started).")
        return self._state

    @asynccontextmanager
    async def held(self) -> AsyncIterator[AppState]:
        if self._state is None:
            self._state = await self._start()
        self._users += 1
        try:
            yield self._state
        finally:
            self._users -= 1
            if self._users == 0:
                state, self._state = self._state, None
                with anyio.CancelScope(shield=True):
                    await _stop(state)

    async def _start(self) -> AppState:
        settings = self.settings
        store = ImageStore(settings.output_dir, settings.png_compress_level)
        pool = ModelPool(settings)
        logger.info("pixelmcp %s: profile %s, images in %s", __version__, settings.profile, store.root)
        try:
            store.check_writable()
        except StoreError as e:
            logger.error("%s Image-making tools fail until this is fixed; the others work.", e)
        await anyio.to_thread.run_sync(store.sweep)
        jobs = JobBoard(settings.output_dir / "jobs", settings.max_jobs, settings.job_retention_s)
        return AppState(settings=settings, store=store, pool=pool, router=Router(settings, pool), jobs=jobs)


async def _stop(state: AppState) -> None:
    await state.router.aclose()
    released = await anyio.to_thread.run_sync(state.pool.close)
    if released:
        logger.info("released models: %s", ", ".join(released))


def build_server(settings: Settings) -> MCPServer:
    """The pixelmcp MCP server for `settings` (nothing is loaded until a tool needs it)."""

    configure_logging(settings.log_level, _secrets(settings))  # (before MCPServer, whose own set-up keeps it)
    resources = _Resources(settings)

    @asynccontextmanager
    async def lifespan(server: MCPServer) -> AsyncIterator[AppState]:
        async with resources.held() as state, anyio.create_task_group() as group:
            pool = state.pool
            # In-memory clients each enter the lifespan: every entry lends its task group to the
            # pool, and on exit lets the batches it started finish instead of cancelling them.
            pool.background_groups.append(group)
            loops = anyio.CancelScope()

            async def housekeeping() -> None:
                with loops:
                    async with anyio.create_task_group() as chores:
                        if settings.keep_alive_s > 0:
                            chores.start_soon(_unload_idle_models, pool, settings.keep_alive_s)
                        if settings.preload:
                            chores.start_soon(_preload, state)

            group.start_soon(housekeeping)
            try:
                yield state
            finally:
                pool.background_groups.remove(group)
                loops.cancel()

    # Open world: a configured provider (or a key in the environment) lets calls reach outside services.
    remote = any(info.ready for info in provider_infos(settings)) or settings.rewriter not in ("local", "none")
    makes_images = dict(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=remote)
    reads_only = dict(read_only_hint=True, open_world_hint=remote)
    tools = (
        (generate.generate_image, "Generate image", makes_images),
        (generate.rewrite_prompt, "Rewrite prompt", reads_only),
        (control.controlnet_generate, "Generate with ControlNet", {**makes_images, "open_world_hint": False}),
        (control.style_transfer, "Style transfer", makes_images),
        (editing.edit_image, "Edit image", makes_images),
        (editing.extend_image, "Extend image", makes_images),
        (editing.upscale_image, "Upscale image", {**makes_images, "open_world_hint": False}),
        (editing.vary_image, "Vary image", makes_images),
        (editing.remove_background, "Remove background", {**makes_images, "open_world_hint": False}),
        (understanding.classify_image, "Classify image", {**reads_only, "open_world_hint": False}),
        (understanding.ask_about_image, "Ask about image", reads_only),
        (understanding.compare_images, "Compare images", reads_only),
        (models.list_models, "List models", {**reads_only, "open_world_hint": False}),
        (check.check_job, "Check job", {**reads_only, "open_world_hint": False}),
        (gallery.list_images, "List images", {**reads_only, "open_world_hint": False}),
    )
    registered = []
    for fn, title, hints in tools:
        tool = CheckedTool.from_function(_reported(fn), annotations=ToolAnnotations(title=title, **hints),
                                  meta=apps.ui_meta() if fn.__name__ in apps.UI_TOOLS else None)
        tool.parameters = portable_schema(tool.parameters)  # accepted by OpenAI strict, Gemini, Anthropic alike
        if tool.name in budget.SLOW_TOOLS and tool.fn_metadata.output_schema is not None:
            # A call past its budget answers with a job instead: the published schema admits both shapes.
            tool.fn_metadata.output_schema = budget.job_schema(tool.fn_metadata.output_schema)
        registered.append(tool)
    server = MCPServer(
        "pixelmcp",
        title="pixelmcp",
        version=__version__,
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        log_level=settings.log_level,
        tools=registered,
        extensions=[budget.CallBudget(settings.call_budget_s, resources.current),
                    tasks.TasksExtension(lambda: resources.current().jobs, settings),
                    apps.studio_app()],
    )
    for template in templates.TEMPLATES:
        server.prompt()(template)
    _add_image_resources(server, resources)

    @server.resource("pixelmcp://jobs/{job_id}", name="job", mime_type="application/json",
                     description="Where a job stands (the same status check_job reports).")
    async def read_job(job_id: str, ctx: AppContext) -> str:
        record = resources.current().jobs.find(job_id, owner_of(ctx.headers))
        return JobStatusResult(job=record.info()).model_dump_json(indent=1)

    @server.resource("pixelmcp://models", name="models", mime_type="application/json",
                     description="The model catalog, what is loaded where, memory used, and pool counters.")
    async def models_resource() -> str:
        return models.models_report(resources.current()).model_dump_json(indent=1)

    return server


def _secrets(settings: Settings) -> list[str]:
    """What the logs must never show: the HTTP bearer token, and every provider key in the environment."""
    found = [settings.http_token.get_secret_value()] if settings.http_token is not None else []
    for row in provider_rows(settings).values():
        found += [os.environ[name] for name in row.key_env if os.environ.get(name)]
    return found


def _reported(fn):
    """The tool, with an unexpected exception turned into a tool error that says what failed and what to do (the
    traceback goes to the server log): mcp 2.x would answer only "Error executing tool NAME"."""

    @functools.wraps(fn)
    async def tool(*args, **kwargs):
        started = time.monotonic()
        try:
            return await fn(*args, **kwargs)
        except anyio.get_cancelled_exc_class():
            if shutdown.stopping():
                logger.warning("dropped a %s call after %.1f s: the server is stopping (%s); nothing of it is kept",
                               fn.__name__, time.monotonic() - started, shutdown.stopping())
            raise
        except (ToolError, MCPError, GenerationCancelled):
            raise
        except Exception as e:  # the tools' boundary: anything else is a fault of ours or a library's
            logger.exception("%s failed unexpectedly", fn.__name__)
            reason = first_line(e)[:300]
            raise PixelError(
                f"{fn.__name__} failed: {type(e).__name__}" + (f": {reason}" if reason else "") + ". This is a "
                "fault inside pixelmcp or a library it uses, not in the arguments; the traceback is in the server "
                "log. Try the call again; if it fails again, report it with the log."
            ) from e

    return tool


async def _unload_idle_models(pool: ModelPool, keep_alive_s: float) -> None:
    """Keep-alive: unload models nobody used for `keep_alive_s` seconds."""
    while True:
        await anyio.sleep(min(keep_alive_s / 4, 30.0))
        unloaded = await anyio.to_thread.run_sync(pool.evict_idle, keep_alive_s)
        if unloaded:
            logger.info("unloaded idle models: %s", ", ".join(unloaded))


async def _preload(state: AppState) -> None:
    """Warm the configured models one by one, after the server already answers."""
    from pixelmcp.engine.loaders import loader_for

    for alias in state.settings.preload:
        spec = state.settings.catalog[alias]
        try:
            await state.pool.ready([spec])  # downloaded first, without holding the device
            await state.pool.preload(spec, loader_for(state.settings, spec))
            logger.info("preloaded %s", alias)
        except PixelError as e:
            logger.error("could not preload %s: %s", alias, e)


def _add_image_resources(server: MCPServer, resources: _Resources) -> None:
    @server.resource("pixelmcp://images/{image_id}", name="image", mime_type="image/png",
                     description="A full-resolution PNG made by this server.")
    async def read_image(image_id: str) -> bytes:
        try:
            return resources.current().store.png_path(image_id).read_bytes()
        except UnknownImageError as e:
            raise ResourceNotFoundError(str(e)) from e

    @server.resource("pixelmcp://images", name="images", mime_type="application/json",
                     description="The newest 100 images made by this server, with their parameters.")
    async def list_images() -> str:
        records = resources.current().store.list(limit=100)
        return json.dumps([r.model_dump() for r in records], indent=1)
