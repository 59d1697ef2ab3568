"""eva registration of CoralBay and the plugin's strict ModelFromRegistry."""

from __future__ import annotations

import importlib
import pathlib
import sys

import pytest
import torch
from eva.vision.models.networks.backbones import backbone_registry
from omegaconf import OmegaConf

import eva_coralbay.models
from eva_coralbay.models import registry, weights
from eva_coralbay.models.architecture import EncoderConfig
from eva_coralbay.models.checkpoint_layouts import CheckpointError
from tests.conftest import run_python
from tests.evaluation import eva_runs
from tests.models import swinunetr_checkpoints as checkpoints
from tests.models.hub_cache import use_offline_hub_cache

CONFIG = pathlib.Path(__file__).parent / "configs" / "coralbay_random_segmentation.yaml"
REPOSITORY_ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_importing_registers_nothing_and_register_models_registers_both() -> None:
    code = (
        "from eva.vision.models.networks.backbones import backbone_registry\n"
        "import eva_coralbay.models\n"
        "from eva_coralbay.models import registry\n"
        "names = ('radiology/coralbay', 'radiology/coralbay_random')\n"
        "print([name in backbone_registry.entries() for name in names])\n"
        "registry.register_models()\n"
        "print([backbone_registry.get(name) is registry.ENTRIES[name] for name in names])\n"
    )

    assert run_python(code).split() == ["[False,", "False]", "[True,", "True]"]


def test_registration_is_idempotent(monkeypatch: pytest.MonkeyPatch) -> None:
    registry.register_models()
    importlib.import_module("eva_coralbay.models")
    # The module imported afresh (as from a second import path) registers new function objects
    # under the same names: not a conflict.
    monkeypatch.setattr(eva_coralbay.models, "registry", registry)
    monkeypatch.delitem(sys.modules, "eva_coralbay.models.registry")
    fresh = importlib.import_module("eva_coralbay.models.registry")
    fresh.register_models()

    assert fresh is not registry
    assert backbone_registry.entries().count("radiology/coralbay") == 1


def test_a_name_held_by_another_model_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.ENTRIES, "radiology/voco_b", registry.coralbay)

    with pytest.raises(ValueError, match="already holds 'radiology/voco_b'"):
        registry.register_models()


def test_coralbay_random_builds_an_untrained_encoder() -> None:
    wrapper = eva_coralbay.models.ModelFromRegistry(
        "radiology/coralbay_random", model_kwargs={"feature_size": 12, "use_v2": False}
    ).eval()

    with torch.no_grad():
        embedding = wrapper(checkpoints.random_input())

    assert embedding.shape == (1, 24 * 12)


def test_coralbay_loads_any_checkpoint_given_as_checkpoint(tmp_path: pathlib.Path) -> None:
    checkpoint, source = checkpoints.layout("suprem_swinunetr").build()
    path = tmp_path / "supervised_suprem_swinunetr_2100.pth"
    torch.save(checkpoint, path)

    wrapper = eva_coralbay.models.ModelFromRegistry(
        "radiology/coralbay", model_kwargs={"checkpoint": str(path), "out_indices": 6}
    ).eval()

    with torch.no_grad():
        maps = wrapper(checkpoints.random_input())
    assert isinstance(maps, list) and len(maps) == 6
    for actual, expected in zip(maps, checkpoints.reference_maps(source), strict=True):
        torch.testing.assert_close(actual, expected, atol=1e-4, rtol=1e-4)


