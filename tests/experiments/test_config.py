"""Config validation: valid files load; invalid ones fail with the file and field named."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsdesk.errors import ConfigError
from newsdesk.experiments.config import ExperimentConfig, load_suite, parse_suite

GOOD = """
holdout: {fraction: 0.02, salt: h1}
experiments:
  - id: ranker-v2
    layer: ranking
    surfaces: [front_page]
    traffic: 0.5
    variants:
      - {name: control, bundle: "ranker@12"}
      - {name: treatment, bundle: "ranker@13", weight: 1}
  - id: layout-3
    layer: ranking
    traffic_start: 0.5
    traffic: 0.5
    variants: [{name: control}, {name: big, pipeline: layouts/big.yaml, weight: 3}]
"""


def _write(tmp_path: Path, text: str, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_good_file_loads_with_weights_and_targets(tmp_path: Path) -> None:
    suite = load_suite(_write(tmp_path, GOOD))
    assert [e.id for e in suite.experiments] == ["ranker-v2", "layout-3"]
    assert suite.holdout.fraction == 0.02
    assert suite.get("layout-3").weights() == [0.25, 0.75]
    assert suite.get("ranker-v2").variant("treatment").bundle == "ranker@13"


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"variants": [{"name": "a", "weight": -1}, {"name": "b"}]}, "variants.0.weight"),
        ({"variants": [{"name": "a"}]}, "variants"),
        ({"variants": [{"name": "a"}, {"name": "a"}]}, "variants"),
        ({"traffic": 1.5}, "traffic"),
        ({"traffic_start": 0.8, "traffic": 0.5}, "traffic_start + traffic"),
        ({"id": "has space"}, "id"),
        ({"colour": "red"}, "colour"),
        ({"rollout": {"stages": [0.5, 0.1]}}, "rollout.stages"),
        ({"rollout": {"treatment": "nope"}}, "rollout.treatment"),
    ],
)
def test_errors_name_the_field(patch: dict, field: str) -> None:
    data = {"id": "exp", "variants": [{"name": "control"}, {"name": "treatment"}], **patch}
    with pytest.raises(ConfigError) as info:
        parse_suite(data, "exp.yaml")
    msg = str(info.value)
    assert msg.startswith("exp.yaml: ")
    assert field in msg, msg


def test_overlapping_experiments_in_one_layer_are_rejected(tmp_path: Path) -> None:
    text = GOOD.replace("traffic_start: 0.5", "traffic_start: 0.4")
    with pytest.raises(ConfigError, match="overlap"):
        load_suite(_write(tmp_path, text))


def test_overlap_allowed_on_disjoint_surfaces_or_layers() -> None:
    exps = [
        {"id": "a", "layer": "l", "surfaces": ["front_page"],
         "variants": [{"name": "c"}, {"name": "t"}]},
        {"id": "b", "layer": "l", "surfaces": ["newsletter"],
         "variants": [{"name": "c"}, {"name": "t"}]},
        {"id": "c", "layer": "other", "variants": [{"name": "c"}, {"name": "t"}]},
    ]
    assert len(parse_suite(exps).experiments) == 3


def test_duplicate_ids_and_bad_yaml(tmp_path: Path) -> None:
    dup = [{"id": "a", "layer": "x", "variants": [{"name": "c"}, {"name": "t"}]},
           {"id": "a", "layer": "y", "variants": [{"name": "c"}, {"name": "t"}]}]
    with pytest.raises(ConfigError, match="unique"):
        parse_suite(dup)
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_suite(_write(tmp_path, "id: [unclosed"))
    with pytest.raises(ConfigError, match="not found"):
        load_suite(tmp_path / "missing.yaml")


def test_directory_of_files_is_merged(tmp_path: Path) -> None:
    _write(tmp_path, GOOD, "a.yaml")
    _write(tmp_path, "id: solo\nlayer: other\nvariants: [{name: c}, {name: t}]\n", "b.yml")
    suite = load_suite(tmp_path)
    assert {e.id for e in suite.experiments} == {"ranker-v2", "layout-3", "solo"}
    assert suite.holdout.fraction == 0.02


def test_fingerprint_changes_only_with_content() -> None:
    base = {"id": "e", "variants": [{"name": "c"}, {"name": "t"}]}
    a = ExperimentConfig.model_validate(base)
    b = ExperimentConfig.model_validate(dict(base))
    c = ExperimentConfig.model_validate({**base, "traffic": 0.5})
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
