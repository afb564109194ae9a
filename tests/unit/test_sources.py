"""Dataset sources: digits, IDX files (fashion_mnist, idx), mnist1d, and lookup by name."""

from __future__ import annotations

import gzip
import random
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from lifelong.streams import sources
from lifelong.streams.sources import (DataError, IDX_FILES, digits, fashion_mnist, idx,
                                      load_dataset, mnist1d, read_idx, write_idx)

FASHION_ROOT = Path(sources.FASHION_MNIST_DEFAULT_ROOT)
has_fashion = all(any((FASHION_ROOT / f"{stem}{ext}").is_file() for ext in ("", ".gz"))
                  for stem in IDX_FILES.values())


def make_idx_folder(folder: Path, *, n_train=30, n_test=10, n_classes=3, gz=True,
                    seed=0) -> dict[str, np.ndarray]:
    """A tiny MNIST-format folder: 5x4 uint8 images, labels cycling over n_classes."""
    rng = np.random.default_rng(seed)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, 5, 4), dtype=np.uint8),
        "y_train": (np.arange(n_train) % n_classes).astype(np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 5, 4), dtype=np.uint8),
        "y_test": (np.arange(n_test) % n_classes).astype(np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for key, stem in IDX_FILES.items():
        write_idx(folder / (stem + (".gz" if gz else "")), arrays[key])
    return arrays


# --------------------------------------------------------------------------- digits

def test_digits_shapes_range_and_stratified_split():
    data = digits(seed=0)
    assert data.x_train.shape == (1347, 1, 8, 8) and data.x_test.shape == (450, 1, 8, 8)
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert 0.0 <= float(data.x_train.min()) and float(data.x_train.max()) <= 1.0
    assert float(data.x_train.max()) == 1.0  # 16/16 occurs
    assert data.n_classes == 10 and data.class_names == tuple("0123456789")
    assert set(data.y_train.tolist()) == set(range(10)) == set(data.y_test.tolist())
    assert data.input_shape == (1, 8, 8)


def test_digits_split_is_deterministic_and_seeded():
    sources.clear_cache()
    a = digits(seed=0)
    sources.clear_cache()
    b = digits(seed=0)
    assert a is not b
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    c = digits(seed=1)
    assert not torch.equal(a.y_train, c.y_train)
    assert digits(seed=0) is digits(seed=0)  # cached in-process


# --------------------------------------------------------------------------- IDX reader

@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_idx_round_trip(tmp_path, suffix, dtype):
    array = (np.arange(2 * 3 * 4) - 5).astype(dtype).reshape(2, 3, 4)
    if dtype == np.uint8:
        array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = write_idx(tmp_path / f"a-idx3-ubyte{suffix}", array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == (2, 3, 4)
    np.testing.assert_array_equal(back, array)


def test_idx_header_is_the_mnist_one(tmp_path):
    path = write_idx(tmp_path / "labels", np.array([7, 2, 1], dtype=np.uint8))
    assert path.read_bytes() == bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1])
    # gzip is recognised by content, not by name
    (tmp_path / "labels-no-ext").write_bytes(gzip.compress(path.read_bytes()))
    np.testing.assert_array_equal(read_idx(tmp_path / "labels-no-ext"), [7, 2, 1])


def test_write_idx_accepts_tensors_and_rejects_unsupported_types(tmp_path):
    path = write_idx(tmp_path / "t.gz", torch.arange(6, dtype=torch.int32).reshape(2, 3))
    np.testing.assert_array_equal(read_idx(path), np.arange(6).reshape(2, 3))
    with pytest.raises(DataError, match="int64"):
        write_idx(tmp_path / "bad", np.arange(3, dtype=np.int64))


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_idx_names_the_file_and_size(tmp_path, gz):
    payload = write_idx(tmp_path / "full", np.zeros((4, 5, 5), dtype=np.uint8)).read_bytes()
    cut = payload[:-7]
    path = tmp_path / ("cut.gz" if gz else "cut")
    path.write_bytes(gzip.compress(cut) if gz else cut)
    with pytest.raises(DataError) as err:
        read_idx(path)
    message = str(err.value)
    assert str(path) in message and "size mismatch" in message
    assert "expected 100 data bytes, got 93" in message


def test_truncated_gzip_stream_is_a_data_error(tmp_path):
    data = gzip.compress(bytes(write_idx(tmp_path / "f", np.ones(1000, np.uint8)).read_bytes()))
    path = tmp_path / "broken.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="broken.gz.*(corrupt|truncated)"):
        read_idx(path)


def test_not_an_idx_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello world")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(path)
    with pytest.raises(DataError, match="no such file"):
        read_idx(tmp_path / "absent")


# --------------------------------------------------------------------------- fashion_mnist / idx

def test_missing_fashion_folder_says_how_to_fix(tmp_path):
    folder = tmp_path / "nowhere"
    with pytest.raises(DataError) as err:
        fashion_mnist(folder)
    message = str(err.value)
    assert str(folder) in message
    assert "apt-get install -y dataset-fashion-mnist" in message
    assert "data_root:" in message and "LIFELONG_FASHION_MNIST=" in message
    for stem in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert stem in message


