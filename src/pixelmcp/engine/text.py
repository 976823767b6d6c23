"""Local instruct LLM (transformers causal LM with a chat template), used for prompt rewriting."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pixelmcp.catalog import ModelSpec
from pixelmcp.engine.loading import pretrained_pair
from pixelmcp.engine.queue import Job
from pixelmcp.errors import GenerationCancelled, ModelLoadError


@dataclass
class ChatModel:
    model: Any
    tokenizer: Any


def load_chat_model(spec: ModelSpec) -> Callable[[str, str, Any], ChatModel]:
    """A loader for the pool: tokenizer + causal LM from `source`."""

    def load(source: str, device: str, dtype) -> ChatModel:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer, model = pretrained_pair(spec, source, device, dtype, AutoTokenizer, AutoModelForCausalLM)
        if tokenizer.chat_template is None:
            raise ModelLoadError(f"Model {spec.alias!r} ({source}) has no chat template; use an instruct/chat model.")
        return ChatModel(model, tokenizer)

    return load


def chat(llm: ChatModel, messages: list[dict[str, str]], *, max_new_tokens: int, job: Job) -> tuple[str, int]:
    """Greedy-decode a reply to `messages`; returns (text, tokens generated).

    Greedy decoding makes the reply a pure function of the messages, so a rewritten prompt
    (and the image made from it) can be reproduced.
    """
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class StopWhenCancelled(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs) -> bool:
            return job.cancel.is_set()

    inputs = llm.tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    ).to(llm.model.device)
    prompt_length = inputs["input_ids"].shape[1]
    job.check()
    with torch.inference_mode():
        output = llm.model.generate(
            **inputs,
            do_sample=False,
            max_new_tokens=max_new_tokens,
            stopping_criteria=StoppingCriteriaList([StopWhenCancelled()]),
            pad_token_id=llm.tokenizer.pad_token_id,
        )
    if job.cancel.is_set():
        raise GenerationCancelled()
    new_tokens = output[0, prompt_length:]
    return llm.tokenizer.decode(new_tokens, skip_special_tokens=True), int(new_tokens.shape[0])
