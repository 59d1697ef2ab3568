"""Random training crops from the preprocess cache versus from the NIfTI.gz sources.

One epoch = every case of a BTCV-layout dataset built from the real CT scans in ../shared/data
(symlinked NIfTI.gz images, label maps derived from their TotalSegmentator references), with
`CROPS_PER_CASE` random 96^3 crops per case, as eva's 3D segmentation configs draw them. The
source path reads and standardises each scan (CoralBay's profile: RAS, 1.5 mm, HU window) and
then crops; the cache path memory-maps the arrays `coralbay preprocess` wrote and crops. Both
paths draw the same crops (same seed) and the script checks they are equal. Epochs alternate
between the two paths; the medians are compared.
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

CROP = 96
CROPS_PER_CASE = 4
EPOCHS = 3

_SCANS = {
    # case number: (CT file, TotalSegmentator label file), paths under totalsegmentator/
    1: ("example_ct.nii.gz", "example_seg_fast_force_split.nii.gz"),
    2: ("example_ct_sm.nii.gz", "example_seg.nii.gz"),
    35: ("aorta_report/ct_cropped.nii.gz", "aorta_report/aorta.nii.gz"),
}

# TotalSegmentator v2 ids -> BTCV ids for the organs both label.
_TS_TO_BTCV = {1: 1, 2: 2, 3: 3, 4: 4, 15: 5, 5: 6, 6: 7, 52: 8, 63: 9, 64: 10, 7: 11, 8: 12, 9: 13}


def _shared_data() -> Path:
    configured = os.environ.get("CORALBAY_SHARED_DATA")
    root = (
        Path(configured) if configured else Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    if not (root / "totalsegmentator").is_dir():
        raise SystemExit(
            f"benchmarks/cache.py needs the real CT in {root} (or $CORALBAY_SHARED_DATA)"
        )
    return root / "totalsegmentator"


def _build_dataset(root: Path, shared: Path) -> None:
    """A BTCV Synapse layout whose images are the real scans (symlinks) and labels derived."""
    import nibabel as nib

    from eva_coralbay.data.synthetic import layouts

    images = root / "RawData" / "Training" / "img"
    labels = root / "RawData" / "Training" / "label"
    images.mkdir(parents=True)
    for number, (ct, seg) in _SCANS.items():
        (images / f"img{number:04d}.nii.gz").symlink_to(shared / ct)
        source = nib.load(shared / seg)
        assert isinstance(source, nib.Nifti1Image)
        values = np.asarray(source.dataobj)
        if seg.startswith("aorta_report"):
            mapped = np.where(values > 0, 8, 0)  # the aorta mask: BTCV's aorta
        else:
            mapped = np.zeros(values.shape, dtype=np.uint8)
            for ts_id, btcv_id in _TS_TO_BTCV.items():
                mapped[values == ts_id] = btcv_id
        layouts.save_nifti(
            labels / f"label{number:04d}.nii.gz", mapped.astype(np.uint8), source.affine
        )


def _crop_starts(shapes: list[tuple[int, ...]], seed: int) -> list[list[tuple[int, int, int]]]:
    rng = np.random.default_rng(seed)
    return [
        [
            tuple(int(rng.integers(0, max(n - CROP, 0) + 1)) for n in shape)
            for _ in range(CROPS_PER_CASE)
        ]  # type: ignore[misc]
        for shape in shapes
    ]


def _epoch(dataset, starts: list[list[tuple[int, int, int]]]) -> tuple[float, list[np.ndarray]]:
    from eva_coralbay.data.adapters.organ_patches import crop_padded

    crops = []
    began = time.perf_counter()
    for index in range(len(dataset)):
        standard = dataset.load_standard(index)
        for start in starts[index]:
            crops.append(crop_padded(standard.image, start, (CROP,) * 3, 0.0))
            crops.append(crop_padded(standard.label, start, (CROP,) * 3, 0.0))
    return time.perf_counter() - began, crops


def main() -> dict[str, float]:
    """Runs the benchmark and prints the epoch times and their ratio."""
    from eva_coralbay.data import cache
    from eva_coralbay.data.adapters import BTCV

    shared = _shared_data()
    with tempfile.TemporaryDirectory() as folder:
        root, cache_root = Path(folder) / "btcv", Path(folder) / "cache"
        _build_dataset(root, shared)

        def dataset(use_cache: bool) -> BTCV:
            adapter = BTCV(
                str(root), profile="radiology/coralbay", cache=str(cache_root),
                use_cache=use_cache, allow_incomplete=True,
            )  # fmt: skip
            adapter.configure()
            return adapter

        began = time.perf_counter()
        report = cache.preprocess(dataset(use_cache=True), cache_root)
        preprocess_seconds = time.perf_counter() - began
        cached, source = dataset(use_cache=True), dataset(use_cache=False)
        shapes = [tuple(cached.load_standard(i).image.shape) for i in range(len(cached))]
        starts = _crop_starts(shapes, seed=0)

        times: dict[str, list[float]] = {"source": [], "cache": []}
        for _ in range(EPOCHS):
            source_time, source_crops = _epoch(source, starts)
            cache_time, cache_crops = _epoch(cached, starts)
            times["source"].append(source_time)
            times["cache"].append(cache_time)
            assert all(np.array_equal(a, b) for a, b in zip(source_crops, cache_crops, strict=True))

    source_median, cache_median = (
        statistics.median(times["source"]),
        statistics.median(times["cache"]),
    )
    ratio = source_median / cache_median
    volume_mb = sum(np.prod(shape) * 5 for shape in shapes) / 1e6  # float32 image + uint8 label
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {load}")
    print(f"cases: {len(shapes)} real CT scans, standardised shapes {shapes}")
    print(f"cache size: {volume_mb:.0f} MB (float32 image + uint8 label)")
    print(f"preprocess once: {preprocess_seconds:.2f} s ({len(report.written)} cases written)")
    print(
        f"epoch of {len(shapes) * CROPS_PER_CASE} random {CROP}^3 crops, median of {EPOCHS}: "
        f"source {source_median:.3f} s, cache {cache_median:.4f} s -> {ratio:.0f}x faster"
    )
    return {"source_s": source_median, "cache_s": cache_median, "ratio": ratio}


if __name__ == "__main__":
    main()
