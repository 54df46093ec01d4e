"""Model selection: cross-validation folds, ``cross_validate`` and hyper-parameter searches.

Laid out as scikit-learn's: ``splits`` (KFold, StratifiedKFold), ``validation``
(cross_validate and scoring), ``distributions`` (Choice, Uniform, LogUniform, IntUniform)
and ``search`` (GridSearch, RandomSearch, BayesSearch, EvolutionSearch); every name is
importable from here.

Folds are host-side bookkeeping: a splitter yields pairs of NumPy int64 index arrays
``(train_idx, test_idx)`` (scikit-learn's semantics), and the data are cut with them where
they live (a NumPy array on the host, a backend array on its device). Training and scoring
run on the model's backend; a score comes back as a Python float.

A model is made by ``build_fn(**params)``, which returns a *compiled* model (a fresh one per
call: every fold and every trial starts from scratch). Seeds live in the model (its
``seed=``) and in the searches' ``seed=``, so a search is reproducible: the same seed gives
the same trials and the same scores (the timings differ, of course).

    def build(hidden=32, lr=1e-3):
        model = xpnn.NeuralNetwork(64, hidden, 10, seed=0)
        return model.compile("softmax_cross_entropy", xpnn.Adam(lr=lr), metrics=["accuracy"])

    search = GridSearch(build, {"hidden": [16, 64], "lr": [1e-3, 1e-2]}, cv=3,
                        fit_kwargs={"epochs": 5}).fit(X, y)
    search.best_params_, search.best_score_, search.best_model_
    print(search.to_markdown())

Scores: ``scoring`` is a metric name (see ``xpnn.metrics.METRICS``), ``"loss"`` (the model's
own loss), or a callable ``metric(y_true, y_pred)``. Whether larger is better comes from
``METRIC_MODE`` (so ``scoring="mse"`` and ``"loss"`` are minimised), or from a callable's
``higher_is_better`` attribute (default True). A callable gets what the metrics in fit's
logs get: the targets and ``model.loss.predict(outputs)`` (probabilities for the
cross-entropies), both on the model's device.

BayesSearch needs Optuna (``pip install "xpnn[tune]"``): its TPE sampler proposes the
next trial from the scores so far, a pruner stops hopeless trials early (see BayesSearch),
and a shared ``storage`` lets several processes or machines work on one study at once:
``"journal:study.journal"`` on one machine, ``"postgresql://..."`` across machines (see
``storage``; ``open_storage`` opens one with a chosen heartbeat).
EvolutionSearch runs Optuna's CMA-ES (which also needs the ``cmaes`` package, in the same
extra), or with ``objectives=("score", "n_params")`` NSGA-II, which trades the score
against the model's size and keeps the Pareto front (``search.pareto_front_``).
"""

from __future__ import annotations

from .distributions import Choice, Distribution, IntUniform, LogUniform, Uniform
from .search import BayesSearch, EvolutionSearch, GridSearch, RandomSearch
from .splits import KFold, StratifiedKFold
from .storage import mask_url, open_storage
from .validation import cross_validate

__all__ = [
    "KFold",
    "StratifiedKFold",
    "cross_validate",
    "Distribution",
    "Choice",
    "Uniform",
    "LogUniform",
    "IntUniform",
    "GridSearch",
    "RandomSearch",
    "BayesSearch",
    "EvolutionSearch",
    "open_storage",
    "mask_url",
]
