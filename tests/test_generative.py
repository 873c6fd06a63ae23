"""Generative autoencoders: VAE likelihoods, adversarial autoencoder, GSN, Parzen windows, their CLI."""

import json
import math

import numpy as np
import pytest
import torch

import aekit
from aekit.cli import main
from aekit.data import binarize
from aekit.evaluation import parzen_evaluation, parzen_log_likelihood
from aekit.models.adversarial import parse_prior
from aekit.training.adversarial import OptimizerSet


# -- VAE ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vae(digits):
    X, _ = digits
    return aekit.VariationalAutoencoder((32,), latent_dim=4, binarize="dynamic", epochs=15, random_state=0).fit(X)


def test_importance_sampled_nll_is_below_the_negative_elbo(vae, digits):
    X_test = binarize(digits[1][:100], seed=0)
    nll = -vae.log_likelihood(X_test, k=200, random_state=0).mean()
    neg_elbo = -vae.elbo(X_test, n_samples=20, random_state=0).mean()
    assert np.isfinite(nll) and nll <= neg_elbo
    # chunking bounds memory, not the estimate: 64 (row, sample) pairs per pass vs 20 rows x 200 at once
    chunked = vae.log_likelihood(X_test[:20], k=200, random_state=1, max_pairs=64)
    whole = vae.log_likelihood(X_test[:20], k=200, random_state=1, max_pairs=4000)
    assert np.abs(chunked - whole).max() < 3.0 and abs(chunked.mean() - whole.mean()) < 0.3


def test_k1_importance_sampling_is_an_elbo_estimate(vae, digits):
    X_test = binarize(digits[1][:200], seed=0)
    one = vae.log_likelihood(X_test, k=1, random_state=1).mean()
    elbo = vae.elbo(X_test, n_samples=1, random_state=1).mean()
    assert one == pytest.approx(elbo, abs=1.0)  # the same bound; the KL differs only by Monte Carlo noise


def test_dynamic_binarization_reconstructs_binary_draws(vae, digits):
    model = vae.model_.train()
    x = torch.from_numpy(digits[0][:50]).to(vae.device_)
    out = model(x)
    assert out.target is not None and set(out.target.unique().tolist()) <= {0.0, 1.0}
    model.eval()
    assert model(x).target is None


def test_static_binarization_is_one_seeded_draw(digits):
    X = digits[0]
    assert np.array_equal(binarize(X, seed=3), binarize(X, seed=3))
    assert not np.array_equal(binarize(X, seed=3), binarize(X, seed=4))
    assert binarize(X, seed=0).mean() == pytest.approx(X.mean(), abs=0.01)
    with pytest.raises(ValueError, match=r"needs X in \[0, 1\]"):
        binarize(X * 2)


def test_gaussian_decoder_learns_its_scale_and_has_a_density(digits):
    X, X_test = digits
    est = aekit.VariationalAutoencoder((32,), latent_dim=4, loss="gaussian", epochs=10, random_state=0).fit(X)
    assert est.model_.log_scale.item() < 0  # from sigma = 1 towards the residual scale of [0, 1] pixels
    ll = est.log_likelihood(X_test[:50], k=50, random_state=0)
    assert np.isfinite(ll).all() and ll.mean() >= est.elbo(X_test[:50], n_samples=10, random_state=0).mean()
    with pytest.raises(ValueError, match="needs a decoder density"):
        aekit.VariationalAutoencoder((8,), latent_dim=2, loss="mse", epochs=1).fit(X).log_likelihood(X_test, k=2)


def test_interpolation_runs_between_the_two_reconstructions(vae, digits):
    X_test = digits[1]
    path = vae.interpolate(X_test[0], X_test[1], steps=5)
    assert path.shape == (5, 64)
    assert np.allclose(path[0], vae.predict(X_test[:1])[0], atol=1e-5)
    assert np.allclose(path[-1], vae.predict(X_test[1:2])[0], atol=1e-5)
    assert vae.interpolate(X_test[:3], X_test[3:6], steps=4).shape == (3, 4, 64)


def test_conv_vae_reuses_the_conv_stacks(digits, tmp_path):
    X, X_test = digits
    est = aekit.VariationalAutoencoder((16,), latent_dim=3, arch="conv", channels=(4, 8), image_shape=(8, 8),
                                       binarize="static", epochs=3, random_state=0).fit(X)
    kinds = [type(m).__name__ for m in est.model_.modules()]
    assert "Conv2d" in kinds and "ConvTranspose2d" in kinds
    assert est.sample(5, random_state=0).shape == (5, 64)
    assert np.isfinite(est.log_likelihood(binarize(X_test[:10]), k=10, random_state=0)).all()
    assert est.predict(X_test[:2].reshape(2, 8, 8)).shape == (2, 8, 8)  # images in, images out
    est.save(tmp_path / "cvae")
    assert np.array_equal(aekit.load(tmp_path / "cvae").transform(X_test), est.transform(X_test))


