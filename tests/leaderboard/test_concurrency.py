import json
import multiprocessing
import pathlib
from multiprocessing.synchronize import Barrier

from eva_coralbay.leaderboard import LeaderboardError, validate
from eva_coralbay.leaderboard.submit import submit_run
from tests import hang_guard
from tests.leaderboard import eva_output

TASKS = ("btcv", "word", "flare22", "kits23")


def _submit(
    barrier: Barrier,
    results: "multiprocessing.Queue[tuple[str, str]]",
    session: pathlib.Path,
    root: pathlib.Path,
    model_id: str,
    task_id: str,
    replace: bool,
) -> None:
    barrier.wait()  # every process submits at the same moment
    try:
        submit_run(session, root, model_id=model_id, task_id=task_id, replace=replace)
        results.put((session.name, "ok"))
    except LeaderboardError as error:
        results.put((session.name, str(error)))


def _race(jobs: list[tuple[pathlib.Path, pathlib.Path, str, str, bool]]) -> list[tuple[str, str]]:
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(len(jobs))
    results = context.Queue()
    processes = [context.Process(target=_submit, args=(barrier, results, *job)) for job in jobs]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=hang_guard.hang_timeout(120)) for _ in jobs]
    for process in processes:
        process.join(timeout=hang_guard.hang_timeout(60))
        assert process.exitcode == 0
    return outcomes


def _sessions(tmp_path: pathlib.Path, count: int) -> list[pathlib.Path]:
    return [
        eva_output.write_session(
            tmp_path / "runs",
            eva_output.SEGMENTATION_TEMPLATE,
            eva_output.segmentation_metrics([0.5 + index / 100]),
            session=f"20261127-0000000000{index:02d}_{index:08x}",
        )
        for index in range(count)
    ]


def test_parallel_submits_lose_nothing(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "leaderboard"
    sessions = _sessions(tmp_path, 20)
    distinct = [
        (session, root, f"model{index % 3}", TASKS[index % 4], False)
        for index, session in enumerate(sessions[:12])
    ]
    replacing = [(session, root, "shared", "btcv", True) for session in sessions[12:]]
    outcomes = _race(distinct + replacing)
    assert all(status == "ok" for _, status in outcomes), outcomes

    for index in range(12):
        record = json.loads(
            (root / f"submissions/model{index % 3}/{TASKS[index % 4]}.json").read_text()
        )
        assert record["mean"] == 0.5 + index / 100
    current = json.loads((root / "submissions/shared/btcv.json").read_text())
    history = sorted((root / "submissions/shared/history/btcv").glob("*.json"))
    assert [path.name for path in history] == [f"{n:04d}.json" for n in range(1, 8)]
    kept = {current["run_id"]} | {json.loads(path.read_text())["run_id"] for path in history}
    assert kept == {session.name for session in sessions[12:]}
    assert not [path for path in root.rglob("*") if path.name.startswith(".")]  # no temp files
    assert validate.validate(root) == []


def test_parallel_submits_of_one_entry_without_replace(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "leaderboard"
    sessions = _sessions(tmp_path, 6)
    outcomes = _race([(session, root, "coralbay", "btcv", False) for session in sessions])
    winners = [name for name, status in outcomes if status == "ok"]
    losers = [status for _, status in outcomes if status != "ok"]
    assert len(winners) == 1
    assert len(losers) == 5 and all("pass --replace" in status for status in losers)
    record = json.loads((root / "submissions/coralbay/btcv.json").read_text())
    assert record["run_id"] == winners[0]
    assert not (root / "submissions/coralbay/history").exists()
