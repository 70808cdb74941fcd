"""DeepSpeed as users configure it: a user ds_config merged over ours ("auto" filled, user keys win,
trainer-owned keys guarded), optimizer offload, gradient checkpointing, and ZeRO-3 loading inside zero.Init."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pipeline.config import ConfigError, load_params
from pipeline.models.forward import pack
from pipeline.train.distributed import init
from pipeline.train.engine import (build, config_from_params, deepspeed_config, full_state_dict, initialize,
                                   merge_user_config)
from tests.conftest import ROOT

OURS = deepspeed_config(micro_batch_size=4, world_size=2, lr=1e-6, weight_decay=0.0, zero_stage=2, bf16=True,
                        gradient_clipping=1.0)


def test_user_values_win_and_auto_takes_ours():
    user = {"train_micro_batch_size_per_gpu": "auto", "gradient_clipping": 0.5,
            "optimizer": {"params": {"lr": "auto", "betas": [0.9, 0.95]}},
            "zero_optimization": {"stage": "auto", "reduce_bucket_size": 5e8, "overlap_comm": True},
            "bf16": {"enabled": "auto"}, "activation_checkpointing": {"partition_activations": False}}
    got = merge_user_config(OURS, user, "ds.json")
    assert got["train_micro_batch_size_per_gpu"] == 4 and got["gradient_clipping"] == 0.5
    assert got["optimizer"]["params"] == {**OURS["optimizer"]["params"], "betas": [0.9, 0.95]}
    assert got["optimizer"]["type"] == "AdamW"  # untouched keys of ours survive a partial user section
    assert got["zero_optimization"] == {"stage": 2, "reduce_bucket_size": 5e8, "overlap_comm": True}
    assert got["bf16"] == {"enabled": True} and got["activation_checkpointing"] == {"partition_activations": False}
    assert OURS["gradient_clipping"] == 1.0  # ours is not modified in place


@pytest.mark.parametrize("user,key", [({"gradient_accumulation_steps": 4}, "gradient_accumulation_steps"),
                                      ({"zero_optimization": {"stage": 3}}, "zero_optimization.stage"),
                                      ({"train_batch_size": 64}, "train_batch_size")])
def test_user_config_cannot_change_what_the_trainer_accounts_for(user, key):
    with pytest.raises(ConfigError, match=rf"ds\.json: key '{key}'.*Fix"):
        merge_user_config(OURS, user, "ds.json")
    assert merge_user_config(OURS, {k: OURS[k] for k in user if not isinstance(OURS[k], dict)}, "ds.json")


def test_auto_without_a_value_of_ours_is_an_error_naming_the_key():
    with pytest.raises(ConfigError, match="'scheduler.params.warmup_num_steps' = 'auto'"):
        merge_user_config(OURS, {"scheduler": {"type": "WarmupLR", "params": {"warmup_num_steps": "auto"}}}, "ds.json")


def test_config_from_params_reads_the_user_file(tmp_path, tiny_params_file):
    ds = tmp_path / "ds.json"
    ds.write_text(json.dumps({"zero_optimization": {"stage": "auto", "offload_optimizer": {"device": "cpu"}},
                              "optimizer": {"params": {"lr": "auto", "eps": 1e-6}}}))
    p = load_params(tiny_params_file(**{"train.deepspeed.zero_stage": 1, "train.deepspeed.config_file": str(ds)}))
    cfg = config_from_params(p.train, world_size=1)
    assert cfg["zero_optimization"] == {"stage": 1, "offload_optimizer": {"device": "cpu"}}
    assert cfg["optimizer"]["params"]["lr"] == p.train.lr and cfg["optimizer"]["params"]["eps"] == 1e-6


def test_offload_flag_reaches_the_config():
    cfg = deepspeed_config(micro_batch_size=4, world_size=1, lr=1e-3, weight_decay=0.0, zero_stage=2, bf16=False,
                           gradient_clipping=1.0, offload_optimizer=True)
    assert cfg["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
    assert "offload_optimizer" not in OURS["zero_optimization"]


def _tiny_lm(seed=0):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    return Qwen2ForCausalLM(Qwen2Config(vocab_size=64, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                        num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True))


def _batch():
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(1, 64, (5,), generator=g).tolist() for _ in range(3)]
    responses = [torch.randint(1, 64, (n,), generator=g).tolist() for n in (7, 4, 9)]
    return pack(prompts, responses, 0)


def test_offloaded_optimizer_steps_under_zero2():
    init()
    model = _tiny_lm()
    cfg = deepspeed_config(micro_batch_size=3, world_size=1, lr=1e-2, weight_decay=0.0, zero_stage=2, bf16=False,
                           gradient_clipping=1.0, offload_optimizer=True)
    engine = initialize(model, cfg)
    assert engine.zero_cpu_offload() and engine.optimizer.cpu_offload
    before = model.model.layers[0].mlp.up_proj.weight.detach().clone()
    b = _batch()
    lp, _, _ = engine(b.input_ids, b.attention_mask, b.response_mask)
    engine.backward(-(lp * b.response_mask).sum(), scale_wrt_gas=False)
    engine.step()
    assert not torch.equal(model.model.layers[0].mlp.up_proj.weight.detach(), before)


def _loss_and_grads(checkpointing: bool):
    init()
    model = _tiny_lm()
    calls, mlp = [], model.model.layers[0].mlp
    forward = mlp.forward  # wrapped, not hooked: checkpoint recomputation runs forward without module hooks
    mlp.forward = lambda *a, **k: calls.append(1) or forward(*a, **k)
    engine = initialize(model, deepspeed_config(micro_batch_size=3, world_size=1, lr=1e-3, weight_decay=0.0,
                                                zero_stage=0, bf16=False, gradient_clipping=1.0),
                        gradient_checkpointing=checkpointing)
    engine.train()
    b = _batch()
    lp, ent, _ = engine(b.input_ids, b.attention_mask, b.response_mask)
    loss = -(lp * b.response_mask).sum() - 0.1 * (ent * b.response_mask).sum()
    engine.backward(loss, scale_wrt_gas=False)
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return float(loss.detach()), grads, len(calls), model.is_gradient_checkpointing


def test_gradient_checkpointing_gives_the_same_loss_and_gradients():
    loss0, grads0, calls0, on0 = _loss_and_grads(False)
    loss1, grads1, calls1, on1 = _loss_and_grads(True)
    assert (on0, on1) == (False, True) and (calls0, calls1) == (1, 2)  # the layer really was recomputed
    assert loss1 == pytest.approx(loss0, rel=1e-6) and grads0.keys() == grads1.keys() and len(grads0) > 0
    for name in grads0:
        assert torch.allclose(grads0[name], grads1[name], atol=1e-6), name


def test_zero3_build_loads_inside_zero_init_and_exports_the_saved_weights(tiny_model_dir, tiny_params_file):
    from safetensors.torch import load_file

    init()
    p = load_params(tiny_params_file(**{"train.deepspeed.zero_stage": 3, "train.micro_batch_size": 2}))
    engine, tokenizer = build(p.train, str(tiny_model_dir), "float32", world_size=1)
    params = list(engine.module.policy.parameters())
    assert all(hasattr(q, "ds_id") for q in params)  # created partitioned by zero.Init, not converted later
    assert all(q.data.numel() == 0 for q in params)  # nothing whole outside a gather
    saved = load_file(str(tiny_model_dir / "model.safetensors"))
    state = full_state_dict(engine, 3)
    assert tokenizer.pad_token is not None
    for name, tensor in saved.items():
        assert torch.equal(state[name], tensor), name
    assert torch.equal(state["lm_head.weight"], state["model.embed_tokens.weight"])  # still tied


@pytest.mark.slow
def test_zero3_build_on_two_ranks_partitions_while_loading(tmp_path, tiny_model_dir, tiny_params_file):
    params = tiny_params_file(**{"train.deepspeed.zero_stage": 3, "train.micro_batch_size": 2})
    out = tmp_path / "report.json"
    proc = subprocess.run([str(Path(sys.executable).parent / "torchrun"), "--standalone", "--nproc_per_node", "2",
                           str(ROOT / "tests/train/zero3_load.py"), str(params), str(tiny_model_dir), str(out)],
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert [r["rank"] for r in report] == [0, 1] and all(r["same"] and r["empty"] for r in report)
    for r in report:  # each rank holds half of every parameter (plus at most one padding value per tensor)
        assert r["whole"] / 2 <= r["held"] <= r["whole"] / 2 + 100
