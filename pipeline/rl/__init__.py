"""The RL core as pure functions and small objects over tensors (public API; see docs/methods.md)."""
from pipeline.rl.advantages import grpo_advantages
from pipeline.rl.baselines import ClipCov, KLCov, Siren, Skywork, peak_entropy_mask, token_covariance
from pipeline.rl.controllers import (AEntController, AERController, SkyworkController, StepGuard,
                                     difficulty_weights)
from pipeline.rl.entropy import clamped_entropy, fused_logprob_entropy, nucleus_entropy, token_entropy
from pipeline.rl.losses import AGG_MODES, aggregate, clipped_policy_loss, policy_token_losses
from pipeline.rl.registry import REGULARIZERS, build_regularizer, regularized_loss
from pipeline.rl.regularizers import AER, AEnt, FixedEntropy, Regularizer, RegInputs, RegOutput

__all__ = [
    "grpo_advantages", "aggregate", "clipped_policy_loss", "policy_token_losses", "token_entropy",
    "fused_logprob_entropy", "clamped_entropy", "nucleus_entropy", "AERController", "AEntController",
    "SkyworkController", "StepGuard", "difficulty_weights", "Regularizer", "RegInputs", "RegOutput", "AER",
    "AEnt", "FixedEntropy", "Siren", "Skywork", "ClipCov", "KLCov", "peak_entropy_mask", "token_covariance",
    "REGULARIZERS", "build_regularizer", "regularized_loss", "AGG_MODES",
]
