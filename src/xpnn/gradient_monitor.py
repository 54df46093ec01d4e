"""GradientMonitor: per-layer gradient norms, update sizes and dead ReLUs while training,
with warnings when gradients vanish or explode (a Callback, also ``xpnn.callbacks.GradientMonitor``).

It reads the gradients the optimizer is given (``after_backward``), the params around the
step, and each ReLU's ``mask`` between forward and backward (``on_loss``).
"""

from __future__ import annotations

import math
import warnings

from . import _checks
from .callbacks import Callback, register_callback
from .layers.activations import ReLU


class GradientWarning(UserWarning):
    """Gradients vanish or explode, or most ReLU units are dead (raised by GradientMonitor)."""


@register_callback
class GradientMonitor(Callback):
    """Watch gradient health while training: per-layer norms, update sizes, dead ReLUs.

    Every ``every`` batches it records, for each layer with params (named by path and
    repr, e.g. ``"2:Dense(64, 64)"``; all of a layer's params count as one vector):

    - ``grad_norm``: ||grad||, the L2 norm of the layer's gradient as the optimizer got it
      (after the Trainer's clipping and, under DataParallel, summed over ranks);
    - ``weight_norm``: ||W||, the norm of its params after the step;
    - ``update_ratio``: ||W_t - W_{t-1}|| / ||W_{t-1}||, the size of the update this step
      actually made relative to the weights, measured exactly from a copy of the weights
      taken one batch before (so it includes momentum, Adam's scaling and weight decay,
      which ``lr * ||grad||`` would not). About 1e-3 is the usual healthy value; 1e-1 and
      above means the steps rewrite the weights, 1e-6 and below that they barely move.

    and for each ReLU layer ``dead_relu``: the fraction of its units that were not active
    for any sample of the batch (from the 0/1 mask the ReLU keeps from its forward pass).

    It warns (``warnings.warn`` with category :class:`GradientWarning`, and a line in
    ``self.warnings``), once per layer and kind, when:

    - gradients vanish: a layer's gradient norm is below ``vanish_ratio`` (1e-3) times the
      gradient norm of the last layer with params, so the early layers learn orders of
      magnitude slower than the last;
    - gradients explode: a norm is not finite or above ``explode_norm`` (1e3), or the mean
      of the last ``window`` records is ``explode_growth`` (10) times the mean of the first
      ``window`` records;
    - ReLUs die: more than ``dead_fraction`` (0.9) of a ReLU layer's units are inactive for
      the whole batch: they pass no gradient, so they may never recover.

    Cost: each record computes a few norms on the device and reads them all back in one
    host sync, and the batch before a record keeps a device copy of every param (the
    model's parameter memory once more). With ``every=1`` that is one sync and one copy
    per batch, fine on the CPU; on a GPU choose ``every`` in the tens or hundreds.

    Attributes:
        history: ``{"step": [...], "epoch": [...], "grad_norm": {layer: [...]},
            "weight_norm": {layer: [...]}, "update_ratio": {layer: [...]},
            "dead_relu": {layer: [...]}}``, one entry per record; ``step`` counts batches
            from 1 over every fit this monitor saw.
        warnings: the warning messages, in order.
    """

    name = "gradient_monitor"

    def __init__(
        self,
        every: int = 1,
        vanish_ratio: float = 1e-3,
        explode_norm: float = 1e3,
        explode_growth: float = 10.0,
        window: int = 5,
        dead_fraction: float = 0.9,
    ):
        where = "GradientMonitor"
        self.every = _checks.positive_int(every, "every", where)
        self.window = _checks.positive_int(window, "window", where)
        self.vanish_ratio = _checks.positive_number(vanish_ratio, "vanish_ratio", where)
        self.explode_norm = _checks.positive_number(explode_norm, "explode_norm", where)
        self.explode_growth = _checks.positive_number(explode_growth, "explode_growth", where)
        self.dead_fraction = _checks.number(dead_fraction, "dead_fraction", where, 0.0, 1.0, low_open=True)
        self._watched = None
        self._reset()

    def _reset(self):
        self.history = {
            "step": [],
            "epoch": [],
            "grad_norm": {},
            "weight_norm": {},
            "update_ratio": {},
            "dead_relu": {},
        }
        self.warnings: list = []
        self._warned: set = set()
        self._step = 0
        self._epoch = 0
        self._previous = None  # device copies of the params, taken the batch before a record
        self._dead = None  # per ReLU layer, the dead fraction of the batch being recorded (device)
        self._grads = None  # per layer (by its params dict), the gradients the optimizer used

    # ---- hooks ----------------------------------------------------------------------------

    def on_train_begin(self):
        if self.model is not self._watched:  # a new model: its layers are other layers
            self._watched = self.model
            self._reset()
        self._snapshot_if_next_is_recorded()

    def on_epoch_begin(self, epoch):
        self._epoch = epoch

    def on_loss(self, step, loss, out):
        # the ReLU masks exist between forward and backward (backward hands them back):
        # take what the record needs from them now
        if (self._step + 1) % self.every == 0:
            self._dead = self._dead_fractions()

    def after_backward(self, params):
        # the gradients the optimizer is given: summed over ranks and clipped where the
        # Trainer does that (its own hooks run first), not only what backward wrote
        if (self._step + 1) % self.every == 0:
            self._grads = {id(p.store): [] for p in params}
            for p in params:
                self._grads[id(p.store)].append(p.grad)
        return params

    def on_batch_end(self, batch, running):
        self._step += 1
        if self._step % self.every == 0:
            self._record()
        self._snapshot_if_next_is_recorded()

    # ---- measuring ------------------------------------------------------------------------

    def _param_layers(self, with_grads=True):
        """(name, layer) for every layer with params of its own, nested ones included,
        named by path and repr ("2:Dense(64, 64)", "1.0:Dense(8, 8)")."""
        return [
            (f"{path}:{layer!r}", layer)
            for path, layer in self.model.named_layers()
            if path and layer.params and (not with_grads or all(k in layer.grads for k in layer.params))
        ]

    def _dead_fractions(self):
        """{name: 0-d array}: the fraction of each ReLU layer's units inactive for every
        sample of the batch (from the mask its forward saved)."""
        xp = self.model.backend.xp
        found = {}
        for path, layer in self.model.named_layers():
            mask = layer.mask if isinstance(layer, ReLU) else None
            if mask is not None:
                ever_active = xp.max(mask, axis=0)  # mask is 0/1: the max over the batch is 1 if any sample fired
                found[f"{path}:{layer!r}"] = xp.mean(xp.astype(ever_active == 0, self.model.dtype))
        return found

    def _snapshot_if_next_is_recorded(self):
        if (self._step + 1) % self.every == 0:
            xp = self.model.backend.xp
            self._previous = {
                name: [xp.asarray(p, copy=True) for p in layer.params.values()]
                for name, layer in self._param_layers(with_grads=False)
            }
        else:
            self._previous = None

    def _record(self):
        backend = self.model.backend
        xp = backend.xp
        zero = xp.zeros((), dtype=self.model.dtype, device=backend.device)

        def sq(arrays):  # the squared L2 norm of several arrays taken as one vector
            total = zero
            for a in arrays:
                a = xp.astype(a, self.model.dtype) if a.dtype != self.model.dtype else a
                total = total + xp.sum(a * a)
            return total

        layers, dead = self._param_layers(), self._dead or {}
        relus = list(dead.items())
        self._dead = None
        values = []  # 0-d device arrays, read back together: one host sync per record
        grads = self._grads or {}
        self._grads = None
        for name, layer in layers:
            params = list(layer.params.values())
            values.append(xp.sqrt(sq(grads.get(id(layer.params), [layer.grads[k] for k in layer.params]))))
            values.append(xp.sqrt(sq(params)))
            previous = (self._previous or {}).get(name)
            if previous is not None and len(previous) == len(params):
                values.append(xp.sqrt(sq(p - q for p, q in zip(params, previous))) / xp.sqrt(sq(previous)))
            else:
                values.append(zero + float("nan"))
        values += [fraction for _, fraction in relus]  # a unit is dead if no sample of the batch activated it
        host = backend.to_numpy(xp.stack(values)).tolist() if values else []

        h = self.history
        h["step"].append(self._step)
        h["epoch"].append(self._epoch)
        for j, (name, _) in enumerate(layers):
            g, w, u = host[3 * j : 3 * j + 3]
            h["grad_norm"].setdefault(name, []).append(g)
            h["weight_norm"].setdefault(name, []).append(w)
            h["update_ratio"].setdefault(name, []).append(u)
        for j, (name, _) in enumerate(relus):
            h["dead_relu"].setdefault(name, []).append(host[3 * len(layers) + j])
        self.check([name for name, _ in layers], [name for name, _ in relus])

    # ---- judging --------------------------------------------------------------------------

    def _warn(self, kind, layer, message):
        if (kind, layer) in self._warned:
            return
        self._warned.add((kind, layer))
        message = f"GradientMonitor (step {self._step}): {message}"
        self.warnings.append(message)
        warnings.warn(message, GradientWarning, stacklevel=3)

    def check(self, names=None, relus=None) -> None:
        """Judge the last record of ``history`` as each record is judged during fit (see the
        class docstring), warning once per layer and kind. ``names``: the layers with
        params to judge, in model order (the last one is the reference for vanishing
        gradients); ``relus``: the ReLU layers. None: every layer in ``history``."""
        h = self.history
        names = list(h["grad_norm"]) if names is None else names
        relus = list(h["dead_relu"]) if relus is None else relus
        if names:
            last = names[-1]
            g_last = h["grad_norm"][last][-1]
            for name in names:
                series = h["grad_norm"][name]
                g = series[-1]
                if not math.isfinite(g):
                    self._warn("explode", name, f"gradients explode in layer {name}: the gradient norm is {g}")
                    continue
                if g > self.explode_norm:
                    self._warn(
                        "explode",
                        name,
                        f"gradients explode in layer {name}: the gradient norm is {g:.3g} > {self.explode_norm:.3g}",
                    )
                w = self.window
                if len(series) >= 2 * w:
                    first, recent = sum(series[:w]) / w, sum(series[-w:]) / w
                    if first > 0 and recent > self.explode_growth * first:
                        self._warn(
                            "explode",
                            name,
                            f"gradients explode in layer {name}: the gradient norm grew "
                            f"{recent / first:.3g}x, from {first:.3g} (mean of the first {w} "
                            f"records) to {recent:.3g} (the last {w})",
                        )
                if name != last and math.isfinite(g_last) and g_last > 0 and g == 0.0:
                    self._warn(
                        "vanish",
                        name,
                        f"no gradient reaches layer {name} (its gradient is exactly 0, the "
                        f"last layer's {g_last:.3g}): dead ReLUs or a path that passes "
                        f"no gradient in between",
                    )
                elif name != last and math.isfinite(g_last) and g_last > 0 and g < self.vanish_ratio * g_last:
                    self._warn(
                        "vanish",
                        name,
                        f"gradients vanish in layer {name}: the gradient norm {g:.3g} is "
                        f"{g / g_last:.2g}x that of the last layer {last} ({g_last:.3g}); "
                        f"try ReLU with He init, BatchNorm or residual connections",
                    )
        for name in relus:
            dead = h["dead_relu"][name][-1]
            if dead > self.dead_fraction:
                self._warn(
                    "dead",
                    name,
                    f"{dead:.0%} of the units of {name} are dead (inactive for every sample "
                    f"of the batch); try a smaller learning rate, LeakyReLU or He init",
                )

    # ---- reading ---------------------------------------------------------------------------

    def summary(self) -> str:
        """A table of the last record: one row per layer (also printed)."""
        h = self.history
        rows = [("layer", "grad norm", "weight norm", "update/weight", "dead ReLU")]
        for name in h["grad_norm"]:
            rows.append(
                (
                    name,
                    f"{h['grad_norm'][name][-1]:.3g}",
                    f"{h['weight_norm'][name][-1]:.3g}",
                    f"{h['update_ratio'][name][-1]:.3g}",
                    "",
                )
            )
        for name in h["dead_relu"]:
            rows.append((name, "", "", "", f"{h['dead_relu'][name][-1]:.0%}"))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = [
            "  ".join(f"{c:<{widths[i]}}" if i == 0 else f"{c:>{widths[i]}}" for i, c in enumerate(r)) for r in rows
        ]
        text = "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])
        print(text)
        return text

    def plot(self, path=None, title="Gradient norms per layer"):
        """Per-layer gradient norms over the training steps (log scale), next to the
        update/weight ratios and, if there are ReLU layers, their dead fractions.
        Returns the matplotlib Figure; saves a PNG at ``path``."""
        from .plotting import plot_gradient_history

        return plot_gradient_history(self.history, path=path, title=title)
