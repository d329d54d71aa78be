"""Fault tolerance with real processes on 127.0.0.1: a worker SIGKILLed mid-task, the client SIGKILLed
mid-run, a full disk, a permission denied, a crash in the middle of the manifest write, shards that
disagree with their records. Each run ends with a dataset byte-identical to a clean run's, or with
a clear error and nothing partial counted as complete.

The slow-disk and full-disk faults are fsio's test-only environment variables (see its docstring);
'file too large' is the kernel's own RLIMIT_FSIZE error and 'permission denied' a real read-only
folder (as root, the command runs without the capability that lets root ignore permissions)."""

from __future__ import annotations

import ctypes
import io
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from augforge.pipelines import generate, load_recipe, make_plan, verify_shard
from augforge.pipelines.fsio import (
    FAULT_ENOSPC_ENV,
    FAULT_SLOW_ENV,
    OutputWriteError,
    atomic_file,
    atomic_write,
)
from tests.pipelines.conftest import read_manifest, recipe_dict, shard_shas, small_pictures

pytestmark = pytest.mark.timeout(120)

DASK = Path(sys.executable).parent / "dask"
CLI = ("import sys\nfrom augforge.cli import main\nsys.argv[0] = 'augforge'\nmain()\n")
N_INPUTS = 12
CHANGES: dict[str, Any] = {"ops": ["gaussian_noise@1-2", "contrast@2"], "input": {"options": {}},
                           "output": {"samples_per_shard": 3}, "execution": {"workers": 2, "batch_size": 2}}
N_SHARDS = 3 * 4  # 3 (op, severity) x 4 ranges
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, PR_CAPBSET_DROP = 1, 2, 24


def recipe(out: Path, data: Path) -> dict[str, Any]:
    return recipe_dict(out, input_path=data, **CHANGES)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_pictures(tmp_path_factory.mktemp("faults") / "data", N_INPUTS, side=32)


@pytest.fixture(scope="module")
def reference(data: Path, dask_client: Any) -> dict[str, str]:
    """path -> sha256 of every shard of an uninterrupted run."""
    out = data.parent / "reference"
    generate(recipe(out, data), client=dask_client, progress=False)
    shas = shard_shas(out)
    assert len(shas) == N_SHARDS
    return shas


def temps(out: Path) -> list[Path]:
    return sorted(out.rglob(".*.tmp"))


def fresh_partial_temp(out: Path, pattern: str = "*/*/.shard-*.tmp", age: float = 0.1) -> list[Path]:
    """Shard temporaries with data written in the last `age` seconds: the writer sleeps on the slow
    disk (longer than `age`) after writing and before it renames, so each stays partial a while longer."""
    now = time.time()
    found = []
    for path in out.glob(pattern):
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        if st.st_size > 0 and now - st.st_mtime < age:
            found.append(path)
    return found


def assert_complete_shards_verify(out: Path, data: Path) -> list[str]:
    """Every shard under its final name has a sidecar it matches; returns their paths."""
    plan = make_plan(load_recipe(recipe(out, data)), N_INPUTS, str(data))
    present = []
    for task in plan.tasks:
        if (out / task.path).exists():
            res, why = verify_shard(out, task)
            assert res is not None, f"{task.path} is under its final name but does not verify: {why}"
            present.append(task.path)
    return present


def wait_until(condition: Callable[[], Any], what: str, proc: subprocess.Popen[bytes] | None = None,
               log: Path | None = None, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the process exited ({proc.returncode}) before {what}:\n"
                        + (log.read_text()[-3000:] if log else ""))
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}" + (":\n" + log.read_text()[-3000:] if log else ""))
        time.sleep(0.005)
    return value


def run_cli(args: list[str], env: dict[str, str] | None = None, preexec: Callable[[], None] | None = None,
            timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CLI, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "COLUMNS": "1000", **(env or {})}, preexec_fn=preexec)


def write_recipe(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc))
    return path


# --- a worker killed mid-task -----------------------------------------------------------------------


