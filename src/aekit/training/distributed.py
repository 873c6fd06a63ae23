"""Data-parallel training under ``torchrun`` (DistributedDataParallel; gloo on CPU, nccl on GPU).

``torchrun --nproc-per-node N -m aekit.cli train ...`` starts N processes; :func:`init_from_env` joins them
into one group. The loop shards every epoch's permutation across ranks and sums metrics over them; DDP averages
gradients; only rank 0 writes checkpoints and files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ConfigError


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside a process group."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    return world()[0] == 0


def rank_device(device: str | None = None) -> str:
    """This torchrun process's device: ``cuda:LOCAL_RANK`` when CUDA is asked for, or with "auto"/None when this
    machine has a GPU for each of its processes (nccl refuses two processes on one GPU); else ``cpu``."""
    local = int(os.environ.get("LOCAL_RANK", "0"))
    local_size = int(os.environ.get("LOCAL_WORLD_SIZE", str(local + 1)))
    n_gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if not (device in (None, "auto") and n_gpus >= local_size or str(device).startswith("cuda")):
        return "cpu"
    if n_gpus == 0:
        raise ConfigError(f"device {device!r} was asked for, but this machine has no CUDA GPU; use --device cpu or auto")
    if local >= n_gpus:
        raise ConfigError(f"process {local} of this machine needs a GPU of its own, and it has {n_gpus}: start at "
                         f"most {n_gpus} per machine (torchrun --nproc-per-node {n_gpus}), or train on the CPU "
                         "with --device cpu")
    return f"cuda:{local}"


def init_from_env(device: str | None = None) -> str | None:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1); returns the device this rank should use
    (``cuda:LOCAL_RANK`` with nccl when CUDA is asked for, or with "auto" when this machine has a GPU for each
    of its processes; else ``cpu`` with gloo)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or torch.distributed.is_initialized():
        return device
    device = rank_device(device)
    use_cuda = device.startswith("cuda")
    if use_cuda:
        torch.cuda.set_device(device)
    # A fresh key prefix per torchrun restart: otherwise a restarted rank can read the addresses that the
    # previous round's (dead) workers left in the shared store and fail to connect.
    store, rank, size = next(torch.distributed.rendezvous("env://"))
    store = torch.distributed.PrefixStore(f"aekit/restart-{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}", store)
    torch.distributed.init_process_group(backend="nccl" if use_cuda else "gloo", store=store, rank=rank,
                                         world_size=size)
    return device


def distributed(module: nn.Module, trainable: Sequence[nn.Parameter] | None = None) -> nn.Module:
    """``module`` wrapped in DistributedDataParallel when running in a group of several processes, else itself.
    Parameters outside ``trainable`` (frozen layers of a greedy phase) are allowed to get no gradient."""
    if world()[1] <= 1:
        return module
    frozen = trainable is not None and {id(p) for p in trainable} != {id(p) for p in module.parameters()}
    return nn.parallel.DistributedDataParallel(module, find_unused_parameters=frozen)


def unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module
