"""Gradient-descent update rules, in the lecture's notation (ε: learning rate, g = ∇E).

    opt = Adam(lr=1e-3)
    opt.update(params, grads)      # params[k] updated in place from grads[k], for every key k

One update, in this order:

1. ``clip_norm=c``: g ← g c / max(||g||, c), ||g|| the global norm over all keys
   (on a private copy: the caller's ``grads`` mapping is not modified);
2. ``weight_decay=λ`` (L2): g ← g + λ w   (AdamW instead decays the weight itself, see there);
3. the rule's step Δw, and w ← w + Δw, written in place into the array ``params[k]``
   and stored back with ``params[k] = w`` (so write-through views work);
4. ``max_norm=c``: rescale each unit's incoming weights to norm <= c (parameters with >= 2 axes
   only, never biases; see :mod:`dlcore.optim.constraints`).

Per-key state (velocities, moments) is created lazily in the namespace, on the device and
in the dtype of the parameter; it follows the parameter if the model is moved (``model.to``,
``model.astype``) between updates. ``opt.lr`` is the rate of the next update:
``schedule(step_count // schedule_every)`` with a schedule, the constant rate otherwise;
``opt.step_count`` counts the updates made.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, MutableMapping
from typing import Any

from dlcore import backend
from dlcore.optim.constraints import apply_max_norm, clipped

__all__ = ["Optimizer", "SGD", "Momentum", "Nesterov", "AdaGrad", "RMSProp", "Adam", "AdamW"]

Schedule = Callable[[int], float]


class Optimizer:
    """Base class of the update rules. Subclasses implement :meth:`_step` (returns Δw for one key).

    Options common to every optimizer (all keyword-only except ``lr``):

    - ``lr``: a number ε, or a schedule ``t -> ε_t`` (same as ``schedule=``); default per rule;
    - ``weight_decay`` λ >= 0: L2 penalty λ/2 ||w||², i.e. g ← g + λ w (decoupled in AdamW);
    - ``decay_biases``: when False, parameters with fewer than 2 axes get no weight decay;
    - ``max_norm`` c: after the step, each unit's incoming weights get norm <= c (>= 2-D params only);
    - ``clip_norm`` c: before the step, the gradients are scaled to a global norm <= c;
    - ``schedule``: ``t -> ε_t``, evaluated at t = step_count // ``schedule_every`` (default: every update).
    """

    default_lr: float = 0.01

    def __init__(self, lr: float | Schedule | None = None, *, weight_decay: float = 0.0, decay_biases: bool = True,
                 max_norm: float | None = None, clip_norm: float | None = None, schedule: Schedule | None = None,
                 schedule_every: int = 1) -> None:
        name = type(self).__name__
        if callable(lr):
            if schedule is not None:
                raise ValueError(f"{name}: got a schedule both as lr and as schedule=; pass it once")
            lr, schedule = None, lr
        if schedule is not None and lr is not None:
            raise ValueError(
                f"{name}: got both lr={lr!r} and schedule={schedule!r}; the schedule sets the rate, "
                "so pass only schedule= (its lr0 is the initial rate)"
            )
        if schedule is not None and not callable(schedule):
            raise TypeError(f"{name}: expected schedule to be a callable t -> lr, got {type(schedule).__name__}")
        self._lr = self._check_lr(self.default_lr if lr is None else lr)
        self.schedule = schedule
        if int(schedule_every) != schedule_every or schedule_every < 1:
            raise ValueError(f"{name}: expected schedule_every to be a positive integer, got {schedule_every!r}")
        self.schedule_every = int(schedule_every)
        self.weight_decay = self._check_nonneg("weight_decay", weight_decay)
        self.decay_biases = bool(decay_biases)
        self.max_norm = None if max_norm is None else self._check_positive("max_norm", max_norm)
        self.clip_norm = None if clip_norm is None else self._check_positive("clip_norm", clip_norm)
        self.state: dict[Hashable, dict[str, Any]] = {}
        self.step_count = 0
        #: Global gradient norm before clipping at the last update (only with ``clip_norm``).
        self.last_grad_norm: float | None = None

    # -- hyperparameter checks -----------------------------------------------------------
    def _check_lr(self, lr: Any) -> float:
        try:
            value = float(lr)
        except (TypeError, ValueError):
            raise TypeError(f"{type(self).__name__}: expected the learning rate to be a number, got {lr!r}") from None
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{type(self).__name__}: expected a learning rate that is finite and >= 0, got {lr!r}")
        return value

    def _check_nonneg(self, name: str, value: float) -> float:
        value = float(value)
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{type(self).__name__}: expected {name} to be finite and >= 0, got {value}")
        return value

    def _check_positive(self, name: str, value: float) -> float:
        value = float(value)
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"{type(self).__name__}: expected {name} to be finite and > 0, got {value}")
        return value

    def _check_unit(self, name: str, value: float, *, closed: bool = False) -> float:
        value = float(value)
        ok = 0 <= value <= 1 if closed else 0 <= value < 1
        if not ok:
            interval = "[0, 1]" if closed else "[0, 1)"
            raise ValueError(f"{type(self).__name__}: expected {name} in {interval}, got {value}")
        return value

    # -- learning rate ---------------------------------------------------------------------
    @property
    def lr(self) -> float:
        """The rate of the next update: schedule(step_count // schedule_every), or the constant rate."""
        if self.schedule is None:
            return self._lr
        return self._check_lr(self.schedule(self.step_count // self.schedule_every))

    @lr.setter
    def lr(self, value: float) -> None:
        """Set a constant rate (this removes a schedule)."""
        self._lr = self._check_lr(value)
        self.schedule = None

    # -- the update --------------------------------------------------------------------------
    def _validate(self, params: Mapping[Hashable, Any], grads: Mapping[Hashable, Any]) -> None:
        name = f"{type(self).__name__}.update"
        if not isinstance(params, Mapping) or not isinstance(grads, Mapping):
            raise TypeError(
                f"{name}: expected params and grads to be mappings name -> array, got "
                f"{type(params).__name__} and {type(grads).__name__}"
            )
        pkeys, gkeys = list(params.keys()), list(grads.keys())
        if set(pkeys) != set(gkeys):
            missing = [k for k in pkeys if k not in grads]
            extra = [k for k in gkeys if k not in params]
            parts = []
            if missing:
                parts.append(f"no gradient for parameter(s) {missing}")
            if extra:
                parts.append(f"gradient(s) {extra} match no parameter")
            raise ValueError(
                f"{name}: params and grads must have the same keys: {'; '.join(parts)} "
                "(did backward run, and is the same model's params/grads pair passed?)"
            )
        for key in pkeys:
            w, g = params[key], grads[key]
            for what, a in (("parameter", w), ("gradient", g)):
                if not (hasattr(a, "shape") and hasattr(a, "dtype")):
                    raise TypeError(f"{name}: {what} {key!r} is not an array, got {type(a).__name__}")
            if tuple(g.shape) != tuple(w.shape):
                raise ValueError(
                    f"{name}: gradient {key!r} has shape {tuple(g.shape)} but the parameter has shape {tuple(w.shape)}"
                )
            wd, gd = backend.dtype_name(w.dtype), backend.dtype_name(g.dtype)
            if not wd.startswith("float"):
                raise TypeError(f"{name}: parameter {key!r} must have a floating dtype, got {wd}")
            if wd != gd:
                raise TypeError(
                    f"{name}: gradient {key!r} has dtype {gd} but the parameter has dtype {wd}; "
                    "optimizers never cast silently"
                )
            backend.namespace(w, g, where=f"{name} (key {key!r})")

    def update(self, params: MutableMapping[Hashable, Any], grads: Mapping[Hashable, Any]) -> None:
        """One step: ``params[k] ← params[k] + Δw_k`` in place for every key (see the module docstring)."""
        self._validate(params, grads)
        lr = self.lr
        if self.clip_norm is not None:
            grads, self.last_grad_norm = clipped(grads, self.clip_norm)
        for key in list(params.keys()):
            w, g = params[key], grads[key]
            if self.weight_decay and not self._decoupled and self._decays(w):
                g = g + self.weight_decay * w                 # ∇(E + λ/2 ||w||²) = g + λ w
            w = self._apply_step(key, w, g, lr)                # w += Δw, in place where the backend allows
            params[key] = w
        self.step_count += 1
        if self.max_norm is not None:
            apply_max_norm(params, self.max_norm)

    #: True for rules whose weight decay is decoupled from the gradient (AdamW).
    _decoupled = False

    def _decays(self, w: Any) -> bool:
        return self.decay_biases or w.ndim >= 2

    def _apply_step(self, key: Hashable, w: Any, g: Any, lr: float) -> Any:
        """w ← w + Δw (in place where the backend allows); returns w."""
        w += self._step(key, w, g, lr)
        return w

    def _step(self, key: Hashable, w: Any, g: Any, lr: float) -> Any:  # pragma: no cover - abstract
        """Δw for parameter ``key`` from its (decayed, clipped) gradient ``g`` at rate ``lr``."""
        raise NotImplementedError

    # -- per-key state ---------------------------------------------------------------------
    def _slot(self, key: Hashable, name: str, w: Any) -> Any:
        """State array ``name`` of ``key``: zeros like ``w`` on first use, then moved/cast to follow ``w``."""
        slots = self.state.setdefault(key, {})
        s = slots.get(name)
        if s is None:
            xp = backend.namespace(w)
            s = xp.zeros_like(w)
        else:
            if tuple(s.shape) != tuple(w.shape):
                raise ValueError(
                    f"{type(self).__name__}.update: state {name!r} of parameter {key!r} has shape {tuple(s.shape)} "
                    f"but the parameter now has shape {tuple(w.shape)}; call opt.reset() after changing the model"
                )
            if type(s) is not type(w) or backend.device_name(s) != backend.device_name(w):
                s = backend.to_device(s, backend.namespace(w))
            if backend.dtype_name(s.dtype) != backend.dtype_name(w.dtype):
                xp = backend.namespace(w)
                s = xp.astype(s, w.dtype)
        slots[name] = s
        return s

    def _count(self, key: Hashable) -> int:
        """Per-key update counter t = 1, 2, ... (for bias correction), incremented on each call."""
        slots = self.state.setdefault(key, {})
        slots["step"] = int(slots.get("step", 0)) + 1
        return slots["step"]

    def reset(self) -> None:
        """Forget all state (velocities, moments) and set step_count to 0."""
        self.state = {}
        self.step_count = 0
        self.last_grad_norm = None

    def state_dict(self) -> dict[str, Any]:
        """A copy of the mutable state: {'optimizer': name, 'step_count': n, 'state': {key: {slot: array}}}.

        Hyperparameters are constructor arguments and are not included.
        """
        state = {}
        for key, slots in self.state.items():
            state[key] = {name: self._copy(v) for name, v in slots.items()}
        return {"optimizer": type(self).__name__, "step_count": self.step_count, "state": state}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (arrays are copied)."""
        name = type(self).__name__
        if not isinstance(state_dict, Mapping) or not {"optimizer", "step_count", "state"} <= set(state_dict):
            raise ValueError(f"{name}.load_state_dict: expected the dict returned by state_dict()")
        if state_dict["optimizer"] != name:
            raise ValueError(f"{name}.load_state_dict: the state belongs to a {state_dict['optimizer']} optimizer")
        self.state = {key: {s: self._copy(v) for s, v in slots.items()} for key, slots in state_dict["state"].items()}
        self.step_count = int(state_dict["step_count"])

    @staticmethod
    def _copy(v: Any) -> Any:
        if hasattr(v, "shape") and hasattr(v, "dtype"):
            return backend.namespace(v).asarray(v, copy=True)
        return v

    def _hyper(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        parts = [f"lr={self._lr!r}" if self.schedule is None else f"schedule={self.schedule!r}"]
        parts += [f"{k}={v!r}" for k, v in self._hyper().items()]
        if self.weight_decay:
            parts.append(f"weight_decay={self.weight_decay!r}")
        if self.max_norm is not None:
            parts.append(f"max_norm={self.max_norm!r}")
        if self.clip_norm is not None:
            parts.append(f"clip_norm={self.clip_norm!r}")
        return f"{type(self).__name__}({', '.join(parts)})"


class SGD(Optimizer):
    """Plain gradient descent: w ← w − ε g."""

    def _step(self, key: Hashable, w: Any, g: Any, lr: float) -> Any:
        return -lr * g

    def _apply_step(self, key: Hashable, w: Any, g: Any, lr: float) -> Any:
        """w ← w − ε g in one fused pass (:func:`dlcore.backend.add_scaled`; same roundings as ``w += -ε g``)."""
        return backend.add_scaled(w, -lr, g)


class Momentum(Optimizer):
    """Gradient descent with momentum (lecture form): Δw ← μ Δw − ε g;  w ← w + Δw.

    PyTorch writes v ← μ v + g; w ← w − ε v. With a constant ε both are the same
    rule (Δw = −ε v, by induction); under a schedule the lecture form keeps old
    steps at the rate they were taken with, PyTorch's rescales them with the new ε.
    State: ``velocity`` = Δw.
    """

    def __init__(self, lr: float | Schedule | None = None, momentum: float = 0.9, **kw: Any) -> None:
        super().__init__(lr, **kw)
        self.momentum = self._check_unit("momentum", momentum)

    def _hyper(self) -> dict[str, Any]:
        return {"momentum": self.momentum}

    def _step(self, key: Hashable, w: Any, g: Any, lr: float) -> Any:
        v = self.momentum * self._slot(key, "velocity", w) - lr * g      # Δw ← μ Δw − ε g
        self.state[key]["velocity"] = v
        return v


class Nesterov(Momentum):
    """Nesterov's accelerated gradient, in the form of Sutskever et al. (2013) / PyTorch ``nesterov=True``.

    The gradient g is taken at the current weights (not at a look-ahead point); the look-ahead
    is folded into the update:

        Δw ← μ Δw − ε g;   w ← w + μ Δw − ε g.

    With Δw = −ε v this is PyTorch's v ← μ v + g; w ← w − ε (g + μ v) for a constant ε.
    State: ``velocity`` = Δw.
    """

    def _step(self, key: Hashable, w: Any, g: Any, lr: float) -> Any:
        v = super()._step(key, w, g, lr)                                  # Δw ← μ Δw − ε g
        return self.momentum * v - lr * g                                 # w ← w + μ Δw − ε g


class AdaGrad(Optimizer):
    """AdaGrad (Duchi et al. 2011): h ← h + g ⊙ g;  w ← w − ε g / (√h + eps).

    h starts at 0 and eps is added after the square root, as in PyTorch's ``Adagrad``
    (``initial_accumulator_value=0``, ``lr_decay=0``). State: ``sum_sq`` = h.
    """

    def __init__(self, lr: float | Schedule | None = None, eps: float = 1e-10, **kw: Any) -> None:
        super().__init__(lr, **kw)
        self.eps = self._check_nonneg("eps", eps)

    def _hyper(self) -> dict[str, Any]:
        return {"eps": self.eps}

    def _step(self, key: Hashable, w: Any, g: Any, lr: float) -> Any:
        xp = backend.namespace(w)
        h = self._slot(key, "sum_sq", w) + g * g                         # h ← h + g²
        self.state[key]["sum_sq"] = h
        return -lr * g / (xp.sqrt(h) + self.eps)                          # Δw = −ε g / (√h + eps)


class RMSProp(Optimizer):
    """RMSProp (Tieleman & Hinton 2012): h ← ρ h + (1 − ρ) g ⊙ g;  w ← w − ε g / (√h + eps).

    h starts at 0 and eps is added after the square root, as PyTorch's ``RMSprop``
    (its ``alpha`` is ρ). State: ``mean_sq`` = h.
    """

    default_lr = 0.01

    def __init__(self, lr: float | Schedule | None = None, rho: float = 0.99, eps: float = 1e-8, **kw: Any) -> None:
        super().__init__(lr, **kw)
        self.rho = self._check_unit("rho", rho)
        self.eps = self._check_nonneg("eps", eps)

    def _hyper(self) -> dict[str, Any]:
        return {"rho": self.rho, "eps": self.eps}

    def _step(self, key: Hashable, w: Any, g: Any, lr: float) -> Any:
        xp = backend.namespace(w)
        h = self.rho * self._slot(key, "mean_sq", w) + (1.0 - self.rho) * (g * g)   # h ← ρ h + (1 − ρ) g²
        self.state[key]["mean_sq"] = h
        return -lr * g / (xp.sqrt(h) + self.eps)


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction; t counts the updates of each key (1, 2, ...).

        m ← β1 m + (1 − β1) g;        v ← β2 v + (1 − β2) g ⊙ g
        m̂ = m / (1 − β1^t);           v̂ = v / (1 − β2^t)
        w ← w − ε m̂ / (√v̂ + eps)

    ``weight_decay`` here is the L2 penalty added to g (as PyTorch's ``Adam``); see :class:`AdamW`
    for the decoupled form. State: ``m``, ``v``, ``step`` = t.
    """

    default_lr = 0.001

    def __init__(self, lr: float | Schedule | None = None, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, **kw: Any) -> None:
        super().__init__(lr, **kw)
        self.beta1 = self._check_unit("beta1", beta1)
        self.beta2 = self._check_unit("beta2", beta2)
        self.eps = self._check_nonneg("eps", eps)

    def _hyper(self) -> dict[str, Any]:
        return {"beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}

    def _step(self, key: Hashable, w: Any, g: Any, lr: float) -> Any:
        xp = backend.namespace(w)
        m = self.beta1 * self._slot(key, "m", w) + (1.0 - self.beta1) * g
        v = self.beta2 * self._slot(key, "v", w) + (1.0 - self.beta2) * (g * g)
        t = self._count(key)
        self.state[key]["m"], self.state[key]["v"] = m, v
        m_hat = m / (1.0 - self.beta1**t)
        v_hat = v / (1.0 - self.beta2**t)
        return -lr * m_hat / (xp.sqrt(v_hat) + self.eps)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019):

        w ← w − ε λ w − ε m̂ / (√v̂ + eps)

    with m̂, v̂ from the *undecayed* gradient (same as PyTorch's ``AdamW``, which multiplies
    w by (1 − ε λ) first). Default λ = 0.01.
    """

    _decoupled = True

    def __init__(self, lr: float | Schedule | None = None, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, weight_decay: float = 0.01, **kw: Any) -> None:
        super().__init__(lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay, **kw)

    def _step(self, key: Hashable, w: Any, g: Any, lr: float) -> Any:
        step = super()._step(key, w, g, lr)
        if self.weight_decay and self._decays(w):
            step = step - (lr * self.weight_decay) * w
        return step
