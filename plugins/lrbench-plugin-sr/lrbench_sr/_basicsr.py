"""basicsr's architecture classes, imported in the one place that knows how.

basicsr 1.4.2 imports ``torchvision.transforms.functional_tensor`` (from its data package, pulled in by the package
``__init__``); torchvision removed that module in 0.17, where the functions it used live in
``torchvision.transforms.functional``. Aliasing the old name to the new module before the first basicsr import lets the
package import; only the architecture modules, the PSNR/SSIM functions and the cosine-restart learning-rate schedule
(BasicSR's, which SR4IR's code uses) are used from it.
"""

from __future__ import annotations

import sys

import torchvision.transforms.functional as _tvf

sys.modules.setdefault("torchvision.transforms.functional_tensor", _tvf)

from basicsr.archs.edsr_arch import EDSR  # noqa: E402
from basicsr.archs.rrdbnet_arch import RRDBNet  # noqa: E402
from basicsr.archs.swinir_arch import SwinIR  # noqa: E402
from basicsr.metrics.psnr_ssim import calculate_psnr, calculate_ssim  # noqa: E402
from basicsr.models.lr_scheduler import CosineAnnealingRestartLR  # noqa: E402

__all__ = ["EDSR", "RRDBNet", "SwinIR", "calculate_psnr", "calculate_ssim", "CosineAnnealingRestartLR"]
