"""Prompt construction shared by SFT, rollouts, difficulty estimation and evaluation.

One template string from params (`model.prompt_template`, with a `{problem}` slot) and, for chat
models, the tokenizer's chat template.  The template text is hashed into the eval manifest.
"""
from __future__ import annotations

import hashlib


def format_prompt(problem: str, template: str, tokenizer=None, use_chat_template: bool = False) -> str:
    text = template.replace("{problem}", problem)
    if use_chat_template:
        if tokenizer is None or getattr(tokenizer, "chat_template", None) is None:
            raise ValueError("model.use_chat_template is true but the tokenizer has no chat template")
        return tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                             add_generation_prompt=True)
    return text


def template_hash(template: str, use_chat_template: bool, tokenizer=None) -> str:
    chat = getattr(tokenizer, "chat_template", "") if use_chat_template and tokenizer is not None else ""
    return hashlib.sha256(f"{template}\x00{use_chat_template}\x00{chat}".encode()).hexdigest()[:16]
