"""Optimizers by name. L2 is coupled weight decay on weight matrices only (see ``aekit.losses.penalties``);
fused kernels are used where torch has them (on CPU the default Adam loops over parameters)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from ..errors import ConfigError

class Adam(torch.optim.Adam):
    """``torch.optim.Adam`` whose fused step skips the generic work torch redoes at every step (regroup the tensors
    by device and dtype, re-check every option, profiler and hook bookkeeping) when there is nothing for it to do:
    every parameter has a gradient and its moments, one device and dtype per group, float settings, no AMSGrad/
    capturable/differentiable. It then makes the same two calls as torch (step counters + 1,
    ``torch._fused_adam_``), so the update is the same bit for bit; anything else goes through
    ``torch.optim.Adam.step``.

    :meth:`fused_step` is that update on its own, without torch's step wrapper (profiler range, step hooks): the
    lists of parameters and moments it passes are built once and reused while the groups and the optimizer state
    stay the same objects (``load_state_dict`` and ``add_param_group`` rebuild them); only the gradients are
    read afresh each step.
    Python and dispatch work per step: ~0.17 ms through torch's wrapper and regrouping, ~0.03 ms here (cProfile)."""

    _plan: list | None = None

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        if closure is None and self.fused_step():
            return None
        return super().step(closure)

    def fused_step(self, found_inf: torch.Tensor | None = None) -> bool:
        """Apply the update if the lean fused path applies (see the class); False, having done nothing, if not.
        ``found_inf``: a 0-d float tensor on the parameters' device; where it is 1 the kernel leaves parameters,
        moments and step counters as they were (torch's AMP mechanism), so a step can refuse a NaN update without
        reading the loss on the host first (a captured CUDA graph, see :mod:`aekit.training.steps`)."""
        plan = self._plan if self._plan is not None else self._make_plan()
        if plan is None:
            return False
        self._plan = plan
        grads = []
        for group, params, *_ in plan:
            if group["params"] is not params or not isinstance(group["lr"], float):
                self._plan = None
                return False
            grads.append([p.grad for p in params])
            if any(g is None for g in grads[-1]):
                return False  # torch's step skips those parameters
        with torch.no_grad():
            for (group, params, exp_avgs, exp_avg_sqs, steps, counters), group_grads in zip(plan, grads):
                counters.add_(1)  # every parameter's step counter: one op (torch: a foreach over 0-d tensors)
                beta1, beta2 = group["betas"]
                torch._fused_adam_(params, group_grads, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False,
                                   lr=group["lr"], beta1=float(beta1), beta2=float(beta2),
                                   weight_decay=group["weight_decay"], eps=group["eps"], maximize=group["maximize"],
                                   found_inf=found_inf)
                if found_inf is not None:
                    counters.sub_(found_inf)
        return True

    def _make_plan(self) -> list | None:
        """Per group: (group, params, exp_avgs, exp_avg_sqs, steps, counters), or None if the lean path does not
        apply (a parameter without optimizer state yet, mixed devices or dtypes, an option it does not implement).
        The group's step counters become views into one tensor, ``counters``, so that one op counts them all;
        each parameter still has a 0-d ``step`` tensor of its own, which torch's generic step counts as before."""
        plan = []
        for group in self.param_groups:
            params = group["params"]
            states = [self.state.get(p) for p in params]
            if (not group.get("fused") or group["amsgrad"] or group.get("capturable") or group.get("differentiable")
                    or group.get("decoupled_weight_decay") or not isinstance(group["lr"], float)
                    or not all(states) or len({(p.device, p.dtype) for p in params}) > 1):
                return None
            if any(s["step"].dim() != 0 or s["step"].device != params[0].device for s in states):
                return None
            counters = torch.stack([s["step"] for s in states])
            for k, s in enumerate(states):
                s["step"] = counters[k]
            plan.append((group, params, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
                         [s["step"] for s in states], counters))
        return plan

    def load_state_dict(self, state_dict) -> None:  # type: ignore[override]
        self._plan = None  # the state tensors are replaced
        super().load_state_dict(state_dict)

    def add_param_group(self, param_group) -> None:  # type: ignore[override]
        self._plan = None
        super().add_param_group(param_group)


def clip_gradients(optimizer: torch.optim.Optimizer) -> None:
    """Scale the gradients of ``optimizer``'s parameters down to its ``clip_grad_norm`` (global L2 norm), if set."""
    max_norm = getattr(optimizer, "clip_grad_norm", None)
    if max_norm:
        grads = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        torch.nn.utils.clip_grad_norm_(grads, max_norm, foreach=True)


def optimizer_step(optimizer: torch.optim.Optimizer) -> None:
    """``optimizer.step()``, through :meth:`Adam.fused_step` when it applies (no per-step wrapper work), after
    clipping the gradients when the optimizer has a ``clip_grad_norm``."""
    clip_gradients(optimizer)
    fused_step = getattr(optimizer, "fused_step", None)
    if fused_step is None or not fused_step():
        optimizer.step()


OPTIMIZERS = {"adam": Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


def make_optimizer(
    name: str,
    params: Iterable[nn.Parameter],
    regularized: Iterable[nn.Parameter],
    learning_rate: float,
    l2: float = 0.0,
    momentum: float = 0.9,
    betas: tuple[float, float] | None = None,
    clip_grad_norm: float | None = None,
) -> torch.optim.Optimizer:
    """An optimizer over ``params``; those also in ``regularized`` (weights, never biases) get decay ``l2``.
    ``betas`` (Adam/AdamW only; None: torch's (0.9, 0.999)), e.g. (0.5, 0.999) for adversarial updates.
    ``clip_grad_norm``: :func:`optimizer_step` clips the gradients to this norm before each update."""
    try:
        cls = OPTIMIZERS[name]
    except KeyError:
        raise ConfigError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}") from None
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ConfigError("nothing to train: every parameter is frozen")
    reg_ids = {id(p) for p in regularized}
    decay = [p for p in params if id(p) in reg_ids]
    rest = [p for p in params if id(p) not in reg_ids]
    if l2:
        groups = [g for g in ({"params": decay, "weight_decay": l2}, {"params": rest, "weight_decay": 0.0}) if g["params"]]
    else:  # one group: one fused kernel call per step instead of two
        groups = [{"params": params, "weight_decay": 0.0}]
    kwargs: dict = {"lr": learning_rate}
    if name == "sgd":
        kwargs["momentum"] = momentum
    elif betas is not None:
        kwargs["betas"] = tuple(betas)
    if all(p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point for p in params):
        kwargs["fused"] = True
    optimizer = cls(groups, **kwargs)
    optimizer.clip_grad_norm = None if clip_grad_norm is None else float(clip_grad_norm)
    return optimizer
