"""MetaImage (.mha) files written byte by byte, as LUNA-style releases store CT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt


def write_mha(
    path: Path,
    volume: npt.NDArray[np.generic],
    *,
    spacing: tuple[float, float, float],
    origin_lps: tuple[float, float, float],
    direction_lps: npt.NDArray[np.floating] | None = None,
) -> Path:
    """Writes an int16 volume indexed (i, j, k) as a MetaImage with ITK's LPS geometry.

    World (LPS) of voxel (i, j, k) = origin + direction @ (spacing * (i, j, k)); the columns of
    `direction_lps` are the directions of the i, j and k axes (identity: i toward the patient's
    left, j posterior, k superior).
    """
    direction = np.eye(3) if direction_lps is None else np.asarray(direction_lps, dtype=float)
    data = np.asarray(volume, dtype=np.int16)
    header = "\n".join(
        [
            "ObjectType = Image",
            "NDims = 3",
            "BinaryData = True",
            "BinaryDataByteOrderMSB = False",
            "CompressedData = False",
            # MetaImage lists the direction matrix row by row of its transpose (ITK's order).
            "TransformMatrix = " + " ".join(f"{value:g}" for value in direction.T.ravel()),
            "Offset = " + " ".join(f"{value:g}" for value in origin_lps),
            "CenterOfRotation = 0 0 0",
            "ElementSpacing = " + " ".join(f"{value:g}" for value in spacing),
            "DimSize = " + " ".join(str(side) for side in data.shape),
            "ElementType = MET_SHORT",
            "ElementDataFile = LOCAL",
        ]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    # MetaImage stores x fastest: Fortran order of the (i, j, k) array.
    path.write_bytes(header.encode("ascii") + b"\n" + data.tobytes(order="F"))
    return path
