import numpy as np
import pytest
import torch

import aekit
from aekit.errors import TrainingError
from aekit.losses import Objective
from aekit.models import DenseAutoencoder
from aekit.training import ReconstructionStep, make_optimizer, train


def weights(est):
    return {k: v.clone() for k, v in est.model_.state_dict().items()}


def test_same_seed_gives_identical_weights(digits):
    X, _ = digits
    a = weights(aekit.Autoencoder((16, 8), epochs=3, random_state=0).fit(X))
    b = weights(aekit.Autoencoder((16, 8), epochs=3, random_state=0).fit(X))
    c = weights(aekit.Autoencoder((16, 8), epochs=3, random_state=1).fit(X))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_training_reduces_loss_and_records_history(digits):
    X, _ = digits
    est = aekit.Autoencoder((32, 16), epochs=8, random_state=0).fit(X)
    losses = [r["loss"] for r in est.history_]
    assert len(est.history_) == 8 and est.n_epochs_ == 8
    assert losses[-1] < 0.6 * losses[0]
    assert {"epoch", "loss", "reconstruction", "l2", "time"} <= set(est.history_[0])


def test_divergence_stops_with_clear_message_and_no_bad_update(tiny):
    est = aekit.Autoencoder((8,), activation="linear", optimizer="sgd", learning_rate=1e6, epochs=50, random_state=0)
    with pytest.raises(TrainingError, match=r"diverged at epoch \d+, batch \d+/\d+.*lower learning rate"):
        est.fit(tiny * 100)
    for p in est.model_.parameters():
        assert torch.isfinite(p).all()


def test_early_stopping_restores_best(digits):
    X, _ = digits
    est = aekit.Autoencoder((16,), epochs=200, early_stopping=True, patience=2, learning_rate=0.05,
                            random_state=0).fit(X)
    vals = [r["val_loss"] for r in est.history_]
    assert len(vals) < 200
    best = int(np.argmin(vals))
    assert len(vals) - 1 - best == 2  # stopped `patience` epochs after the best one


def test_l2_decays_weights_never_biases():
    model = DenseAutoencoder(6, [4], seed=0)
    opt = make_optimizer("sgd", model.parameters(), model.regularized_weights(), learning_rate=0.1, l2=0.5,
                         momentum=0.0)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    with torch.no_grad():
        model.encoder[0].bias.fill_(1.0)
    before = {n: p.clone() for n, p in model.named_parameters()}
    opt.step()
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            assert torch.equal(p, before[name]), name
        else:  # grad += l2 * W  =>  W <- W (1 - lr * l2)
            assert torch.allclose(p, before[name] * (1 - 0.1 * 0.5)), name


def test_loop_uses_targets_and_partial_last_batch():
    torch.manual_seed(0)
    X = torch.rand(10, 4)
    Y = torch.rand(10, 4)
    model = DenseAutoencoder(4, [3], seed=0)
    step = ReconstructionStep(model, Objective("mse"), make_optimizer("adam", model.parameters(), [], 1e-2))
    seen = []
    original = step.train_batch

    def spy(xb, yb):
        seen.append((len(xb), bool(torch.equal(xb, yb))))
        return original(xb, yb)

    step.train_batch = spy
    hist = train(step, X, Y, epochs=1, batch_size=4, generator=torch.Generator().manual_seed(0))
    assert [n for n, _ in seen] == [4, 4, 2]
    assert not any(same for _, same in seen)
    assert hist[0]["loss"] > 0


