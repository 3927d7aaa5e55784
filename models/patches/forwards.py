"""Replacing the ``forward`` of one module class on a model's instances, as
``models.patches.deformable`` and ``models.patches.fusion`` do for Grounding DINO's attention
modules and ``models.patches.strips`` for MobileSAM's TinyViT."""

from __future__ import annotations

import inspect
import logging
import types
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

log = logging.getLogger(__name__)


def install_forward(
    model: nn.Module, class_name: str, forward: Callable[..., Any], parameters: Sequence[str]
) -> int:
    """Bind ``forward`` as the ``forward`` of every module of ``model`` whose class is named
    ``class_name`` (on the instances; the class is left alone).

    Args:
        model: the model whose modules to change.
        class_name: e.g. "MultiScaleDeformableAttention".
        forward: the replacement, a function taking the module as its first argument.
        parameters: the parameter names (``self`` first) of the class's own ``forward`` that
            ``forward`` was written for.

    Returns:
        How many modules now use ``forward``; 0 (logged) when the class's ``forward`` has
        other parameters (another transformers version), in which case it is kept.
    """
    modules = [m for m in model.modules() if type(m).__name__ == class_name]
    if not modules:
        return 0
    found = tuple(inspect.signature(type(modules[0]).forward).parameters)
    if found != tuple(parameters):
        log.warning("%s.forward%s is not the one %s replaces; keeping transformers' own",
                    class_name, found, forward.__name__)  # fmt: skip
        return 0
    for module in modules:
        module.forward = types.MethodType(forward, module)
    return len(modules)


def original_forward(module: Any) -> Any:
    """The class's own ``forward`` bound to ``module`` (tests compare it with a replacement;
    a replacement may fall back to it)."""
    return types.MethodType(type(module).forward, module)
