"""Data larger than memory: row sources, the exact block-window order, streamed training and inference."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import aekit
import aekit.data.stream as stream
from aekit.data.sources import ImageFolderSource, NpyFile, ShardedSource, open_rows
from aekit.data.stream import BlockOrder, Stream, choose
from aekit.errors import DataError

from _resume import assert_same_run, interrupted_then_resumed


@pytest.fixture
def small_windows(monkeypatch):
    """Blocks of 100 rows, windows of 300: several windows and batches that cross them, on the digits."""
    monkeypatch.setattr(stream, "BLOCK_ROWS", 100)
    monkeypatch.setattr(stream, "WINDOW_BYTES", 300 * 64)


@pytest.fixture
def digits_xy():
    ds = aekit.load_dataset("digits")
    return ds.X_train, ds.y_train


@pytest.fixture
def digits_u8(digits_xy, tmp_path):
    X, y = digits_xy
    u8 = (X * 255).round().astype(np.uint8)
    path = tmp_path / "digits.npy"
    np.save(path, u8)
    return path, u8, y


def test_block_order_takes_every_row_once_and_is_a_function_of_the_seed():
    order = BlockOrder(10_007, seed=3, block_rows=100, window_rows=1_000)
    rows = order.rows()
    assert np.array_equal(np.sort(rows), np.arange(10_007))
    assert len(order.windows) == 11 and order.starts[-1] == 10_007
    assert np.array_equal(rows, BlockOrder(10_007, seed=3, block_rows=100, window_rows=1_000).rows())
    assert not np.array_equal(rows, BlockOrder(10_007, seed=4, block_rows=100, window_rows=1_000).rows())
    # a window's rows are whole blocks, permuted inside it
    first = order.window(0)
    assert set(first // 100) == set(order.windows[0]) and not np.array_equal(first, np.sort(first))


def test_stream_batches_follow_the_order_and_ranks_split_one_process_batches(digits_u8, small_windows):
    path, u8, _ = digits_u8
    source = open_rows(path)
    expected = BlockOrder(len(u8), 11, 100, 300).rows()
    s = Stream(source, "cpu")
    buf = torch.empty((64, 64))
    one = [b.clone() for b, _ in s.batches(11, 0, 1, 64, 0, buf)]
    assert sum(len(b) for b in one) == len(u8)
    assert torch.equal(torch.cat(one), torch.from_numpy(u8[expected].astype(np.float32) / np.float32(255)))
    # two ranks of 32 rows: batch b of both together is batch b of one process (n truncated to even)
    half = torch.empty((32, 64))
    ranks = [[b.clone() for b, _ in s.batches(11, r, 2, 32, 0, half)] for r in (0, 1)]
    n = len(u8) - len(u8) % 2
    for b, (r0, r1) in enumerate(zip(*ranks)):
        together = torch.stack([r0, r1], dim=1).reshape(-1, 64)  # positions interleave: rank = position % 2
        assert torch.equal(together, torch.cat(one)[b * 64 : min(n, (b + 1) * 64)])
    # resuming at batch 7 gives the same batches 7..
    later = [b.clone() for b, _ in s.batches(11, 0, 1, 64, 7, buf)]
    assert all(torch.equal(a, b) for a, b in zip(later, one[7:])) and len(later) == len(one) - 7


def test_uint8_file_rows_are_the_bits_load_file_gives(digits_u8):
    path, u8, _ = digits_u8
    loaded, _, _ = aekit.data.load_file(path)
    source = open_rows(path)
    assert isinstance(source, NpyFile) and source.dtype == np.uint8 and source.scale == 255
    assert np.array_equal(source.to_array(), loaded)
    buf = torch.empty((len(u8), 64))
    assert np.array_equal(Stream(source, "cpu").to_rows(source.read(0, len(u8)), buf).numpy(), loaded)


@pytest.mark.parametrize("dtype", ["uint8", "float16", "float32"])
def test_streamed_inference_equals_in_memory_inference(digits, tmp_path, dtype):
    X, _ = digits
    stored = (X * 255).round().astype(np.uint8) if dtype == "uint8" else X.astype(dtype)
    np.save(tmp_path / "x.npy", stored)
    source = open_rows(tmp_path / "x.npy")
    in_memory = source.to_array()
    est = aekit.Autoencoder((32, 8), epochs=2, random_state=0).fit(in_memory)
    assert np.array_equal(est.transform(source), est.transform(in_memory))
    assert np.array_equal(est.predict(source), est.predict(in_memory))
    assert np.array_equal(est.reconstruction_error(source), est.reconstruction_error(in_memory))
    out = np.lib.format.open_memmap(tmp_path / "codes.npy", mode="w+", dtype=np.float32, shape=(len(X), 8))
    assert est.transform(source, out=out) is out and np.array_equal(np.load(tmp_path / "codes.npy"),
                                                                  est.transform(in_memory))
    short = np.zeros((len(X) - 1, 8), dtype=np.float32)
    for rows in (source, in_memory):  # streamed or not: refused before anything was written
        with pytest.raises(DataError, match=f"out has {len(X) - 1} rows"):
            est.set_params(in_memory=False if rows is source else "auto").transform(rows, out=short)
        assert not short.any()


def test_training_streams_by_choice_and_repeats_bit_for_bit(digits_u8, small_windows, caplog):
    path, u8, _ = digits_u8
    params = dict(hidden_layers=(32, 8), epochs=3, batch_size=64, random_state=0)
    with caplog.at_level("INFO", logger="aekit.data"):
        a = aekit.Autoencoder(**params, in_memory=False).fit(open_rows(path))
    assert "streaming digits.npy" in caplog.text
    b = aekit.Autoencoder(**params, in_memory=False).fit(open_rows(path))
    assert_same_run(a, b)
    loaded = aekit.Autoencoder(**params, in_memory=True).fit(open_rows(path))  # in memory: the permutation path
    memory = aekit.Autoencoder(**params).fit(aekit.data.load_file(path)[0])
    assert_same_run(loaded, memory)
    # both learn: the streamed run's loss is as low as the in-memory one's (another order of the same rows)
    assert a.history_[-1]["loss"] == pytest.approx(memory.history_[-1]["loss"], rel=0.1)
    assert a.history_[-1]["loss"] < 0.8 * a.history_[0]["loss"]


def test_auto_streams_what_does_not_fit(digits_u8, monkeypatch):
    path, u8, _ = digits_u8
    source = open_rows(path)
    assert isinstance(choose(source, "auto"), np.ndarray)  # 360 KiB as float32: loaded
    monkeypatch.setenv("AEKIT_MAX_MEMORY", "1M")  # a quarter of 1 MiB < 360 KiB: streamed
    assert choose(source, "auto") is source
    assert choose(source, True).shape == (len(u8), 64)
    mm = np.load(path, mmap_mode="r")
    assert choose(mm, "auto").__class__.__name__ == "ArraySource"  # a big np.memmap streams too, values kept
    assert choose(mm, True) is mm


def test_a_streamed_run_resumes_bit_for_bit_inside_an_epoch(digits_u8, small_windows, tmp_path):
    path, _, _ = digits_u8
    params = dict(hidden_layers=(32, 8), epochs=4, batch_size=64, random_state=2, in_memory=False)
    full = aekit.Autoencoder(**params).fit(open_rows(path))
    resumed = interrupted_then_resumed(aekit.Autoencoder, open_rows(path), tmp_path, at=2, **params)
    assert_same_run(full, resumed)


def test_shards_folder_and_subsets(digits_xy, tmp_path):
    X, y = digits_xy
    u8 = (X * 255).round().astype(np.uint8)
    folder = tmp_path / "shards"
    folder.mkdir()
    np.savez(folder / "part-0.npz", X=u8[:500], y=y[:500])
    np.savez_compressed(folder / "part-1.npz", X=u8[500:1000], y=y[500:1000])
    np.savez(folder / "part-2.npz", X=u8[1000:], y=y[1000:])
    source = open_rows(folder)
    assert isinstance(source, ShardedSource) and len(source) == len(X)
    assert np.array_equal(source.read(450, 1050), u8[450:1050]) and np.array_equal(source.labels, y)
    rows = np.array([0, 3, 499, 500, 501, 1200, 1436])
    assert np.array_equal(source.take(rows), u8[rows])
    sub = source.subset(rows)
    assert np.array_equal(sub.read(0, len(rows)), u8[rows]) and np.array_equal(sub.labels, y[rows])
    est = aekit.Autoencoder((16, 4), epochs=1, random_state=0, in_memory=False).fit(source)
    assert est.transform(sub).shape == (len(rows), 4)
    source.release()
    source.read(0, len(X))  # every .npz shard read: at most two stay inflated
    assert sum(shard._cache is not None for shard in source.shards) == 2
    np.save(folder / "part-3.npy", np.zeros((5, 65), np.uint8))
    with pytest.raises(DataError, match="one row shape and dtype"):
        open_rows(folder)


def test_image_folder_is_read_lazily(digits_xy, tmp_path):
    from PIL import Image

    X, y = digits_xy
    for i in range(40):
        (tmp_path / "imgs" / str(y[i])).mkdir(parents=True, exist_ok=True)
        Image.fromarray((X[i].reshape(8, 8) * 255).round().astype(np.uint8)).save(tmp_path / "imgs" / str(y[i]) / f"{i}.png")
    source = open_rows(tmp_path / "imgs")
    assert isinstance(source, ImageFolderSource) and source.image_shape == (8, 8) and len(source) == 40
    loaded, labels, shape = aekit.data.load_file(tmp_path / "imgs")
    assert np.array_equal(source.to_array(), loaded) and np.array_equal(source.labels, labels)


def test_what_streaming_cannot_do_is_refused_before_training(digits_u8, tmp_path):
    path, _, _ = digits_u8
    with pytest.raises(DataError, match="early_stopping holds out"):
        aekit.Autoencoder((16, 4), epochs=1, early_stopping=True, in_memory=False).fit(open_rows(path))
    with pytest.raises(DataError, match="greedy layer-wise"):
        aekit.Autoencoder((16, 4), epochs=1, pretrain="greedy", in_memory=False).fit(open_rows(path))
    bad = np.random.default_rng(0).random((300, 8), dtype=np.float32)
    bad[123, 4] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(DataError, match=r"NaN or infinite values \(row 123\)"):
        aekit.Autoencoder((8, 4), epochs=1, in_memory=False).fit(open_rows(tmp_path / "nan.npy"))
    np.save(tmp_path / "f.npy", np.asfortranarray(bad))
    with pytest.raises(DataError, match="Fortran order"):
        open_rows(tmp_path / "f.npy")
    est = aekit.Autoencoder((8, 4), epochs=1).fit(np.zeros((20, 10), np.float32))
    for in_memory in ("auto", False):  # loaded (scikit-learn's check) or streamed (the source's declared shape)
        with pytest.raises(ValueError, match="has 64 features, but Autoencoder is expecting 10"):
            est.set_params(in_memory=in_memory).transform(open_rows(path))


RSS = textwrap.dedent("""
    import json, sys, numpy as np, aekit
    import aekit.data.stream
    from aekit.data.sources import open_rows
    aekit.data.stream.WINDOW_BYTES = 8 << 20  # windows of 8 MiB: what the process holds is a few of them
    def peak():
        return int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) * 1024
    est = aekit.Autoencoder((8,), epochs=0, random_state=0).fit(np.zeros((10, 784), np.float32))
    before = peak()
    est.set_params(epochs=1, warm_start=True, batch_size=2048, in_memory=False).fit(open_rows(sys.argv[1]))
    codes = est.transform(open_rows(sys.argv[1]))
    print(json.dumps({"before": before, "after": peak(), "rows": len(codes)}))
