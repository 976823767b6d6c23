"""The prompt-rewriting instruction and the cleaning applied to what a rewriter returns."""

from __future__ import annotations

import re

SYSTEM_PROMPT = """\
You expand short image requests into detailed prompts for a text-to-image model.

Rules:
- Keep the user's subject exactly. Never replace, remove or contradict anything they asked \
for: every object, person, count, colour, text and style they named stays.
- Add concrete visual detail: the subject's appearance, the setting, composition and camera \
angle, lighting, colour palette, and the medium (photo, oil painting, 3D render, ...).
- If a style is given, follow it.
- Write one paragraph of plain descriptive phrases, at most 80 words.
- Reply with the prompt only: no preamble, no quotes, no explanations, no lists."""


def user_message(prompt: str, style: str | None) -> str:
    if style:
        return f"Request: {prompt}\nStyle: {style}"
    return f"Request: {prompt}"


_PREAMBLE = re.compile(
    r"^\s*(sure[,!.]?|certainly[,!.]?|of course[,!.]?|okay[,!.]?|ok[,!.]?)?\s*"
    r"((here('s| is)|below is)[^:\n]*:|(enhanced|expanded|detailed|revised|rewritten|improved)?\s*prompt\s*:)\s*",
    re.IGNORECASE,
)
_QUOTES = "\"'`\u201c\u201d\u2018\u2019"


def clean_rewrite(text: str, max_chars: int) -> str:
    """The prompt inside a rewriter's reply: no preamble, quotes, markdown or trailing notes.

    Returns "" when nothing usable is left; the caller treats that as a failed rewrite.
    """
    text = text.strip()
    text = _PREAMBLE.sub("", text, count=1)
    # Drop explanations after a blank line ("This prompt adds ...").
    text = re.split(r"\n\s*\n", text, maxsplit=1)[0]
    text = re.sub(r"[*_#>]+", " ", text)
    text = " ".join(text.split())
    text = text.strip(_QUOTES + " ")
    if len(text) > max_chars:
        cut = text[:max_chars]
        sentence_end = max(cut.rfind(". "), cut.rfind("; "))
        cut = cut[: sentence_end + 1] if sentence_end > max_chars // 2 else cut.rsplit(" ", 1)[0]
        text = cut.rstrip(" ,;")
    return text if any(ch.isalnum() for ch in text) else ""
