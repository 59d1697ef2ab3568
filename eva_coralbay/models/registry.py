"""The `radiology/coralbay*` entries of eva's backbone registry and a strict ModelFromRegistry."""

import difflib
import inspect
from collections.abc import Callable
from typing import Any, Literal

from eva.vision.models import wrappers
from eva.vision.models.networks.backbones import backbone_registry
from monai.inferers.inferer import Inferer
from torch import nn
from typing_extensions import override

from eva_coralbay.models import weights
from eva_coralbay.models.encoder import CoralBayEncoder


def coralbay(
    checkpoint: str | None = None,
    sha256: str | None = None,
    out_indices: int | None = None,
    inferer: Inferer | None = None,
    embeddings_type: Literal["multiscale", "head"] = "multiscale",
) -> nn.Module:
    """CoralBay with its published weights, or the encoder of any SwinUNETR-family checkpoint.

    Args:
        checkpoint: Where the weights come from instead of CoralBay's published ones: a local
            file or Hugging Face style folder, an http(s) URL or a Hugging Face repo id.
        sha256: The expected SHA-256 of the weights file.
        out_indices: How many of the 6 feature maps to return (None: the embedding).
        inferer: A MONAI inferer used in eval mode (for example a sliding window).
        embeddings_type: `multiscale` (24·F dims) or `head` (16·F dims).
    """
    return weights.load_encoder(
        checkpoint or weights.DEFAULT_SOURCE,
        sha256=sha256,
        out_indices=out_indices,
        inferer=inferer,
        embeddings_type=embeddings_type,
    )


def coralbay_random(
    feature_size: int = 48,
    use_v2: bool = True,
    in_channels: int = 1,
    out_indices: int | None = None,
    embeddings_type: Literal["multiscale", "head"] = "multiscale",
    inferer: Inferer | None = None,
) -> nn.Module:
    """An untrained CoralBay encoder, for baselines and tests.

    Args:
        feature_size: Channels of the first stage (F), a multiple of 12.
        use_v2: Whether each stage has SwinUNETR-v2's residual conv block.
        in_channels: Input channels.
        out_indices: How many of the 6 feature maps to return (None: the embedding).
        embeddings_type: `multiscale` (24·F dims) or `head` (16·F dims).
        inferer: A MONAI inferer used in eval mode.
    """
    return CoralBayEncoder(
        in_channels=in_channels,
        feature_size=feature_size,
        out_indices=out_indices,
        inferer=inferer,
        embeddings_type=embeddings_type,
        use_v2=use_v2,
    )


ENTRIES: dict[str, Callable[..., nn.Module]] = {
    "radiology/coralbay": coralbay,
    "radiology/coralbay_random": coralbay_random,
}
"""The plugin's entries in eva's backbone registry."""


def _identity(item: Any) -> tuple[str | None, str | None]:
    return getattr(item, "__module__", None), getattr(item, "__qualname__", None)


def register_models() -> None:
    """Adds the plugin's entries to eva's backbone registry; repeated calls change nothing.

    Raises:
        ValueError: When another object already holds one of the plugin's names.
    """
    for name, factory in ENTRIES.items():
        if name not in backbone_registry.entries():
            backbone_registry.register(name)(factory)
            continue
        existing = backbone_registry.get(name)
        # The same function imported again (another import path, a reload) is not a conflict.
        if existing is not factory and _identity(existing) != _identity(factory):
            raise ValueError(
                f"eva's backbone registry already holds {name!r} as "
                f"{'.'.join(filter(None, _identity(existing)))}"
            )


def _accepted_parameters(item: Callable[..., Any]) -> list[str] | None:
    """The keyword arguments a registry item accepts; None when it takes any (`**kwargs`)."""
    function = item.__init__ if inspect.isclass(item) else item
    parameters = list(inspect.signature(function).parameters.values())
    if inspect.isclass(item):
        parameters = parameters[1:]
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters):
        return None
    return [
        parameter.name
        for parameter in parameters
        if parameter.kind is not inspect.Parameter.VAR_POSITIONAL
    ]


class ModelFromRegistry(wrappers.ModelFromRegistry):
    """eva's `ModelFromRegistry` that also knows CoralBay and rejects unknown arguments.

    Use it in eva configs as `class_path: eva_coralbay.models.ModelFromRegistry`: any name of
    eva's backbone registry works (`radiology/voco_b`, ...) besides `radiology/coralbay` and
    `radiology/coralbay_random`. Unlike eva's factory, which silently drops keyword arguments
    a model does not take, a misspelt argument raises here.
    """

    def __init__(
        self,
        model_name: str,
        model_kwargs: dict[str, Any] | None = None,
        model_extra_kwargs: dict[str, Any] | None = None,
        transforms: Callable | None = None,
    ) -> None:
        """Registers the plugin's models and builds the named one.

        Args:
            model_name: The registry name, for example `radiology/coralbay`.
            model_kwargs: Keyword arguments of the model.
            model_extra_kwargs: More keyword arguments, merged over `model_kwargs`.
            transforms: Transforms applied to the model's output.

        Raises:
            ValueError: When the name is not registered.
            TypeError: When the model does not accept one of the keyword arguments.
        """
        register_models()
        super().__init__(
            model_name=model_name,
            model_kwargs=model_kwargs,
            model_extra_kwargs=model_extra_kwargs,
            transforms=transforms,
        )

    @override
    def load_model(self) -> nn.Module:
        names = backbone_registry.entries()
        if self._model_name not in names:
            close = difflib.get_close_matches(self._model_name, names, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ValueError(f"{self._model_name!r} is not in eva's backbone registry{hint}")
        item = backbone_registry.get(self._model_name)
        kwargs = self._model_kwargs | self._model_extra_kwargs
        accepted = _accepted_parameters(item)
        unknown = sorted(set(kwargs) - set(accepted)) if accepted is not None else []
        if unknown:
            raise TypeError(
                f"{self._model_name} does not accept {', '.join(unknown)}; "
                f"it accepts: {', '.join(accepted or []) or 'no arguments'}"
            )
        model = item(**kwargs)
        if not isinstance(model, nn.Module):
            raise TypeError(
                f"{self._model_name} built a {type(model).__name__}, not a torch.nn.Module"
            )
        return model
