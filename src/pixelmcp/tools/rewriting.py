"""The MCP sampling resolvers: the client's own LLM asked for a rewrite before the tool body runs, when the
rewriter is `sampling` and the client can sample (the policy and the rewrite step: service/rewriting.py)."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver.resolve import Resolve, Sample
from mcp_types import CreateMessageResult
from pydantic import Field

from pixelmcp.service import checks
from pixelmcp.service.rewriting import RewriteChoice, wants_rewrite
from pixelmcp.tools.context import AppContext, app_state


def client_can_sample(ctx: AppContext) -> bool:
    capabilities = ctx.client_capabilities
    return capabilities is not None and capabilities.sampling is not None


async def sample_for_generation(ctx: AppContext, prompt: str, rewrite: RewriteChoice,
                                model: str | None, revised_prompt: str | None = None) -> Sample | None:
    """Resolver: ask the client's LLM for the rewrite, when the rewriter is `sampling` and the client can sample."""
    app = app_state(ctx)
    if revised_prompt is not None or app.settings.rewriter != "sampling" or not client_can_sample(ctx):
        return None  # (a misconfigured rewriter must not fail the call here: the rewrite reports it)
    spec, _ = await app.router.generator(model)
    if not wants_rewrite(rewrite, prompt.strip(), app, spec):
        return None
    prompt = checks.check_text("prompt", prompt, app.settings, required=True)
    return app.router.rewriter().sampling_request(prompt, None)


async def sample_rewrite(ctx: AppContext, prompt: str, style: str | None, model: str | None) -> Sample | None:
    """Resolver: rewrite_prompt's request to the client's LLM, when its rewriter is sampling and the client can."""
    app = app_state(ctx)
    rewriter = app.router.rewriter(model)
    if rewriter is None or not client_can_sample(ctx):
        return None
    prompt = checks.check_text("prompt", prompt, app.settings, required=True)
    return rewriter.sampling_request(prompt, checks.check_text("style", style, app.settings, required=False))


#: The prompt the model receives, given instead of a rewrite (an earlier result's revised_prompt, rewrite_prompt's).
RevisedPromptArg = Annotated[
    str | None,
    Field(description="The exact prompt to send (no rewrite)."),
]

#: The parameter every image tool declares: the client's LLM's rewrite, when rewriting by MCP
#: sampling (filled by the framework before the tool body runs; None otherwise). Not in the schema.
SampledArg = Annotated[CreateMessageResult | None, Resolve(sample_for_generation)]