@pytest.fixture
def nanny_free_cluster(tmp_path: Path) -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    """`dask scheduler` + two `dask worker --no-nanny` processes (a killed worker stays dead, so its
    task must run on the other one), with a slow disk so tasks last long enough to be caught."""
    scheduler_file = tmp_path / "scheduler.json"
    log = open(tmp_path / "cluster.log", "wb")  # noqa: SIM115 - closed in finally
    env = {**os.environ, FAULT_SLOW_ENV: "0.25"}
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> subprocess.Popen[bytes]:
        procs.append(subprocess.Popen([str(DASK), *args], stdout=log, stderr=subprocess.STDOUT, env=env,
                                      start_new_session=True))
        return procs[-1]

    try:
        scheduler = start("scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address", ":0",
                          "--scheduler-file", str(scheduler_file))
        wait_until(scheduler_file.exists, "the scheduler wrote its file", scheduler, tmp_path / "cluster.log")
        workers = [start("worker", "--scheduler-file", str(scheduler_file), "--nthreads", "1", "--no-nanny",
                         "--host", "127.0.0.1", "--no-dashboard") for _ in range(2)]
        yield json.loads(scheduler_file.read_text())["address"], workers
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
        log.close()


def test_worker_killed_mid_task_reruns_elsewhere(tmp_path: Path, data: Path, reference: dict[str, str],
                                                  nanny_free_cluster: tuple[str, list[Any]]) -> None:
    import dask
    from distributed import Client

    address, workers = nanny_free_cluster
    out = tmp_path / "out"
    with Client(address, timeout="30s") as monitor, ThreadPoolExecutor(1) as pool:
        monitor.wait_for_workers(2, timeout=60)
        # one lost worker must not fail its task: Dask reruns a task until it was on this many dead workers
        setting = "distributed.scheduler.allowed-failures"
        assert dask.config.get(setting) >= 1
        assert monitor.run_on_scheduler(lambda: dask.config.get(setting)) >= 1
        pids = monitor.run(os.getpid)
        by_pid = {proc.pid: proc for proc in workers}
        assert set(pids.values()) == set(by_pid)

        def executing(dask_worker: Any) -> list[str]:
            return [str(ts.key) for ts in dask_worker.state.executing]

        run = pool.submit(generate, recipe(out, data), scheduler=address, progress=False)

        def busy_worker() -> tuple[str, str] | None:
            """(worker, task key) of a task mid-write: its shard's temporary file has just got its data
            and the slow disk holds the task for 0.15 s or more before the rename."""
            if run.done():
                pytest.fail(f"the run ended before a worker was caught mid-task: {run.exception()}")
            if not list(out.glob("*/*/shard-*.tar")):
                return None  # kill mid-run: after the first shard is complete
            for addr, keys in monitor.run(executing).items():
                for key in keys:
                    if key.startswith("augforge-shard-"):
                        op, level, shard = key.split("-")[2:5]
                        if fresh_partial_temp(out, f"{op}/{level}/.shard-{shard}.tar.[!j]*.tmp"):
                            return addr, key
            return None

        addr, key = wait_until(busy_worker, "a worker was writing a shard")
        victim = by_pid[pids[addr]]
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=15)
        partial = temps(out)
        summary = run.result(timeout=90)
        assert len(monitor.scheduler_info()["workers"]) == 1, "the killed worker came back"
        story = monitor.run_on_scheduler(lambda dask_scheduler: dask_scheduler.story(key))
    # the scheduler took the task back from the dead worker and ran it again on the other one
    moves = [(start, finish) for _, start, finish, *_ in story]
    assert moves.count(("waiting", "processing")) + moves.count(("queued", "processing")) == 2, moves
    assert moves.index(("processing", "released")) < moves.index(("processing", "memory")), moves
    print(f"killed worker {addr} while it wrote {key}; temporaries then: {[p.name for p in partial]}")
    assert partial, "the killed worker was mid-write"
    assert summary.built == N_SHARDS and summary.resumed == 0
    assert shard_shas(out) == reference
    assert not temps(out), "a temporary file of the killed worker was left behind"


# --- the client killed mid-run -------------------------------------------------------------------------


