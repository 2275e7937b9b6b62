"""What the U-Net configs (ERUNet, M3UNet) share: per-level channels, the size multiple, and
their JSON form (saved verbatim in checkpoints)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any


class UNetConfigMixin:
    """For frozen dataclasses with ``width``, ``depth``, ``max_channels``, ``encoder_blocks``,
    ``decoder_blocks`` and a derived ``level_channels`` field (``init=False``)."""

    width: int
    depth: int
    max_channels: int
    encoder_blocks: tuple[int, ...]
    decoder_blocks: tuple[int, ...]

    def _set_level_channels(self) -> None:
        if len(self.encoder_blocks) != self.depth or len(self.decoder_blocks) != self.depth:
            raise ValueError(f"encoder/decoder block counts need {self.depth} entries: {self}")
        channels = tuple(min(self.width * 2**i, self.max_channels) for i in range(self.depth + 1))
        object.__setattr__(self, "level_channels", channels)

    @property
    def multiple(self) -> int:
        """Height and width are padded to a multiple of this inside the network."""
        return 2**self.depth

    def to_dict(self) -> dict:
        data = asdict(self)  # type: ignore[call-overload]
        data.pop("level_channels")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        data = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k != "level_channels"}
        return cls(**data)
