"""Prompt formatting: the instruction reaches a chat model once; stop tokens map to single token ids."""
from __future__ import annotations

import pytest

from pipeline.config import ConfigError
from pipeline.data.prompts import format_prompt, stop_token_ids
from pipeline.models.tokenizer import train_tokenizer

INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
# Like Qwen2.5-Math's template: without a system message it opens with the instruction as a system turn.
DEFAULT_SYSTEM_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}<|im_start|>system\n" + INSTRUCTION
    + "<|im_end|>\n{% endif %}{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@pytest.fixture(scope="module")
def tokenizer():
    tok = train_tokenizer(["What is 2 + 3? Please reason step by step."] * 4, 300)
    tok.chat_template = DEFAULT_SYSTEM_TEMPLATE
    return tok


def test_regression_instruction_in_both_prompt_and_system_turn_is_refused(tokenizer):
    with pytest.raises(ConfigError, match="model.prompt_template.*appears twice.*Fix"):
        format_prompt("What is 2 + 3?", "{problem}\n" + INSTRUCTION, tokenizer, use_chat_template=True)


def test_bare_problem_gets_the_instruction_once_from_the_chat_template(tokenizer):
    text = format_prompt("What is 2 + 3?", "{problem}", tokenizer, use_chat_template=True)
    assert text.count(INSTRUCTION) == 1 and text.endswith("<|im_start|>assistant\n")
    assert text.index(INSTRUCTION) < text.index("What is 2 + 3?")  # in the system turn, before the problem


def test_template_text_may_repeat_inside_the_problem_itself(tokenizer):
    tokenizer_plain = train_tokenizer(["x"] * 4, 300)  # the tiny chat template: no default system turn
    problem = "Solve: " + "Answer the question carefully below."
    text = format_prompt(problem, "{problem}\nAnswer the question carefully below.", tokenizer_plain, True)
    assert text.count("Answer the question carefully below.") == 2


def test_stop_tokens_map_to_single_ids(tokenizer):
    ids = stop_token_ids(tokenizer, ["<|im_end|>"])
    assert ids == [tokenizer.convert_tokens_to_ids("<|im_end|>")] and stop_token_ids(tokenizer, []) == []
    with pytest.raises(ConfigError, match="model.stop_tokens.*not one"):
        stop_token_ids(tokenizer, ["two words"])
