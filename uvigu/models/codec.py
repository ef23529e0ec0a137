"""Video codecs: frames ↔ the latents the transformer denoises.

``PixelCodec`` is the identity codec of pixel-space presets (pixels scaled to [-1, 1]); the shipped
model's learned codec is ``uvigu.models.autoencoder.VideoAutoencoder`` and the Wan VAE codec lives in
``uvigu.models.wan_codec``. All expose the same methods (``latent_shape``, ``check_size``,
``encode``, ``decode``).

Tensor vocabulary: b batch, f frames, h/w height and width, c latent channels; frames are uint8
(b, f, h, w, 3), latents float (b, c, f', h', w').
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin


class PixelCodec(ModelMixin, ConfigMixin):
    """Identity codec: latents are the RGB pixels scaled to [-1, 1]."""

    @register_to_config
    def __init__(self, latent_channels: int = 3):
        super().__init__()
        # A stored tensor gives the codec a weights file (diffusers' loader expects one) and a device.
        self.register_buffer("pixel_scale", torch.tensor(127.5))

    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        return (self.config.latent_channels, num_frames, height, width)

    def check_size(self, num_frames: int, height: int, width: int, patch_size: tuple[int, int, int]) -> None:
        """Raise ``ValueError`` unless the clip size tiles into the transformer's patches."""
        for name, value, p in (("num_frames", num_frames, patch_size[0]), ("height", height, patch_size[1]),
                               ("width", width, patch_size[2])):
            if value < p or value % p:
                raise ValueError(f"{name} must be a positive multiple of {p} for this model, got {value}.")

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames (b, f, h, w, 3) → latents (b, 3, f, h, w) in [-1, 1]."""
        x = frames.to(self.pixel_scale.device, torch.float32).permute(0, 4, 1, 2, 3)
        return x / self.pixel_scale - 1.0

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (b, 3, f, h, w) → uint8 frames (b, f, h, w, 3)."""
        x = ((latents.float().clamp(-1, 1) + 1.0) * self.pixel_scale.float()).round()
        return x.to(torch.uint8).permute(0, 2, 3, 4, 1).cpu()
