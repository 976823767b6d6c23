"""Claims in a vision model's answer: what to ask the model that extracts them, how to read its reply, and a
sentence-by-sentence fallback that needs no model.

A claim is one short, visible statement ("a red car", "two dogs on the grass") with, where the answer says so,
the object it is about (singular, "dog"), how many of them (2) and which image it is about (1-based, as the answer
numbers them). The tools check each against the image with the similarity model, and counts with a detector.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass

#: Most claims checked per answer: a longer answer's first ones (each costs a text embedding and a line of output).
MAX_CLAIMS = 8
MAX_CLAIM_CHARS = 200

EXTRACT_SYSTEM = (
    "You extract checkable visual claims from an answer about one or more images. Reply with JSON only: a list of "
    "at most {limit} objects, each {{\"claim\": a short phrase stating one visible thing the answer asserts, "
    "worded like a caption (e.g. \"a red car\", \"two dogs on the grass\"), \"object\": the main thing it is "
    "about as one singular noun (e.g. \"car\", \"dog\") or null, \"count\": how many of that object the answer "
    "says there are, as an integer, or null, \"image\": the number of the image it is about, or null}}. "
    "Only things that can be seen: objects, people, colours, counts, visible text. Skip opinions, hedges and "
    "statements that something is absent. Do not add anything the answer does not say."
)


def extract_user(question: str, answer: str, images: int) -> str:
    """The user turn of the extraction request."""
    return f"Images: {images}\nQuestion: {question}\nAnswer: {answer}"


@dataclass(frozen=True)
class Claim:
    text: str
    object: str | None = None
    count: int | None = None
    image: int | None = None  # 0-based; None: the answer did not say which image


def parse_claims(reply: str, images: int) -> list[Claim] | None:
    """The claims in an extraction model's reply (a JSON list, bare, fenced or under a "claims" key); None when
    the reply holds no such list, so the caller falls back to sentences."""
    start, end = reply.find("["), reply.rfind("]")
    if start < 0 or end <= start:
        return None
    try:
        items = json.loads(reply[start:end + 1])
    except ValueError:
        return None
    if isinstance(items, dict):
        items = items.get("claims")
    if not isinstance(items, list):
        return None
    claims: list[Claim] = []
    for item in items:
        if isinstance(item, str):
            item = {"claim": item}
        if not isinstance(item, dict) or not isinstance(item.get("claim"), str) or not item["claim"].strip():
            continue
        text = " ".join(item["claim"].split())[:MAX_CLAIM_CHARS]
        noun = item.get("object")
        count = item.get("count")
        image = item.get("image")
        claims.append(Claim(
            text=text,
            object=singular(noun) if isinstance(noun, str) and noun.strip() else None,
            count=count if isinstance(count, int) and not isinstance(count, bool) and 0 <= count <= 1000 else None,
            image=image - 1 if isinstance(image, int) and not isinstance(image, bool) and 1 <= image <= images
            else None,
        ))
    return _distinct(claims)


_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n+")
_IMAGE_MENTION = re.compile(r"\b(?:image|picture|photo)\s+(\d+)\b", re.IGNORECASE)
_NUMBER_WORDS = {word: value for value, word in enumerate(
    ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"])}
_COUNTED = re.compile(r"(?<!image )(?<!picture )(?<!photo )\b(\d{1,3}|" + "|".join(_NUMBER_WORDS) + r")\s+(?:[a-z-]+\s+){0,2}?([a-z]+s|people|men|"
                      r"women|children|geese|mice|sheep|deer|fish)\b", re.IGNORECASE)
_NEGATION = re.compile(r"\b(?:no|not|none|nothing|nobody|neither|nor|without|cannot|absent)\b|n't\b", re.IGNORECASE)
_ADJECTIVES = {"small", "large", "big", "little", "tall", "short", "red", "blue", "green", "yellow", "white", "black",
               "brown", "grey", "gray", "orange", "pink", "purple", "old", "young", "other", "more", "different"}


def sentence_claims(answer: str, images: int) -> list[Claim]:
    """Claims without a model: each sentence (or clause after a semicolon) that states something, with a count
    where it says "two dogs" or "3 cars" and an image where it names one ("image 2"). Negative sentences are
    skipped: similarity cannot check that something is absent."""
    claims = []
    for piece in _SENTENCE_END.split(answer):
        text = " ".join(piece.split()).strip(" .;!")
        if len(text) < 3 or text.endswith("?") or _NEGATION.search(text):
            continue
        mentioned = [int(n) for n in _IMAGE_MENTION.findall(text) if 1 <= int(n) <= images]
        counted = _COUNTED.search(text)
        noun, count = None, None
        if counted and counted.group(2).lower() not in _ADJECTIVES:
            number = counted.group(1).lower()
            count = int(number) if number.isdigit() else _NUMBER_WORDS[number]
            noun = singular(counted.group(2))
        claims.append(Claim(text=text[:MAX_CLAIM_CHARS], object=noun, count=count,
                            image=mentioned[0] - 1 if len(set(mentioned)) == 1 else None))
    return _distinct(claims)


_IRREGULAR = {"people": "person", "persons": "person", "men": "man", "women": "woman", "children": "child",
              "geese": "goose", "mice": "mouse", "teeth": "tooth", "feet": "foot", "knives": "knife",
              "leaves": "leaf", "wolves": "wolf", "sheep": "sheep", "deer": "deer", "fish": "fish", "glasses": "glass",
              "buses": "bus", "boxes": "box", "benches": "bench", "couches": "couch", "dishes": "dish",
              "skis": "ski", "scissors": "scissors", "skies": "sky"}


def singular(noun: str) -> str:
    """A plain English noun, lower-case and singular ("Dogs" -> "dog", "people" -> "person", "ponies" -> "pony")."""
    word = " ".join(noun.lower().split())
    last = word.rpartition(" ")[2]
    if last in _IRREGULAR:
        one = _IRREGULAR[last]
    elif last.endswith("ies") and len(last) > 4:
        one = last[:-3] + "y"
    elif last.endswith(("ches", "shes", "sses", "xes")):
        one = last[:-2]
    elif last.endswith("s") and not last.endswith(("ss", "us", "is")) and len(last) > 3:
        one = last[:-1]
    else:
        one = last
    return word[: len(word) - len(last)] + one


def _distinct(claims: list[Claim]) -> list[Claim]:
    seen: set[tuple[str, int | None]] = set()
    kept = []
    for claim in claims:
        key = (claim.text.casefold(), claim.image)
        if key not in seen:
            seen.add(key)
            kept.append(claim)
    return kept[:MAX_CLAIMS]


#: Common words for the things detectors trained on COCO name otherwise ("man" is a COCO "person").
DETECTOR_SYNONYMS = {
    "man": "person", "woman": "person", "child": "person", "boy": "person", "girl": "person", "kid": "person",
    "human": "person", "people": "person", "baby": "person", "adult": "person", "pedestrian": "person",
    "table": "dining table", "phone": "cell phone", "mobile phone": "cell phone", "smartphone": "cell phone",
    "ball": "sports ball", "plant": "potted plant", "houseplant": "potted plant", "sofa": "couch",
    "television": "tv", "tv set": "tv", "monitor": "tv", "motorbike": "motorcycle", "bike": "bicycle",
    "plane": "airplane", "aeroplane": "airplane", "aircraft": "airplane", "puppy": "dog", "kitten": "cat",
    "automobile": "car", "taxi": "car", "lorry": "truck", "ship": "boat", "teddy": "teddy bear", "doughnut": "donut",
    "computer mouse": "mouse", "glass": "wine glass", "pony": "horse", "foal": "horse", "calf": "cow",
    "lamb": "sheep", "hydrant": "fire hydrant",
}


def detector_label(noun: str, labels: set[str]) -> str | None:
    """The detector class that `noun` (singular) names, if the detector has one."""
    noun = noun.lower()
    if noun in labels:
        return noun
    mapped = DETECTOR_SYNONYMS.get(noun) or DETECTOR_SYNONYMS.get(noun.rpartition(" ")[2])
    if mapped in labels:
        return mapped
    last = noun.rpartition(" ")[2]
    return last if last in labels else None


def labels_mentioned(text: str, labels: set[str]) -> list[str]:
    """The detector classes a claim's words name, singular or plural (alphabetical)."""
    words = [singular(word) for word in re.findall(r"[a-z]+", text.lower())]
    phrases = set(words) | {f"{a} {b}" for a, b in itertools.pairwise(words)}
    found = {label for phrase in phrases if (label := detector_label(phrase, labels)) is not None}
    return sorted(found)
