"""One search worker on a shared study, for tests/model_selection/test_shared_study.py:

    python tests/model_selection/_search_worker.py STORAGE STUDY N_ITER [--seed S] [--sampler tpe|random|grid|cmaes]
        [--start-at T] [--hang-at-trial K --ready FILE] [--gate FILE] [--heartbeat SECONDS]

--start-at: wait until time.time() reaches T, so that workers start their trials together.
--hang-at-trial: this worker's K-th trial (from 0) touches FILE and sleeps (to be killed).
--gate: this worker's trials after its first wait until FILE exists (so that a test can kill
another worker while this one is sure to have trials left).
Prints one JSON line: this worker's trial numbers and the study's size as it saw it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "src"))

import xpnn
from xpnn.model_selection import BayesSearch, EvolutionSearch, IntUniform, LogUniform, open_storage

CV = 2
SPACES = {
    "grid": {"hidden": [4, 8, 12, 16], "lr": [0.01, 0.03, 0.1]},
    "other": {"hidden": IntUniform(2, 24), "lr": LogUniform(1e-3, 0.3)},
}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("storage")
    p.add_argument("study")
    p.add_argument("n_iter", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sampler", default="tpe")
    p.add_argument("--start-at", type=float, default=0.0)
    p.add_argument("--hang-at-trial", type=int, default=None)
    p.add_argument("--ready", default=None)
    p.add_argument("--gate", default=None)
    p.add_argument("--heartbeat", type=int, default=60)
    args = p.parse_args()
    (X, y), _ = xpnn.load_digits(flatten=True)
    X, y = X[:120], y[:120]
    calls = [0]

    def build(hidden=8, lr=0.03):
        calls[0] += 1
        if args.hang_at_trial is not None and calls[0] == CV * args.hang_at_trial + 1:
            with open(args.ready, "w") as f:
                f.write("hanging")
            time.sleep(600)
        if args.gate is not None and calls[0] > CV:
            while not os.path.exists(args.gate):
                time.sleep(0.05)
        model = xpnn.NeuralNetwork(64, hidden, 10, seed=0)
        return model.compile("softmax_cross_entropy", xpnn.Adam(lr=lr))

    time.sleep(max(0.0, args.start_at - time.time()))  # open the storage together: the tables race
    storage = open_storage(args.storage, heartbeat_interval=args.heartbeat)
    space = SPACES["grid" if args.sampler == "grid" else "other"]
    common = dict(n_iter=args.n_iter, cv=CV, seed=args.seed, fit_kwargs={"epochs": 1, "batch_size": 32})
    if args.sampler == "cmaes":
        search = EvolutionSearch(build, space, storage=storage, study_name=args.study, **common)
    else:
        search = BayesSearch(
            build, space, storage=storage, study_name=args.study, pruning=False, sampler=args.sampler, **common
        )
    time.sleep(max(0.0, args.start_at - time.time()))
    search.fit(X, y)
    mine = [t.number for t in search.study_.trials if t.user_attrs.get("xpnn:worker", "").endswith(f":{os.getpid()}")]
    print(json.dumps({"mine": mine, "results": len(search.results_)}))


if __name__ == "__main__":
    main()
