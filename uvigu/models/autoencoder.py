"""VideoAutoencoder: a small learned codec (4×4×4 compression) for Shapes-world models.

Wan2.1 denoises the latents of a video VAE rather than pixels; the ``shapes-latent`` preset does the
same with an autoencoder small enough to train on a CPU. Frames are cut into 4×4×4 space-time cubes (a
reshape, no arithmetic), a few 3-D residual blocks turn each cube into ``latent_channels`` numbers,
and the decoder mirrors that, ending in a per-frame 3×3 convolution at full resolution so edges do
not show the cube grid. Each latent vector is RMS-normalised over its channels, so latents have unit
scale by construction (Wan normalises its VAE latents with stored statistics; here nothing needs
storing) and training can add noise of a known size to them (decoders that tolerate it are what a
diffusion model needs: its samples are never exactly on the encoder's manifold).

Why: the shipped pixel-space model (2×8×8 patches of raw pixels into a width-192 transformer) drew
blobs that jump between its 2-frame patches after 1.87 M training clips, and after 2.5 M still
loses a third of the prompted shapes (docs/EVAL.md). With a codec, a
decoder trained by plain reconstruction does the drawing, and the transformer has half the tokens
(256) to place objects on a 4×16×16 grid. How well the codec keeps a clip is measured by the
evaluation (`uvigu.eval.tasks`: the analyzer on clips passed through the codec).

Tensor vocabulary: b batch, f frames, h/w height and width, c latent channels, d width;
frames uint8 (b, f, h, w, 3), pixels float (b, 3, f, h, w) in [-1, 1], latents (b, c, f/4, h/4, w/4).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

FACTOR = 4  # frames and pixels per latent cell along each axis


def space_time_to_depth(x: torch.Tensor, k: int) -> torch.Tensor:
    """(b, c, f, h, w) → (b, c·k³, f/k, h/k, w/k): each k×k×k cube becomes one vector."""
    b, c, f, h, w = x.shape
    x = x.reshape(b, c, f // k, k, h // k, k, w // k, k).permute(0, 1, 3, 5, 7, 2, 4, 6)
    return x.reshape(b, c * k**3, f // k, h // k, w // k)


def depth_to_space_time(x: torch.Tensor, k: int) -> torch.Tensor:
    """The inverse of :func:`space_time_to_depth`: (b, c·k³, f, h, w) → (b, c, f·k, h·k, w·k)."""
    b, ck, f, h, w = x.shape
    c = ck // k**3
    x = x.reshape(b, c, k, k, k, f, h, w).permute(0, 1, 5, 2, 6, 3, 7, 4)
    return x.reshape(b, c, f * k, h * k, w * k)


class ResidualBlock3d(nn.Module):
    """GroupNorm → SiLU → 3×3×3 conv → SiLU → 1×1×1 conv, added to the input."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.GroupNorm(8, dim)
        self.conv = nn.Conv3d(dim, dim, 3, padding=1)
        self.proj = nn.Conv3d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.proj(F.silu(self.conv(F.silu(self.norm(x)))))


