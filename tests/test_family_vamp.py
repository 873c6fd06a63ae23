"""VampPrior (src/aekit/models/vamp.py)."""

import json
import math

import numpy as np
import pytest
import torch

import aekit
from aekit.cli import main

from _resume import assert_same_run, interrupted_then_resumed  # tests/_resume.py


def _model(**kw):
    from aekit.models.vamp import VampPriorModule

    return VampPriorModule(6, [5], latent_dim=3, n_components=7, seed=0, **kw)


@pytest.mark.parametrize("chunk", [1 << 22, 30])  # one pass, and a few rows at a time
def test_log_prior_is_the_mixture_of_the_pseudo_inputs_posteriors(chunk, monkeypatch):
    import aekit.models.vamp as vamp

    monkeypatch.setattr(vamp, "_CHUNK", chunk)
    model = _model()
    z = torch.randn(4, 9, 3)
    with torch.no_grad():
        u = torch.nn.functional.hardtanh(model.pseudo_inputs, 0, 1)
        mu, logvar = model.encode_distribution(u)
        components = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))  # (7, 3)
        expected = torch.logsumexp(components.log_prob(z[..., None, :]).sum(-1), -1) - math.log(7)
        assert torch.allclose(model.log_prior(z), expected, atol=1e-5)
        q_mu, q_logvar = torch.randn(9, 3), torch.randn(9, 3) * 0.2
        q = torch.distributions.Normal(q_mu, torch.exp(0.5 * q_logvar))
        assert torch.allclose(model.kl_estimate(q_mu, q_logvar, z[0]),
                              q.log_prob(z[0]).sum(-1) - expected[0], atol=1e-5)
    assert 0.0 <= float(u.min()) and float(u.max()) <= 1.0
    assert not _model(gaussian_decoder=True, output_activation="linear").clip  # unbounded data: no clip


def test_the_learned_prior_beats_the_standard_normal(digits):
    X, X_test = digits
    ll = {}
    for name, est in (("vae", aekit.VariationalAutoencoder((32,), latent_dim=4, epochs=30, random_state=0)),
                      ("vamp", aekit.VampPriorVAE((32,), latent_dim=4, n_components=50, epochs=30, random_state=0))):
        est.fit(X)
        ll[name] = est.log_likelihood(X_test[:200], k=500, random_state=0).mean()
        assert est.elbo(X_test[:200], random_state=0).mean() <= ll[name] + 0.5  # a lower bound, up to noise
    assert ll["vamp"] > ll["vae"] + 0.5, ll
    samples = est.sample(20, random_state=0)
    assert samples.shape == (20, 64) and samples.min() >= 0 and samples.max() <= 1
    assert np.array_equal(samples, est.sample(20, random_state=0))
    assert aekit.VampPriorVAE().n_components == 500


def test_cli_trains_evaluates_samples_and_resumes(digits, tmp_path, capsys):
    run = tmp_path / "v"
    assert main(["train", "--model", "vamp", "--hidden", "16", "--latent-dim", "3", "--n-components", "10",
                 "--epochs", "2", "--out", str(run), "--quiet", "--json"]) == 0
    est = aekit.load(run)
    assert type(est).__name__ == "VampPriorVAE" and est.model_.pseudo_inputs.shape == (10, 64)
    capsys.readouterr()
    assert main(["evaluate", str(run), "--nll", "--k", "20", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0 < result["nll"] <= result["neg_elbo"] + 1.0
    assert main(["generate", str(run), "--n", "4", "--out", str(tmp_path / "g.png"), "--json"]) == 0
    X, _ = digits
    kw = dict(hidden_layers=(16,), latent_dim=3, n_components=10, epochs=4, random_state=0, batch_size=64)
    whole = aekit.VampPriorVAE(**kw).fit(X)
    assert_same_run(whole, interrupted_then_resumed(aekit.VampPriorVAE, X, tmp_path, **kw))