def test_client_killed_mid_run_resumes_byte_identical(tmp_path: Path, data: Path, reference: dict[str, str],
                                                       dask_client: Any) -> None:
    out = tmp_path / "out"
    spec = write_recipe(tmp_path / "recipe.yaml", recipe(out, data))
    log = tmp_path / "run.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen([sys.executable, "-c", CLI, "generate", str(spec), "--workers", "1"],
                                stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, FAULT_SLOW_ENV: "0.3"})
    try:
        wait_until(lambda: len(list(out.glob("*/*/shard-*.tar"))) >= 3 and fresh_partial_temp(out),
                   "3 shards were complete and another was being written", proc, log)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the client and its LocalCluster workers
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "manifest.json").exists()
    leftovers = temps(out)
    assert leftovers, "a shard was being written when the kill landed"
    present = assert_complete_shards_verify(out, data)
    assert 3 <= len(present) < N_SHARDS
    print(f"killed with {len(present)}/{N_SHARDS} shards complete and {len(leftovers)} partial")

    summary = generate(recipe(out, data), client=dask_client, progress=False)
    assert (summary.resumed, summary.built, summary.rebuilt) == (len(present), N_SHARDS - len(present), 0)
    assert not temps(out)
    assert shard_shas(out) == reference
    assert read_manifest(out)["run"]["resumed"] == len(present)


# --- disk full, file too large, permission denied ----------------------------------------------------


def test_disk_full_on_workers_is_a_clear_error_and_resumes(
        tmp_path: Path, data: Path, reference: dict[str, str], dask_client: Any) -> None:
    out = tmp_path / "out"
    spec = write_recipe(tmp_path / "recipe.yaml", recipe(out, data))
    # the worker process "has" 25 kB of disk: one or two shards (a shard tar is >= 10 kB)
    done = run_cli(["generate", str(spec), "--workers", "1"], env={FAULT_ENOSPC_ENV: "25000"})
    assert done.returncode == 2, done.stdout + done.stderr
    err = " ".join(done.stderr.split())  # rich wraps long lines
    # the CLI's own report, not a Python traceback (Dask's workers still log each failed task)
    assert "Traceback (most recent call last)" not in done.stderr + done.stdout
    assert "error:" in err and "shard(s) failed" in err
    assert f"cannot write {out}/" in err and "No space left on device [ENOSPC]" in err
    assert "rerun the same command to resume" in err
    assert not (out / "manifest.json").exists()
    assert not temps(out), "partial shards of the failed writes were left behind"
    present = assert_complete_shards_verify(out, data)
    assert 1 <= len(present) < N_SHARDS
    assert not [p for p in out.glob("*/*/*.tar") if p.relative_to(out).as_posix() not in present]

    summary = generate(recipe(out, data), client=dask_client, progress=False)
    assert (summary.resumed, summary.built) == (len(present), N_SHARDS - len(present))
    assert shard_shas(out) == reference


