"""WAE-MMD (src/aekit/models/wae.py)."""

import json

import numpy as np
import pytest
import torch

import aekit
from aekit.cli import main


def test_mmd_is_the_unbiased_estimate_written_out():
    from aekit.models.wae import SCALES, mmd

    torch.manual_seed(0)
    a, b = torch.randn(6, 2), torch.randn(6, 2) + 1.0

    def k(x, y):
        return sum(4.0 * s / (4.0 * s + ((x - y) ** 2).sum()) for s in SCALES)

    n = 6
    within = sum(k(a[i], a[j]) + k(b[i], b[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    across = sum(k(a[i], b[j]) for i in range(n) for j in range(n)) / n**2
    assert mmd(a, b).item() == pytest.approx((within - 2 * across).item(), rel=1e-5)
    same = torch.randn(400, 2)
    assert abs(mmd(same, torch.randn(400, 2)).item()) < 0.05 < mmd(same, same + 2.0).item()


def test_the_penalty_shapes_the_codings_like_the_prior(digits):
    from aekit.models.wae import mmd

    X, X_test = digits
    fits = {w: aekit.WAE((32,), latent_dim=4, mmd_weight=w, epochs=30, random_state=0).fit(X) for w in (0.0, 10.0)}
    gap = {}
    for w, est in fits.items():
        z = torch.as_tensor(est.transform(X_test))
        gap[w] = mmd(z, torch.randn(z.shape, generator=torch.Generator().manual_seed(0))).item()
    assert gap[10.0] < 0.3 * gap[0.0], gap
    est = fits[10.0]
    assert est.history_[-1]["loss"] == pytest.approx(est.history_[-1]["reconstruction"] + est.history_[-1]["mmd"])
    assert not any(name.startswith("logvar") for name, _ in est.model_.named_parameters())  # deterministic
    z = est.transform(X_test)
    assert np.array_equal(z, est.transform(X_test))
    ae = aekit.Autoencoder((32, 4), epochs=30, random_state=0).fit(X)
    assert est.score(X_test) > 1.2 * ae.score(X_test)  # reconstructions near a plain autoencoder's (negative MSE)
    assert est.sample(8, random_state=0).shape == (8, 64)
    assert not hasattr(est, "log_likelihood")


def test_cli_trains_samples_and_refuses_nll(tmp_path, capsys):
    run = tmp_path / "w"
    assert main(["train", "--model", "wae", "--hidden", "16", "--latent-dim", "3", "--mmd-weight", "5", "--kernel",
                 "rbf", "--epochs", "2", "--out", str(run), "--quiet", "--json"]) == 0
    est = aekit.load(run)
    assert type(est).__name__ == "WAE" and est.model_.config["kernel"] == "rbf" and est.mmd_weight == 5.0
    capsys.readouterr()
    assert main(["generate", str(run), "--n", "4", "--out", str(tmp_path / "g.png"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["shape"] == [4, 64]
    assert main(["evaluate", str(run), "--nll"]) == 2
    assert "--nll" in capsys.readouterr().err
