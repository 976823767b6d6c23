"""The claim check on vision answers (ask_about_image, compare_images).

Vision-language models name objects that are not there and miscount the ones that are. Each answer's concrete
claims are listed (by a chat model as JSON, or sentence by sentence), every claim is scored against every image
in one pass of the similarity model (the alignment scale, README "Reading alignment scores"), and claims that name
a thing the object detector knows are counted. Weak support and counts that disagree are flagged. It is a check,
not a proof, and the result says so.
"""

from __future__ import annotations

import time
from typing import Literal

from PIL import Image
from pydantic import BaseModel, Field

from pixelmcp.backends import Progress
from pixelmcp.catalog import ModelSpec
from pixelmcp.errors import PixelError
from pixelmcp.prompts.claims import (
    EXTRACT_SYSTEM,
    MAX_CLAIMS,
    Claim,
    detector_label,
    extract_user,
    labels_mentioned,
    parse_claims,
    sentence_claims,
)
from pixelmcp.service.images import ALIGNMENT_PARTLY, ALIGNMENT_WELL
from pixelmcp.service.state import AppState

#: Confidence from which the detector's boxes are counted.
DETECTION_THRESHOLD = 0.5

CHECK_NOTE = ("A check, not a proof: each claim was scored against the image by an image-text similarity model, and "
              "things an object detector knows were counted by it. Low support means the image gives the claim "
              "little evidence (or the model could not tell); high support does not make a claim true.")

Verdict = Literal["supported", "partly supported", "weakly supported"]


class ClaimSupport(BaseModel):
    claim: str = Field(description="one visible thing the answer asserts, in a few words")
    image: int = Field(description="index of the image it was checked against: the one the answer names, else the "
                                   "one that supports it best")
    support: float = Field(description="0..1 on the similarity model's alignment scale (0.6+ well, under 0.3 weak)")
    similarity: float = Field(description="the model's raw similarity (CLIP cosine; SigLIP logit)")
    verdict: Verdict
    object: str | None = Field(None, description="what the claim is about, singular (when it was told)")
    count: int | None = Field(None, description="how many of `object` the answer says there are")
    detected: dict[str, int] | None = Field(
        None, description="how many of each thing the claim names the detector found in that image")
    flags: list[str] = Field(default_factory=list, description="why the claim deserves a second look (empty: none)")


class ClaimCheck(BaseModel):
    note: str = CHECK_NOTE
    claims: list[ClaimSupport] = Field(description=f"the answer's claims (at most {MAX_CLAIMS}), in its order")
    flagged: int = Field(description="how many claims carry flags")
    listed_by: str = Field(description="the chat model that listed the claims, or `sentences` (each sentence one)")
    similarity_model: str | None = None
    detector: str | None = Field(None, description="the detector that counted objects (null: none ran)")
    detection_threshold: float | None = None
    problem: str | None = Field(None, description="what part of the check could not run, and why")
    seconds: float = 0.0


async def check_answer(app: AppState, wanted: bool | None, question: str, answer: str, images: list[Image.Image],
                       answering: ModelSpec, progress: Progress) -> ClaimCheck | None:
    """The claim check of `answer` (to `question`, about `images`); None when the tool's check_claims (`wanted`)
    or else the server's PIXELMCP_CLAIM_CHECK turns it off. Whatever part cannot run is named in `problem`: the
    answer is never lost to its check."""
    if not (wanted if wanted is not None else app.settings.claim_check != "off"):
        return None
    started = time.perf_counter()
    problems: list[str] = []
    claims, listed_by = await _list_claims(app, question, answer, len(images), answering, progress, problems)
    check = ClaimCheck(claims=[], flagged=0, listed_by=listed_by)
    if not claims:
        check.problem = "; ".join([*problems, "the answer states nothing visible to check"])
        check.seconds = time.perf_counter() - started
        return check
    try:
        spec, scorer = app.router.aligner()
        scores = await scorer.align(spec, images, [claim.text for claim in claims], progress)
    except PixelError as e:
        check.problem = "; ".join([*problems, f"claims not scored: {e}"])
        check.seconds = time.perf_counter() - started
        return check
    check.similarity_model = spec.alias
    chosen = [claim.image if claim.image is not None
              else max(range(len(images)), key=lambda i, c=index: scores[i][c][0])
              for index, claim in enumerate(claims)]
    counts = await _counts(app, images, claims, chosen, check, progress, problems)
    for index, (claim, image) in enumerate(zip(claims, chosen, strict=True)):
        support, similarity = scores[image][index]
        check.claims.append(_judged(claim, image, support, similarity, counts.get(image)))
    check.flagged = sum(1 for claim in check.claims if claim.flags)
    check.problem = "; ".join(problems) or None
    check.seconds = time.perf_counter() - started
    return check


