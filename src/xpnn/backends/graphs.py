"""Graph capture as a compiler: the CuPy backend's ``jit`` (CUDA graphs).

CuPy has no tracer, but a CUDA stream can record the kernels a function launches and replay
them as one graph, with no Python and no per-kernel launch cost. A graph replays on the
memory it was captured with, so the compiled function keeps *static* buffers per input
signature: each call copies its inputs into them (nothing to copy for the arrays the last
replay returned, which are those buffers: params and optimizer state updated in place),
launches the graph and returns its output arrays, which the next replay overwrites.

The first ``warmup`` calls of each signature run the function eagerly (libraries allocate
and pick kernels there, which must not happen during a capture); the next call captures
once and every later call replays. The capture and launch themselves are the library's
(``capture(run, static) -> (graph, outputs)``, ``graph.launch()``): this module is only the
bookkeeping, which the CPU suite tests with a replaying fake.
"""

from __future__ import annotations


class GraphReplay:
    """``fn`` (a list of arrays -> a list of arrays) run through captured graphs.

    Args:
        fn: the function (a compiled step's pure function).
        capture: ``capture(run, static)`` records ``run()``'s kernels, which read and write
            the buffers ``static``, and returns ``(graph, outputs)``; ``graph.launch()``
            replays them.
        copy_into: ``copy_into(static, a)`` copies array ``a`` into the buffer ``static``.
        empty_like: a new buffer shaped and typed as ``a``.
        warmup: eager calls per signature before the capture.
    """

    def __init__(self, fn, capture, copy_into, empty_like, warmup: int = 1):
        self.fn, self.capture, self.copy_into, self.empty_like = fn, capture, copy_into, empty_like
        self.warmup = warmup
        self.graphs: dict = {}  # signature -> (static inputs, graph, outputs)
        self.seen: dict = {}  # signature -> eager calls so far
        self.captures = 0

    def __call__(self, flat: list) -> list:
        sig = tuple((tuple(a.shape), str(a.dtype)) for a in flat)
        entry = self.graphs.get(sig)
        if entry is None:
            done = self.seen.get(sig, 0)
            if done < self.warmup:
                self.seen[sig] = done + 1
                return self.fn(flat)
            static = [self.empty_like(a) for a in flat]
            for s, a in zip(static, flat):
                self.copy_into(s, a)
            graph, outputs = self.capture(lambda: self.fn(static), static)
            self.captures += 1
            entry = self.graphs[sig] = (static, graph, list(outputs))
        static, graph, outputs = entry
        for s, a in zip(static, flat):
            if s is not a:  # the arrays the last replay returned are the buffers themselves
                self.copy_into(s, a)
        graph.launch()
        return list(outputs)