# -- adversarial autoencoder -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def aae(digits):
    X, _ = digits
    return aekit.AdversarialAutoencoder((32,), latent_dim=2, discriminator_layers=(16,), epochs=3,
                                        random_state=0).fit(X)


def _snapshot(module):
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def _changed(before, module):
    return {name for name, p in module.named_parameters() if not torch.equal(before[name], p.detach())}


def test_each_update_moves_only_its_own_network(aae, digits):
    model = aae.model_.train()
    step = aae._make_step(model)
    x = torch.from_numpy(digits[0][:64]).to(aae.device_)
    encoder = {n for n, _ in model.named_parameters() if n.startswith("autoencoder.encoder")}
    decoder = {n for n, _ in model.named_parameters() if n.startswith("autoencoder.decoder")}
    discriminator = {n for n, _ in model.named_parameters() if n.startswith("discriminator")}
    assert encoder and decoder and discriminator

    before = _snapshot(model)
    terms = step.discriminator_update(model.encode(x))
    assert _changed(before, model) == discriminator and math.isfinite(float(terms["loss"]))
    before = _snapshot(model)
    step.generator_update(model.encode(x))
    assert _changed(before, model) == encoder
    before = _snapshot(model)
    step.reconstruction_update(x, x)
    assert _changed(before, model) == encoder | decoder
    terms = step.train_batch(x, x)
    assert {"loss", "reconstruction", "discriminator", "generator", "prior_accuracy"} <= set(terms)


def test_aae_samples_decode_prior_draws(aae):
    samples = aae.sample(10, random_state=0)
    assert samples.shape == (10, 64) and np.isfinite(samples).all()
    assert np.array_equal(samples, aae.sample(10, random_state=0))
    z = aae.sample_prior(10, random_state=0)
    assert np.allclose(aae.inverse_transform(z), samples, atol=1e-6)


def test_priors():
    g = parse_prior("gaussian:2", 3).sample(20000, torch.Generator().manual_seed(0))
    assert g.std(0).sub(2).abs().max() < 0.05
    mix = parse_prior("mixture:10", 2)
    assert mix.means.shape == (10, 2) and torch.allclose(mix.means.norm(dim=1), torch.full((10,), 4.0))
    z = mix.sample(5000, torch.Generator().manual_seed(0))
    assert torch.cdist(z, mix.means).min(1).values.pow(2).mean() / 2 == pytest.approx(0.25, rel=0.1)
    for bad in ("cauchy", "mixture:0", "mixture:2.5", "gaussian:-1", "mixture:10:4:0:1"):
        with pytest.raises(ValueError, match="not understood"):
            parse_prior(bad, 2)


def test_aae_checkpoint_resume_is_bit_identical(digits, tmp_path):
    X, _ = digits
    params = dict(hidden_layers=(16,), latent_dim=2, discriminator_layers=(8,), prior="mixture:4", epochs=3,
                  random_state=1)
    full = aekit.AdversarialAutoencoder(**params).fit(X)
    aekit.AdversarialAutoencoder(**{**params, "epochs": 1}, checkpoint_dir=str(tmp_path / "run")).fit(X)
    resumed = aekit.load(tmp_path / "run").set_params(epochs=3, warm_start=True).fit(X)
    assert type(resumed) is aekit.AdversarialAutoencoder and resumed.n_epochs_ == 3
    for k, v in full.model_.state_dict().items():
        assert torch.equal(v, resumed.model_.state_dict()[k]), k
    assert [r["discriminator"] for r in resumed.history_] == [r["discriminator"] for r in full.history_]


def test_optimizer_set_round_trips_and_refuses_a_mismatch():
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
    opts = OptimizerSet(first=torch.optim.Adam(a.parameters()), second=torch.optim.Adam(b.parameters(), lr=0.1))
    for m in (a, b):
        m(torch.ones(1, 2)).sum().backward()
    opts["first"].step()
    opts["second"].step()
    state = opts.state_dict()
    assert sorted(state["state"]) == [0, 1, 2, 3] and [g["params"] for g in state["param_groups"]] == [[0, 1], [2, 3]]
    fresh = OptimizerSet(first=torch.optim.Adam(a.parameters()), second=torch.optim.Adam(b.parameters(), lr=0.1))
    fresh.load_state_dict(state)
    assert torch.equal(fresh["second"].state[b.weight]["exp_avg"], opts["second"].state[b.weight]["exp_avg"])
    with pytest.raises(ValueError):
        OptimizerSet(only=torch.optim.Adam(a.parameters())).load_state_dict(state)