def test_training_keeps_freed_memory_for_the_next_batch(monkeypatch):
    """The loop raises glibc's mmap/trim thresholds once, so a step's activations reuse freed heap blocks instead
    of faulting in fresh pages; AEKIT_MALLOC_KEEP_MIB=0 opts out."""
    import resource
    import sys

    from aekit import allocator

    if not sys.platform.startswith("linux"):
        pytest.skip("mallopt is glibc's")
    monkeypatch.setenv("AEKIT_MALLOC_KEEP_MIB", "0")
    assert allocator.keep_freed_memory.__wrapped__() is False
    monkeypatch.delenv("AEKIT_MALLOC_KEEP_MIB")
    assert allocator.keep_freed_memory() is True
    model = DenseAutoencoder(784, [300, 150], seed=0)
    step = ReconstructionStep(model, Objective("mse"), make_optimizer("adam", model.parameters(), [], 1e-3))
    X = torch.rand(300, 784, generator=torch.Generator().manual_seed(0))
    for _ in range(5):  # the heap grows to its working size (Adam's moments appear at the first step)
        train(step, X, epochs=5, batch_size=150, generator=torch.Generator().manual_seed(0))
    faults_per_step = []
    for _ in range(3):  # the best of three: the second BLAS thread's own malloc arena faults now and then
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        train(step, X, epochs=5, batch_size=150, generator=torch.Generator().manual_seed(0))
        faults_per_step.append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
    assert min(faults_per_step) < 5, faults_per_step


@pytest.mark.parametrize("inplace_grads", [False, True])
@pytest.mark.parametrize("l2", [0.0, 1e-3])
def test_lean_fused_adam_matches_torch_adam_bit_for_bit(l2, inplace_grads):
    """aekit's Adam skips torch's per-step bookkeeping but must make exactly the same update, including when a
    parameter has no gradient (it then falls back to torch's step), across a state_dict round trip, and when the
    gradients are written in place into the same tensors every step (its cached tensor lists are reused)."""
    from aekit.training.optim import Adam, optimizer_step

    def run(cls):
        model = DenseAutoencoder(30, [12, 5], seed=0)
        weights = model.regularized_weights()
        rest = [p for p in model.parameters() if all(p is not w for w in weights)]
        opt = cls([{"params": weights, "weight_decay": l2}, {"params": rest}], lr=1e-2, fused=True)
        X = torch.rand(64, 30, generator=torch.Generator().manual_seed(1))
        buffers = {}
        for i in range(8):
            grads = torch.autograd.grad(model(X[i * 8 : (i + 1) * 8]).logits.sub(X[i * 8 : (i + 1) * 8]).square()
                                        .mean(), list(model.parameters()))
            for p, g in zip(model.parameters(), grads):
                if inplace_grads:
                    p.grad = buffers.setdefault(p, torch.zeros_like(p))
                    p.grad.copy_(g)
                else:
                    p.grad = g
            if i == 3:
                model.encoder[0].bias.grad = None  # one parameter without a gradient: the generic path
            optimizer_step(opt)
            if i == 4:
                opt.load_state_dict(opt.state_dict())
        return [p.detach().clone() for p in model.parameters()]

    for mine, theirs in zip(run(Adam), run(torch.optim.Adam)):
        assert torch.equal(mine, theirs)


@pytest.mark.parametrize("gpus, local_size, local, device, expected", [
    (0, 2, 1, "auto", "cpu"),
    (1, 2, 1, "auto", "cpu"),  # two processes, one GPU: nccl cannot share it, so auto means the CPU
    (2, 2, 1, "auto", "cuda:1"),
    (2, 2, 1, None, "cuda:1"),
    (2, 2, 0, "cpu", "cpu"),
    (1, 2, 1, "cuda", "a GPU of its own, and it has 1"),  # asked for: a clear error, not a CUDA traceback
    (0, 1, 0, "cuda", "has no CUDA GPU; use --device cpu"),
])
def test_each_torchrun_process_gets_its_own_device(monkeypatch, gpus, local_size, local, device, expected):
    from aekit.errors import AekitError
    from aekit.training.distributed import rank_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    monkeypatch.setenv("LOCAL_RANK", str(local))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(local_size))
    if expected.startswith(("cpu", "cuda")):
        assert rank_device(device) == expected
    else:
        with pytest.raises(AekitError, match=expected):
            rank_device(device)
