"""Turns a checkpoint source (file, folder, URL, Hugging Face id) into local files."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import urllib.error
import urllib.parse

from loguru import logger

from eva_coralbay import _io
from eva_coralbay.models.checkpoint_layouts import CheckpointError

WEIGHTS_FILENAME = "model.safetensors"
"""The weights file of a Hugging Face style folder or repository."""

CONFIG_FILENAME = "config.json"
"""The architecture description beside the weights."""

_HF_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")
_TRUTHY = {"1", "true", "yes", "on"}


@dataclasses.dataclass(frozen=True)
class LocalCheckpoint:
    """A checkpoint source resolved to files on this machine."""

    weights: pathlib.Path
    """The weights file (.safetensors, .pt, .pth, .ckpt or .bin)."""

    config: pathlib.Path | None
    """`config.json` beside the weights, when the source has one."""


def _check_sha256(path: pathlib.Path, expected: str | None, *, what: str) -> None:
    if expected is None:
        return
    actual = _io.sha256_of(path)
    if actual != expected.lower():
        raise CheckpointError(
            f"{what}: sha256 mismatch: expected {expected.lower()}, the file {path} has {actual}"
        )


def resolve(source: str | os.PathLike[str], *, sha256: str | None = None) -> LocalCheckpoint:
    """Resolves a checkpoint source to local files, downloading and caching it if needed.

    Args:
        source: A local file or Hugging Face style folder, an http(s) URL, or a Hugging Face
            repo id (`owner/name`, optionally `owner/name@revision`).
        sha256: The expected SHA-256 of the weights file; checked when given.

    Raises:
        CheckpointError: When the source is missing, cannot be fetched or fails the checksum.
    """
    text = os.fspath(source)
    if text.startswith(("http://", "https://")):
        return LocalCheckpoint(weights=_download_url(text, sha256=sha256), config=None)
    path = pathlib.Path(text).expanduser()
    if path.is_dir():
        return _resolve_folder(path, sha256=sha256)
    if path.is_file():
        _check_sha256(path, sha256, what=str(path))
        return LocalCheckpoint(weights=path, config=None)
    if _HF_REPO_ID.match(text) and not text.startswith((".", "/", "~")):
        return _resolve_hub(text, sha256=sha256)
    raise CheckpointError(
        f"{text}: no such file or folder, and neither an http(s) URL nor a Hugging Face repo id "
        "('owner/name')"
    )


def _resolve_folder(folder: pathlib.Path, *, sha256: str | None) -> LocalCheckpoint:
    weights = folder / WEIGHTS_FILENAME
    if not weights.is_file():
        present = ", ".join(sorted(child.name for child in folder.iterdir())[:10]) or "nothing"
        raise CheckpointError(
            f"{folder}: a checkpoint folder must hold {WEIGHTS_FILENAME} (and {CONFIG_FILENAME}); "
            f"found {present}. Pass a weights file directly to load another layout."
        )
    _check_sha256(weights, sha256, what=str(weights))
    config = folder / CONFIG_FILENAME
    return LocalCheckpoint(weights=weights, config=config if config.is_file() else None)


def _download_url(url: str, *, sha256: str | None) -> pathlib.Path:
    """Downloads a URL once into the torch hub cache, trusting it only after the checksum."""
    import torch.hub

    name = pathlib.PurePosixPath(urllib.parse.urlparse(url).path).name
    if not name:
        raise CheckpointError(f"{url}: the URL does not end in a file name")
    cache = pathlib.Path(torch.hub.get_dir()) / "checkpoints"
    target = cache / name
    if target.is_file():
        if sha256 is None or _io.sha256_of(target) == sha256.lower():
            return target
        logger.warning(f"{target} does not match sha256 {sha256}; downloading {url} again")
    # The download lands under `target` only complete and verified; a failure leaves nothing.
    with _io.atomic_path(target, suffix=".partial") as partial:
        try:
            logger.info(f"Downloading {url} to {target}")
            torch.hub.download_url_to_file(url, str(partial), progress=False)
        except (urllib.error.URLError, OSError) as error:
            raise CheckpointError(
                f"{url}: download failed ({error}). Without network, fetch the file elsewhere "
                f"and pass the local copy: checkpoint=/path/to/{name}"
            ) from error
        actual = _io.sha256_of(partial)
        if sha256 is not None and actual != sha256.lower():
            raise CheckpointError(
                f"{url}: sha256 mismatch: expected {sha256.lower()}, downloaded {actual}; "
                "the download was discarded"
            )
    if sha256 is None:
        logger.info(f"sha256 of {name}: {actual} (pass sha256=... to pin it)")
    return target


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUTHY


def _resolve_hub(text: str, *, sha256: str | None) -> LocalCheckpoint:
    """Fetches `config.json` and `model.safetensors` of a Hugging Face repo through its cache."""
    import huggingface_hub
    from huggingface_hub import errors

    repo_id, _, revision = text.partition("@")
    offline = _offline()

    def fetch(filename: str) -> pathlib.Path:
        return pathlib.Path(
            huggingface_hub.hf_hub_download(
                repo_id, filename, revision=revision or None, local_files_only=offline
            )
        )

    try:
        try:
            config: pathlib.Path | None = fetch(CONFIG_FILENAME)
        except errors.EntryNotFoundError as error:
            # A repo without config.json is fine (the architecture is inferred); a cache miss
            # (LocalEntryNotFoundError is an EntryNotFoundError too) is not.
            if isinstance(error, errors.LocalEntryNotFoundError):
                raise
            config = None
        weights = fetch(WEIGHTS_FILENAME)
    except (errors.LocalEntryNotFoundError, errors.OfflineModeIsEnabled) as error:
        reason = "offline mode is on (HF_HUB_OFFLINE=1)" if offline else "the Hub is unreachable"
        raise CheckpointError(
            f"{text}: cannot load it: no local file or folder has that name, {reason} and the "
            f"Hugging Face repo is not in the local cache "
            f"({huggingface_hub.constants.HF_HUB_CACHE}). Get a local copy where there is "
            f"network (`hf download {repo_id} --local-dir DIR`), then pass "
            f"checkpoint=DIR (a folder with {CONFIG_FILENAME} and {WEIGHTS_FILENAME}) or "
            f"checkpoint=DIR/{WEIGHTS_FILENAME}"
        ) from error
    except errors.RepositoryNotFoundError as error:
        raise CheckpointError(
            f"{text}: no such Hugging Face repo (or it is private: log in with `hf auth login`), "
            "and no local file or folder of that name"
        ) from error
    except errors.RevisionNotFoundError as error:
        raise CheckpointError(
            f"{text}: the Hugging Face repo has no revision {revision!r}"
        ) from error
    except errors.EntryNotFoundError as error:
        raise CheckpointError(
            f"{text}: the Hugging Face repo has no {WEIGHTS_FILENAME}; pass the URL or a local "
            "copy of its weights file instead"
        ) from error
    except errors.HfHubHTTPError as error:
        raise CheckpointError(f"{text}: the Hugging Face Hub answered an error: {error}") from error
    _check_sha256(weights, sha256, what=f"{text}/{WEIGHTS_FILENAME}")
    return LocalCheckpoint(weights=weights, config=config)
