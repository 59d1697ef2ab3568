"""Every selected task's data checked before anything is scheduled, all problems at once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eva_coralbay.sweeps.plan import Job, PlanError


def _dataset_class(job: Job) -> Any:
    """The adapter that reads the task's data in its native layout.

    Raises:
        PlanError: For an adapter name (of a root's tasks.yaml) that names none.
    """
    from eva_coralbay.data import adapters

    record = job.benchmark
    if record.adapter is not None:
        found = getattr(adapters, record.adapter, None)
        if not isinstance(found, type):
            raise PlanError(
                f"{job.task_id}: adapter {record.adapter!r} is no class of "
                "eva_coralbay.data.adapters (DecathlonFormat reads a dataset of your own)"
            )
        return found
    # An organ-patch probe reads a segmentation benchmark (TotalSegmentator v2 by default).
    return getattr(adapters, job.env.get("ORGAN_SOURCE", "TotalSegmentatorV2"))


def job_problems(job: Job) -> list[str]:
    """The problems of one job's data, each naming the file or folder; [] when it is usable."""
    from eva_coralbay.data import adapters

    if not job.data.exists():
        record = job.benchmark
        return [
            f"{job.task_id}: {job.data}: no such file or folder. {record.title} is expected "
            "there in its native layout (docs/tasks.md says how to obtain it; `coralbay "
            f"preprocess --dataset {record.adapter or job.task_id} --root {job.data}` prints "
            "the download steps)"
        ]
    try:
        dataset_class = _dataset_class(job)
    except PlanError as error:
        return [str(error)]
    allow_incomplete = job.env.get("ALLOW_INCOMPLETE", "false").lower() == "true"
    problems: list[str] = []
    for split in dataset_class.split_names:
        if split == "test" and job.benchmark.type == "segmentation":
            continue  # the segmentation configs evaluate on the validation split
        try:
            if issubclass(dataset_class, adapters.SegmentationAdapter):
                dataset = dataset_class(
                    root=str(job.data),
                    split=split,
                    profile=None,
                    allow_incomplete=allow_incomplete,
                    train_cases=job.env.get("TRAIN_CASES"),
                )
            elif dataset_class is adapters.ScanTable:
                # The task's declared classes: a label that is none of them is reported now.
                dataset = adapters.ScanTable(
                    root=str(job.data),
                    split=split,
                    allow_incomplete=allow_incomplete,
                    classes=job.benchmark.classes,
                )
            else:
                dataset = dataset_class(
                    root=str(job.data), split=split, allow_incomplete=allow_incomplete
                )
            dataset.configure()
            found = dataset.problems()
        except (ValueError, OSError) as error:  # metadata the adapter cannot read
            problems.append(f"{job.task_id} ({split}): {error}")
            break
        problems += [f"{job.task_id} ({split}): {problem}" for problem in found]
    return problems


def problems(jobs: Sequence[Job]) -> list[str]:
    """Every problem of every job's data."""
    return [problem for job in jobs for problem in job_problems(job)]
