"""Caches are not trusted on reading: a deleted or corrupt chunk, a garbled array, found and named
(never read as zeros), by the dataset, render and evtools info --verify."""

import shutil

import pytest
from cli import run_cli
from conftest import write_recording

from evtools.cache import Cache, CacheError
from evtools.convert import ConvertSpec, convert
from evtools.data import CacheDataset


@pytest.fixture(scope="module")
def sound(tmp_path_factory):
    root = tmp_path_factory.mktemp("caches")
    write_recording(root / "rec_data.hdf5", n_events=3000, n_frames=6)
    return convert(root / "rec_data.hdf5", root / "sound", ConvertSpec()).output


@pytest.fixture
def damaged(sound, tmp_path):
    copy = tmp_path / "damaged.zarr"
    shutil.copytree(sound, copy)
    return copy


def test_a_sound_cache_verifies(sound):
    assert Cache(sound).verify() == []
    result = run_cli("info", sound, "--verify")
    assert result.returncode == 0 and "every chunk of every array is present and decodes" in result.stdout


def test_a_deleted_chunk_is_named_not_read_as_zeros(damaged):
    (damaged / "repr" / "voxel" / "c.3.0.0.0").unlink()
    with pytest.raises(CacheError, match=r"window 3 of 'repr/voxel' is missing \(its chunk file was deleted\)"):
        CacheDataset(damaged)[3]
    assert CacheDataset(damaged)[2]["events"].shape == (5, 48, 64)  # the others still read
    assert Cache(damaged).verify() == ["'repr/voxel': 1 of 6 chunks missing (the first at chunk (3, 0, 0, 0))"]
    result = run_cli("info", damaged, "--verify")
    assert result.returncode == 2
    assert result.stderr == (f"error: {damaged}: 1 problem(s): 'repr/voxel': 1 of 6 chunks missing "
                             "(the first at chunk (3, 0, 0, 0))\n")
    result = run_cli("render", damaged, "--index", "3", "-o", damaged.parent / "w.png")
    assert result.returncode == 2 and "window 3 of 'repr/voxel' is missing" in result.stderr


def test_a_corrupt_chunk_and_a_garbled_array_are_named(damaged):
    (damaged / "aps" / "c.1.0.0").write_bytes(b"garbage")
    with pytest.raises(CacheError, match=r"window 1 of 'aps' cannot be decoded"):
        CacheDataset(damaged, with_aps=True)[1]
    assert Cache(damaged).verify() == ["'aps': windows from 1 cannot be decoded (RuntimeError)"]
    (damaged / "repr" / "voxel" / "zarr.json").write_text("{not json")
    with pytest.raises(CacheError, match=r"array 'repr/voxel' is unreadable"):
        Cache(damaged).array("repr/voxel")
