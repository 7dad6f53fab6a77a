"""IResNet (the ArcFace backbone, Deng et al. 2019): improved residual units BN-conv-BN-PReLU-conv-BN, every stage
strided, an "output layer" BN-flatten-FC-BN giving the embedding.

Parameter names follow the layout of insightface's published ``backbone.pth`` files (``conv1``, ``bn1``, ``prelu``,
``layerN.i.{bn1,conv1,bn2,prelu,conv2,bn3,downsample.0,downsample.1}``, ``bn2``, ``fc``, ``features``), so those
state dicts load with ``strict=True``. ``base_width`` and ``image_size`` shrink the network for tests and toy runs.
"""

from __future__ import annotations

from torch import Tensor, nn

DEPTHS = {"r18": (2, 2, 2, 2), "r34": (3, 4, 6, 3), "r50": (3, 4, 14, 3), "r100": (3, 13, 30, 3)}


class IBasicBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-5)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-5)
        self.prelu = nn.PReLU(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-5)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes, eps=1e-5)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (x if self.downsample is None else self.downsample(x))


def _stride2(size: int, times: int) -> int:
    for _ in range(times):
        size = (size - 1) // 2 + 1  # 3x3 conv, stride 2, padding 1
    return size


class IResNet(nn.Module):
    def __init__(
        self,
        layers: tuple[int, ...],
        embedding_size: int = 512,
        base_width: int = 64,
        image_size: int = 112,
        dropout: float = 0.0,
    ):
        super().__init__()
        widths = [base_width * 2**i for i in range(4)]
        self.conv1 = nn.Conv2d(3, base_width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(base_width, eps=1e-5)
        self.prelu = nn.PReLU(base_width)
        inplanes = base_width
        for i, (n, planes) in enumerate(zip(layers, widths)):
            blocks = [IBasicBlock(inplanes, planes, 2)] + [IBasicBlock(planes, planes, 1) for _ in range(n - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            inplanes = planes
        self.bn2 = nn.BatchNorm2d(inplanes, eps=1e-5)
        self.dropout = nn.Dropout(dropout)
        side = _stride2(image_size, 4)
        self.fc = nn.Linear(inplanes * side * side, embedding_size)
        self.features = nn.BatchNorm1d(embedding_size, eps=1e-5)
        nn.init.constant_(self.features.weight, 1.0)
        self.features.weight.requires_grad = False

    def forward(self, x: Tensor) -> Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(self.bn2(x).flatten(1))
        return self.features(self.fc(x))


def iresnet(arch: str, **kwargs) -> IResNet:
    try:
        layers = DEPTHS[arch]
    except KeyError:
        raise ValueError(f"unknown IResNet {arch!r}; choices: {', '.join(DEPTHS)}") from None
    return IResNet(layers, **kwargs)
