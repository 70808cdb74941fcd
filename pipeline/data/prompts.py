"""Prompt construction shared by SFT, rollouts, difficulty estimation and evaluation.

One template string from params (`model.prompt_template`, with a `{problem}` slot) and, for chat
models, the tokenizer's chat template.  The template text is hashed into the eval manifest.  The
instruction must reach the model once: Qwen2.5-Math's chat template already opens with a system turn
"Please reason step by step, and put your final answer within \\boxed{}." when none is given (its
official CoT prompt), so the GPU profile's template is the bare problem, and `format_prompt` refuses a
rendered prompt in which the template's own text appears twice.  `stop_token_ids` turns
`model.stop_tokens` (e.g. the chat template's "<|im_end|>") into token ids for the rollout engines.
"""
from __future__ import annotations

import hashlib
from typing import Sequence

from pipeline.config import ConfigError


def format_prompt(problem: str, template: str, tokenizer=None, use_chat_template: bool = False) -> str:
    text = template.replace("{problem}", problem)
    if use_chat_template:
        if tokenizer is None or getattr(tokenizer, "chat_template", None) is None:
            raise ValueError("model.use_chat_template is true but the tokenizer has no chat template")
        rendered = tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                                 add_generation_prompt=True)
        _check_once(rendered, template, problem)
        return rendered
    return text


def _check_once(rendered: str, template: str, problem: str) -> None:
    """The template's fixed text (an instruction) must not also come from the chat template (system turn)."""
    for part in (p.strip() for p in template.split("{problem}")):
        if len(part) >= 16 and rendered.count(part) > problem.count(part) + 1:
            raise ConfigError(f"params.yaml: key 'model.prompt_template': its text {part!r} appears twice in the "
                              "chat prompt (the tokenizer's chat template adds it too, e.g. as a default system "
                              "turn). Fix: remove it from model.prompt_template (e.g. use '{problem}')")


def stop_token_ids(tokenizer, stop_tokens: Sequence[str]) -> list[int]:
    """`model.stop_tokens` -> token ids; each must be exactly one token of this tokenizer."""
    ids = []
    for tok in stop_tokens:
        enc = tokenizer(tok, add_special_tokens=False)["input_ids"]
        if len(enc) != 1:
            raise ConfigError(f"params.yaml: key 'model.stop_tokens' = {tok!r}: is {len(enc)} tokens for this "
                              "tokenizer, not one. Fix: list single (special) tokens such as '<|im_end|>'")
        ids.append(enc[0])
    return ids


def template_hash(template: str, use_chat_template: bool, tokenizer=None) -> str:
    chat = getattr(tokenizer, "chat_template", "") if use_chat_template and tokenizer is not None else ""
    return hashlib.sha256(f"{template}\x00{use_chat_template}\x00{chat}".encode()).hexdigest()[:16]
