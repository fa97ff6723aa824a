"""One writer at a time (evtools.locks.exclusive): a second writer is refused while the first
holds the lock, whoever removes what; the lock file goes with its holder; and the commands that
write take it: convert and pseudolabel for a cache (tests/test_conversion_state.py,
tests/test_pseudolabel.py), train teacher for its checkpoint, train student for its run folder."""

import pytest
from cli import run_cli

from evtools import locks
from evtools.errors import EvtoolsError, InputError

BUSY = "busy now"


def test_a_second_writer_is_refused_while_the_first_holds_the_lock(tmp_path):
    target = tmp_path / "out.zarr"
    with locks.exclusive(target, BUSY):
        # twice: a refused writer once removed the holder's lock file, and the next one then locked
        # a new file of the same name and ran beside the holder
        for _ in range(2):
            with pytest.raises(InputError, match=f"{target}: {BUSY}"):
                with locks.exclusive(target, BUSY):
                    pass
        assert (tmp_path / "out.zarr.lock").exists()
    assert not (tmp_path / "out.zarr.lock").exists()
    with locks.exclusive(target, BUSY):  # free again
        pass


def test_a_lock_file_removed_by_its_holder_while_waiting_is_not_taken(tmp_path, monkeypatch):
    # a writer that opens the lock file just before its holder finishes (and removes it) locks that
    # removed file: it must lock a new one instead, or the next writer, finding no file, would run
    # beside it
    target = tmp_path / "out.zarr"
    holder = locks.exclusive(target, BUSY)
    holder.__enter__()
    real_flock = locks.fcntl.flock
    calls = []

    def holder_finishes_first(handle, operation):
        calls.append(operation)
        if len(calls) == 1:
            holder.__exit__(None, None, None)
        return real_flock(handle, operation)

    monkeypatch.setattr(locks.fcntl, "flock", holder_finishes_first)
    with locks.exclusive(target, BUSY):
        assert len(calls) == 2 and (tmp_path / "out.zarr.lock").exists()  # the removed file, then a new one
        monkeypatch.setattr(locks.fcntl, "flock", real_flock)
        with pytest.raises(InputError, match=BUSY):
            with locks.exclusive(target, BUSY):
                pass


def test_a_training_into_a_checkpoint_or_run_folder_being_trained_is_refused(tmp_path):
    from evtools.train.config import StudentConfig
    from evtools.train.student import StudentInputs, train_student

    busy = "another evtools command is training into it now; wait for it to finish"
    checkpoint, run = tmp_path / "teacher.pt", tmp_path / "runs" / "student"
    with locks.exclusive(checkpoint, BUSY):
        result = run_cli("train", "teacher", tmp_path / "images", "-o", checkpoint)
        assert (result.returncode, result.stderr) == (2, f"error: {checkpoint}: {busy}\n")
    with locks.exclusive(run, BUSY), pytest.raises(InputError, match=f"{run}: {busy}"):
        train_student(StudentConfig(), StudentInputs(events=[tmp_path / "c.zarr"]), run)
    assert not checkpoint.exists() and not run.exists()


def test_only_the_first_process_of_a_torchrun_group_locks_the_run_folder(tmp_path, monkeypatch):
    # every rank runs train_student on the same folder; rank 0 alone writes, and alone locks
    from evtools.train.config import StudentConfig
    from evtools.train.student import StudentInputs, train_student

    run = tmp_path / "student"
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "1")  # no process group is started: the missing teacher fails first
    with locks.exclusive(run, BUSY), pytest.raises(EvtoolsError, match="^--method evdistill needs --teacher$"):
        train_student(StudentConfig(), StudentInputs(events=[tmp_path / "c.zarr"]), run)
