"""A recognizer cut in two: its trunk (the face up to its last spatial feature map) and its head (that map to
the embedding), sharing the recognizer's own layers and weights.

The masked-face methods attach their parts where the two meet: MEER's mask decoupling between trunk and
head, G2D's inpainting decoder on the trunk's map (the generative encoder E is the trunk, the reformer R the
head). Starting both from a pretrained recognizer means starting E and R, or MEER's trunk and head, from
its halves, so the method's new parts read features that already know identity.

A recognizer that can be cut declares ``TRUNK`` and ``HEAD`` (the names of its layers and buffers on each
side), ``TRUNK_CHANNELS`` and ``TRUNK_STRIDE`` (its map's channels and the input's size over the map's), and
implements ``trunk_forward(x)`` and ``head_forward(features)`` with ``forward = head_forward . trunk_forward``.
A ``SplitPart`` holds one side's layers under the same names, so the recognizer's own method runs on it
unchanged and its state dict uses the recognizer's keys: a teacher's checkpoint loads into the parts as it
loads into the whole.
"""

from __future__ import annotations

from typing import Any, Protocol, cast

import torch
from torch import nn


class Splittable(Protocol):
    """What a recognizer declares to be cut (see the module's docstring)."""

    TRUNK: tuple[str, ...]
    HEAD: tuple[str, ...]
    TRUNK_CHANNELS: int
    TRUNK_STRIDE: int


def trunk_geometry(recognizer: nn.Module) -> tuple[int, int]:
    """(channels, stride) of the map where ``recognizer``'s trunk ends."""
    declared = cast(Splittable, recognizer)
    return int(declared.TRUNK_CHANNELS), int(declared.TRUNK_STRIDE)


class SplitPart(nn.Module):
    """One side of a split recognizer: its ``names`` layers (and buffers), run by its ``method``."""

    def __init__(self, recognizer: nn.Module, names: tuple[str, ...], method: str) -> None:
        super().__init__()
        buffers = dict(recognizer.named_buffers(recurse=False))
        for name in names:
            if name in buffers:
                self.register_buffer(name, buffers[name])
            else:
                self.add_module(name, getattr(recognizer, name))
        self._run: Any = getattr(type(recognizer), method)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(self, x)


def split_recognizer(recognizer: nn.Module) -> tuple[SplitPart, SplitPart]:
    """(trunk, head) of ``recognizer``, sharing its layers; every layer and buffer on exactly one side."""
    for needed in ("TRUNK", "HEAD", "TRUNK_CHANNELS", "TRUNK_STRIDE", "trunk_forward", "head_forward"):
        if not hasattr(recognizer, needed):
            raise TypeError(f"{type(recognizer).__name__} cannot be split into trunk and head (no {needed})")
    declared = cast(Splittable, recognizer)
    trunk_names, head_names = tuple(declared.TRUNK), tuple(declared.HEAD)
    children = {name for name, _ in recognizer.named_children()}
    children |= {name for name, _ in recognizer.named_buffers(recurse=False)}
    covered = set(trunk_names) | set(head_names)
    if covered != children or set(trunk_names) & set(head_names):
        raise TypeError(f"{type(recognizer).__name__}: TRUNK and HEAD must name each layer once "
                        f"(unplaced: {sorted(children - covered)}, both: {sorted(set(trunk_names) & set(head_names))})")
    return (SplitPart(recognizer, trunk_names, "trunk_forward"), SplitPart(recognizer, head_names, "head_forward"))


def registered_recognizer(name: str) -> nn.Module:
    """The registry's recognizer ``name``, randomly initialised: the base the registry's ``<method>-<base>``
    students are built on (training then loads the teacher's weights into it, export the student's)."""
    from mfr.registry import get_model_entry

    return cast(nn.Module, get_model_entry(name).build())
