"""Recipe schema and planning: validation messages, compact op forms, safe YAML, overrides, plans."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from augforge.core.errors import RecipeError
from augforge.pipelines import apply_overrides, load_recipe, make_plan, parse_compact_op
from augforge.pipelines.plan import index_ranges
from tests.pipelines.conftest import REPO, recipe_dict

pytestmark = pytest.mark.timeout(60)

DATA = "/data"


def errors_of(source: object) -> str:
    with pytest.raises(RecipeError) as info:
        load_recipe(source)  # type: ignore[arg-type]
    return str(info.value)


def test_minimal_recipe_and_defaults() -> None:
    r = load_recipe("ops: [contrast@2]\n")
    assert r.mode == "grid" and r.seed == 0
    assert r.input.reader == "folder" and r.input.path is None
    assert (r.output.encoding, r.output.quantize, r.output.jpeg_quality) == ("png", "truncate", 85)
    assert r.execution.threads_per_worker == 1 and r.execution.scheduler is None
    assert [(o.name, o.levels, o.preset) for o in r.ops] == [("contrast", [2], "imagenet")]


@pytest.mark.parametrize(
    ("text", "where", "key"),
    [
        ("ops: [contrast]\nsed: 1\n", "recipe", "sed"),
        ("ops: [contrast]\noutput: {encodng: png}\n", "output", "encodng"),
        ("ops: [contrast]\ninput: {path: x, option: {}}\n", "input", "option"),
        ("ops: [contrast]\nexecution: {worker: 2}\n", "execution", "worker"),
        ("ops: [{name: contrast, severites: [1]}]\n", "ops[0]", "severites"),
    ],
)
def test_unknown_key_is_named(text: str, where: str, key: str) -> None:
    msg = errors_of(text)
    assert f"{where}: unknown key '{key}'" in msg
    assert "allowed:" in msg


def test_unknown_op_gets_closest_name() -> None:
    msg = errors_of("ops: [gausian_noise@2]\n")
    assert "ops[0]: unknown operator 'gausian_noise'" in msg
    assert "did you mean gaussian_noise" in msg


@pytest.mark.parametrize(
    ("op", "fragment"),
    [
        ("contrast@6", "ops[0]: contrast: severity 6 is not defined; choose from [1, 2, 3, 4, 5]"),
        ("{name: contrast, severity: 0}", "severity 0 is not defined"),
        ("{name: contrast, severities: [2, 2]}", "severities [2] are listed more than once"),
        ("{name: contrast, severities: []}", "'severities' is empty"),
        ("{name: contrast, severity: 2, severities: [3]}", "either 'severity' or 'severities'"),
        ("contrast@4-2", "is empty (low > high)"),
        ("contrast@x", "cannot read op 'contrast@x'"),
        ("{name: contrast, severity: '3'}", "ops[0].severity: Input should be a valid integer"),
        ("{name: contrast, preset: nope}", "unknown preset 'nope'"),
        ("{name: contrast, params: {strength: 2}}", "unknown parameter(s) ['strength']"),
    ],
)
def test_bad_severity_preset_params(op: str, fragment: str) -> None:
    assert fragment in errors_of(f"ops: [{op}]\n")


def test_every_bad_field_is_listed_at_once() -> None:
    msg = errors_of(
        "ops: [contrast@9, fogg]\nmode: sideways\nseed: 1.5\n"
        "output: {encoding: tiff, samples_per_shard: 0}\nexecution: {workers: 0, device: tpu}\n"
    )
    for fragment in ("ops[0]: contrast: severity 9", "ops[1]: unknown operator 'fogg'",
                     "mode: mode must be", "seed: Input should be a valid integer",
                     "output.encoding: Input should be 'png' or 'jpg'",
                     "output.samples_per_shard: Input should be greater than or equal to 1",
                     "execution.workers:", "execution.device: device must be"):
        assert fragment in msg, fragment
    assert "(8 problem(s))" in msg


def test_unknown_mode_names_both_modes() -> None:
    assert "mode must be 'grid' (every op x severity) or 'random' (one drawn op per sample)" in errors_of(
        "ops: [contrast]\nmode: randm\n")


def test_same_op_severity_twice_is_refused() -> None:
    assert "contrast severity 3 appears twice" in errors_of("ops: [contrast@1-3, contrast@3]\n")


def test_missing_ops_and_non_mapping() -> None:
    assert "ops: Field required" in errors_of("seed: 1\n")
    assert "List should have at least 1 item" in errors_of("ops: []\n")
    assert "top level must be a mapping, got list" in errors_of("- contrast\n- fog\n")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("contrast", {"name": "contrast"}),
        ("contrast@3", {"name": "contrast", "severities": [3]}),
        ("contrast@1-5", {"name": "contrast", "severities": [1, 2, 3, 4, 5]}),
        ("contrast@1,3-4", {"name": "contrast", "severities": [1, 3, 4]}),
        (" contrast @ 2 ", {"name": "contrast", "severities": [2]}),
    ],
)
def test_compact_forms(text: str, expected: dict) -> None:
    assert parse_compact_op(text) == expected


def test_compact_and_mapping_forms_resolve_alike() -> None:
    r = load_recipe(
        "ops:\n  - contrast\n  - gaussian_noise@2-3\n  - pixelate@1,5\n"
        "  - {name: brightness, severity: 4}\n"
        "  - {name: jpeg_compression, severities: [2], preset: imagenet}\n"
    )
    assert [(o.name, o.levels) for o in r.ops] == [
        ("contrast", [1, 2, 3, 4, 5]), ("gaussian_noise", [2, 3]), ("pixelate", [1, 5]),
        ("brightness", [4]), ("jpeg_compression", [2]),
    ]
    # the stored form is explicit, and it validates again to the same recipe
    dumped = r.model_dump()
    assert dumped["ops"][3] == {"name": "brightness", "severities": [4], "severity": None,
                                "preset": "imagenet", "params": {}, "weight": None}
    assert load_recipe(dumped) == r


def test_params_override_reaches_the_recipe() -> None:
    r = load_recipe("ops: [{name: contrast, severity: 2, params: {factor: 0.5}}]\n")
    assert r.ops[0].params == {"factor": 0.5}


def test_safe_yaml_only(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = f"!!python/object/apply:os.system ['touch {marker}']\n"
    msg = errors_of(text)
    assert "not valid (safe) YAML" in msg and "python/object" in msg
    msg = errors_of(f"ops: [contrast]\nseed: !!python/object/apply:os.system ['touch {marker}']\n")
    assert "python/object" in msg
    assert not marker.exists()


def test_load_from_path_str_and_mapping(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("ops: [contrast@2]\nseed: 5\n")
    assert load_recipe(path).seed == 5
    assert load_recipe(str(path)).seed == 5
    assert load_recipe({"ops": ["contrast@2"], "seed": 6}).seed == 6
    assert "cannot read recipe" in errors_of(tmp_path / "missing.yaml")
    assert "cannot read recipe" in errors_of(str(tmp_path / "missing.yml"))


def test_apply_overrides_copies_and_validates() -> None:
    r = load_recipe(recipe_dict(Path("/tmp/a")))
    r2 = apply_overrides(r, input_path="/data/x", out=Path("/tmp/b"), workers=3, scheduler="tcp://h:8786",
                         seed=9)
    assert (r2.input.path, r2.output.dir, r2.execution.workers, r2.execution.scheduler, r2.seed) == (
        "/data/x", "/tmp/b", 3, "tcp://h:8786", 9)
    assert r.output.dir == "/tmp/a" and r.seed == 7  # the original is untouched
    assert apply_overrides(r) == r
    with pytest.raises(RecipeError, match=r"execution\.workers"):
        apply_overrides(r, workers=0)


def test_quickstart_recipe_loads() -> None:
    r = load_recipe(REPO / "pipelines" / "quickstart.yaml")
    names = {o.name for o in r.ops}
    assert {"gaussian_noise", "shot_noise", "impulse_noise", "contrast", "brightness", "jpeg_compression",
            "pixelate"} <= names
    assert r.input.path == "augforge:samples"
    assert r.input.options == {"resize": 256, "center_crop": 224}
    assert r.output.encoding == "png" and r.execution.workers == 2


# ---------------------------------------------------------------- planning


def test_index_ranges_cover_exactly() -> None:
    assert index_ranges(10, 3) == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert index_ranges(6, 3) == [(0, 3), (3, 6)]
    assert index_ranges(0, 3) == []
    with pytest.raises(ValueError):
        index_ranges(5, 0)


def test_plan_layout_and_order() -> None:
    r = load_recipe({"ops": ["contrast@1-2", "pixelate@3"], "output": {"samples_per_shard": 4}})
    plan = make_plan(r, 10, DATA)
    assert plan.groups == [("contrast", 1), ("contrast", 2), ("pixelate", 3)]
    assert len(plan.tasks) == 9
    first = plan.tasks[0]
    assert (first.op, first.severity, first.preset, first.start, first.stop, first.shard, first.path) == (
        "contrast", 1, "imagenet", 0, 4, 0, "contrast/1/shard-000000.tar")
    assert [t.path for t in plan.tasks[6:]] == [f"pixelate/3/shard-00000{i}.tar" for i in range(3)]
    assert [(t.start, t.stop) for t in plan.tasks[6:]] == [(0, 4), (4, 8), (8, 10)]
    assert len({t.fingerprint for t in plan.tasks}) == 9


def test_fingerprint_tracks_bytes_not_execution() -> None:
    base = recipe_dict(None)
    fp = make_plan(load_recipe(base), 10, DATA)
    same = make_plan(load_recipe(recipe_dict(Path("/elsewhere"), execution={"workers": 1, "batch_size": 1})),
                     10, DATA)
    assert fp.fingerprint == same.fingerprint == make_plan(load_recipe(base), 10, DATA).fingerprint
    assert [t.fingerprint for t in fp.tasks] == [t.fingerprint for t in same.tasks]
    for changed in (recipe_dict(None, seed=8), recipe_dict(None, output={"encoding": "jpg"}),
                    recipe_dict(None, output={"quantize": "round"}),
                    recipe_dict(None, input={"options": {"resize": 65, "center_crop": 48}}),
                    recipe_dict(None, ops=["gaussian_noise@1-2", "impulse_noise@3", "contrast@2",
                                           "jpeg_compression@4", {"name": "pixelate", "severity": 5,
                                                                  "preset": "cifar"}])):
        other = make_plan(load_recipe(changed), 10, DATA)
        assert other.fingerprint != fp.fingerprint
        if changed["ops"] == base["ops"]:  # a global change touches every shard
            assert not {t.fingerprint for t in other.tasks} & {t.fingerprint for t in fp.tasks}
        else:  # a change to one op touches that op's shards only
            assert len({t.fingerprint for t in other.tasks} - {t.fingerprint for t in fp.tasks}) == 4
    moved = make_plan(load_recipe(base), 10, "/other")
    assert moved.fingerprint != fp.fingerprint
    # adding an op leaves the other ops' shard fingerprints alone (they stay resumable)
    more = make_plan(load_recipe(recipe_dict(None, ops=[*base["ops"], "brightness@1"])), 10, DATA)
    assert {t.fingerprint for t in fp.tasks} < {t.fingerprint for t in more.tasks}


def test_planning_is_cheap_and_reads_nothing() -> None:
    r = load_recipe({"ops": ["contrast", "gaussian_noise"]})
    started = time.perf_counter()
    plan = make_plan(r, 1_281_167, "/does/not/exist")
    elapsed = time.perf_counter() - started
    assert len(plan.tasks) == 10 * 1282
    assert plan.tasks[-1].stop == 1_281_167
    assert elapsed < 2.0
