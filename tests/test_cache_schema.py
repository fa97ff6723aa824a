"""The cache schema has one owner: docs/cache-format.md names exactly the arrays and attributes
of evtools.cache, with the dtypes conversion_arrays gives them, and a cache holding everything
(frames, ground truth, conditions, every representation, stored events, pseudo-labels) holds
nothing else."""

import re
from pathlib import Path

import numpy as np
import torch
import zarr
from cli import run_cli
from conftest import Bright

from evtools.cache import CacheArray, CacheAttr, conversion_arrays, repr_array
from evtools.pseudolabel import PseudolabelSpec, pseudolabel
from evtools.representations import REPRESENTATIONS

DOC = (Path(__file__).parents[1] / "docs" / "cache-format.md").read_text()


def documented(section: str) -> dict[str, str]:
    """{name: second column} of the table under a '## section' heading of the format document."""
    body = DOC.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in body.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `"):
            for name in re.findall(r"`([^`]+)`", cells[0]):
                rows[name] = cells[1]
    return rows


def test_the_document_names_every_attribute_and_no_other():
    assert set(documented("Attributes of the group")) == {a.value for a in CacheAttr}


def test_the_document_names_every_array_and_no_other():
    assert set(documented("Arrays")) == {a.value for a in CacheArray} | {repr_array("<name>")}


def test_documented_dtypes_are_the_dtypes_conversion_creates():
    arrays = conversion_arrays(3, 8, 6, [cls() for cls in REPRESENTATIONS.values()], with_aps=True,
                               with_ground_truth=True, condition_names=["normal"], event_capacity=10)
    for name, cell in documented("Arrays").items():
        dtype = re.search(r"\b(u?int\d+|float\d+)\b", cell)
        if name in arrays and dtype:
            assert arrays[name].dtype == np.dtype(dtype[1]), name


def test_a_full_cache_holds_only_named_arrays_and_attributes(tmp_path):
    run_cli("simulate", tmp_path / "sim", "--seconds", "0.6", "--aps-schedule", "normal,night")
    result = run_cli("convert", tmp_path / "sim" / "seq000.hdf5", "-o", tmp_path / "full", "--ground-truth",
                     tmp_path / "sim" / "ground_truth", *[a for name in [*REPRESENTATIONS, "events"] for a in ("--repr", name)])
    assert result.returncode == 0, result.stderr
    path = tmp_path / "full.zarr"
    torch.jit.script(Bright()).save(str(tmp_path / "teacher.ts"))
    pseudolabel(path, PseudolabelSpec(teacher=tmp_path / "teacher.ts", in_channels=1, num_classes=2, scales=(1.0,)))
    group = zarr.open_group(path, mode="r")
    arrays = {name for name, node in group.members(max_depth=None) if isinstance(node, zarr.Array)}
    allowed = {a.value for a in CacheArray} | {repr_array(n) for n in REPRESENTATIONS}
    assert arrays <= allowed and {CacheArray.LABELS, CacheArray.GT_CONDITION, CacheArray.EVENTS_DT} <= arrays
    assert set(group.attrs) == {a.value for a in CacheAttr}


def test_xarray_opens_a_cache_with_window_times_as_coordinates(tmp_path):
    import xarray as xr

    run_cli("simulate", tmp_path / "sim", "--seconds", "0.4")
    result = run_cli("convert", tmp_path / "sim" / "seq000.hdf5", "-o", tmp_path / "c", "--repr", "voxel",
                     "--repr", "evimage", "--repr", "events")
    assert result.returncode == 0, result.stderr
    path = tmp_path / "c.zarr"
    root = zarr.open_group(path, mode="r")
    assert root.metadata.consolidated_metadata is not None  # one read gives every array's metadata
    ds = xr.open_zarr(path)
    assert set(ds.coords) == {"t_start_us", "t_end_us"} and ds.sizes["window"] == 10
    np.testing.assert_array_equal(ds["t_end_us"].values, root["t_end_us"][:])
    assert ds["aps"].dims == ("window", "y", "x") and ds["n_events"].dims == ("window",)
    reprs = xr.open_zarr(path, group="repr")
    assert reprs["voxel"].dims == ("window", "voxel_channel", "y", "x")
    assert reprs["evimage"].dims == ("window", "evimage_channel", "y", "x")
    np.testing.assert_array_equal(reprs["voxel"][3].values, root["repr/voxel"][3])
    assert xr.open_zarr(path, group="events")["dt"].dims == ("window", "event")
    # a stage that adds arrays consolidates again: xarray sees the pseudo-labels
    torch.jit.script(Bright()).save(str(tmp_path / "teacher.ts"))
    pseudolabel(path, PseudolabelSpec(teacher=tmp_path / "teacher.ts", in_channels=1, num_classes=2, scales=(1.0,)))
    labelled = xr.open_zarr(path)
    assert labelled["labels"].dims == ("window", "y", "x") and "t_end_us" in labelled["labels"].coords
