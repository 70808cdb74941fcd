"""Process-group set-up and the few collectives the trainer needs (gloo on CPU, NCCL on GPU).

A single process without a launcher gets a one-rank group over an in-memory store (no port, so no
race with other processes for a "free" port), and the same code path (DeepSpeed included) runs in
tests, under `torchrun --nproc_per_node N`, and under `deepspeed`.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


LAUNCHER_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def launched() -> bool:
    """torchrun and the deepspeed launcher set all of these; a stray RANK alone is not a launcher."""
    return all(k in os.environ for k in LAUNCHER_ENV)


def init(backend: str | None = None) -> tuple[int, int]:
    """Initialise (once) and return (rank, world_size)."""
    if not dist.is_initialized():
        backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        if not launched():  # no launcher: a one-rank group, no network
            # Only LOCAL_RANK (DeepSpeed reads it); exporting RANK would make a child process look launched.
            os.environ.setdefault("LOCAL_RANK", "0")
            dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
        from pipeline.train.engine import import_deepspeed

        # auto_mpi_discovery off: without MASTER_ADDR DeepSpeed would otherwise look for MPI (mpi4py)
        import_deepspeed().init_distributed(dist_backend=backend, auto_mpi_discovery=False, verbose=False)
    return dist.get_rank(), dist.get_world_size()


def all_sum(values: list[float]) -> list[float]:
    """Element-wise sum across ranks (float64 on CPU, so it works with gloo and NCCL alike)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return list(values)
    dev = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    t = torch.tensor(values, dtype=torch.float64, device=dev)
    dist.all_reduce(t)
    return t.cpu().tolist()


def all_gather_lists(values: list) -> list[list]:
    """Every rank's `values`, in rank order (pickled: for small lists, e.g. selection thresholds)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return [list(values)]
    out: list = [None] * dist.get_world_size()
    dist.all_gather_object(out, list(values))
    return out


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0