def test_coralbay_defaults_to_the_published_weights(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_offline_hub_cache(tmp_path, monkeypatch)

    with pytest.raises(CheckpointError, match="kaiko-ai/coralbay: cannot load"):
        eva_coralbay.models.ModelFromRegistry("radiology/coralbay")


def test_unknown_keyword_arguments_raise_instead_of_being_dropped() -> None:
    with pytest.raises(TypeError, match="radiology/coralbay_random does not accept feature_sise"):
        eva_coralbay.models.ModelFromRegistry(
            "radiology/coralbay_random", model_kwargs={"feature_sise": 12}
        )
    # eva's own entries too, before anything is built or downloaded.
    with pytest.raises(TypeError, match="radiology/voco_b does not accept feature_size"):
        eva_coralbay.models.ModelFromRegistry(
            "radiology/voco_b", model_extra_kwargs={"feature_size": 12}
        )


def test_eva_entries_work_through_the_plugin_wrapper() -> None:
    wrapper = eva_coralbay.models.ModelFromRegistry(
        "radiology/swin_unetr_encoder", model_kwargs={"feature_size": 12, "out_indices": 1}
    ).eval()

    with torch.no_grad():
        (last,) = wrapper(checkpoints.random_input())

    assert last.shape == (1, 16 * 12, 2, 1, 1)


def test_an_unknown_model_name_suggests_close_ones() -> None:
    with pytest.raises(ValueError, match="did you mean radiology/coralbay_random"):
        eva_coralbay.models.ModelFromRegistry("radiology/coralbay_randon")


def test_the_config_encoder_builds_and_rejects_a_misspelt_argument() -> None:
    config = OmegaConf.to_container(OmegaConf.load(CONFIG), resolve=True)
    assert isinstance(config, dict)
    encoder = config["model"]["init_args"]["encoder"]
    assert encoder["class_path"] == "eva_coralbay.models.ModelFromRegistry"

    wrapper = eva_coralbay.models.ModelFromRegistry(**encoder["init_args"])
    assert wrapper.model.feature_size == 12

    encoder["init_args"]["model_kwargs"]["out_indice"] = 6
    with pytest.raises(TypeError, match="does not accept out_indice"):
        eva_coralbay.models.ModelFromRegistry(**encoder["init_args"])


def test_eva_print_config_accepts_the_plugin_encoder(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In-process through eva's own CLI class (the eva executable itself runs the shipped configs
    # in the end-to-end tests of tests/evaluation).
    monkeypatch.setenv("OUTPUT_ROOT", str(tmp_path))

    printed = OmegaConf.create(eva_runs.print_config("fit", CONFIG))

    encoder = printed.model.init_args.encoder
    assert encoder.class_path == "eva_coralbay.models.ModelFromRegistry"
    assert encoder.init_args.model_name == "radiology/coralbay_random"


@pytest.mark.parametrize(
    "module",
    [
        "eva_coralbay",
        "eva_coralbay._io",
        "eva_coralbay.tasks",
        "tools.configs",
        "eva_coralbay.models",
        "eva_coralbay.models.preprocessing",
        "eva_coralbay.data.profile",
    ],
)
def test_importing_the_torch_free_modules_stays_light(module: str) -> None:
    code = f"import sys, {module}; print(','.join(m for m in ('torch', 'eva') if m in sys.modules))"

    assert run_python(code).strip() == ""


def test_save_and_register_round_trip_through_the_registry(tmp_path: pathlib.Path) -> None:
    source = checkpoints.shared_eva_encoder(use_v2=True)
    folder = weights.save_pretrained(source, tmp_path / "coralbay", EncoderConfig(12))

    wrapper = eva_coralbay.models.ModelFromRegistry(
        "radiology/coralbay",
        model_kwargs={"checkpoint": str(folder), "embeddings_type": "head"},
    ).eval()

    with torch.no_grad():
        embedding = wrapper(checkpoints.random_input())
    expected = checkpoints.reference_maps(source)[-1].mean(dim=(2, 3, 4))
    torch.testing.assert_close(embedding, expected, atol=1e-4, rtol=1e-4)


def test_every_lazy_name_of_the_package_resolves() -> None:
    for name in eva_coralbay.models.__all__:
        assert getattr(eva_coralbay.models, name).__name__ == name
    with pytest.raises(AttributeError, match="no attribute 'coralbay_encoder'"):
        _ = eva_coralbay.models.coralbay_encoder  # type: ignore[attr-defined]