def test_disk_full_on_the_manifest_keeps_no_partial_manifest(tmp_path: Path, data: Path,
                                                             reference: dict[str, str], dask_client: Any,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import augforge.pipelines.fsio as fsio

    out = tmp_path / "out"
    monkeypatch.setenv(FAULT_ENOSPC_ENV, "0")  # this process (the driver) only; the workers have room
    monkeypatch.setattr(fsio, "_fault_written", 0)
    with pytest.raises(OutputWriteError, match=r"No space left on device \[ENOSPC\]") as info:
        generate(recipe(out, data), client=dask_client, progress=False)
    assert info.value.path == str(out / "manifest.json") and str(out / "manifest.json") in str(info.value)
    assert not (out / "manifest.json").exists() and not temps(out)
    assert len(assert_complete_shards_verify(out, data)) == N_SHARDS
    monkeypatch.delenv(FAULT_ENOSPC_ENV)
    again = generate(recipe(out, data), client=dask_client, progress=False)
    assert (again.resumed, again.built) == (N_SHARDS, 0)
    assert shard_shas(out) == reference


def test_file_too_large_from_the_kernel_is_an_output_write_error(tmp_path: Path) -> None:
    """A forked child (no fresh interpreter to import) whose files the kernel refuses to grow past
    64 kB: the write fails with EFBIG (Python ignores SIGXFSZ), reported as an OutputWriteError."""
    target = tmp_path / "out" / "shard-000000.tar"
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return into pytest
        code = 1
        try:
            os.close(read_end)
            resource.setrlimit(resource.RLIMIT_FSIZE, (65536, resource.RLIM_INFINITY))
            try:
                atomic_write(target, bytes(200_000))
            except OutputWriteError as exc:
                os.write(write_end, str(exc).encode())
                code = 3
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        message = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 3, message
    assert message == f"cannot write {target}: File too large [EFBIG]"
    assert list(target.parent.iterdir()) == []  # neither the file nor its partial temporary


def _without_root_file_permissions(scratch: Path) -> Callable[[], None] | None:
    """preexec_fn that makes a root child obey file permissions (drops CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH from its bounding set before exec); None when not root."""
    if os.geteuid() != 0:
        return None
    libc = ctypes.CDLL(None, use_errno=True)

    def drop() -> None:
        for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
            if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")

    scratch.mkdir()
    scratch.chmod(0o555)
    try:
        probe = subprocess.run([sys.executable, "-c", "import sys; open(sys.argv[1] + '/x', 'wb')",
                                str(scratch)], preexec_fn=drop, capture_output=True, text=True, timeout=60)
    finally:
        scratch.chmod(0o755)
    if "PermissionError" not in probe.stderr:
        pytest.skip("running as root and cannot drop CAP_DAC_OVERRIDE here (no CAP_SETPCAP), so a "
                    f"read-only folder stays writable: {probe.stderr.strip()[-200:]}")
    return drop


def test_permission_denied_is_a_clear_error(tmp_path: Path, data: Path) -> None:
    preexec = _without_root_file_permissions(tmp_path / "probe")
    # 1. the output folder itself is read-only: refused before any cluster starts
    locked = tmp_path / "locked"
    locked.mkdir()
    spec = write_recipe(tmp_path / "recipe.yaml", recipe(locked / "out", data))
    try:
        locked.chmod(0o555)
        done = run_cli(["generate", str(spec)], preexec=preexec)
    finally:
        locked.chmod(0o755)
    assert done.returncode == 2, done.stdout + done.stderr
    err = " ".join(done.stderr.split())
    assert "Traceback (most recent call last)" not in done.stderr + done.stdout
    assert "Dask dashboard" not in done.stdout
    assert f"error: cannot write {locked / 'out'}: Permission denied [EACCES]" in err
    assert not (locked / "out").exists()

    # 2. one op/severity folder is read-only: its shards fail on the workers, the others are kept
    out = tmp_path / "out"
    (out / "contrast" / "2").mkdir(parents=True)
    spec = write_recipe(tmp_path / "recipe2.yaml", recipe(out, data))
    try:
        (out / "contrast" / "2").chmod(0o555)
        done = run_cli(["generate", str(spec), "--workers", "1"], preexec=preexec)
    finally:
        (out / "contrast" / "2").chmod(0o755)
    assert done.returncode == 2, done.stdout + done.stderr
    err = " ".join(done.stderr.split())
    assert "Traceback (most recent call last)" not in done.stderr + done.stdout
    assert (f"error: 4 of {N_SHARDS} shard(s) failed; first contrast/2/shard-000000.tar: OutputWriteError: "
            f"cannot write {out}/contrast/2/shard-000000.tar: Permission denied [EACCES]") in err
    assert not (out / "manifest.json").exists() and not temps(out)
    present = assert_complete_shards_verify(out, data)
    assert len(present) == N_SHARDS - 4 and not any(p.startswith("contrast/2/") for p in present)


# --- atomic manifest ----------------------------------------------------------------------------------


def test_atomic_file_fsyncs_then_renames(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import augforge.pipelines.fsio as fsio

    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync-dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync-file")
        real_fsync(fd)

    def replace(src: Any, dst: Any) -> None:
        assert Path(dst).read_bytes() == b"old", "the target changed before the rename"
        events.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(fsio.os, "fsync", fsync)
    monkeypatch.setattr(fsio.os, "replace", replace)
    target = tmp_path / "manifest.json"
    target.write_bytes(b"old")
    with atomic_file(target) as fh:
        fh.write(b"new ")
        fh.write(b"content")
        assert target.read_bytes() == b"old"
    assert events == ["fsync-file", "rename", "fsync-dir"]
    assert target.read_bytes() == b"new content" and sorted(tmp_path.iterdir()) == [target]

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(fsio.os, "fsync", failing_fsync)
    with pytest.raises(OutputWriteError, match=rf"cannot write {target}: Input/output error \[EIO\]"):
        fsio.atomic_write(target, b"never seen")
    assert target.read_bytes() == b"new content" and sorted(tmp_path.iterdir()) == [target]
    with pytest.raises(ZeroDivisionError), atomic_file(target) as fh:  # the caller's own error passes through
        fh.write(b"half")
        _ = 1 / 0
    assert target.read_bytes() == b"new content" and sorted(tmp_path.iterdir()) == [target]


MANIFEST_SCRIPT = """
import json, os, sys
from pathlib import Path
import augforge.pipelines.manifest as manifest
real_write = manifest.atomic_write

def slow_manifest(target, data):  # a slow disk for the manifest only (quarantine.jsonl goes first)
    if target.name == "manifest.json":
        os.environ["AUGFORGE_FAULT_SLOW_WRITE_S"] = "30"
    real_write(target, data)

manifest.atomic_write = slow_manifest
doc = json.loads(Path(sys.argv[2]).read_text())
doc["run"]["note"] = "x" * 200_000  # a big manifest: many shards
manifest.write_records(Path(sys.argv[1]), doc, [])
"""


@pytest.mark.parametrize("old", [True, False], ids=["over-an-old-manifest", "first-manifest"])
def test_crash_mid_manifest_write_leaves_old_or_no_manifest(tmp_path: Path, data: Path,
                                                           reference: dict[str, str], old: bool) -> None:
    out = tmp_path / "out"
    shutil.copytree(data.parent / "reference", out)
    manifest = out / "manifest.json"
    saved = tmp_path / "saved.json"
    shutil.copy(manifest, saved)
    before = manifest.read_bytes()
    if not old:
        manifest.unlink()
    proc = subprocess.Popen([sys.executable, "-c", MANIFEST_SCRIPT, str(out), str(saved)])
    try:
        partial = wait_until(lambda: [p for p in out.glob(".manifest.json.*.tmp")
                                      if p.stat().st_size > 200_000], "the manifest data was written", proc)
    finally:
        proc.kill()
        proc.wait(timeout=15)
    assert proc.returncode == -signal.SIGKILL
    assert partial[0].exists()  # the new content never reached the final name
    if old:
        assert manifest.read_bytes() == before
        json.loads(manifest.read_bytes())
    else:
        assert not manifest.exists()
    # the next run verifies every shard, removes the leftover and writes a whole manifest
    summary = generate(recipe(out, data), progress=False)
    assert (summary.resumed, summary.built) == (N_SHARDS, 0)
    assert not temps(out) and shard_shas(out) == reference


# --- shards that disagree with their records ---------------------------------------------------------


def test_shards_that_disagree_with_the_manifest_are_rebuilt(
        tmp_path: Path, data: Path, reference: dict[str, str], dask_client: Any) -> None:
    out = tmp_path / "out"
    shutil.copytree(data.parent / "reference", out)
    flipped, truncated, forged = (out / p for p in sorted(reference)[:3])
    raw = bytearray(flipped.read_bytes())
    raw[700] ^= 0x01  # one bit in the first picture
    flipped.write_bytes(bytes(raw))
    truncated.write_bytes(truncated.read_bytes()[:-1024])
    # a bit flip whose sidecar was rewritten to match: only the manifest still knows the truth
    raw = bytearray(forged.read_bytes())
    raw[700] ^= 0x01
    forged.write_bytes(bytes(raw))
    side = Path(str(forged) + ".json")
    record = json.loads(side.read_bytes())
    import hashlib

    record["sha256"] = hashlib.sha256(bytes(raw)).hexdigest()
    side.write_text(json.dumps(record))

    screen = io.StringIO()
    summary = generate(recipe(out, data), client=dask_client, progress=False,
                       console=Console(file=screen, width=300, force_terminal=False))
    assert (summary.rebuilt, summary.built, summary.resumed) == (3, 3, N_SHARDS - 3)
    text = screen.getvalue()
    for reason in ("sha256 differs from the sidecar record", "size differs from the sidecar record",
                   "sha256 differs from the manifest"):
        assert f"rebuild 1 shard(s): {reason}" in text, text
    assert shard_shas(out) == reference
    for path, sha in reference.items():
        assert hashlib.sha256((out / path).read_bytes()).hexdigest() == sha
