"""When a prompt is rewritten before generation, and how: the `rewrite` policy and the rewrite step (the MCP
sampling resolvers, which ask the client's own LLM before a tool body runs, are tools/rewriting.py's).

A failed rewrite never fails a generation: the original prompt is used and the result says why.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Any, Literal

from pixelmcp.backends import (
    ImageRequest,
    Progress,
    PromptRewriter,
    RewriteFailed,
    Rewritten,
)
from pixelmcp.catalog import ModelSpec
from pixelmcp.errors import InvalidArgument, PixelError
from pixelmcp.service import checks
from pixelmcp.service.state import AppState

logger = logging.getLogger(__name__)

#: The `rewrite` argument: true, false or "auto".
RewriteChoice = bool | Literal["auto"]


@dataclass
class RewriteOutcome:
    """How a generation's rewrite went: who wrote the revised prompt, or why there is none."""

    error: str | None = None
    seconds: float = 0.0
    rewriter: str | None = None
    note: str | None = None


def wants_rewrite(rewrite: RewriteChoice, prompt: str, app: AppState, spec: ModelSpec | None = None) -> bool:
    if rewrite is True:
        return True  # a missing rewriter is reported as rewrite_error, not silently skipped
    if rewrite is False:
        return False
    if rewrite != "auto":
        raise InvalidArgument("rewrite", rewrite, "must be true, false or 'auto'", "Pass one of those.")
    if spec is not None and spec.remote:
        # Provider image models read short prompts well (DALL-E 3 even rewrites them itself), and a local
        # rewriter on a machine that only has an API key would mean a model download: only `true` rewrites.
        return False
    return app.settings.rewriter != "none" and len(prompt.split()) <= app.settings.rewrite_auto_max_words


async def run_rewriter(rewriter: PromptRewriter | None, prompt: str, style: str | None, progress: Progress,
                       sampled: Any = None) -> Rewritten:
    """The rewriter's answer (the client's, when it was sampled); RewriteFailed when there is none to ask or it
    produced nothing usable."""
    if rewriter is None:
        raise RewriteFailed("prompt rewriting is switched off on this server (PIXELMCP_REWRITER=none)")
    return await rewriter.rewrite(prompt, style=style, progress=progress, sampled=sampled)


async def rewrite_for_generation(app: AppState, request: ImageRequest, rewrite: RewriteChoice, progress: Progress,
                                 sampled: Any = None,
                                 revised: str | None = None) -> tuple[ImageRequest, RewriteOutcome]:
    """`request` with its revised prompt: the one given (`revised`), or a rewrite's if one was asked for; a failed
    rewrite is reported, never raised: the original prompt is used."""
    if revised is not None:
        if rewrite is True:
            raise InvalidArgument("rewrite", rewrite,
                                  "was given with revised_prompt, which the model receives as it is",
                                  "Pass rewrite=true to have the prompt rewritten, or revised_prompt, not both.")
        text = checks.check_text("revised_prompt", revised, app.settings, required=True)
        return replace(request, revised_prompt=text), RewriteOutcome(rewriter="given")  # (by the caller, as is)
    if not wants_rewrite(rewrite, request.prompt, app, request.spec):
        return request, RewriteOutcome()
    started = time.perf_counter()
    try:
        result = await run_rewriter(app.router.rewriter(), request.prompt, None, progress, sampled)
    except (RewriteFailed, PixelError) as e:
        logger.warning("rewrite failed, using the original prompt: %s", e)
        return request, RewriteOutcome(error=str(e), seconds=time.perf_counter() - started)
    outcome = RewriteOutcome(seconds=time.perf_counter() - started, rewriter=result.rewriter, note=result.note)
    return replace(request, revised_prompt=result.text), outcome