""")


def test_streaming_keeps_the_resident_set_below_the_data(tmp_path):
    """A 235 MB uint8 file, one epoch and one encoding pass: the peak RSS grows by far less than the file."""
    n = 300_000
    mm = np.lib.format.open_memmap(tmp_path / "big.npy", mode="w+", dtype=np.uint8, shape=(n, 784))
    rng = np.random.default_rng(0)
    for a in range(0, n, 50_000):
        mm[a : a + 50_000] = rng.integers(0, 256, (50_000, 784), dtype=np.uint8)
    mm.flush()
    del mm
    (tmp_path / "rss.py").write_text(RSS)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "AEKIT_MAX_MEMORY": "4G"}
    result = subprocess.run([sys.executable, str(tmp_path / "rss.py"), str(tmp_path / "big.npy")], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["rows"] == n
    grown = out["after"] - out["before"]
    assert grown < 0.5 * n * 784, f"peak RSS grew by {grown / 2**20:.0f} MiB for a {n * 784 / 2**20:.0f} MiB file"


def test_cli_trains_encodes_and_indexes_a_streamed_file(digits_u8, tmp_path, capsys):
    from aekit.cli import main
    from aekit.runs import load_split, read_notes

    path, u8, _ = digits_u8
    run, hashes = tmp_path / "run", tmp_path / "hash"
    assert main(["train", "--data", str(path), "--hidden", "32,8", "--epochs", "2", "--in-memory", "no",
                 "--out", str(run), "--quiet"]) == 0
    assert main(["encode", str(run), "--out", str(tmp_path / "codes.npy")]) == 0
    est = aekit.load(run)
    assert est.in_memory is False
    split = load_split(read_notes(run)["data"])  # the same held-out rows, loaded
    codes = np.load(tmp_path / "codes.npy", mmap_mode="r")
    assert codes.shape == (len(split.X_test), 8) and np.array_equal(codes, est.transform(split.X_test))
    assert main(["hash", "train", "--data", str(path), "--bits", "12", "--hidden", "32", "--epochs", "1",
                 "--in-memory", "no", "--out", str(hashes), "--quiet"]) == 0
    assert main(["hash", "index", str(hashes), "--json"]) == 0
    indexed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    hasher = aekit.load(hashes)  # the index was saved with the run and loads with it
    assert indexed["size"] == len(split.X_train) == len(hasher.index_)
    assert np.array_equal(hasher.index_.codes, hasher.set_params(in_memory=True).hash(split.X_train))


def test_a_folder_of_shards_on_the_command_line_loaded_or_streamed_holds_the_same_split(digits_u8, tmp_path):
    from aekit.runs import data_spec, load_split

    _, u8, _ = digits_u8
    (tmp_path / "sh").mkdir()
    np.save(tmp_path / "sh" / "a.npy", u8[:700])
    np.save(tmp_path / "sh" / "b.npy", u8[700:])
    spec = data_spec(data=tmp_path / "sh")
    loaded, streamed = load_split(spec, True), load_split(spec, False)
    assert isinstance(loaded.X_test, np.ndarray) and isinstance(load_split(spec, "auto").X_train, np.ndarray)
    assert np.array_equal(loaded.X_test, streamed.X_test.to_array())
    assert np.array_equal(loaded.X_train, streamed.X_train.to_array()) and len(loaded.X_train) == 1150
