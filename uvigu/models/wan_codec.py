"""WanVideoCodec: frames ↔ Wan2.1 VAE latents, with the latent normalisation of diffusers' WanPipeline.

The same three methods as ``PixelCodec`` (``latent_shape``, ``check_size``, ``encode``/``decode``), so
the pipeline does not care which codec it holds. Latents are normalised per channel exactly as
diffusers' ``WanPipeline`` / ``WanVideoToVideoPipeline`` do it:

    encode: z = (μ_vae(x) − latents_mean) / latents_std      (posterior mode: deterministic)
    decode: x = vae.decode(z · latents_std + latents_mean)

with ``latents_mean`` / ``latents_std`` from the VAE config. The official Uni-ViGU inference code
works on raw VAE latents instead (research notes §1.5); ``normalize_latents=False`` selects that.

Tensor vocabulary: b batch, f frames, h/w height and width, c latent channels; frames are uint8
(b, f, h, w, 3), latents float (b, c, f', h', w') with f' = (f − 1)/4 + 1, h' = h/8, w' = w/8.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKLWan
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils.accelerate_utils import apply_forward_hook


class WanVideoCodec(ModelMixin, ConfigMixin):
    """Wan2.1's causal 3-D VAE as a codec of the unified pipeline.

    ``vae_config`` is the ``AutoencoderKLWan`` config (saved in this codec's ``config.json`` so the
    folder rebuilds itself); build one around a loaded VAE with :meth:`from_vae`.
    """

    _supports_gradient_checkpointing = False

    @register_to_config
    def __init__(
        self,
        vae_config: dict | None = None,  # AutoencoderKLWan config; None: diffusers' defaults (Wan2.1's VAE)
        normalize_latents: bool = True,  # WanPipeline's per-channel (z − mean) / std; False: raw latents
        tiling: bool = False,  # decode/encode in overlapping spatial tiles (less memory, large sizes)
        slicing: bool = False,  # one clip of the batch at a time
    ):
        super().__init__()
        config = {k: v for k, v in dict(vae_config or {}).items() if not k.startswith("_")}
        self.vae = AutoencoderKLWan(**config)
        self._apply_memory_options()

    @classmethod
    def from_vae(
        cls, vae: AutoencoderKLWan, *, normalize_latents: bool = True, tiling: bool = False, slicing: bool = False
    ) -> "WanVideoCodec":
        """Wrap an already loaded ``AutoencoderKLWan`` (its weights are reused, not copied)."""
        from accelerate import init_empty_weights

        config = {k: v for k, v in dict(vae.config).items() if not k.startswith("_")}
        with init_empty_weights():
            codec = cls(vae_config=config, normalize_latents=normalize_latents, tiling=tiling, slicing=slicing)
        codec.vae = vae
        codec._apply_memory_options()
        return codec

    # --- memory switches -------------------------------------------------------------------------

    def enable_tiling(self, enabled: bool = True) -> None:
        """Spatial tiling of the VAE (diffusers' ``enable_tiling``): large clips in less memory."""
        self.register_to_config(tiling=enabled)
        self._apply_memory_options()

    def enable_slicing(self, enabled: bool = True) -> None:
        """Encode/decode one clip of a batch at a time."""
        self.register_to_config(slicing=enabled)
        self._apply_memory_options()

    def _apply_memory_options(self) -> None:
        self.vae.enable_tiling() if self.config.tiling else self.vae.disable_tiling()
        self.vae.enable_slicing() if self.config.slicing else self.vae.disable_slicing()

    # --- sizes -----------------------------------------------------------------------------------

    @property
    def temporal_factor(self) -> int:
        """Frames per latent frame after the first (4 for Wan2.1)."""
        c = self.vae.config
        return c.scale_factor_temporal or 2 ** sum(c.temperal_downsample)

    @property
    def spatial_factor(self) -> int:
        """Pixels per latent pixel along each side (8 for Wan2.1)."""
        c = self.vae.config
        return c.scale_factor_spatial or 2 ** len(c.temperal_downsample)

    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        t, s = self.temporal_factor, self.spatial_factor
        return (self.vae.config.z_dim, (num_frames - 1) // t + 1, height // s, width // s)

    def check_size(self, num_frames: int, height: int, width: int, patch_size: tuple[int, int, int]) -> None:
        """Raise ``ValueError`` unless the clip fits the VAE and the transformer's patches.

        Wan clips have 4k + 1 frames (the causal VAE keeps the first frame on its own) and sides that
        are multiples of 16 (8× VAE downsampling × the 2×2 patch).
        """
        t, s = self.temporal_factor, self.spatial_factor
        if num_frames < 1 or (num_frames - 1) % (t * patch_size[0]):
            step = t * patch_size[0]
            ok = ", ".join(str(step * k + 1) for k in range(1, 4))
            raise ValueError(
                f"num_frames must be {step}k + 1 for this model (e.g. {ok}, …, 81), got {num_frames}."
            )
        for name, value, p in (("height", height, patch_size[1]), ("width", width, patch_size[2])):
            m = s * p
            if value < m or value % m:
                lower = max(m, value // m * m)
                raise ValueError(
                    f"{name} must be a positive multiple of {m} for this model, got {value} (try {lower} or {lower + m})."
                )

    # --- frames ↔ latents ------------------------------------------------------------------------

    def _stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.vae.config
        mean = torch.tensor(c.latents_mean).view(1, c.z_dim, 1, 1, 1).to(like.device, like.dtype)
        std = torch.tensor(c.latents_std).view(1, c.z_dim, 1, 1, 1).to(like.device, like.dtype)
        return mean, std

    @apply_forward_hook
    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames (b, f, h, w, 3) → normalised latents (b, c, f', h', w') in float32."""
        x = frames.to(self.vae.device).permute(0, 4, 1, 2, 3).to(self.vae.dtype)  # (b, 3, f, h, w)
        x = x / 127.5 - 1.0
        z = self.vae.encode(x).latent_dist.mode().float()  # the posterior mean, as WanVideoToVideoPipeline
        if self.config.normalize_latents:
            mean, std = self._stats(z)
            z = (z - mean) / std
        return z

    @apply_forward_hook
    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (b, c, f', h', w') → uint8 frames (b, f, h, w, 3) on the CPU."""
        z = latents.to(self.vae.device, self.vae.dtype)
        if self.config.normalize_latents:
            mean, std = self._stats(z)
            z = z * std + mean
        video = self.vae.decode(z, return_dict=False)[0]  # (b, 3, f, h, w) in [-1, 1]
        # diffusers' VideoProcessor: x/2 + 0.5 clamped to [0, 1]; then to 8 bits with rounding
        video = (video.float() / 2 + 0.5).clamp(0, 1)
        return (video * 255).round().to(torch.uint8).permute(0, 2, 3, 4, 1).cpu()
