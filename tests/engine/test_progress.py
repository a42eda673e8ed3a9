"""The progress bar of a run of several points shows the whole run's ETA, not only its point's."""

from threading import RLock

from rich.progress import Task

from simlab.engine.progress import AverageTimeRemaining, NullProgress, RichProgress


def _task(completed: float, total: float, elapsed: float) -> Task:
    clock = iter([100.0 + elapsed] * 10)
    task = Task(0, "x", total, completed, _get_time=lambda: next(clock), _lock=RLock())
    task.start_time = 100.0
    return task


def test_the_eta_is_the_average_rate_since_the_start():
    column = AverageTimeRemaining()
    assert column.render(_task(0, 100, 5)).plain == "-:--:--"  # nothing done yet: no guess
    assert column.render(_task(25, 100, 30)).plain == "0:01:30"  # 30 s for a quarter: 90 s left
    assert column.render(_task(1, 4000, 2)).plain == "2:13:18"
    assert column.render(_task(100, 100, 30)).plain == "0:00:00"


def test_a_run_of_several_points_has_a_bar_for_the_whole_run():
    bar = RichProgress()
    bar.plan(3, 300)
    bar.start("point a", 100)
    bar.advance(100)
    bar.start("point b", 100)
    bar.advance(40)  # stops early (--target-se): the rest of its budget counts as spent
    bar.start("point c", 100)
    whole, current = bar._progress.tasks
    assert whole.description == "whole run: point 3 of 3"
    assert (whole.completed, whole.total) == (200, 300)
    assert (current.description, current.completed) == ("point c", 0)
    single = RichProgress()
    single.plan(1, 100)  # one point: its own bar says it all
    single.start("only", 100)
    assert [t.description for t in single._progress.tasks] == ["only"]


def test_a_run_tells_its_bar_the_whole_plan(simlab, monkeypatch):
    planned = []

    class Recording(NullProgress):
        def plan(self, points: int, samples: int) -> None:
            planned.append((points, samples))

    monkeypatch.setattr("simlab.execute.get_progress", lambda display: Recording())
    args = ("dropout", "--p", "0.2,0.4,0.6", "--samples", "3000", "--N", "8", "--M", "4")
    assert simlab(*args, "--no-plots", "--seed", "1").exit_code == 0
    assert planned == [(3, 9000)]
