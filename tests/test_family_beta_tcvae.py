"""beta-TCVAE (src/aekit/models/beta_tcvae.py)."""

import json
import math

import numpy as np
import pytest
import torch

import aekit
from aekit.cli import main

from _resume import assert_same_run, interrupted_then_resumed  # tests/_resume.py


def _module(**kw):
    from aekit.models.beta_tcvae import BetaTCVAEModule

    return BetaTCVAEModule(8, [6], latent_dim=3, seed=0, **kw)


def test_the_three_terms_sum_to_the_one_sample_kl():
    model = _module(dataset_size=1000)
    torch.manual_seed(0)
    mu, logvar = torch.randn(50, 3), torch.randn(50, 3) * 0.4
    z = mu + torch.exp(0.5 * logvar) * torch.randn(50, 3)
    mi, tc, dim_kl = model.decomposition(mu, logvar, z)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(1)
    p = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1)
    assert (mi + tc + dim_kl.sum()).item() == pytest.approx((q - p).mean().item(), abs=1e-4)
    # a hand-written minibatch-weighted estimate of log q(z_i), the paper's eq. 4
    pair = torch.distributions.Normal(mu[None], torch.exp(0.5 * logvar[None])).log_prob(z[:, None]).sum(2)
    log_qz = torch.logsumexp(pair, 1) - math.log(1000 * 50)
    assert mi.item() == pytest.approx((q - log_qz).mean().item(), abs=1e-4)
    terms = _module(alpha=0.5, beta=6.0, gamma=2.0, dataset_size=1000).latent_terms(None, mu, logvar, z)
    assert terms["tc"].item() == pytest.approx(6.0 * tc.item(), rel=1e-5)
    assert terms["mi"].item() == pytest.approx(0.5 * mi.item(), rel=1e-5)
    assert terms["dim_kl"].item() == pytest.approx(2.0 * dim_kl.sum().item(), rel=1e-5)


@torch.no_grad()
def _total_correlation(model, X):
    """KL(q(z) || prod_d q(z_d)) with q(z) the mixture of all N posteriors (no minibatch estimate)."""
    mu, logvar = model.encode_distribution(torch.as_tensor(X))
    z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=torch.Generator().manual_seed(0))
    pair = torch.distributions.Normal(mu[None], torch.exp(0.5 * logvar[None])).log_prob(z[:, None])  # (N, N, D)
    log_qz = torch.logsumexp(pair.sum(2), 1) - math.log(len(X))
    log_marginals = (torch.logsumexp(pair, 1) - math.log(len(X))).sum(1)
    return float((log_qz - log_marginals).mean())


def test_a_large_beta_lowers_the_total_correlation(digits):
    X, _ = digits
    tc = {}
    for beta in (1.0, 10.0):
        est = aekit.BetaTCVAE((32,), latent_dim=4, beta=beta, epochs=15, batch_size=100, random_state=0).fit(X)
        assert est.model_.config["dataset_size"] == len(X)
        assert {"mi", "tc", "dim_kl"} <= set(est.history_[-1])
        tc[beta] = _total_correlation(est.model_, X)
        assert np.isfinite(est.elbo(X[:50], random_state=0)).all()
    assert aekit.BetaTCVAE().beta == 6.0
    assert tc[10.0] < 0.7 * tc[1.0], tc


def test_cli_trains_and_samples(tmp_path, capsys):
    run = tmp_path / "t"
    assert main(["train", "--model", "beta-tcvae", "--hidden", "16", "--latent-dim", "3", "--beta", "3", "--gamma",
                 "2", "--epochs", "2", "--out", str(run), "--quiet", "--json"]) == 0
    est = aekit.load(run)
    assert type(est).__name__ == "BetaTCVAE" and est.beta == 3.0 and est.gamma == 2.0 and est.n_epochs_ == 2
    capsys.readouterr()
    assert main(["generate", str(run), "--n", "4", "--out", str(tmp_path / "g.png"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["shape"] == [4, 64]


def test_resume_is_bit_for_bit(digits, tmp_path):
    X, _ = digits
    kw = dict(hidden_layers=(16,), latent_dim=3, epochs=4, random_state=0, batch_size=64)
    whole = aekit.BetaTCVAE(**kw).fit(X)
    assert_same_run(whole, interrupted_then_resumed(aekit.BetaTCVAE, X, tmp_path, **kw))  # SIGINT inside epoch 3
