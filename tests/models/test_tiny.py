"""The embedded tokenizer and model: Qwen2 round-trip through AutoTokenizer/AutoModel, SFT learns."""
from __future__ import annotations

import torch

from pipeline.data import synthetic
from pipeline.data.prompts import format_prompt
from pipeline.models.tiny import build_tiny_model, encode_examples, save_model, sft_train
from pipeline.models.tokenizer import EOS, train_tokenizer

TEMPLATE = "Q: {problem}\nA:"


def _corpus(n=200):
    probs = synthetic.generate(0, "t", [1, 2, 3], n)
    return [format_prompt(p.problem, TEMPLATE) for p in probs], [" " + p.solution for p in probs]


def test_tokenizer_roundtrips_through_autotokenizer(tmp_path):
    from transformers import AutoTokenizer

    prompts, comps = _corpus()
    tok = train_tokenizer(prompts + comps, 320)
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    for text in prompts[:20] + comps[:20] + ["Start with 123456. Add -7.\n\nWhat?  \\boxed{x}"]:
        assert tok(text)["input_ids"] == again(text)["input_ids"]
        assert again.decode(again(text)["input_ids"]) == text
    assert again.eos_token == EOS == again.pad_token
    digits = again("12345", add_special_tokens=False)["input_ids"]
    assert len(digits) == 5  # Qwen2's split isolates digits


def test_each_step_of_a_chain_is_six_tokens_with_one_token_per_operation():
    """The task's format relies on it: a written result depends on two tokens at fixed offsets."""
    prompts, comps = _corpus()
    tok = train_tokenizer(prompts + comps, 320)
    for op in synthetic.OPS:
        assert len(tok(op, add_special_tokens=False)["input_ids"]) == 1, op
    pieces = [tok.decode([i]) for i in tok(" 4 a:4+two=6 b:6-three=3", add_special_tokens=False)["input_ids"]]
    assert pieces == [" ", "4", " a", ":", "4", "+two", "=", "6", " b", ":", "6", "-three", "=", "3"]


def test_tiny_model_sft_lowers_loss_and_reloads(tmp_path):
    from transformers import AutoModelForCausalLM

    prompts, comps = _corpus()
    tok = train_tokenizer(prompts + comps, 320)
    model = build_tiny_model(tok, hidden_size=64, num_layers=1, num_heads=2, num_kv_heads=1,
                             intermediate_size=128, max_position_embeddings=128, seed=0)
    assert model.config.hidden_size // model.config.num_attention_heads >= 32
    assert model.config.tie_word_embeddings
    examples = encode_examples(tok, prompts, comps, 128)
    hist = sft_train(model, tok, examples, steps=30, batch_size=16, lr=3e-3, warmup_steps=3, seed=0, log_every=10)
    assert hist[-1]["loss"] < hist[0]["loss"]
    save_model(model, tok, tmp_path / "m")
    again = AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    ids = torch.tensor([examples[0][0]])
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, again(ids).logits, atol=1e-6)
