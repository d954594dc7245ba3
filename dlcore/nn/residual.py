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

from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from dlcore import backend
from dlcore.nn import init as initializers
from dlcore.nn.activations import ReLU
from dlcore.nn.base import Layer
from dlcore.nn.conv import Conv2D, check_image_batch
from dlcore.nn.normalization import BatchNorm

__all__ = ["ResidualBlock"]


class _ChildView(MutableMapping):
    """Write-through view ``"<child>.<name>" -> child.<attr>[name]`` (attr: 'params' or 'grads')."""

    def __init__(self, owner: ResidualBlock, attr: str) -> None:
        self._owner, self._attr = owner, attr

    def _locate(self, key: str) -> tuple[dict[str, Any], str]:
        head, _, rest = key.partition(".") if isinstance(key, str) else ("", "", "")
        children = self._owner.named_children()
        if head not in children or not rest:
            raise KeyError(f"ResidualBlock.{self._attr}: no entry {key!r}; available: {list(self)}")
        return getattr(children[head], self._attr), rest

    def __getitem__(self, key: str) -> Any:
        inner, rest = self._locate(key)
        if rest not in inner:
            raise KeyError(f"ResidualBlock.{self._attr}: no entry {key!r}; available: {list(self)}")
        return inner[rest]

    def __setitem__(self, key: str, value: Any) -> None:
        inner, rest = self._locate(key)
        if self._attr == "params":
            if rest not in inner:
                raise KeyError(f"ResidualBlock.params: no parameter {key!r}; available: {list(self)}")
            if tuple(getattr(value, "shape", ())) != tuple(inner[rest].shape):
                raise ValueError(f"ResidualBlock.params: {key!r} has shape {tuple(inner[rest].shape)}, got a "
                                 f"replacement of shape {tuple(getattr(value, 'shape', ()))}")
        inner[rest] = value

    def __delitem__(self, key: str) -> None:
        if self._attr == "params":
            raise TypeError("ResidualBlock.params: parameters cannot be deleted (replace them instead)")
        inner, rest = self._locate(key)
        del inner[rest]

    def __iter__(self) -> Iterator[str]:
        for head, child in self._owner.named_children().items():
            for name in getattr(child, self._attr):
                yield f"{head}.{name}"

    def __len__(self) -> int:
        return sum(1 for _ in self)


class ResidualBlock(Layer):
    """y = ReLU(F(x) + S(x)) with two 3x3 convolutions in F and an identity or 1x1 projection shortcut S.

    ``channels`` in, ``out_channels`` out (default: the same), ``stride`` on the first 3x3 convolution
    and on the projection. The projection is used exactly when the shape changes
    (``out_channels != channels`` or ``stride != 1``). Parameters are named "conv1.W", "bn1.gamma",
    "conv2.W", "bn2.gamma", "shortcut.W", "shortcut_bn.gamma", ... (a write-through view over the
    sub-layers, like :class:`~dlcore.nn.Sequential`); ``forward(x, train=True)`` as for batch norm.
    """

    def __init__(self, channels: int, out_channels: int | None = None, stride: int = 1, *, batch_norm: bool = True,
                 init: str | initializers.Initializer = "he", rng: backend.Seed = None,
                 dtype: Any = "float32") -> None:  # no super().__init__(): params/grads are views
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
        self._params = _ChildView(self, "params")
        self._grads = _ChildView(self, "grads")

    # -- sub-layers and flat views ---------------------------------------------------------
    def named_children(self) -> dict[str, Layer]:
        names = ("conv1", "bn1", "relu1", "conv2", "bn2", "shortcut", "shortcut_bn", "relu_out")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}

    def children(self) -> tuple[Layer, ...]:
        return tuple(self.named_children().values())

    @property
    def params(self) -> MutableMapping:
        """Write-through view "<sub-layer>.<name>" -> that sub-layer's parameter."""
        return self._params

    @params.setter
    def params(self, values: Mapping[str, Any]) -> None:
        if values is self._params:
            return
        values = dict(values)
        if set(values) != set(self._params):
            raise KeyError(f"ResidualBlock.params: expected exactly the keys {list(self._params)}, got {list(values)}")
        for key, value in values.items():
            self._params[key] = value

    @property
    def grads(self) -> MutableMapping:
        """Write-through view "<sub-layer>.<name>" -> that sub-layer's gradient (filled by backward)."""
        return self._grads

    @grads.setter
    def grads(self, values: Mapping[str, Any]) -> None:
        if values is self._grads:
            return
        for child in self.children():
            child.grads = {}
        for key, value in dict(values).items():
            self._grads[key] = value

    def buffers(self) -> dict[str, Any]:
        return {f"{head}.{name}": value for head, child in self.named_children().items()
                for name, value in child.buffers().items()}

    def _set_buffer(self, name: str, value: Any) -> None:
        head, _, rest = name.partition(".")
        self.named_children()[head]._set_buffer(rest, value)

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
