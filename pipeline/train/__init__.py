"""The on-policy GRPO trainer with DeepSpeed, rollout weight sync, checkpoints and telemetry."""
