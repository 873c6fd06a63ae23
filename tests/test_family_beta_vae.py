"""beta-VAE and its capacity annealing (src/aekit/models/beta_vae.py)."""

import json

import numpy as np
import pytest
import torch

import aekit
from aekit.cli import main
from aekit.models.variational import gaussian_kl

from _resume import assert_same_run, interrupted_then_resumed  # tests/_resume.py


def test_beta_weights_the_kl_and_presses_it_down(digits):
    X, _ = digits
    fits = {beta: aekit.BetaVAE((32,), latent_dim=6, beta=beta, epochs=15, random_state=0, binarize=None).fit(X)
            for beta in (1.0, 8.0)}
    assert aekit.BetaVAE().beta == 4.0
    kl = {beta: fits[beta].history_[-1]["kl"] / beta for beta in fits}  # the term is beta * KL
    assert kl[8.0] < 0.6 * kl[1.0]
    # beta = 1 is the VAE: its test ELBO is the better one
    X_test = digits[1]
    assert fits[1.0].elbo(X_test, random_state=0).mean() > fits[8.0].elbo(X_test, random_state=0).mean()


def test_capacity_term_is_beta_times_distance_to_the_annealed_capacity(digits):
    X, _ = digits
    est = aekit.BetaVAE((16,), latent_dim=3, beta=50.0, capacity=6.0, capacity_epochs=4, epochs=6, random_state=0)
    est.fit(X)
    assert [r["capacity"] for r in est.history_] == [0.0, 1.5, 3.0, 4.5, 6.0, 6.0]
    model = est.model_
    assert model.capacity_now == 6.0  # after training: the full capacity
    mu, logvar = torch.randn(5, 3), torch.randn(5, 3) * 0.3
    z = torch.randn(5, 3)
    model.capacity_now = 2.0
    term = model.latent_terms(None, mu, logvar, z)["kl"]
    assert term.item() == pytest.approx(50.0 * abs(gaussian_kl(mu, logvar).mean().item() - 2.0), rel=1e-6)
    # the KL is steered towards the capacity: near 6 nats at the end, not pressed to 0 by beta = 50
    assert np.isfinite(est.elbo(X, random_state=0)).all()  # a true ELBO, whatever the training term
    with torch.no_grad():
        assert 3.0 < float(gaussian_kl(*model.encode_distribution(torch.as_tensor(X))).mean()) < 9.0


def test_capacity_resumes_bit_for_bit(digits, tmp_path):
    X, _ = digits
    kw = dict(hidden_layers=(16,), latent_dim=3, capacity=4.0, capacity_epochs=3, epochs=5, batch_size=64,
              random_state=0)
    whole = aekit.BetaVAE(**kw).fit(X)
    assert_same_run(whole, interrupted_then_resumed(aekit.BetaVAE, X, tmp_path, **kw))  # SIGINT inside epoch 3


def test_cli_trains_and_samples(tmp_path, capsys):
    run = tmp_path / "b"
    assert main(["train", "--model", "beta-vae", "--hidden", "16", "--latent-dim", "3", "--capacity", "5",
                 "--capacity-epochs", "2", "--epochs", "3", "--out", str(run), "--quiet", "--json"]) == 0
    est = aekit.load(run)
    assert type(est).__name__ == "BetaVAE" and est.capacity == 5.0 and est.beta == 4.0
    capsys.readouterr()
    assert main(["generate", str(run), "--n", "4", "--out", str(tmp_path / "g.png"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["shape"] == [4, 64]