# -- GSN ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gsn(digits):
    X, _ = digits
    return aekit.GSN((64,), walkback=3, epochs=5, random_state=0).fit(X)


def test_walkback_scores_every_step(gsn):
    last = gsn.history_[-1]
    assert last["loss"] == pytest.approx(last["reconstruction"] + last["walkback"], rel=1e-6)
    assert last["walkback"] > last["reconstruction"]  # two more steps, each scored against the clean input


def test_sampling_chain_runs_and_stays_finite(gsn):
    chain = gsn.sample_chain(6, steps=30, random_state=0)
    assert chain.shape == (30, 6, 64) and np.isfinite(chain).all()
    assert chain.min() >= 0 and chain.max() <= 1
    assert np.array_equal(chain, gsn.sample_chain(6, steps=30, random_state=0))
    assert np.array_equal(gsn.sample(6, steps=30, random_state=0), chain[-1])
    start = np.zeros((2, 64), dtype=np.float32)
    assert gsn.sample_chain(2, steps=3, start=start, random_state=0).shape == (3, 2, 64)


def test_gaussian_gsn_chain_stays_finite(digits):
    est = aekit.GSN((16,), noise="gaussian:0.3", loss="mse", walkback=2, epochs=3, random_state=0).fit(digits[0])
    assert 0 < est._output_std() < 1
    assert np.isfinite(est.sample_chain(4, steps=50, random_state=0)).all()


def test_gsn_round_trip(gsn, digits, tmp_path):
    gsn.save(tmp_path / "gsn")
    loaded = aekit.load(tmp_path / "gsn")
    assert type(loaded) is aekit.GSN and loaded.get_params() == gsn.get_params()
    assert np.array_equal(loaded.sample(3, steps=5, random_state=0), gsn.sample(3, steps=5, random_state=0))


# -- Parzen windows ----------------------------------------------------------------------------------------------
def test_parzen_matches_a_direct_computation():
    rng = np.random.default_rng(0)
    samples, X = rng.random((50, 3)), rng.random((7, 3))
    sigma = 0.3
    d2 = ((X[:, None, :] - samples[None]) ** 2).sum(-1)
    direct = np.log(np.exp(-d2 / (2 * sigma**2)).mean(1)) - 1.5 * np.log(2 * np.pi * sigma**2)
    assert np.allclose(parzen_log_likelihood(samples, X, sigma), direct)
    assert np.allclose(parzen_log_likelihood(samples, X, [sigma, 1.0], max_entries=60)[:, 0], direct)


def test_parzen_picks_sigma_on_validation():
    rng = np.random.default_rng(0)
    samples, X_val, X_test = (rng.normal(0, 0.5, (n, 2)) for n in (2000, 500, 500))
    result = parzen_evaluation(samples, X_val, X_test, sigmas=np.logspace(-2, 0.5, 26))
    assert 0.05 < result["sigma"] < 0.5  # neither the smallest nor the largest bandwidth
    true_ll = -np.log(2 * np.pi * 0.25) - 1  # E[log N(x; 0, 0.25 I)] in 2-D
    assert result["parzen_ll"] == pytest.approx(true_ll, abs=0.15)


# -- command line ------------------------------------------------------------------------------------------------
def _last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.parametrize("model, extra", [("aae", ["--latent-dim", "2", "--discriminator", "16"]),
                                          ("gsn", ["--walkback", "2"]),
                                          ("vae", ["--latent-dim", "4", "--binarize", "dynamic", "--arch", "conv",
                                                   "--channels", "4,8"])])
