"""The dataset layer: real MNIST / Fashion-MNIST files, CIFAR-10 in its official format
(written by the tests), npz and image folders, file lookup and checksums, preprocessing.

Never touches the network: downloads are disabled or ``urlopen`` is replaced.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import shutil
import struct
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from specc.data import (
    ChecksumError,
    DatasetError,
    DatasetNotFound,
    DataSplits,
    affine_warp,
    augment,
    channel_stats,
    flip_horizontal,
    flip_vertical,
    iterate_batches,
    load,
    load_cifar10,
    load_digits,
    load_fashion_mnist,
    load_folder,
    load_mnist,
    load_npz,
    locate,
    md5_file,
    one_hot,
    prepare,
    read_idx,
    reshape_to,
    scale_unit,
    split_validation,
    standardize,
    validation_count,
)
from specc.data import files as files_mod
from specc.data.files import RemoteFile, download_file
from specc.data.loaders import DatasetInfo
from specc.spec import Training

IDX = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
MNIST_MD5 = dict(
    zip(
        IDX,
        (
            "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "d53e105ee54ea40749a09fcbcd1e9432",
            "9fb629c4189551a2d022fa330f9573f3",
            "ec29112dd5afa0611ce80d1b7f02629c",
        ),
    )
)
FASHION_MD5 = dict(
    zip(
        IDX,
        (
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "25c81989df183df01b3e8a0aad5dffbe",
            "bef4ecab320f06d8554ea6380940ec79",
            "bb300cfdad3c16e7a12a480ee83cd310",
        ),
    )
)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """No network, an empty cache and no SPECC_DATA_DIR unless a test sets them."""

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("SPECC_DATA_DIR", raising=False)


def _need(data_dir: Path, sub: str) -> Path:
    d = data_dir / sub
    if not d.is_dir():
        pytest.skip(
            f"real dataset files not found in {d} (set SPECC_DATA_DIR to ../shared/datasets)"
        )
    return d


@pytest.fixture(scope="module")
def mnist(data_dir):
    _need(data_dir, "mnist")
    return load_mnist(data_dir, download=False)


# --------------------------------------------------------------------------- MNIST, Fashion


def test_mnist_real_files(mnist, data_dir):
    assert mnist.x_train.shape == (60000, 28, 28, 1)
    assert mnist.x_test.shape == (10000, 28, 28, 1)
    assert mnist.x_train.dtype == np.uint8 and mnist.y_train.dtype == np.int64
    assert mnist.y_train.shape == (60000,) and mnist.y_test.shape == (10000,)
    assert set(np.unique(mnist.y_train)) == set(range(10)) == set(np.unique(mnist.y_test))
    assert mnist.y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert mnist.y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert mnist.x_train.min() == 0 and mnist.x_train.max() == 255
    info = mnist.info
    assert info.num_classes == 10 and info.sample_shape == (28, 28, 1) and info.max_value == 255
    assert info.class_names == tuple("0123456789")
    # the well-known normalization constants of MNIST (train split, scaled to [0, 1])
    mean, std = channel_stats(scale_unit(mnist.x_train))
    assert mean[0] == pytest.approx(0.1307, abs=1e-4) and std[0] == pytest.approx(0.3081, abs=1e-4)


def test_fashion_mnist_real_files(data_dir):
    _need(data_dir, "fashion-mnist")
    d = load_fashion_mnist(data_dir, download=False)
    assert d.x_train.shape == (60000, 28, 28, 1) and d.x_test.shape == (10000, 28, 28, 1)
    assert d.x_train.dtype == np.uint8
    assert set(np.unique(d.y_train)) == set(range(10))
    assert np.bincount(d.y_train).tolist() == [6000] * 10  # balanced, as published
    assert np.bincount(d.y_test).tolist() == [1000] * 10
    assert d.info.class_names[d.y_train[0]] == "Ankle boot"  # the first training image
    assert d.info.class_names[0] == "T-shirt/top"


@pytest.mark.parametrize("sub, sums", [("mnist", MNIST_MD5), ("fashion-mnist", FASHION_MD5)])
def test_md5_of_shared_files_are_official(data_dir, sub, sums):
    d = _need(data_dir, sub)
    for name, md5 in sums.items():
        assert md5_file(d / name) == md5
    key = next(k for k in files_mod._MD5_CACHE if k[0] == str((d / IDX[0]).resolve()))
    assert files_mod._MD5_CACHE[key] == sums[IDX[0]]  # cached by (path, size, mtime)


def _copy_with_symlinks(src: Path, dst: Path, copy: tuple[str, ...]) -> None:
    dst.mkdir(parents=True)
    for name in IDX:
        if name in copy:
            shutil.copyfile(src / name, dst / name)
        else:
            (dst / name).symlink_to(src / name)


def test_truncated_mnist_file_gives_checksum_error(data_dir, tmp_path):
    src = _need(data_dir, "mnist")
    root = tmp_path / "data"
    _copy_with_symlinks(src, root / "mnist", copy=("train-labels-idx1-ubyte.gz",))
    target = root / "mnist" / "train-labels-idx1-ubyte.gz"
    locate("mnist", root, download=False)  # intact: verified (and cached)
    blob = target.read_bytes()
    target.write_bytes(blob[: len(blob) // 2])  # truncated: new size, so not the cached MD5
    with pytest.raises(ChecksumError) as err:
        load_mnist(root, download=False)
    msg = str(err.value)
    actual = hashlib.md5(blob[: len(blob) // 2]).hexdigest()
    assert str(target) in msg and MNIST_MD5[target.name] in msg and actual in msg
    assert err.value.path == target and err.value.actual == actual
    # without verification the reader still fails cleanly, naming the file
    with pytest.raises(DatasetError, match="train-labels-idx1-ubyte.gz"):
        load_mnist(root, download=False, verify=False)


def test_corrupted_bytes_same_size_detected(data_dir, tmp_path):
    src = _need(data_dir, "mnist")
    root = tmp_path / "data"
    _copy_with_symlinks(src, root / "mnist", copy=("t10k-labels-idx1-ubyte.gz",))
    target = root / "mnist" / "t10k-labels-idx1-ubyte.gz"
    blob = bytearray(target.read_bytes())
    blob[100] ^= 0xFF
    target.write_bytes(bytes(blob))
    with pytest.raises(ChecksumError, match="t10k-labels-idx1-ubyte.gz"):
        load_mnist(root, download=False)


def _idx_bytes(magic: int, dims: tuple[int, ...], body: bytes) -> bytes:
    return struct.pack(f">I{len(dims)}I", magic, *dims) + body


def test_idx_header_validation(tmp_path):
    good = tmp_path / "x-idx3-ubyte.gz"
    good.write_bytes(gzip.compress(_idx_bytes(2051, (2, 3, 4), bytes(range(24)))))
    assert read_idx(good, 2051).tolist() == np.arange(24).reshape(2, 3, 4).tolist()
    with pytest.raises(DatasetError, match="magic number 2051, expected 2049"):
        read_idx(good, 2049)
    short = tmp_path / "short-idx1-ubyte"
    short.write_bytes(_idx_bytes(2049, (10,), bytes(9)))
    with pytest.raises(DatasetError, match=r"header says 10 .*holds 9 bytes"):
        read_idx(short, 2049)
    bad_gz = tmp_path / "bad.gz"
    bad_gz.write_bytes(gzip.compress(_idx_bytes(2049, (10,), bytes(10)))[:-12])
    with pytest.raises(DatasetError, match="bad.gz"):
        read_idx(bad_gz, 2049)


# --------------------------------------------------------------------------- lookup, download


def test_missing_files_offline_error_lists_files_and_dirs(tmp_path, monkeypatch):
    given, env = tmp_path / "given", tmp_path / "env"
    monkeypatch.setenv("SPECC_DATA_DIR", str(env))
    for download in (False, True):  # True: the (disabled) network fails
        with pytest.raises(DatasetNotFound) as err:
            load_mnist(given, download=download)
        msg = str(err.value)
        for name in IDX:
            assert name in msg
        cache = tmp_path / "xdg-cache" / "specc" / "datasets"
        for d in (given / "mnist", env / "mnist", cache / "mnist"):
            assert str(d) in msg
        assert err.value.searched[:3] == [given / "mnist", env / "mnist", cache / "mnist"]
        assert set(IDX) <= set(err.value.expected)
        assert f"put the files in {given / 'mnist'}/" in msg
        assert ("download=False" in msg) == (not download)
        assert ("download failed" in msg) == download
    assert not (cache / "mnist").exists() or not list((cache / "mnist").iterdir())  # no torn files


def test_missing_cifar10_lists_both_layouts(tmp_path):
    with pytest.raises(DatasetNotFound) as err:
        load_cifar10(tmp_path, download=False)
    msg = str(err.value)
    for name in ("data_batch_1", "data_batch_5", "test_batch", "cifar-10-python.tar.gz"):
        assert name in msg
    assert str(tmp_path / "cifar-10-batches-py") in msg and str(tmp_path / "cifar10") in msg


def test_partial_set_is_reported(tmp_path):
    (tmp_path / "fashion-mnist").mkdir()
    (tmp_path / "fashion-mnist" / IDX[0]).write_bytes(b"x")
    with pytest.raises(DatasetNotFound, match=r"has 1 of the files; missing: train-labels"):
        load_fashion_mnist(tmp_path, download=False)


def _fake_idx_set(d: Path, n: int, first_label: int) -> None:
    d.mkdir(parents=True)
    (d / IDX[0]).write_bytes(gzip.compress(_idx_bytes(2051, (n, 28, 28), bytes(n * 784))))
    (d / IDX[1]).write_bytes(gzip.compress(_idx_bytes(2049, (n,), bytes([first_label] * n))))
    (d / IDX[2]).write_bytes(gzip.compress(_idx_bytes(2051, (1, 28, 28), bytes(784))))
    (d / IDX[3]).write_bytes(gzip.compress(_idx_bytes(2049, (1,), bytes(1))))


def test_lookup_order_data_dir_then_env_then_cache(tmp_path, monkeypatch):
    given, env = tmp_path / "given", tmp_path / "env"
    cache = tmp_path / "xdg-cache" / "specc" / "datasets"
    _fake_idx_set(cache / "fashion-mnist", 3, 1)
    assert load_fashion_mnist(None, download=False, verify=False).y_train.tolist() == [1] * 3
    _fake_idx_set(env / "fashion_mnist", 4, 2)  # the underscore layout is accepted too
    monkeypatch.setenv("SPECC_DATA_DIR", str(env))
    assert load_fashion_mnist(None, download=False, verify=False).y_train.tolist() == [2] * 4
    _fake_idx_set(given / "fashion-mnist", 5, 3)
    got = load_fashion_mnist(given, download=False, verify=False)
    assert got.y_train.tolist() == [3] * 5 and got.info.source == str(given / "fashion-mnist")
    with pytest.raises(ChecksumError, match="expected MD5 8d4fb7e6c68d591d4c3dfef9ec88bf0d"):
        load_fashion_mnist(given, download=False)  # fake files are not the official ones


class _FakeResponse(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def test_download_is_verified_and_atomic(tmp_path, monkeypatch):
    payload = b"official bytes" * 1000
    served = []

    def fake_urlopen(url, timeout=None):
        served.append(url)
        if "bad-mirror" in url:
            return _FakeResponse(payload[:-1])  # truncated transfer
        if "down" in url:
            raise urllib.error.URLError("unreachable")
        return _FakeResponse(payload)

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    remote = RemoteFile(
        "file.bin",
        hashlib.md5(payload).hexdigest(),
        ("http://down/file.bin", "http://bad-mirror/file.bin", "http://good/file.bin"),
    )
    dest = tmp_path / "cache" / "file.bin"
    download_file(remote, dest, log=lambda m: None)
    assert dest.read_bytes() == payload and len(served) == 3
    assert [p.name for p in dest.parent.iterdir()] == ["file.bin"]  # no temporary left
    wrong = RemoteFile("other.bin", "0" * 32, ("http://good/other.bin",))
    with pytest.raises(DatasetError, match="could not download other.bin: .*expected 0{32}"):
        download_file(wrong, tmp_path / "cache" / "other.bin", log=lambda m: None)
    assert [p.name for p in dest.parent.iterdir()] == ["file.bin"]


def test_download_into_cache_then_load(tmp_path, monkeypatch):
    """A missing dataset is fetched into the cache (simulated server with the right MD5s)."""
    blobs = {
        IDX[0]: gzip.compress(_idx_bytes(2051, (2, 28, 28), bytes(2 * 784))),
        IDX[1]: gzip.compress(_idx_bytes(2049, (2,), bytes([7, 3]))),
        IDX[2]: gzip.compress(_idx_bytes(2051, (1, 28, 28), bytes(784))),
        IDX[3]: gzip.compress(_idx_bytes(2049, (1,), bytes([5]))),
    }
    layout = files_mod.LAYOUTS["mnist"][0]
    fake_layout = files_mod.FileSet(
        tuple(
            RemoteFile(n, hashlib.md5(blobs[n]).hexdigest(), (f"http://mirror/{n}",)) for n in IDX
        ),
        layout.subdirs,
    )
    monkeypatch.setitem(files_mod.LAYOUTS, "mnist", (fake_layout,))
    monkeypatch.setattr(
        urllib.request,
        "urlopen",
        lambda url, timeout=None: _FakeResponse(blobs[url.rsplit("/", 1)[1]]),
    )
    d = load_mnist(tmp_path / "nothing-here", download=True)
    assert d.y_train.tolist() == [7, 3] and d.y_test.tolist() == [5]
    cached = tmp_path / "xdg-cache" / "specc" / "datasets" / "mnist"
    assert d.info.source == str(cached)
    (cached / IDX[1]).write_bytes(b"torn")  # a corrupted cache copy: fetched again
    with pytest.raises(ChecksumError, match=IDX[1]):
        load_mnist(None, download=False)
    assert load_mnist(None, download=True).y_train.tolist() == [7, 3]
    assert (cached / IDX[1]).read_bytes() == blobs[IDX[1]]


# --------------------------------------------------------------------------- CIFAR-10

# data[0, :10] of the official data_batch_1 (red channel, first row of the first image, a frog)
CIFAR_BATCH1_ROW0 = [59, 43, 50, 68, 98, 119, 139, 145, 149, 149]


def _cifar_row(images_hwc: np.ndarray) -> np.ndarray:
    """The official layout: per image 1024 red, 1024 green, 1024 blue values, row-major."""
    return images_hwc.transpose(0, 3, 1, 2).reshape(len(images_hwc), 3072)


def _write_cifar_dir(d: Path, per_batch: int = 3, seed: int = 0) -> tuple[np.ndarray, ...]:
    """A tiny cifar-10-batches-py/ in the official pickle format (protocol 2, bytes keys)."""
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True)
    xs, ys = [], []
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        x = rng.integers(0, 256, (per_batch, 32, 32, 3), dtype=np.uint8)
        y = rng.integers(0, 10, per_batch).tolist()
        batch = {
            b"batch_label": name.encode(),
            b"labels": y,
            b"data": _cifar_row(x),
            b"filenames": [f"img_{i}.png".encode() for i in range(per_batch)],
        }
        (d / name).write_bytes(pickle.dumps(batch, protocol=2))
        xs.append(x)
        ys.append(np.array(y))
    meta = {b"label_names": [b"airplane"], b"num_cases_per_batch": per_batch}
    (d / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return np.concatenate(xs[:5]), np.concatenate(ys[:5]), xs[5], ys[5]


def test_cifar10_official_pickle_format_and_channel_order(tmp_path):
    x_train, y_train, x_test, y_test = _write_cifar_dir(tmp_path / "cifar-10-batches-py")
    d = load_cifar10(tmp_path, download=False, verify=False)
    assert d.x_train.shape == (15, 32, 32, 3) and d.x_test.shape == (3, 32, 32, 3)
    assert d.x_train.dtype == np.uint8 and d.y_train.dtype == np.int64
    np.testing.assert_array_equal(d.x_train, x_train)
    np.testing.assert_array_equal(d.y_train, y_train)
    np.testing.assert_array_equal(d.x_test, x_test)
    np.testing.assert_array_equal(d.y_test, y_test)
    # the raw row: [0] is red (0, 0), [1] red (0, 1), [32] red (1, 0), [1024] green, [2048] blue
    raw = pickle.loads(
        (tmp_path / "cifar-10-batches-py" / "data_batch_1").read_bytes(), encoding="bytes"
    )
    row = raw[b"data"][0]
    img = d.x_train[0]
    assert (row[0], row[1], row[32], row[1024], row[2048], row[3071]) == (
        img[0, 0, 0],
        img[0, 1, 0],
        img[1, 0, 0],
        img[0, 0, 1],
        img[0, 0, 2],
        img[31, 31, 2],
    )
    assert d.info.class_names[:3] == ("airplane", "automobile", "bird")
    # the official MD5s are checked by default: this tiny archive is not the official one
    with pytest.raises(ChecksumError, match="data_batch_1"):
        load_cifar10(tmp_path, download=False)


def test_cifar10_known_pixels_single_colour(tmp_path):
    d = tmp_path / "cifar10" / "cifar-10-batches-py"
    _write_cifar_dir(d, per_batch=1)
    data = np.zeros((1, 3072), np.uint8)
    data[0, :1024], data[0, 1024:2048], data[0, 2048:] = 10, 20, 30  # R, G, B planes
    data[0, 5] = 200  # red of row 0, column 5
    data[0, 1024 + 32 * 2 + 7] = 201  # green of row 2, column 7
    (d / "data_batch_1").write_bytes(pickle.dumps({b"data": data, b"labels": [4]}, protocol=2))
    got = load_cifar10(tmp_path, download=False, verify=False)
    img = got.x_train[0]
    assert img[0, 0].tolist() == [10, 20, 30]
    assert img[0, 5].tolist() == [200, 20, 30] and img[2, 7].tolist() == [10, 201, 30]
    assert got.y_train[0] == 4


@pytest.mark.parametrize("where", ["cifar10", ""])
def test_cifar10_tar_gz_archive(tmp_path, where):
    x_train, y_train, x_test, y_test = _write_cifar_dir(tmp_path / "src" / "cifar-10-batches-py")
    root = tmp_path / "data"
    archive = (root / where if where else root) / "cifar-10-python.tar.gz"
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    d = load_cifar10(root, download=False, verify=False)
    np.testing.assert_array_equal(d.x_train, x_train)
    np.testing.assert_array_equal(d.y_test, y_test)
    with pytest.raises(ChecksumError, match="expected MD5 c58f30108f718f92721af3b95e74349a"):
        load_cifar10(root, download=False)
    archive.write_bytes(archive.read_bytes()[:500])  # truncated archive
    with pytest.raises(DatasetError, match="cifar-10-python.tar.gz"):
        load_cifar10(root, download=False, verify=False)


def test_cifar10_batch_refuses_code_in_pickles(tmp_path):
    d = tmp_path / "cifar-10-batches-py"
    _write_cifar_dir(d, per_batch=1)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    (d / "test_batch").write_bytes(pickle.dumps({b"data": Evil(), b"labels": [0]}, protocol=2))
    with pytest.raises(DatasetError, match="refusing to load .*system"):
        load_cifar10(tmp_path, download=False, verify=False)


def test_cifar10_shared_subset_cross_check(data_dir, tmp_path):
    """Genuine images (the shared subset, HWC) written in the official format read back
    identically; their first row is data_batch_1's published first values (red first)."""
    sub = _need(data_dir, "cifar10-subset")
    z = np.load(sub / "cifar10_train_partial_subset.npz")
    x, y = z["x_batch1_first474"], z["y_batch1_first474"]
    assert x.shape == (474, 32, 32, 3) and x.dtype == np.uint8
    assert y[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert z["y_batch4_all10000"][:1329].tolist() == z["y_batch4_first1329"].tolist()
    assert x[0, 0, :10, 0].tolist() == CIFAR_BATCH1_ROW0
    d = tmp_path / "cifar-10-batches-py"
    _write_cifar_dir(d, per_batch=1)
    batch = {b"data": _cifar_row(x), b"labels": y.tolist()}
    (d / "data_batch_1").write_bytes(pickle.dumps(batch, protocol=2))
    got = load_cifar10(tmp_path, download=False, verify=False)
    np.testing.assert_array_equal(got.x_train[:474], x)
    assert pickle.loads((d / "data_batch_1").read_bytes(), encoding="bytes")[b"data"][
        0, :10
    ].tolist() == (CIFAR_BATCH1_ROW0)
    assert got.info.class_names[got.y_train[0]] == "frog"


# --------------------------------------------------------------------------- digits, npz, folder


def test_digits_bundled_split():
    pytest.importorskip("sklearn")
    a, b = load_digits(), load_digits()
    assert a.x_train.shape == (1437, 8, 8, 1) and a.x_test.shape == (360, 8, 8, 1)
    assert a.x_train.dtype == np.uint8 and a.x_train.max() == 16 and a.info.max_value == 16
    np.testing.assert_array_equal(a.x_test, b.x_test)  # deterministic
    assert set(np.unique(a.y_train)) == set(range(10))
    assert load("digits").x_train.shape == (1437, 8, 8, 1)


def test_npz_loader_and_missing_keys(tmp_path):
    rng = np.random.default_rng(0)
    p = tmp_path / "mine.npz"
    y_train = rng.integers(0, 3, 20)
    np.savez(
        p,
        x_train=rng.integers(0, 256, (20, 6, 6, 1), dtype=np.uint8),
        y_train=np.eye(3, dtype=np.float32)[y_train],  # one-hot becomes indices
        x_test=rng.integers(0, 256, (5, 6, 6, 1), dtype=np.uint8),
        y_test=rng.integers(0, 3, (5, 1)),
        class_names=np.array(["a", "b", "c"]),
    )
    d = load_npz(p)
    assert d.y_train.tolist() == y_train.tolist() and d.y_test.shape == (5,)
    assert d.info.class_names == ("a", "b", "c") and d.info.num_classes == 3
    assert d.info.sample_shape == (6, 6, 1) and d.info.max_value == 255
    spec_like = {"type": "npz", "path": "mine.npz", "num_classes": None}
    assert load(spec_like, base_dir=tmp_path).x_train.shape == (20, 6, 6, 1)

    bad = tmp_path / "bad.npz"
    np.savez(bad, x_train=np.zeros((2, 3)), y_train=np.zeros(2, int), X_test=np.zeros((1, 3)))
    with pytest.raises(DatasetError) as err:
        load_npz(bad)
    msg = str(err.value)
    assert "lacks the array(s) x_test, y_test" in msg and "it has X_test, x_train, y_train" in msg
    with pytest.raises(DatasetError, match="not found"):
        load_npz(tmp_path / "absent.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="junk.npz"):
        load_npz(tmp_path / "junk.npz")


def _write_folder(root: Path, mode: str = "RGB") -> None:
    from PIL import Image

    colours = {"cat": (250, 0, 0), "dog": (0, 250, 0), "ant": (0, 0, 250)}
    for k, (cls, colour) in enumerate(colours.items()):
        (root / cls).mkdir(parents=True)
        for i in range(4):
            size = (10 + i, 12)  # different sizes: resized on load
            value = colour if mode == "RGB" else 60 * k + 10
            Image.new(mode, size, value).save(root / cls / f"{i}.png")


def test_image_folder_loader(tmp_path):
    pytest.importorskip("PIL")
    root = tmp_path / "pets"
    _write_folder(root)
    (root / "cat" / "notes.txt").write_text("ignored")
    d = load_folder(root, [8, 6], validation_fraction=0.25, seed=3)
    assert d.info.class_names == ("ant", "cat", "dog")  # sorted
    assert d.x_train.shape == (9, 8, 6, 3) and d.x_test.shape == (3, 8, 6, 3)
    assert d.x_train.dtype == np.uint8
    full = np.concatenate([d.x_train, d.x_test])
    labels = np.concatenate([d.y_train, d.y_test])
    assert sorted(labels.tolist()) == [0] * 4 + [1] * 4 + [2] * 4
    for img, label in zip(full, labels):  # each class's colour survived the resize
        assert int(np.argmax(img[4, 3])) == [2, 0, 1][label]
    again = load_folder(root, [8, 6], validation_fraction=0.25, seed=3)
    np.testing.assert_array_equal(again.y_test, d.y_test)
    grey = tmp_path / "grey"
    _write_folder(grey, mode="L")
    g = load_folder(grey, [5, 5])
    assert g.x_train.shape[1:] == (5, 5, 1)
    assert load_folder(grey, [5, 5], channels=3).x_train.shape[1:] == (5, 5, 3)
    spec = Training(dataset={"type": "folder", "path": "pets", "image_size": [8, 6]}, seed=3)
    p = prepare(spec, (8, 6, 3), base_dir=tmp_path, output_units=3)
    assert p.class_names == ["ant", "cat", "dog"] and len(p.x_test) == 2  # 20% of 12 held out
    assert p.x_train.shape[1:] == (8, 6, 3) and len(p.x_train) + len(p.x_val) == 10
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DatasetError, match="broken.png"):
        load_folder(root, [8, 6])
    (root / "empty").mkdir()
    with pytest.raises(DatasetError, match="empty has no images"):
        load_folder(root, [8, 6])


# --------------------------------------------------------------------------- preprocessing


def test_scale_and_standardize_arithmetic():
    x = np.arange(2 * 2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 2, 3) * 10
    u = scale_unit(x)
    assert u.dtype == np.float32 and np.allclose(u, x / 255.0)
    mean, std = channel_stats(x)
    ref = x.reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(mean, ref.mean(axis=0))
    np.testing.assert_allclose(std, ref.std(axis=0))
    s = standardize(x, mean, std)
    np.testing.assert_allclose(s.reshape(-1, 3).mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(s.reshape(-1, 3).std(axis=0), 1, atol=1e-6)
    assert np.all(standardize(np.ones((3, 2, 1)), [1.0], [0.0]) == 0)  # zero std: no NaN


def _splits(n_train=100, n_test=20, shape=(4, 4, 3), seed=0) -> DataSplits:
    rng = np.random.default_rng(seed)
    return DataSplits(
        rng.integers(0, 256, (n_train, *shape), dtype=np.uint8),
        rng.integers(0, 10, n_train),
        rng.integers(0, 256, (n_test, *shape), dtype=np.uint8),
        rng.integers(0, 10, n_test),
        DatasetInfo("toy", tuple("0123456789"), 10, shape, 255.0),
    )


def test_prepare_standardizes_with_train_split_statistics_only():
    data = _splits()
    t = Training(
        dataset="mnist", preprocessing={"normalize": "standardize"}, validation_split=0.2, seed=5
    )
    p = prepare(t, (4, 4, 3), data=data)
    assert len(p.x_train) == 80 and len(p.x_val) == 20 and len(p.x_test) == 20
    # statistics of the 80 training samples (not of val, not of test)
    xt, _, xv, _ = split_validation(data.x_train, data.y_train, 0.2, seed=5)
    mean, std = channel_stats(xt / 255.0)
    np.testing.assert_allclose(p.normalization["mean"], mean)
    np.testing.assert_allclose(p.normalization["std"], std)
    np.testing.assert_allclose(p.x_train.reshape(-1, 3).mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(p.x_train.reshape(-1, 3).std(axis=0), 1, atol=1e-5)
    np.testing.assert_allclose(p.x_val, (xv / 255.0 - mean) / std, atol=1e-5)
    np.testing.assert_allclose(p.x_test, (data.x_test / 255.0 - mean) / std, atol=1e-5)
    np.testing.assert_allclose(p.transform(data.x_test), p.x_test, atol=1e-6)
    np.testing.assert_array_equal(p.raw_test_images(3), data.x_test[:3])
    assert p.x_train.dtype == np.float32 and p.y_train.dtype == np.int64
    assert p.label_mode == "sparse"


def test_prepare_is_seeded_and_reproducible():
    data = _splits()
    t = Training(dataset="mnist", validation_split=0.3, seed=1)
    a, b = prepare(t, (48,), data=data), prepare(t, (48,), data=data)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_val, b.y_val)
    c = prepare(Training(dataset="mnist", validation_split=0.3, seed=2), (48,), data=data)
    assert not np.array_equal(a.y_val, c.y_val)
    assert a.x_train.shape == (70, 48) and a.x_val.shape == (30, 48)
    assert np.allclose(a.x_test, data.x_test.reshape(20, 48) / 255.0)  # "unit" scaling
    t_test = Training(dataset="mnist", validation_split="test", seed=1)
    p = prepare(t_test, (4, 4, 3), data=data)
    assert p.x_val is p.x_test and len(p.x_train) == 100 and p.normalization["validation"] == "test"
    none = prepare(Training(dataset="mnist", validation_split=0.0), (4, 4, 3), data=data)
    assert none.x_val is None and none.y_val is None


def test_prepare_real_mnist_shapes_and_refusal(mnist):
    t = Training(dataset="mnist", validation_split=0.1, seed=42)
    p = prepare(t, (784,), data=mnist)
    assert p.x_train.shape == (54000, 784) and p.x_val.shape == (6000, 784)
    assert p.x_test.shape == (10000, 784) and 0.0 <= p.x_train.min() and p.x_train.max() == 1.0
    assert p.class_names == list("0123456789") and p.sample_shape == (28, 28, 1)
    p = prepare(
        Training(dataset="mnist", loss="categorical_crossentropy"), (28, 28), data=mnist, limit=500
    )
    assert p.x_train.shape == (450, 28, 28) and p.y_train.shape == (450, 10)
    np.testing.assert_array_equal(p.class_indices(p.y_test), mnist.y_test[:500])
    with pytest.raises(
        DatasetError, match=r"mnist gives 28x28x1 samples .*the spec's input is 32x32x3"
    ):
        prepare(t, (32, 32, 3), data=mnist)
    with pytest.raises(DatasetError, match="10 classes .* outputs 5 units"):
        prepare(t, (28, 28, 1), data=mnist, output_units=5, limit=100)


def test_reshape_one_hot_and_split_helpers():
    x = np.zeros((3, 28, 28, 1))
    assert reshape_to(x, [784]).shape == (3, 784) and reshape_to(x, (28, 28)).shape == (3, 28, 28)
    with pytest.raises(DatasetError, match="28x28x1 samples"):
        reshape_to(x, (32, 32, 3))
    np.testing.assert_array_equal(one_hot(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(DatasetError):
        one_hot(np.array([3]), 3)
    assert validation_count(60000, 0.1) == 6000 and validation_count(100, 0.29) == 29
    assert validation_count(10, 0.0) == 0 and validation_count(1, 0.5) == 0
    xs = np.arange(10)
    xt, yt, xv, yv = split_validation(xs, xs * 2, 0.3, seed=0)
    assert len(xt) == 7 and len(xv) == 3 and sorted([*xt, *xv]) == list(range(10))
    np.testing.assert_array_equal(yt, xt * 2)


def test_binary_and_mse_labels():
    data = _splits()
    data.y_train %= 2
    data.y_test %= 2
    p = prepare(
        Training(dataset="mnist", loss="binary_crossentropy"), (48,), data=data, output_units=1
    )
    assert p.y_train.shape == (90, 1) and p.y_train.dtype == np.float32 and p.label_mode == "binary"
    p = prepare(Training(dataset="mnist", loss="mse"), (48,), data=data, output_units=10)
    assert p.y_train.shape == (90, 10) and p.label_mode == "one_hot"


def test_mini_batches_seeded():
    x = np.arange(10)
    batches = list(iterate_batches(x, x, 4, seed=1, epoch=0))
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    assert sorted(np.concatenate([b[0] for b in batches]).tolist()) == list(range(10))
    again = list(iterate_batches(x, x, 4, seed=1, epoch=0))
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(batches, again))
    other = np.concatenate([b[0] for b in iterate_batches(x, x, 4, seed=1, epoch=1)])
    assert not np.array_equal(other, np.concatenate([b[0] for b in batches]))
    assert len(list(iterate_batches(x, x, 4, seed=1, drop_last=True))) == 2
    ordered = np.concatenate([b[0] for b in iterate_batches(x, x, 3, shuffle=False)])
    assert ordered.tolist() == list(range(10))


def test_flips_are_exact():
    x = np.arange(2 * 3 * 4 * 2, dtype=np.float32).reshape(2, 3, 4, 2)
    np.testing.assert_array_equal(flip_horizontal(x), x[:, :, ::-1])
    np.testing.assert_array_equal(flip_vertical(x), x[:, ::-1])
    rng = np.random.default_rng(0)
    xs = np.random.default_rng(1).random((64, 5, 6, 3)).astype(np.float32)
    out = augment(xs, rng, horizontal_flip=True)
    flipped = [np.array_equal(o, i[:, ::-1]) for o, i in zip(out, xs)]
    kept = [np.array_equal(o, i) for o, i in zip(out, xs)]
    assert all(f or k for f, k in zip(flipped, kept)) and 10 < sum(flipped) < 54
    out = augment(xs, np.random.default_rng(0), vertical_flip=True)
    assert all(np.array_equal(o, i) or np.array_equal(o, i[::-1]) for o, i in zip(out, xs))


def test_affine_augmentation_geometry():
    x = np.random.default_rng(0).random((2, 5, 5, 2)).astype(np.float32)
    identity = np.tile(np.array([[1.0, 0, 0], [0, 1, 0]]), (2, 1, 1))
    np.testing.assert_array_equal(affine_warp(x, identity), x)
    # content shifted right by one column; the left edge repeats (fill mode "nearest")
    shift = np.tile(np.array([[1.0, 0, 0], [0, 1, -1]]), (2, 1, 1))
    out = affine_warp(x, shift)
    np.testing.assert_allclose(out[:, :, 1:], x[:, :, :-1])
    np.testing.assert_allclose(out[:, :, 0], x[:, :, 0])
    # a quarter turn about the centre (src = (c + c - col, row)) is np.rot90 clockwise
    quarter = np.tile(np.array([[0.0, -1, 4], [1, 0, 0]]), (2, 1, 1))
    np.testing.assert_allclose(affine_warp(x, quarter), np.rot90(x, -1, axes=(1, 2)), atol=1e-6)


def test_augment_keeps_shapes_range_and_is_seeded():
    x = np.random.default_rng(0).random((8, 12, 10, 3)).astype(np.float32)
    kw = dict(horizontal_flip=True, rotation=0.1, translation=0.2, zoom=0.2)
    a = augment(x, np.random.default_rng(5), **kw)
    b = augment(x, np.random.default_rng(5), **kw)
    assert a.shape == x.shape and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, x)
    assert a.min() >= x.min() - 1e-6 and a.max() <= x.max() + 1e-6  # interpolation only
    assert augment(x[..., 0], np.random.default_rng(5), **kw).shape == (8, 12, 10)
    np.testing.assert_array_equal(augment(x, np.random.default_rng(5)), x)  # nothing asked
    with pytest.raises(DatasetError, match="augmentation needs images"):
        augment(np.zeros((2, 3)), np.random.default_rng(0), horizontal_flip=True)


def test_prepared_batches_augment_flat_inputs():
    data = _splits(shape=(6, 6, 1))
    t = Training(
        dataset="mnist",
        validation_split=0.0,
        augmentation={"horizontal_flip": True, "translation": 0.1},
        seed=9,
        batch_size=16,
    )
    p = prepare(t, (36,), data=data)
    assert p.augmentation == {"horizontal_flip": True, "translation": 0.1}
    first = list(p.batches(16, epoch=0))
    assert [xb.shape for xb, _ in first] == [(16, 36)] * 6 + [(4, 36)]
    again = list(p.batches(16, epoch=0))
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(first, again))
    plain = list(p.batches(16, epoch=0, augment=False))
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(first, plain))
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(first, plain))


def test_prepare_from_spec_with_digits():
    pytest.importorskip("sklearn")
    t = Training(
        dataset="digits", preprocessing={"normalize": "unit"}, validation_split=0.1, seed=0
    )
    p = prepare(t, (8, 8, 1), output_units=10)
    assert p.x_train.shape == (1294, 8, 8, 1) and p.x_val.shape == (143, 8, 8, 1)
    assert p.x_test.shape == (360, 8, 8, 1) and p.x_train.max() == 1.0  # 16 -> 1
    assert p.normalization == {"mode": "unit", "scale": 16.0, "validation": "fraction"}
