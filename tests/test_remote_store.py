"""Caches in a remote Zarr store: conversions into a real S3-compatible server (moto's server,
started on 127.0.0.1 by the test, reached through s3fs) equal local ones, resume after an
interruption (in place: completeness is the ``complete`` attribute, written last, since S3 has
no atomic rename), refuse other parameters, and are read by CacheDataset."""

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from cli import run_cli
from conftest import Bright, assert_same_cache, damage_block_at, write_recording

from evtools.cache import Cache, CacheError, StaleCacheError
from evtools.convert import ConvertSpec, convert
from evtools.data import CacheDataset
from evtools.errors import InputError
from evtools.render import render_window
from evtools.representations import EvImage, VoxelGrid

moto_server = pytest.importorskip("moto.server")
pytest.importorskip("s3fs")
SPEC = ConvertSpec(representations=(VoxelGrid(), EvImage()), events=True)


@pytest.fixture(scope="module")
def s3():
    import boto3

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": endpoint, "FSSPEC_S3_ENDPOINT_URL": endpoint}
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="caches")
    yield "s3://caches"
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    server.stop()


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    root = tmp_path_factory.mktemp("remote")
    write_recording(root / "rec_data.hdf5", n_events=30_000, n_frames=40, span_us=2_000_000)
    return root / "rec_data.hdf5", Cache(convert(root / "rec_data.hdf5", root / "local", SPEC).output)


def test_a_cache_in_s3_equals_the_local_one(s3, recording):
    path, local = recording
    result = convert(path, f"{s3}/run1/rec", SPEC)
    assert str(result.output) == f"{s3}/run1/rec.zarr" and result.windows == 40 and result.bytes_on_disk > 0
    remote = Cache(f"{s3}/run1/rec.zarr")
    assert_same_cache(remote, local)
    assert convert(path, f"{s3}/run1/rec", SPEC).up_to_date
    with pytest.raises(StaleCacheError, match="holds a conversion with other representations"):
        convert(path, f"{s3}/run1/rec", ConvertSpec(representations=(EvImage(),), events=True))
    replaced = convert(path, f"{s3}/run1/rec", ConvertSpec(representations=(EvImage(),), events=True, overwrite=True))
    assert Cache(replaced.output).representations == ["evimage"]


def test_an_interrupted_conversion_resumes_in_place(s3, recording, monkeypatch):
    path, local = recording
    damage_block_at(monkeypatch, 32)  # the third block
    with pytest.raises(InputError, match="damaged"):
        convert(path, f"{s3}/run2/rec", SPEC)
    with pytest.raises(CacheError, match="incomplete cache"):
        Cache(f"{s3}/run2/rec.zarr")  # no rename in S3: the cache is where it will be, marked incomplete
    monkeypatch.undo()
    resumed = convert(path, f"{s3}/run2/rec", SPEC)
    assert resumed.resumed_from == 32  # the two blocks before the damage, stored and recorded
    assert_same_cache(Cache(resumed.output), local)


def test_a_local_cluster_converts_into_s3_as_ranges_and_as_whole_recordings(s3, recording):
    pytest.importorskip("distributed")
    from distributed import Client

    from evtools.cache import location
    from evtools.cluster import WHOLE_BYTES, convert_on_cluster, local_cluster

    path, local = recording
    with local_cluster(2) as cluster, Client(cluster) as client:  # the workers inherit the store's settings
        for whole_bytes in (0, WHOLE_BYTES):
            outputs = [location(f"{s3}/cluster-{whole_bytes}/{k}.zarr") for k in range(2)]
            results = convert_on_cluster(client, [path, path], outputs, SPEC, range_windows=16, whole_bytes=whole_bytes)
            for result in results:
                assert_same_cache(Cache(result.output), local)


def test_cache_dataset_reads_from_s3(s3, recording):
    path, local = recording
    convert(path, f"{s3}/run3/rec", SPEC)
    remote = CacheDataset(f"{s3}/run3/rec.zarr", repr="voxel", with_aps=True)
    here = CacheDataset(local.path, repr="voxel", with_aps=True)
    for k in (0, 17, 39):
        torch.testing.assert_close(remote[k]["events"], here[k]["events"], rtol=0, atol=0)
    computed = CacheDataset(f"{s3}/run3/rec.zarr", repr=VoxelGrid(bins=3))  # from the stored events
    np.testing.assert_allclose(computed[5]["events"].numpy(),
                               CacheDataset(local.path, repr=VoxelGrid(bins=3))[5]["events"].numpy())