async def _list_claims(app: AppState, question: str, answer: str, images: int, answering: ModelSpec,
                       progress: Progress, problems: list[str]) -> tuple[list[Claim], str]:
    """The answer's claims, and who listed them: the claims model, or its sentences when there is none or its
    reply holds no list."""
    try:
        extractor = app.router.claim_extractor(answering)
    except PixelError as e:
        problems.append(f"claims listed by sentence (claims model unusable: {e})")
        return sentence_claims(answer, images), "sentences"
    if extractor is None:
        return sentence_claims(answer, images), "sentences"
    try:
        reply = await extractor.reply(EXTRACT_SYSTEM.format(limit=MAX_CLAIMS), extract_user(question, answer, images),
                                      progress)
    except PixelError as e:
        problems.append(f"claims listed by sentence ({extractor.name} failed: {e})")
        return sentence_claims(answer, images), "sentences"
    claims = parse_claims(reply, images)
    if claims is None:
        problems.append(f"claims listed by sentence ({extractor.name} replied without a JSON list: {reply[:80]!r})")
        return sentence_claims(answer, images), "sentences"
    return claims, extractor.name


async def _counts(app: AppState, images: list[Image.Image], claims: list[Claim], chosen: list[int],
                  check: ClaimCheck, progress: Progress, problems: list[str]) -> dict[int, dict[str, int]]:
    """image index -> objects per class the detector finds in it, for the images that claims naming one of its
    classes were checked against (empty when the server checks by similarity only, no detector is configured, or
    no claim names a thing it knows)."""
    if app.settings.claim_check == "similarity":
        return {}
    try:
        found = app.router.detector()
        if found is None:
            return {}
        spec, counter = found
        labels = await counter.classes(spec, progress)
        which = sorted({image for claim, image in zip(claims, chosen, strict=True) if _names(claim, labels)[1]})
        if not which:
            return {}
        counted = await counter.count(spec, [images[i] for i in which], DETECTION_THRESHOLD, progress)
    except PixelError as e:
        problems.append(f"objects not counted: {e}")
        return {}
    check.detector, check.detection_threshold = spec.alias, DETECTION_THRESHOLD
    return dict(zip(which, counted, strict=True))


def _judged(claim: Claim, image: int, support: float, similarity: float,
            counts: dict[str, int] | None) -> ClaimSupport:
    verdict: Verdict = ("supported" if support >= ALIGNMENT_WELL
                        else "partly supported" if support >= ALIGNMENT_PARTLY else "weakly supported")
    judged = ClaimSupport(claim=claim.text, image=image, support=support, similarity=similarity, verdict=verdict,
                          object=claim.object, count=claim.count)
    if verdict == "weakly supported":
        judged.flags.append(f"weak similarity with image {image + 1} ({support:.2f})")
    if counts is None:
        return judged
    named, known = _names(claim, set(counts))
    if not known:
        return judged
    judged.detected = {label: counts[label] for label in known}
    for label in known:
        found = counts[label]
        if label == named and claim.count is not None:
            if found != claim.count:
                judged.flags.append(f"the detector found {found} {label}, not {claim.count}")
        elif found == 0:
            judged.flags.append(f"the detector found no {label}")
    return judged


def _names(claim: Claim, labels: set[str]) -> tuple[str | None, list[str]]:
    """The detector class the claim's object is (if any), and every class the claim names, that one first."""
    named = detector_label(claim.object, labels) if claim.object else None
    mentioned = labels_mentioned(claim.text, labels)
    return named, ([named] if named else []) + [label for label in mentioned if label != named]


def claim_lines(check: ClaimCheck) -> list[str]:
    """The check in a few lines for the calling model."""
    how = f"similarity by {check.similarity_model}" if check.similarity_model else "not scored"
    if check.detector:
        how += f", counts by {check.detector}"
    lines = ["", (f"Claim check ({how}; claims listed by {check.listed_by}): {check.flagged} of "
                  f"{len(check.claims)} claim(s) flagged. A check, not a proof.")]
    for claim in check.claims:
        line = f"- \"{claim.claim}\" (image {claim.image + 1}): {claim.verdict}, {claim.support:.2f}"
        if claim.detected:
            line += "; detected: " + ", ".join(f"{n} {label}" for label, n in claim.detected.items())
        if claim.flags:
            line += " [flagged: " + "; ".join(claim.flags) + "]"
        lines.append(line)
    if check.problem:
        lines.append(f"Check incomplete: {check.problem}")
    return lines
