"""The task catalogue: one frozen record per benchmark, torch-free, the one home of task facts."""

from eva_coralbay.tasks.benchmark import TASK_TYPES, Benchmark, TaskType
from eva_coralbay.tasks.catalogue import BENCHMARKS, CATALOGUE


def get_benchmark(task_id: str) -> Benchmark:
    """The benchmark with this task id.

    Raises:
        KeyError: For an unknown id; the message lists the known ones.
    """
    try:
        return CATALOGUE[task_id]
    except KeyError:
        raise KeyError(f"unknown task {task_id!r}; known: {', '.join(CATALOGUE)}") from None


__all__ = ["BENCHMARKS", "CATALOGUE", "TASK_TYPES", "Benchmark", "TaskType", "get_benchmark"]