def test_partial_folder_names_the_missing_files(tmp_path):
    make_idx_folder(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="lacks t10k-labels-idx1-ubyte"):
        fashion_mnist(tmp_path)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_source_loads_a_synthetic_folder(tmp_path, gz):
    arrays = make_idx_folder(tmp_path, gz=gz, n_classes=3)
    data = load_dataset("idx", data_root=str(tmp_path))
    assert data.name == "idx" and data.n_classes == 3 and data.class_names == ("0", "1", "2")
    assert data.x_train.shape == (30, 1, 5, 4) and data.x_test.shape == (10, 1, 5, 4)
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    torch.testing.assert_close(data.x_train[:, 0], torch.from_numpy(arrays["x_train"]) / 255.0)
    assert data.y_test.tolist() == arrays["y_test"].tolist()


def test_idx_source_needs_a_folder_and_consistent_files(tmp_path):
    with pytest.raises(DataError, match="data_root"):
        load_dataset("idx")
    make_idx_folder(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(9, np.uint8))  # 10 images
    with pytest.raises(DataError, match="10 inputs but .* 9 labels"):
        idx(tmp_path)


def test_cache_notices_rewritten_files(tmp_path):
    make_idx_folder(tmp_path, n_classes=3)
    assert idx(tmp_path).n_classes == 3
    assert idx(tmp_path) is idx(tmp_path)
    make_idx_folder(tmp_path, n_classes=5, n_train=40)
    assert idx(tmp_path).n_classes == 5


def test_env_var_overrides_default_and_argument_overrides_env(tmp_path, monkeypatch):
    from_env, from_arg = tmp_path / "env", tmp_path / "arg"
    make_idx_folder(from_env, n_train=20)
    make_idx_folder(from_arg, n_train=12, gz=False)
    monkeypatch.setenv("LIFELONG_FASHION_MNIST", str(from_env))
    data = load_dataset("fashion_mnist")
    assert len(data.x_train) == 20 and data.class_names[0] == "T-shirt/top"
    assert len(load_dataset("fashion_mnist", data_root=str(from_arg)).x_train) == 12
    monkeypatch.setenv("LIFELONG_FASHION_MNIST", str(tmp_path / "missing"))
    with pytest.raises(DataError, match=r"missing \(from \$LIFELONG_FASHION_MNIST\)"):
        load_dataset("fashion_mnist")


def test_fashion_labels_out_of_range_are_rejected(tmp_path):
    make_idx_folder(tmp_path, n_classes=12)
    with pytest.raises(DataError, match="label 11 out of range"):
        fashion_mnist(tmp_path)


@pytest.mark.skipif(not has_fashion, reason=f"Fashion-MNIST not installed in {FASHION_ROOT}")
def test_real_fashion_mnist(monkeypatch):
    monkeypatch.delenv("LIFELONG_FASHION_MNIST", raising=False)
    data = load_dataset("fashion_mnist")
    assert data.x_train.shape == (60000, 1, 28, 28) and data.x_test.shape == (10000, 1, 28, 28)
    assert data.x_train.dtype == torch.float32
    assert float(data.x_train.min()) == 0.0 and float(data.x_train.max()) == 1.0
    assert data.n_classes == 10 and data.class_names[-1] == "Ankle boot"
    assert torch.bincount(data.y_train).tolist() == [6000] * 10
    assert torch.bincount(data.y_test).tolist() == [1000] * 10
    assert load_dataset("fashion-mnist") is data  # cached, and the hyphen is forgiven


# --------------------------------------------------------------------------- mnist1d

@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a dataset source tried to use the network")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_mnist1d_generates_offline_and_deterministically(tmp_path, monkeypatch, no_network):
    monkeypatch.chdir(tmp_path)  # the package's get_dataset would pickle into the cwd
    sources.clear_cache()
    random.seed(123)
    np.random.seed(123)
    before = (random.random(), np.random.rand())
    random.seed(123)
    np.random.seed(123)
    a = mnist1d(seed=0)
    assert (random.random(), np.random.rand()) == before  # global RNG left alone
    assert list(tmp_path.iterdir()) == []  # nothing written
    assert a.x_train.shape == (4000, 40) and a.x_test.shape == (1000, 40)
    assert a.x_train.dtype == torch.float32 and a.y_train.dtype == torch.int64
    assert a.n_classes == 10 and set(a.y_train.tolist()) == set(range(10))
    assert abs(float(torch.cat([a.x_train, a.x_test]).mean())) < 1e-3  # standardised
    sources.clear_cache()
    b = load_dataset("mnist1d", seed=0)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)


# --------------------------------------------------------------------------- by name

def test_unknown_name_suggests_the_closest():
    with pytest.raises(DataError) as err:
        load_dataset("fashon_mnist")
    message = str(err.value)
    assert "'fashon_mnist'" in message and "Did you mean 'fashion_mnist'?" in message
    for name in ("digits", "fashion_mnist", "idx", "mnist1d"):
        assert name in message
    assert isinstance(err.value, ValueError)


def test_generated_sources_refuse_a_data_root(tmp_path):
    with pytest.raises(DataError, match="digits: takes no data_root"):
        load_dataset("digits", data_root=str(tmp_path))
