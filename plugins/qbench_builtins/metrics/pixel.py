"""PSNR and SSIM on [0, 1] RGB, per image, averaged over images.

SSIM follows Wang et al. 2004 ("Image quality assessment: from error
visibility to structural similarity") with the settings the tokenizer papers
use through scikit-image (GSQ, arXiv 2412.02632; MaskBit; SEED-Voken):
an 11x11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03, population
(not sample) covariances, data range 1, mean over the valid (uncropped-by-
the-window) area of each channel, then over channels.  It equals
``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1, channel_axis=-1)``.
"""

from __future__ import annotations

import torch

from qbench import ConfigError
from qbench.metric import EvalBatch, PerImageMean

# PSNR of identical images is infinite; cap it so that means stay finite and
# JSON stays valid.  100 dB is far above any lossy reconstruction of uint8 data.
PSNR_CAP_DB = 100.0


class PSNR(PerImageMean):
    """Peak signal-to-noise ratio in dB, data range 1, per image then mean."""

    def per_image(self, batch: EvalBatch) -> torch.Tensor:
        # exact integer differences, then float64: no float32 rounding of x / 255
        diff = (batch.originals.to(torch.int32) - batch.reconstructions.to(torch.int32)).to(torch.float64) / 255.0
        mse = diff.pow(2).flatten(1).mean(dim=1)
        floor = 10.0 ** (-PSNR_CAP_DB / 10.0)
        return 10.0 * torch.log10(1.0 / mse.clamp_min(floor))

    def protocol(self) -> dict:
        return {
            "definition": "10 log10(1 / MSE) per image over all RGB pixels in [0, 1], mean over images",
            "data_range": 1.0,
            "cap_db": PSNR_CAP_DB,
            "image_size": self.image_size,
        }


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """The normalised 1-D Gaussian that scipy.ndimage uses (radius = size // 2)."""
    radius = size // 2
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    w = torch.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


class SSIM(PerImageMean):
    """Structural similarity, Gaussian window 11, sigma 1.5 (see module docstring)."""

    def __init__(self, window: int = 11, sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03) -> None:
        if window < 3 or window % 2 == 0:
            raise ConfigError(f"ssim window must be an odd integer >= 3, got {window}")
        if sigma <= 0:
            raise ConfigError(f"ssim sigma must be positive, got {sigma}")
        super().__init__()
        self.window, self.sigma, self.k1, self.k2 = window, sigma, k1, k2

    @classmethod
    def check_image_size(cls, height: int, width: int, window: int = 11, **options) -> None:
        if min(height, width) < window:
            raise ConfigError(f"ssim needs images of at least {window}x{window} (its window), got {height}x{width}")

    def _blur(self, x: torch.Tensor) -> torch.Tensor:
        # separable Gaussian over the 'valid' area only (exactly the border skimage
        # crops), as weighted sums of shifted slices: element-wise float64 work that
        # stays fast on a busy CPU, where tiny float64 conv2d/GEMM calls were 100x slower
        w = gaussian_window(self.window, self.sigma).tolist()
        height, width = x.shape[-2:]
        out_h, out_w = height - self.window + 1, width - self.window + 1
        rows = sum(w[k] * x[..., :, k : k + out_w] for k in range(self.window))
        return sum(w[k] * rows[..., k : k + out_h, :] for k in range(self.window))

    def per_image(self, batch: EvalBatch) -> torch.Tensor:
        height, width = batch.originals.shape[-2:]
        if min(height, width) < self.window:
            raise ConfigError(f"ssim needs images of at least {self.window}x{self.window}, got {height}x{width}")
        # float64: the variance terms E[x^2] - E[x]^2 cancel; float32 would cost ~1e-5
        x = batch.originals.to(torch.float64) / 255.0
        y = batch.reconstructions.to(torch.float64) / 255.0
        mu_x, mu_y = self._blur(x), self._blur(y)
        var_x = self._blur(x * x) - mu_x**2
        var_y = self._blur(y * y) - mu_y**2
        cov = self._blur(x * y) - mu_x * mu_y
        c1, c2 = self.k1**2, self.k2**2
        s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
        return s.flatten(2).mean(dim=2).mean(dim=1)

    def protocol(self) -> dict:
        return {
            "definition": "Wang et al. 2004, per channel on [0, 1] RGB, mean over channels, then over images",
            "window": f"gaussian {self.window}x{self.window}, sigma {self.sigma}",
            "k1": self.k1,
            "k2": self.k2,
            "covariance": "population",
            "data_range": 1.0,
            "image_size": self.image_size,
            "reference": "skimage.metrics.structural_similarity(gaussian_weights=True, use_sample_covariance=False)",
        }

