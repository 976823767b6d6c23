"""Prompt rewriting by the MCP client's own LLM, through MCP sampling.

The request is made by the framework before the tool body runs (a `Resolve` resolver returns
`SamplingRewriter.sampling_request(...)`; mcp 2.x sends it mid-call on 2025-11-25 and through
`InputRequiredResult` on 2026-07-28). The tool then passes the client's answer to `rewrite`,
which cleans it like any other rewriter's reply. A client that cannot sample gets the configured
fallback rewriter, and the result says so. Sampling is deprecated in the 2026-07-28 spec, so it
stays opt-in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from mcp.server.mcpserver.resolve import Sample
from mcp_types import (
    CreateMessageResult,
    ModelHint,
    ModelPreferences,
    SamplingMessage,
    TextContent,
)

from pixelmcp.backends import (
    CachedRewriter,
    Progress,
    PromptRewriter,
    RewriteFailed,
    Rewritten,
)
from pixelmcp.prompts.rewrite import SYSTEM_PROMPT, clean_rewrite, user_message


class SamplingRewriter:
    """Stands for "the client's LLM" in the router; `fallback` answers when the client cannot sample."""

    name = "sampling"

    def __init__(self, fallback: Callable[[], PromptRewriter | None], hint: str | None, max_tokens: int):
        self.fallback = fallback  # made when first needed: a misconfigured one fails that rewrite, not the server
        self.hint = hint  # a model name the client may prefer (MCP model preferences)
        self.max_tokens = max_tokens

    def sampling_request(self, prompt: str, style: str | None) -> Sample:
        """The sampling request; the same for the same prompt and style, as retried rounds require."""
        preferences = ModelPreferences(hints=[ModelHint(name=self.hint)]) if self.hint else None
        return Sample(
            [SamplingMessage(role="user", content=TextContent(type="text", text=user_message(prompt, style)))],
            max_tokens=self.max_tokens, system_prompt=SYSTEM_PROMPT, temperature=0.0,
            model_preferences=preferences, include_context="none",
        )

    def from_result(self, result: CreateMessageResult) -> Rewritten:
        """The client's answer as a rewrite (cleaned like any other rewriter's reply). It was sampled before the
        tool body ran, so its time is not known here."""
        blocks = result.content if isinstance(result.content, list) else [result.content]
        reply = " ".join(block.text for block in blocks if isinstance(block, TextContent))
        cleaned = clean_rewrite(reply, CachedRewriter.max_chars)
        if not cleaned:
            raise RewriteFailed(f"the client's model ({result.model}) returned no usable prompt "
                                f"(reply was {reply[:80]!r})")
        return Rewritten(cleaned, f"sampling:{result.model}", 0.0)

    async def without_client(self, prompt: str, style: str | None, progress: Progress) -> Rewritten:
        """The fallback's rewrite, noting why the client's LLM did not write it."""
        why = "the client does not offer MCP sampling"
        fallback = self.fallback()
        if fallback is None:
            raise RewriteFailed(f"{why}, and no fallback rewriter is configured (PIXELMCP_SAMPLING_FALLBACK=none)")
        result = await fallback.rewrite(prompt, style=style, progress=progress)
        return replace(result, note=f"{why}, so {result.rewriter} rewrote the prompt instead")

    async def rewrite(self, prompt: str, *, style: str | None, progress: Progress,
                      sampled: CreateMessageResult | None = None) -> Rewritten:
        """The client's answer; without one in hand (the client cannot sample), the fallback's rewrite."""
        if sampled is not None:
            return self.from_result(sampled)
        return await self.without_client(prompt, style, progress)