class VideoAutoencoder(ModelMixin, ConfigMixin):
    """The learned codec: same interface as ``PixelCodec`` and ``WanVideoCodec``."""

    @register_to_config
    def __init__(
        self,
        latent_channels: int = 8,  # c: numbers per 4×4×4 cube (24× fewer values than RGB pixels)
        width: int = 96,  # d: channels of the residual blocks at the latent grid
        num_blocks: int = 2,  # residual blocks in the encoder and in the decoder
        pixel_channels: int = 8,  # feature channels of the decoder's full-resolution layer
    ):
        super().__init__()
        cube = 3 * FACTOR**3
        self.encoder_in = nn.Conv3d(cube, width, 1)
        self.encoder_blocks = nn.Sequential(*[ResidualBlock3d(width) for _ in range(num_blocks)])
        self.encoder_out = nn.Conv3d(width, latent_channels, 1)
        self.decoder_in = nn.Conv3d(latent_channels, width, 3, padding=1)
        self.decoder_blocks = nn.Sequential(*[ResidualBlock3d(width) for _ in range(num_blocks)])
        self.decoder_out = nn.Conv3d(width, pixel_channels * FACTOR**3, 1)
        self.pixel_out = nn.Conv3d(pixel_channels, 3, (1, 3, 3), padding=(0, 1, 1))

    # --- sizes -----------------------------------------------------------------------------------

    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        return (self.config.latent_channels, num_frames // FACTOR, height // FACTOR, width // FACTOR)

    def check_size(self, num_frames: int, height: int, width: int, patch_size: tuple[int, int, int]) -> None:
        """Raise ``ValueError`` unless the clip tiles into 4×4×4 cubes and then the transformer's patches."""
        for name, value, p in (("num_frames", num_frames, patch_size[0]), ("height", height, patch_size[1]),
                               ("width", width, patch_size[2])):
            m = FACTOR * p
            if value < m or value % m:
                raise ValueError(f"{name} must be a positive multiple of {m} for this model, got {value}.")

    # --- pixels ↔ latents (differentiable; used by training) ------------------------------------

    def encode_pixels(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels (b, 3, f, h, w) in [-1, 1] → latents (b, c, f/4, h/4, w/4), RMS 1 over c."""
        h = self.encoder_in(space_time_to_depth(x, FACTOR))  # (b, d, f/4, h/4, w/4)
        z = self.encoder_out(self.encoder_blocks(h))
        return z * torch.rsqrt(z.float().pow(2).mean(1, keepdim=True) + 1e-6).to(z.dtype)

    def decode_pixels(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (b, c, f/4, h/4, w/4) → pixels (b, 3, f, h, w), unclamped."""
        h = self.decoder_blocks(self.decoder_in(z))
        y = depth_to_space_time(self.decoder_out(F.silu(h)), FACTOR)  # (b, pixel_channels, f, h, w)
        return self.pixel_out(F.silu(y))

    def forward(self, x: torch.Tensor, latent_noise: torch.Tensor | None = None) -> torch.Tensor:
        """Reconstruct pixels (b, 3, f, h, w), adding ``latent_noise`` (the latents' shape) on the way."""
        z = self.encode_pixels(x)
        return self.decode_pixels(z if latent_noise is None else z + latent_noise.to(z.dtype))

    # --- frames ↔ latents (the codec interface) --------------------------------------------------

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames (b, f, h, w, 3) → latents (b, c, f/4, h/4, w/4) in float32."""
        x = frames.to(self.device, torch.float32).permute(0, 4, 1, 2, 3) / 127.5 - 1.0
        return self.encode_pixels(x.to(self.dtype)).float()

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (b, c, f', h', w') → uint8 frames (b, f, h, w, 3) on the CPU."""
        x = self.decode_pixels(latents.to(self.device, self.dtype)).float()
        x = ((x.clamp(-1, 1) + 1.0) * 127.5).round()
        return x.to(torch.uint8).permute(0, 2, 3, 4, 1).cpu()


def reconstruction_loss(pred: torch.Tensor, target: torch.Tensor, object_weight: float = 10.0) -> torch.Tensor:
    """Per-clip loss (b,): MSE + ½·L1 over pixels, with pixels off the background weighted up.

    Objects cover a few percent of a Shapes frame, so an unweighted loss first learns the
    background and only slowly the shapes. The background is the clip's top-left pixel (Shapes
    keeps objects off the border; for other footage the weighting is merely uneven).
    """
    background = target[:, :, :1, :1, :1]
    on_object = ((target - background).abs().sum(1, keepdim=True) > 0.05).to(target.dtype)
    weight = 1.0 + (object_weight - 1.0) * on_object
    diff = pred.float() - target.float()
    return (weight * (diff.pow(2) + 0.5 * diff.abs())).flatten(1).mean(1)