def test_cli_train_generate_evaluate(model, extra, tmp_path, capsys):
    run = tmp_path / model
    assert main(["train", "--model", model, "--hidden", "32", "--epochs", "2", "--out", str(run), "--quiet",
                 "--json", *extra]) == 0
    assert type(aekit.load(run)).__name__ == {"aae": "AdversarialAutoencoder", "gsn": "GSN",
                                               "vae": "VariationalAutoencoder"}[model]
    assert main(["generate", str(run), "--n", "9", "--out", str(tmp_path / "grid.png"), "--steps", "5",
                 "--json"]) == 0
    assert _last_json(capsys)["shape"] == [9, 64] and (tmp_path / "grid.png").stat().st_size > 1000
    if model == "vae":
        assert main(["evaluate", str(run), "--nll", "--k", "20", "--json"]) == 0
        result = _last_json(capsys)
        assert result["binarized"] and result["k"] == 20 and result["rows"] == 360
        assert 0 < result["nll"] <= result["neg_elbo"] + 1.0
    else:
        assert main(["evaluate", str(run), "--parzen", "--parzen-samples", "300", "--parzen-validation", "200",
                     "--steps", "5", "--json"]) == 0
        result = _last_json(capsys)
        assert np.isfinite(result["parzen_ll"]) and result["n_samples"] == 300


def test_cli_user_errors(tmp_path, capsys):
    assert main(["train", "--model", "vae", "--sparsity", "l1:0.1", "--out", str(tmp_path / "x")]) == 2
    assert "--sparsity does not apply to --model vae" in capsys.readouterr().err
    assert main(["train", "--prior", "mixture:10", "--out", str(tmp_path / "x")]) == 2
    assert "--prior does not apply to --model ae; add --model aae" in capsys.readouterr().err
    run = tmp_path / "ae"
    assert main(["train", "--hidden", "8", "--epochs", "1", "--out", str(run), "--quiet"]) == 0
    assert main(["generate", str(run)]) == 2
    assert "does not generate" in capsys.readouterr().err
    assert main(["evaluate", str(run), "--nll", "--k", "5"]) == 2
    assert "--nll needs a variational autoencoder" in capsys.readouterr().err
    assert main(["train", "--model", "aae", "--hidden", "8", "--out", str(run), "--quiet"]) == 2
    assert "holds a run of --model ae, not aae" in capsys.readouterr().err
    assert main(["train", "--model", "gsn", "--arch", "conv", "--out", str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err
    assert "--arch does not apply to --model gsn; add --model ae or " in err  # then every family with --arch
    takers = err.split("add --model ", 1)[1].strip().split(" or ")
    assert {"ae", "vae"} <= set(takers) and "gsn" not in takers and takers == sorted(takers)


@pytest.mark.slow  # three Python processes start: ~10-20 s
def test_aae_trains_data_parallel_with_both_networks_wrapped(tmp_path):
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", "--rdzv-backend=c10d",
           f"--rdzv-endpoint=127.0.0.1:{port}", "-m", "aekit.cli", "train", "--model", "aae", "--hidden", "16",
           "--latent-dim", "2", "--discriminator", "8", "--epochs", "2", "--out", str(run), "--quiet"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"})
    assert result.returncode == 0, result.stderr[-2000:]
    est = aekit.load(run)
    assert est.n_epochs_ == 2 and all(np.isfinite(r["discriminator"]) for r in est.history_)


def test_a_mixture_fitted_on_the_codings_samples_nearer_the_data(digits, tmp_path, capsys):
    from sklearn.neighbors import NearestNeighbors

    X, X_test = digits
    nearest = NearestNeighbors(n_neighbors=1).fit(X_test)
    vae = aekit.VariationalAutoencoder((32,), latent_dim=8, epochs=30, random_state=0).fit(X)
    prior = vae.sample(300, random_state=0)
    assert vae.fit_sampler(X, n_components=10) is vae
    mixture = vae.sample(300, random_state=0)
    assert np.array_equal(mixture, vae.sample(300, random_state=0))
    # prior draws fall where no training image maps (measured 2.62 vs 1.49 mean distance to the nearest test image)
    assert nearest.kneighbors(mixture)[0].mean() < 0.8 * nearest.kneighbors(prior)[0].mean()
    loaded = aekit.load(vae.save(tmp_path / "v"))
    assert np.array_equal(loaded.sample(300, random_state=0), mixture)
    vae.set_params(warm_start=True, epochs=31).fit(X)  # trained again: the mixture is dropped
    assert vae.sampler_ is None
    with pytest.raises(ValueError, match="components"):
        vae.fit_sampler(X[:3], n_components=10)
    run = tmp_path / "r"
    assert main(["train", "--model", "wae", "--hidden", "16", "--latent-dim", "3", "--epochs", "2", "--out", str(run),
                 "--quiet"]) == 0
    capsys.readouterr()
    assert main(["generate", str(run), "--gmm", "4", "--n", "6", "--out", str(tmp_path / "g.png"), "--json"]) == 0
    assert _last_json(capsys)["shape"] == [6, 64]
    assert "sampler.means" not in aekit.load(run)._checkpoint_state()  # generate leaves the run folder as it was
