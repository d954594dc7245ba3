"""The residual block of He, Zhang, Ren & Sun (2016), the bridge from LeNet to modern networks.

    y = ReLU(F(x) + S(x))
    F(x) = BN(conv3x3(ReLU(BN(conv3x3_stride(x)))))                 the residual branch
    S(x) = x                              when the shape is kept    (identity shortcut)
    S(x) = BN(conv1x1_stride(x))          when channels or size change  (projection shortcut, "option B")

Backward: with dz = dL/dy · [F(x) + S(x) > 0], dL/dx = F'(x)ᵀ dz + S'(x)ᵀ dz: the identity
shortcut passes dz to x unchanged, which is why deep stacks of these blocks still train.
``batch_norm=False`` leaves the BN layers out (the convolutions then keep their biases).
"""

from __future__ import annotations

from typing import Any

from dlcore import backend
from dlcore.nn import init as initializers
from dlcore.nn.activations import ReLU
from dlcore.nn.base import Layer
from dlcore.nn.composite import Composite
from dlcore.nn.conv import Conv2D, check_image_batch
from dlcore.nn.normalization import BatchNorm

__all__ = ["ResidualBlock"]


class ResidualBlock(Composite):
    """y = ReLU(F(x) + S(x)) with two 3x3 convolutions in F and an identity or 1x1 projection shortcut S.

    ``channels`` in, ``out_channels`` out (default: the same), ``stride`` on the first 3x3 convolution
    and on the projection. The projection is used exactly when the shape changes
    (``out_channels != channels`` or ``stride != 1``). Parameters are named "conv1.W", "bn1.gamma",
    "conv2.W", "bn2.gamma", "shortcut.W", "shortcut_bn.gamma", ... (a write-through view over the
    sub-layers, like :class:`~dlcore.nn.Sequential`); ``forward(x, train=True)`` as for batch norm.
    """

    key_example = "'conv1.W'"

    def __init__(self, channels: int, out_channels: int | None = None, stride: int = 1, *, batch_norm: bool = True,
                 init: str | initializers.Initializer = "he", rng: backend.Seed = None,
                 dtype: Any = "float32") -> None:
        super().__init__()
        out_channels = channels if out_channels is None else out_channels
        if not isinstance(stride, int) or isinstance(stride, bool) or stride < 1:
            raise ValueError(f"ResidualBlock: expected stride to be a positive int, got {stride!r}")
        gen = backend.default_rng(rng)
        bias = not batch_norm
        self.channels, self.out_channels, self.stride = channels, out_channels, stride
        self.batch_norm = bool(batch_norm)
        self.has_train_mode = self.batch_norm
        self.conv1 = Conv2D(channels, out_channels, 3, stride, 1, init=init, rng=gen, dtype=dtype, bias=bias)
        self.conv2 = Conv2D(out_channels, out_channels, 3, 1, 1, init=init, rng=gen, dtype=dtype, bias=bias)
        self.bn1 = BatchNorm(out_channels, dtype=dtype) if batch_norm else None
        self.bn2 = BatchNorm(out_channels, dtype=dtype) if batch_norm else None
        self.relu1, self.relu_out = ReLU(), ReLU()
        self.projection = out_channels != channels or stride != 1
        self.shortcut = (Conv2D(channels, out_channels, 1, stride, 0, init=init, rng=gen, dtype=dtype, bias=bias)
                         if self.projection else None)
        self.shortcut_bn = BatchNorm(out_channels, dtype=dtype) if self.projection and batch_norm else None

    def named_children(self) -> dict[str, Layer]:
        names = ("conv1", "bn1", "relu1", "conv2", "bn2", "shortcut", "shortcut_bn", "relu_out")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}

    # -- protocol ------------------------------------------------------------------------------
    def forward(self, x: Any, train: bool = True) -> Any:
        check_image_batch("ResidualBlock", x, self.channels)
        h = self.conv1.forward(x)
        if self.bn1 is not None:
            h = self.bn1.forward(h, train=train)
        h = self.conv2.forward(self.relu1.forward(h))
        if self.bn2 is not None:
            h = self.bn2.forward(h, train=train)
        s = x
        if self.shortcut is not None:
            s = self.shortcut.forward(x)
            if self.shortcut_bn is not None:
                s = self.shortcut_bn.forward(s, train=train)
        return self.relu_out.forward(h + s)                                       # y = ReLU(F(x) + S(x))

    def backward(self, dy: Any) -> Any:
        dz = self.relu_out.backward(dy)                                           # dz = dy [F + S > 0]
        dh = dz if self.bn2 is None else self.bn2.backward(dz)
        dh = self.relu1.backward(self.conv2.backward(dh))
        if self.bn1 is not None:
            dh = self.bn1.backward(dh)
        dx = self.conv1.backward(dh)                                              # F'(x)ᵀ dz
        if self.shortcut is None:
            return dx + dz                                                        # identity: + dz
        ds = dz if self.shortcut_bn is None else self.shortcut_bn.backward(dz)
        return dx + self.shortcut.backward(ds)                                    # projection: + S'(x)ᵀ dz

    def __repr__(self) -> str:
        kind = "projection" if self.projection else "identity"
        return (f"ResidualBlock({self.channels}, {self.out_channels}, stride={self.stride}, {kind} shortcut, "
                f"batch_norm={self.batch_norm})")
