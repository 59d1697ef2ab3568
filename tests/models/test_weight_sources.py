"""Checkpoint sources: http(s) URLs through the torch hub cache and Hugging Face repo ids."""

from __future__ import annotations

import functools
import hashlib
import http.server
import pathlib
import shutil
import threading
from collections.abc import Iterator

import pytest
import torch

from eva_coralbay.models import weights
from eva_coralbay.models.architecture import EncoderConfig
from eva_coralbay.models.checkpoint_layouts import CheckpointError
from tests.models import swinunetr_checkpoints as checkpoints
from tests.models.hub_cache import prepare_hub_cache, use_offline_hub_cache


class _CountingHandler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def served(tmp_path: pathlib.Path) -> Iterator[tuple[str, pathlib.Path, list[str]]]:
    """A local http server on 127.0.0.1 serving a folder: (base URL, folder, requested paths)."""
    folder = tmp_path / "served"
    folder.mkdir()
    requests: list[str] = []
    handler = type("Handler", (_CountingHandler,), {"requests": requests})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(folder))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", folder, requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def torch_home(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    home = tmp_path / "torch"
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    return home


def test_a_url_is_downloaded_once_into_the_torch_hub_cache(
    served: tuple[str, pathlib.Path, list[str]], torch_home: pathlib.Path
) -> None:
    base, folder, requests = served
    checkpoint, source = checkpoints.layout("voco_b_style_f12").build()
    torch.save(checkpoint, folder / "VoCo_B_SSL_head.pt")
    digest = hashlib.sha256((folder / "VoCo_B_SSL_head.pt").read_bytes()).hexdigest()
    url = f"{base}/VoCo_B_SSL_head.pt"

    first, _ = weights.read_checkpoint(url, sha256=digest)
    second, _ = weights.read_checkpoint(url, sha256=digest)

    assert requests == ["/VoCo_B_SSL_head.pt"]
    cached = torch_home / "hub" / "checkpoints" / "VoCo_B_SSL_head.pt"
    assert cached.read_bytes() == (folder / "VoCo_B_SSL_head.pt").read_bytes()
    assert sorted(path.name for path in cached.parent.iterdir()) == ["VoCo_B_SSL_head.pt"]
    for state_dict in (first, second):
        assert all(
            torch.equal(state_dict[key], value) for key, value in source.state_dict().items()
        )


def test_a_url_whose_download_fails_the_checksum_is_not_kept(
    served: tuple[str, pathlib.Path, list[str]], torch_home: pathlib.Path
) -> None:
    base, folder, _ = served
    torch.save(checkpoints.shared_eva_encoder().state_dict(), folder / "model.pt")

    with pytest.raises(CheckpointError, match=r"sha256 mismatch.*the download was discarded"):
        weights.read_checkpoint(f"{base}/model.pt", sha256="f" * 64)

    cache = torch_home / "hub" / "checkpoints"
    assert not cache.exists() or list(cache.iterdir()) == []


def test_a_stale_cached_file_is_replaced_when_it_fails_the_checksum(
    served: tuple[str, pathlib.Path, list[str]], torch_home: pathlib.Path
) -> None:
    base, folder, requests = served
    torch.save(checkpoints.shared_eva_encoder().state_dict(), folder / "model.pt")
    digest = hashlib.sha256((folder / "model.pt").read_bytes()).hexdigest()
    cached = torch_home / "hub" / "checkpoints" / "model.pt"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"an older, different file")

    weights.read_checkpoint(f"{base}/model.pt", sha256=digest)

    assert requests == ["/model.pt"]
    assert cached.read_bytes() == (folder / "model.pt").read_bytes()


def test_an_unreachable_url_says_how_to_use_a_local_copy(
    served: tuple[str, pathlib.Path, list[str]], torch_home: pathlib.Path
) -> None:
    base, _, _ = served

    with pytest.raises(CheckpointError, match="download failed") as error:
        weights.read_checkpoint(f"{base}/absent.safetensors")

    assert "checkpoint=/path/to/absent.safetensors" in str(error.value)


def test_a_hub_repo_id_loads_from_the_local_cache_offline(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = use_offline_hub_cache(tmp_path, monkeypatch)
    source = checkpoints.shared_eva_encoder(use_v2=True)
    export = weights.save_pretrained(source, tmp_path / "export", EncoderConfig(feature_size=12))
    prepare_hub_cache(
        cache,
        "kaiko-ai/coralbay",
        {name: (export / name).read_bytes() for name in ("config.json", "model.safetensors")},
    )

    state_dict, config = weights.read_checkpoint("kaiko-ai/coralbay")

    assert config == EncoderConfig(feature_size=12, use_v2=True)
    assert all(torch.equal(state_dict[key], value) for key, value in source.state_dict().items())


def test_an_uncached_hub_repo_offline_says_how_to_point_at_a_local_copy(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = use_offline_hub_cache(tmp_path, monkeypatch)

    with pytest.raises(CheckpointError) as error:
        weights.load_encoder("kaiko-ai/coralbay")

    message = str(error.value)
    assert "offline mode is on (HF_HUB_OFFLINE=1)" in message
    assert str(cache) in message
    assert "hf download kaiko-ai/coralbay --local-dir DIR" in message
    assert "checkpoint=DIR" in message and "checkpoint=DIR/model.safetensors" in message


def test_a_local_folder_wins_over_a_hub_id_of_the_same_name(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_offline_hub_cache(tmp_path, monkeypatch)
    source = checkpoints.shared_eva_encoder(use_v2=False)
    export = weights.save_pretrained(source, tmp_path / "export", EncoderConfig(12, use_v2=False))
    shutil.copytree(export, tmp_path / "kaiko-ai" / "coralbay")
    monkeypatch.chdir(tmp_path)

    _, config = weights.read_checkpoint("kaiko-ai/coralbay")

    assert config == EncoderConfig(feature_size=12, use_v2=False)
