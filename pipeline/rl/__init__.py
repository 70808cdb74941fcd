"""The RL core as pure functions and small objects over tensors (public API; see docs/methods.md)."""
from pipeline.rl.advantages import grpo_advantages
from pipeline.rl.controllers import AEntController, AERController, SkyworkController, difficulty_weights
from pipeline.rl.entropy import clamped_entropy, fused_logprob_entropy, nucleus_entropy, token_entropy
from pipeline.rl.losses import AGG_MODES, aggregate, clipped_policy_loss, policy_token_losses
from pipeline.rl.methods.aent import AEnt
from pipeline.rl.methods.aer import AER
from pipeline.rl.methods.base import (REGISTRY, Comm, Denoms, RegInputs, RegOutput, Regularizer, StepGuard,
                                      global_aggregate, local_comm)
from pipeline.rl.methods.clip_cov import ClipCov
from pipeline.rl.methods.cov import token_covariance
from pipeline.rl.methods.fixed import FixedEntropy
from pipeline.rl.methods.kl_cov import KLCov
from pipeline.rl.methods.siren import Siren, peak_entropy_mask
from pipeline.rl.methods.skywork import Skywork
from pipeline.rl.registry import build, build_regularizer, method_class, method_configs, method_names

__all__ = [
    "grpo_advantages", "aggregate", "clipped_policy_loss", "policy_token_losses", "token_entropy",
    "fused_logprob_entropy", "clamped_entropy", "nucleus_entropy", "AERController", "AEntController",
    "SkyworkController", "StepGuard", "difficulty_weights", "Regularizer", "RegInputs", "RegOutput", "Denoms",
    "Comm", "local_comm", "global_aggregate", "AER", "AEnt", "FixedEntropy", "Siren", "Skywork", "ClipCov", "KLCov",
    "peak_entropy_mask", "token_covariance", "REGISTRY", "build", "build_regularizer", "method_class",
    "method_configs", "method_names", "AGG_MODES",
]
