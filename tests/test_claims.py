"""The claim check on vision answers: claims listed (by a chat model as JSON, or by sentence), scored against the
image by the similarity model, counted by the detector, weak ones flagged (tiny profile; a fake OpenAI API where
the answer's words must be known)."""

from __future__ import annotations

import json

import pytest
from fake_providers import Reply, openai_error
from helpers import data_uri, ok, shapes
from mcp import Client

from pixelmcp.engine import pose, vision
from pixelmcp.engine.loaders import loader_for
from pixelmcp.engine.pool import ModelPool
from pixelmcp.engine.queue import Job
from pixelmcp.prompts.claims import (
    MAX_CLAIMS,
    Claim,
    detector_label,
    labels_mentioned,
    parse_claims,
    sentence_claims,
    singular,
)
from pixelmcp.server.app import build_server
from pixelmcp.tools.claims import CHECK_NOTE, _judged

pytestmark = pytest.mark.anyio

def chat(text: str) -> Reply:
    return Reply(200, {"id": "c", "object": "chat.completion", "created": 0, "model": "gpt-4.1",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                    "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})


def flat(pairs) -> list[float]:
    return [value for pair in pairs for value in pair]


def direct(settings, images, texts):
    """What the similarity model and the detector say of `images`, computed here without the server."""
    pool = ModelPool(settings)
    clip = settings.catalog["tiny-clip"]
    detector = settings.catalog["tiny-vitpose"].detector_entry()
    scores = vision.text_alignment(pool.get(clip, loader_for(settings, clip), Job()), images, texts,
                                   *clip.alignment_range, Job())
    counts = pose.count_objects(pool.get(detector, loader_for(settings, detector), Job()), images, 0.5, Job())
    return scores, counts


# --------------------------------------------------------------------------- listing claims


def test_a_json_reply_becomes_claims_in_any_usual_wrapping():
    items = [{"claim": "two dogs on the grass", "object": "Dogs", "count": 2, "image": 2},
             {"claim": "a  red\ncar", "object": None, "count": None, "image": None}]
    for reply in (json.dumps(items), f"```json\n{json.dumps(items)}\n```", json.dumps({"claims": items}),
                  f"Here they are: {json.dumps(items)} Hope this helps."):
        assert parse_claims(reply, images=2) == [Claim("two dogs on the grass", "dog", 2, 1), Claim("a red car")]


def test_a_reply_without_a_list_is_refused_and_odd_fields_are_dropped_not_guessed():
    assert parse_claims("I think there is a dog.", 1) is None
    assert parse_claims("[not json", 1) is None
    assert parse_claims('{"claims": "a dog"}', 1) is None
    odd = [{"claim": "a cat", "count": True, "image": 3}, {"claim": "  "}, {"object": "dog"}, "a bare string",
           {"claim": "a cat", "count": -1, "image": 0}]
    assert parse_claims(json.dumps(odd), images=2) == [Claim("a cat"), Claim("a bare string")]
    many = [{"claim": f"thing {i}"} for i in range(MAX_CLAIMS + 3)]
    assert len(parse_claims(json.dumps(many), 1)) == MAX_CLAIMS


def test_sentences_are_claims_with_counts_and_images_and_negations_are_skipped():
    answer = ("Image 2 shows three small dogs on a lawn. There is no cat! Is it sunny? The sky is blue; "
              "a woman holds 2 umbrellas.\nThe people in image 1 and image 2 wave.")
    assert sentence_claims(answer, images=2) == [
        Claim("Image 2 shows three small dogs on a lawn", "dog", 3, 1),
        Claim("The sky is blue"),
        Claim("a woman holds 2 umbrellas", "umbrella", 2),
        Claim("The people in image 1 and image 2 wave"),
    ]
    assert sentence_claims("", 1) == [] and sentence_claims("No. Nothing here.", 1) == []


@pytest.mark.parametrize("plural,one", [("Dogs", "dog"), ("people", "person"), ("ponies", "pony"),
                                        ("benches", "bench"), ("glass", "glass"), ("bus", "bus"),
                                        ("traffic lights", "traffic light"), ("men", "man"), ("cat", "cat")])
def test_nouns_become_singular(plural, one):
    assert singular(plural) == one


def test_nouns_map_to_the_detectors_classes():
    labels = {"person", "car", "dining table", "traffic light", "bicycle"}
    assert [detector_label(n, labels) for n in ("person", "woman", "table", "bike", "car", "sky", "red car")] == [
        "person", "person", "dining table", "bicycle", "car", None, "car"]
    assert labels_mentioned("Two women ride bikes past a parked car and a tree", labels) == ["bicycle", "car", "person"]
    assert labels_mentioned("a traffic light at dusk", labels) == ["traffic light"]


# --------------------------------------------------------------------------- judging


def test_verdicts_follow_the_alignment_scale_and_flags_say_why():
    weak = _judged(Claim("a cat"), 0, 0.12, 0.05, None)
    assert weak.verdict == "weakly supported" and weak.flags == ["weak similarity with image 1 (0.12)"]
    assert _judged(Claim("a cat"), 0, 0.3, 0.1, None).verdict == "partly supported"
    assert _judged(Claim("a cat"), 1, 0.6, 0.2, None).flags == []
    counts = {"person": 1, "car": 0, "bicycle": 3}
    two = _judged(Claim("two people by a car", "person", 2), 0, 0.7, 0.3, counts)
    assert two.detected == {"person": 1, "car": 0}
    assert two.flags == ["the detector found 1 person, not 2", "the detector found no car"]
    right = _judged(Claim("three bikes", "bike", 3), 0, 0.7, 0.3, counts)
    assert right.detected == {"bicycle": 3} and right.flags == []
    assert _judged(Claim("a blue sky", "sky"), 0, 0.7, 0.3, counts).detected is None


# --------------------------------------------------------------------------- through the MCP client


async def test_an_answer_carries_its_claims_scored_as_the_similarity_model_scores_them(make_settings):
    settings = make_settings(claims_model="sentences")
    image = shapes()
    async with Client(build_server(settings)) as client:
        result = await client.call_tool("ask_about_image", {"image": data_uri(image), "question": "What is shown?",
                                                            "max_tokens": 24})
        again = ok(await client.call_tool("ask_about_image", {"image": data_uri(image), "question": "What is shown?",
                                                              "max_tokens": 24}))
    data = ok(result)
    check = data["claim_check"]
    claims = sentence_claims(data["answer"], 1)
    assert check["listed_by"] == "sentences" and [c["claim"] for c in check["claims"]] == [c.text for c in claims]
    assert check["note"] == CHECK_NOTE
    if claims:  # random weights write whatever they write; a sentence of it is scored exactly as the model does
        assert check["similarity_model"] == "tiny-clip"
        # The detector runs only for claims that name a class it knows.
        assert (check["detector"] is not None) == any(c["detected"] is not None for c in check["claims"])
        scores, _ = direct(settings, [image], [c.text for c in claims])
        assert flat((c["support"], c["similarity"]) for c in check["claims"]) == pytest.approx(flat(scores[0]), abs=1e-3)
    else:
        assert check["problem"] == "the answer states nothing visible to check"
    assert check["flagged"] == sum(1 for c in check["claims"] if c["flags"])
    assert again["claim_check"]["claims"] == check["claims"]  # deterministic
    text = result.content[0].text
    assert text.startswith(data["answer"]) and "A check, not a proof." in text


async def test_a_provider_lists_the_claims_and_the_detector_counts_them(openai_settings, api):
    settings = openai_settings(vision_model="openai:gpt-4.1")
    image = shapes((96, 64))
    listed = [{"claim": "two people", "object": "people", "count": 2, "image": 1},
              {"claim": "a car", "object": "car", "count": None, "image": 1},
              {"claim": "a grey wall", "object": "wall", "count": None, "image": None}]
    api.queue("/chat/completions", chat("Two people stand by a car in front of a grey wall."),
              chat(json.dumps(listed)))
    async with Client(build_server(settings)) as client:
        result = await client.call_tool("ask_about_image", {"image": data_uri(image), "question": "Who is there?"})
    check = ok(result)["claim_check"]
    extraction = api.to("/chat/completions")[1].body
    assert extraction["model"] == "gpt-4.1" and "Two people stand by a car" in extraction["messages"][-1]["content"]
    assert check["listed_by"] == "openai:gpt-4.1" and check["problem"] is None
    assert check["detector"] == "tiny-vitpose+detector" and check["detection_threshold"] == 0.5
    scores, (counts,) = direct(settings, [image], [item["claim"] for item in listed])
    people, car, wall = check["claims"]
    assert (people["object"], people["count"], people["detected"]) == ("person", 2, {"person": counts["person"]})
    assert (f"the detector found {counts['person']} person, not 2" in people["flags"]) == (counts["person"] != 2)
    assert car["detected"] == {"car": counts["car"]}
    assert ("the detector found no car" in car["flags"]) == (counts["car"] == 0)
    assert wall["detected"] is None
    assert flat((c["support"], c["similarity"]) for c in check["claims"]) == pytest.approx(flat(scores[0]), abs=1e-3)
    text = result.content[0].text
    assert '- "two people" (image 1): ' in text and f"detected: {counts['person']} person" in text


async def test_a_failing_or_wordy_claims_model_falls_back_to_sentences_and_says_so(openai_settings, api):
    settings = openai_settings(vision_model="openai:gpt-4.1", provider_max_retries=0)
    answer = "A red car. Three dogs play."
    api.queue("/chat/completions", chat(answer), openai_error(500, "upstream exploded"),
              chat(answer), chat("The claims are: a red car, three dogs."))
    async with Client(build_server(settings)) as client:
        failed = ok(await client.call_tool("ask_about_image", {"image": data_uri(shapes()), "question": "q"}))
        wordy = ok(await client.call_tool("ask_about_image", {"image": data_uri(shapes()), "question": "q"}))
    for data in (failed, wordy):
        check = data["claim_check"]
        assert check["listed_by"] == "sentences"
        assert [(c["claim"], c["object"], c["count"]) for c in check["claims"]] == [("A red car", None, None),
                                                                                  ("Three dogs play", "dog", 3)]
    assert "openai:gpt-4.1 failed" in failed["claim_check"]["problem"]
    assert "upstream exploded" in failed["claim_check"]["problem"]
    assert "replied without a JSON list" in wordy["claim_check"]["problem"]


async def test_the_local_rewrite_model_lists_claims_by_default(make_settings):
    async with Client(build_server(make_settings())) as client:
        messages = []

        async def progress(done, total, message):
            messages.append(message)

        data = ok(await client.call_tool("ask_about_image", {"image": data_uri(shapes()), "question": "What?",
                                                             "max_tokens": 16}, progress_callback=progress))
    check = data["claim_check"]
    # Random weights rarely write JSON: either way the local model was asked, and what it gave is on record.
    assert check["listed_by"] == "local:tiny-llm" or "local:tiny-llm replied" in check["problem"]
    assert "listing claims" in messages


async def test_compare_checks_each_claim_against_the_image_it_names(openai_settings, api):
    settings = openai_settings(vision_model="openai:gpt-4.1", claim_check="similarity")
    first, second = shapes(), shapes(offset=6)
    listed = [{"claim": "a dark square", "image": 2}, {"claim": "a light circle", "image": None}]
    api.queue("/chat/completions", chat("Image 2 has its dark square further right."), chat(json.dumps(listed)))
    async with Client(build_server(settings)) as client:
        result = await client.call_tool("compare_images", {"images": [data_uri(first), data_uri(second)]})
    check = ok(result)["claim_check"]
    scores, _ = direct(settings, [first, second], [item["claim"] for item in listed])
    square, circle = check["claims"]
    best = max((0, 1), key=lambda i: scores[i][1][0])
    assert square["image"] == 1 and [square["support"], square["similarity"]] == pytest.approx(scores[1][0], abs=1e-3)
    assert circle["image"] == best and circle["support"] == pytest.approx(scores[best][1][0], abs=1e-3)
    assert check["detector"] is None and square["detected"] is None  # claim_check="similarity": no detector
    assert "Claim check (similarity by tiny-clip; claims listed by openai:gpt-4.1)" in result.content[0].text


async def test_the_check_can_be_switched_off_per_call_and_per_server(make_settings):
    image = data_uri(shapes())
    async with Client(build_server(make_settings(claims_model="sentences"))) as client:
        off = await client.call_tool("ask_about_image", {"image": image, "question": "q", "max_tokens": 8,
                                                         "check_claims": False})
    async with Client(build_server(make_settings(claim_check="off", claims_model="sentences"))) as client:
        server_off = ok(await client.call_tool("compare_images", {"images": [image, image]}))
        asked = ok(await client.call_tool("ask_about_image", {"image": image, "question": "q", "max_tokens": 8,
                                                              "check_claims": True}))
    assert ok(off)["claim_check"] is None and "Claim check" not in off.content[0].text
    assert server_off["claim_check"] is None
    assert asked["claim_check"]["listed_by"] == "sentences"


def test_a_claims_model_outside_the_catalog_is_refused_at_start(make_settings):
    with pytest.raises(ValueError, match="claims_model='no-such-llm' is not in the tiny catalog"):
        make_settings(claims_model="no-such-llm")
