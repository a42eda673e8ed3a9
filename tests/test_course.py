"""configs/course.yaml is the standard budget of every experiment: the two must not drift apart."""

from pathlib import Path

import yaml

from simlab.config import load_run_file
from simlab.course import budget_specs, course_config

COURSE = Path(__file__).resolve().parents[1] / "configs" / "course.yaml"


def test_course_yaml_is_the_standard_budget():
    assert yaml.safe_load(COURSE.read_text()) == course_config("standard")


def test_running_the_course_file_builds_the_same_specs_as_check_standard():
    from_file = load_run_file(COURSE, [])
    from_check = budget_specs("standard", seed=from_file[0].seed)
    assert [s.experiment.name for s in from_file] == [s.experiment.name for s in from_check]
    for a, b in zip(from_file, from_check, strict=True):
        assert a.params == b.params and a.samples == b.samples and a.seed == b.seed
        assert a.chunk_size == b.chunk_size and a.alpha == b.alpha