def test_the_commands_take_cache_urls(s3, recording, tmp_path):
    path, local = recording
    result = run_cli("convert", path, "-o", f"{s3}/run4/rec", "--repr", "voxel", "--repr", "events")
    assert result.returncode == 0, result.stderr
    info = run_cli("info", f"{s3}/run4/rec.zarr", "--json")
    assert info.returncode == 0, info.stderr
    summary = json.loads(info.stdout)
    assert summary["n_windows"] == 40 and summary["stored_events"]["encoding"] == "dt-xyp-uint32"
    assert run_cli("info", f"{s3}/run4/rec.zarr", "--verify").returncode == 0
    picture = run_cli("render", f"{s3}/run4/rec.zarr", "--index", "3", "-o", tmp_path / "w.png")
    assert picture.returncode == 0, picture.stderr
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "w.png")), render_window(Cache(f"{s3}/run4/rec.zarr"), 3))


def test_pseudolabel_and_eval_on_a_cache_in_s3(s3, recording, tmp_path):
    from evtools.models.checkpoint import save_checkpoint
    from evtools.models.deeplab import DeepLabConfig, DeepLabV3Plus

    path, local = recording
    convert(path, f"{s3}/run5/rec", SPEC)
    torch.jit.script(Bright()).save(str(tmp_path / "teacher.ts"))
    labelled = run_cli("pseudolabel", f"{s3}/run5/rec.zarr", "--teacher", tmp_path / "teacher.ts", "--in-channels", "1",
                       "--scales", "1.0")
    assert labelled.returncode == 0, labelled.stderr
    remote = Cache(f"{s3}/run5/rec.zarr")
    frames = remote.array("aps")[:]
    np.testing.assert_array_equal(remote.array("labels")[:], (frames > 0).astype(np.uint8))  # bright: class 1
    student = DeepLabV3Plus(DeepLabConfig(depth=18, width=0.25, in_channels=5, num_classes=2, aspp_channels=8,
                                          decoder_channels=8))
    checkpoint = save_checkpoint(tmp_path / "student.pt", student.eval(), {"repr": "voxel"})
    scores = run_cli("eval", checkpoint, "--events", f"{s3}/run5/rec.zarr", "--truth", "labels", "-o", tmp_path / "eval")
    assert scores.returncode == 0, scores.stderr
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["windows"] == 40 and sum(map(sum, metrics["confusion"])) == frames.size
    # score took its caches as local paths: s3://... became the folder s3:/...
    scored = run_cli("score", f"{s3}/run5/rec.zarr", "--prediction", "labels", "--truth", "labels")
    assert scored.returncode == 0 and "1.0000" in scored.stdout, scored.stderr


def test_a_store_that_fails_is_one_line_naming_its_url(recording):
    # the driver's own error names no URL (boto's had been a traceback); no credentials fail
    # before any connection, and the instance metadata service is not asked for them
    path, _ = recording
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    env.update(AWS_EC2_METADATA_DISABLED="true", AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_CONFIG_FILE=os.devnull)
    for args in (["convert", path, "-o", "s3://caches/nobody"], ["score", "s3://caches/nobody.zarr"],
                 ["info", "s3://caches/nobody.zarr"]):
        result = subprocess.run([sys.executable, "-m", "evtools", *map(str, args)], capture_output=True, text=True,
                                env=env, timeout=120)
        url = args[-1] if args[0] == "convert" else args[1]
        assert (result.returncode, result.stderr) == (
            2, f"error: {url}: the store failed (NoCredentialsError: Unable to locate credentials)\n"), args


def test_a_file_url_is_a_local_cache(recording, tmp_path):
    path, local = recording
    result = run_cli("convert", path, "-o", f"file://{tmp_path}/viaurl", "--repr", "voxel", "--repr", "evimage",
                     "--repr", "events")
    assert result.returncode == 0, result.stderr
    assert_same_cache(Cache(tmp_path / "viaurl.zarr"), local)  # renamed into place, as any local cache
    assert not list(tmp_path.glob("*.partial"))
