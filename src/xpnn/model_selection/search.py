"""Hyper-parameter searches: GridSearch, RandomSearch, BayesSearch (Optuna's TPE) and
EvolutionSearch (Optuna's CMA-ES, or NSGA-II for score vs model size).

Each candidate is cross-validated on the same folds (see validation.py), the best mean
score wins, and the winner is refit on all the data; see the package docstring.
"""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np

from .._checks import integer, non_negative_int, positive_int
from ..callbacks import Callback
from .distributions import Choice, Distribution, python_value
from .splits import check_cv, check_data, cv_splits
from .storage import (
    WORKER_ATTR,
    check_storage,
    close,
    fail_dead_workers,
    mask_url,
    open_storage,
    retry_once,
    scrub,
    worker_id,
)
from .validation import Scorer, build_model, check_fit_kwargs, model_scores, run_folds

__all__ = ["GridSearch", "RandomSearch", "BayesSearch", "EvolutionSearch"]

_TUNE_HELP = 'needs Optuna: pip install "xpnn[tune]" (or pip install "optuna>=3")'


# ---- search spaces and grids --------------------------------------------------------------


def _space(param_distributions, where) -> dict:
    """{name: Distribution} from a dict of distributions or lists of values."""
    if not isinstance(param_distributions, dict):
        raise TypeError(
            f"{where}: param_distributions must be a dict {{name: distribution}}, "
            f"found {type(param_distributions).__name__}"
        )
    if not param_distributions:
        raise ValueError(f"{where}: param_distributions is empty; give at least one parameter to search")
    space = {}
    for name, spec in param_distributions.items():
        if not isinstance(name, str):
            raise TypeError(f"{where}: parameter names must be strings (build_fn keywords), found {name!r}")
        if isinstance(spec, Distribution):
            space[name] = spec
        elif isinstance(spec, (list, tuple, range)):
            try:
                space[name] = Choice(spec)
            except ValueError:
                raise ValueError(
                    f"{where}: param_distributions[{name!r}] is an empty list; give at least one value"
                ) from None
        else:
            raise TypeError(
                f"{where}: param_distributions[{name!r}] must be Choice, Uniform, LogUniform, "
                f"IntUniform or a list of values, found {type(spec).__name__} {spec!r} "
                f"(for a fixed value use a list: [{spec!r}])"
            )
    return space


def _grid(param_grid, where) -> list:
    """Every combination of a grid (a dict of value lists, or a list of such dicts), in order:
    the last parameter varies fastest."""
    grids = param_grid if isinstance(param_grid, list) else [param_grid]
    if not grids:
        raise ValueError(f"{where}: param_grid is an empty list; give a dict {{name: [values]}}")
    candidates = []
    for g, grid in enumerate(grids):
        label = f"param_grid[{g}]" if isinstance(param_grid, list) else "param_grid"
        if not isinstance(grid, dict):
            raise TypeError(f"{where}: {label} must be a dict {{name: [values]}}, found {type(grid).__name__}")
        if not grid:
            raise ValueError(f"{where}: {label} is empty; give at least one parameter and its values")
        names, value_lists = [], []
        for name, values in grid.items():
            if not isinstance(name, str):
                raise TypeError(f"{where}: parameter names must be strings (build_fn keywords), found {name!r}")
            if isinstance(values, Choice):
                values = values.options
            elif isinstance(values, Distribution):
                raise TypeError(
                    f"{where}: {label}[{name!r}] is {values!r}, a range a grid cannot enumerate; "
                    f"give a list of values, or use RandomSearch or BayesSearch"
                )
            elif isinstance(values, np.ndarray) and values.ndim == 1:
                values = values.tolist()
            elif not isinstance(values, (list, tuple, range)):
                raise TypeError(
                    f"{where}: {label}[{name!r}] must be a list of values, found "
                    f"{type(values).__name__} {values!r} (for a fixed value use [{values!r}])"
                )
            if len(values) == 0:
                raise ValueError(f"{where}: {label}[{name!r}] is an empty list; give at least one value")
            names.append(name)
            value_lists.append([python_value(v) for v in values])
        candidates += [dict(zip(names, combo)) for combo in itertools.product(*value_lists)]
    return candidates


# ---- searches -----------------------------------------------------------------------------


def _finite(v) -> bool:
    return v is not None and math.isfinite(v)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v).replace("|", "\\|")


class _Search:
    """What the searches share: checks, scoring a candidate on the folds, choosing and
    refitting the best, the results table.

    After ``fit``: ``results_`` (one dict per trial: params, mean_score, std_score, scores
    per fold, fit_time in seconds summed over the folds), ``best_params_``, ``best_score_``,
    ``best_index_`` (into results_) and ``best_model_`` (refit on all the data).
    """

    def __init__(self, build_fn, cv, fit_kwargs, scoring, verbose):
        where = type(self).__name__
        if not callable(build_fn):
            raise TypeError(f"{where}: build_fn must be a function returning a compiled model, found {build_fn!r}")
        self.build_fn = build_fn
        self.cv = check_cv(cv, where)
        self.fit_kwargs = check_fit_kwargs(fit_kwargs, where)
        self.scoring = scoring
        self._scorer = Scorer(scoring, where)
        self.verbose = verbose

    def _sample_from(self, param_distributions, n_iter, seed, where) -> None:
        """Check and keep what a sampling search draws from: the space, how many trials, the seed."""
        self.param_distributions = param_distributions
        self._dists = _space(param_distributions, where)
        self.n_iter = positive_int(n_iter, "n_iter", where)
        self.seed = non_negative_int(seed, "seed", where)

    @property
    def mode(self) -> str:
        """ "max" if a larger score is better, "min" if a smaller one is."""
        return self._scorer.mode

    _dists: dict  # name -> Distribution, set by each search's __init__

    @property
    def distributions(self) -> dict:
        """The search space: parameter name -> its Distribution (``decode`` turns a value
        a study stored back into the parameter's value)."""
        return self._dists

    def _where(self, method):
        return f"{type(self).__name__}.{method}"

    def prepare(self, X, y):
        where = self._where("fit")
        check_data(X, y, where)
        self._folds = cv_splits(self.cv, X, y, where)

    def _evaluate(self, params, X, y, watch_first_fold=None, build_fn=None) -> dict:
        """Cross-validate one candidate: its results_ entry. (``build_fn`` stands in for
        self.build_fn: EvolutionSearch wraps it to see the models it builds.)"""
        runs = run_folds(
            build_fn or self.build_fn,
            params,
            X,
            y,
            self._folds,
            self.fit_kwargs,
            [self._scorer],
            self._where("fit"),
            watch_first_fold,
        )
        scores = runs[f"test_{self._scorer.name}"]
        mean = sum(scores) / len(scores)
        std = math.sqrt(sum((s - mean) ** 2 for s in scores) / len(scores))  # population std, as sklearn
        return {
            "params": dict(params),
            "mean_score": mean,
            "std_score": std,
            "scores": scores,
            "fit_time": sum(runs["fit_time"]),
        }

    def fit(self, X, y):
        """Score each of ``self.candidates`` on the folds, then refit the best on all of
        (X, y). Returns self. (BayesSearch proposes its candidates as it goes instead.)"""
        self.prepare(X, y)
        self.results_ = []
        for i, params in enumerate(self.candidates):
            self.results_.append(self._evaluate(params, X, y))
            self._report(i, len(self.candidates), self.results_[-1])
        return self._finish(X, y)

    def _report(self, i, total, result):
        if self.verbose:
            score = (
                "pruned"
                if result.get("pruned")
                else f"{self._scorer.name} {result['mean_score']:.4f} +/- {result['std_score']:.4f}"
            )
            trial = f", trial {result['number']}" if "number" in result else ""
            print(
                f"[{type(self).__name__} {i + 1}/{total}{trial}] {result['params']}: {score} "
                f"({result['fit_time']:.2f}s)",
                flush=True,
            )

    def _best_index(self):
        """The index in results_ of the best finite score (the earliest on ties), or None."""
        best = None
        for i, r in enumerate(self.results_):
            if _finite(r["mean_score"]) and (
                best is None or self._scorer.better(r["mean_score"], self.results_[best]["mean_score"])
            ):
                best = i
        return best

    def _choose(self, where) -> None:
        """Set best_index_, best_params_ and best_score_ from results_ (``_best_index``)."""
        best = self._best_index()
        if best is None:
            raise RuntimeError(
                f"{where}: no trial finished with a finite score "
                f"({len(self.results_)} trials: all pruned or diverged); check the data, "
                f"the learning rates and the number of epochs"
            )
        self.best_index_ = best
        self.best_params_ = dict(self.results_[best]["params"])
        self.best_score_ = self.results_[best]["mean_score"]

    def _finish(self, X, y):
        """Pick the best trial (``_choose``) and refit it on all the data."""
        self._choose(self._where("fit"))
        model = build_model(self.build_fn, self.best_params_, self._where("fit"))
        model.fit(X, y, **self.fit_kwargs)
        self.best_model_ = model
        return self

    def _sorted(self) -> list:
        """results_ best first; unscored (pruned, NaN) trials last, in trial order."""
        sign = -1.0 if self.mode == "max" else 1.0
        return sorted(
            self.results_, key=lambda r: (0, sign * r["mean_score"]) if _finite(r["mean_score"]) else (1, 0.0)
        )

    def to_markdown(self) -> str:
        """A Markdown table of the trials, best score first."""
        if not hasattr(self, "results_"):
            raise RuntimeError(f"{self._where('to_markdown')}: nothing to show yet; call fit(X, y) first")
        names = []
        for r in self.results_:
            names += [k for k in r["params"] if k not in names]
        with_trial = any("number" in r for r in self.results_)
        extra = self._extra_columns()
        direction = "higher" if self.mode == "max" else "lower"
        head = (["trial"] if with_trial else []) + [
            "rank",
            *names,
            f"mean {self._scorer.name} ({direction} is better)",
            "std",
            *extra,
            "fit time (s)",
        ]
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        rank = 0
        for r in self._sorted():
            scored = _finite(r["mean_score"])
            rank += scored
            if scored:
                score, std = f"{r['mean_score']:.4f}", f"{r['std_score']:.4f}"
            elif r.get("pruned"):
                score, std = f"pruned (epoch {r['pruned_at_epoch'] + 1})", ""
            else:
                score, std = f"{r['mean_score']}", ""
            cells = ([str(r["number"])] if with_trial else []) + [str(rank) if scored else "-"]
            cells += [_fmt(r["params"][k]) if k in r["params"] else "" for k in names]
            cells += [score, std, *(cell(r) for cell in extra.values()), f"{r['fit_time']:.3f}"]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def _extra_columns(self) -> dict:
        """More columns for to_markdown, between std and fit time: {header: cell(result)}."""
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scoring={self.scoring!r}, cv={self.cv!r})"


class GridSearch(_Search):
    """Cross-validate every combination of a grid of hyper-parameters.

    Args:
        build_fn: ``build_fn(**params)`` returns a compiled model.
        param_grid: {name: [values]} (every combination is tried; the last name varies
            fastest), or a list of such dicts (their grids one after the other).
        cv: folds, as in cross_validate; the same folds serve every candidate.
        fit_kwargs: arguments for model.fit (epochs, batch_size, ...).
        scoring: the metric that ranks the candidates (see the module docstring).
        verbose: 1 prints a line per trial.
    """

    def __init__(self, build_fn, param_grid, cv=3, fit_kwargs=None, scoring="accuracy", verbose: int = 0):
        super().__init__(build_fn, cv, fit_kwargs, scoring, verbose)
        self.param_grid = param_grid
        self.candidates = _grid(param_grid, type(self).__name__)


class RandomSearch(_Search):
    """Cross-validate ``n_iter`` candidates drawn from ``param_distributions``.

    Args:
        param_distributions: {name: Choice / Uniform / LogUniform / IntUniform, or a list
            (a Choice)}.
        n_iter: how many candidates. Draws are distinct; when every parameter is discrete
            and the space holds at most n_iter combinations, each is tried once instead
            (in a seeded random order), so fewer than n_iter trials run.
        seed: seeds the draws: the same seed gives the same candidates.

    The other arguments are as in GridSearch.
    """

    def __init__(
        self,
        build_fn,
        param_distributions,
        n_iter: int = 10,
        cv=3,
        seed: int = 0,
        fit_kwargs=None,
        scoring="accuracy",
        verbose: int = 0,
    ):
        where = type(self).__name__
        super().__init__(build_fn, cv, fit_kwargs, scoring, verbose)
        self._sample_from(param_distributions, n_iter, seed, where)
        self.candidates = self._draw()

    def _draw(self) -> list:
        rng = np.random.default_rng(self.seed)
        sizes = [d.size() for d in self._dists.values()]
        if all(s is not None for s in sizes) and math.prod(sizes) <= self.n_iter:
            grid = [
                dict(zip(self._dists, combo))
                for combo in itertools.product(*(d.values() for d in self._dists.values()))
            ]
            return [grid[i] for i in rng.permutation(len(grid))]
        candidates, seen = [], set()
        for _ in range(100 * self.n_iter):  # a bound, though a space above n_iter never runs dry
            params = {name: d.sample(rng) for name, d in self._dists.items()}
            key = repr(list(params.values()))
            if key not in seen:
                seen.add(key)
                candidates.append(params)
                if len(candidates) == self.n_iter:
                    break
        return candidates


def _import_optuna(where):
    try:
        import optuna
    except ImportError:
        raise ImportError(f"{where} {_TUNE_HELP}") from None
    return optuna


class _Pruning(Callback):
    """Reports the held-out score after each epoch of the first fold's fit to an Optuna
    trial, and stops the fit when the pruner says the trial is hopeless."""

    def __init__(self, optuna, trial, scorer, X_test, y_test, where):
        self.optuna, self.trial, self.scorer = optuna, trial, scorer
        self.X_test, self.y_test, self.where = X_test, y_test, where
        self.pruned_at = None

    def on_epoch_end(self, epoch, logs):
        (score,) = model_scores(self.model, self.X_test, self.y_test, [self.scorer], self.where)
        self.trial.report(score, epoch)
        if self.trial.should_prune():
            self.pruned_at = epoch
            self.model.stop_training = True

    def after_fit(self, fit_seconds):
        if self.pruned_at is not None:
            self.trial.set_user_attr("fit_time", fit_seconds)
            self.trial.set_user_attr("pruned_at_epoch", self.pruned_at)
            raise self.optuna.TrialPruned(f"pruned after epoch {self.pruned_at + 1}")


class _Recorder:
    """Stands in for an Optuna trial to learn which distribution each parameter's suggest
    call would store (to compare a search's space with a stored study's)."""

    def __init__(self, distributions):
        self.d, self.space = distributions, {}

    def suggest_categorical(self, name, choices):
        self.space[name] = self.d.CategoricalDistribution(choices)
        return choices[0]

    def suggest_float(self, name, low, high, *, log=False, step=None):
        self.space[name] = self.d.FloatDistribution(low, high, log=log, step=step)
        return low

    def suggest_int(self, name, low, high, *, log=False, step=1):
        self.space[name] = self.d.IntDistribution(low, high, log=log, step=step)
        return low


def _seed_per_trial(optuna, make_sampler, seed):
    """A sampler that is ``make_sampler(seed + trial.number)`` for each trial: the same seed
    gives the same trials, and workers that start at once on one study (each seeing the same
    finished trials) still draw different candidates, as their trials' numbers differ."""

    class SeedPerTrial(optuna.samplers.BaseSampler):
        def __init__(self):
            self.current = make_sampler(seed)

        def before_trial(self, study, trial):
            self.current = make_sampler(seed + trial.number)
            self.current.before_trial(study, trial)

        def infer_relative_search_space(self, study, trial):
            return self.current.infer_relative_search_space(study, trial)

        def sample_relative(self, study, trial, search_space):
            return self.current.sample_relative(study, trial, search_space)

        def sample_independent(self, study, trial, param_name, param_distribution):
            return self.current.sample_independent(study, trial, param_name, param_distribution)

        def after_trial(self, study, trial, state, values):
            self.current.after_trial(study, trial, state, values)

        def reseed_rng(self):
            self.current.reseed_rng()

    return SeedPerTrial()


class _GridDone(Exception):
    """Every grid point has been handed out: this worker's search ends."""


def _trial_number_grid(optuna, grid, seed):
    """A grid sampler safe with workers at once: the trial numbered n gets the k-th point
    of the grid (in an order shuffled by ``seed``), k counting the trials before n that are
    not retries. Numbers are handed out atomically by the storage, so no two workers ever
    get the same point (Optuna's GridSampler picks among the points not yet run, which two
    workers asking at the same moment can both pick); a retry carries its own point."""
    names = list(grid)
    points = list(itertools.product(*(grid[n] for n in names)))
    order = np.random.default_rng(seed).permutation(len(points))

    class TrialNumberGrid(optuna.samplers.BaseSampler):
        def __init__(self):
            self.point = {}

        def before_trial(self, study, trial):
            if "failed_trial" in trial.system_attrs:  # a retry: its parameters are set
                return
            earlier = study.get_trials(deepcopy=False)[: trial.number]
            k = sum("failed_trial" not in t.system_attrs for t in earlier)
            self.point = dict(zip(names, points[order[k]])) if k < len(points) else None

        def infer_relative_search_space(self, study, trial):
            return {}

        def sample_relative(self, study, trial, search_space):
            return {}

        def sample_independent(self, study, trial, param_name, param_distribution):
            if self.point is None:
                raise _GridDone
            return self.point[param_name]

        def after_trial(self, study, trial, state, values):
            fresh = sum("failed_trial" not in t.system_attrs for t in study.get_trials(deepcopy=False))
            if fresh >= len(points):  # every point handed out: no more trials here
                study.stop()

    return TrialNumberGrid()


class _OptunaSearch(_Search):
    """What BayesSearch and EvolutionSearch share: an Optuna study (in memory or in a
    storage that several workers share), trials proposed by a sampler, each
    cross-validated on the same folds.

    A subclass gives its sampler (``_sampler``) and may add objectives (``_directions``,
    ``_values``), a pruner (``_pruner``) and a per-trial callback (``_watch``).

    During fit, ``current_trial_`` is the number of the trial this worker is running (for a
    build_fn that logs per trial, as ``xpnn tune --tensorboard`` does).
    """

    # what a finished trial keeps in its user attributes besides fit_time
    _RESULT_KEYS: tuple[str, ...] = ("mean_score", "std_score", "scores")
    _SPACE_ATTR = "xpnn:space"  # the study's parameter space, as Optuna distributions in JSON

    def __init__(
        self,
        build_fn,
        param_distributions,
        n_iter,
        cv,
        seed,
        fit_kwargs,
        scoring,
        storage,
        study_name,
        verbose,
        n_trials_total=None,
    ):
        where = type(self).__name__
        self._optuna = _import_optuna(where)
        super().__init__(build_fn, cv, fit_kwargs, scoring, verbose)
        self._sample_from(param_distributions, n_iter, seed, where)
        self.n_trials_total = None if n_trials_total is None else positive_int(n_trials_total, "n_trials_total", where)
        self.storage = check_storage(storage, where)
        if study_name is not None and not isinstance(study_name, str):
            raise TypeError(f"{where}: study_name must be a string, found {study_name!r}")
        self.study_name = study_name if study_name is not None or storage is None else "xpnn"

    # ---- what a subclass says ----

    def _sampler(self, seed):
        raise NotImplementedError

    def _seeded_sampler(self):
        """The study's sampler: ``_sampler(seed + trial.number)`` for each trial."""
        if getattr(self, "sampler", None) == "grid":  # one sampler for all: its order is the seed's
            return self._sampler(self.seed)
        return _seed_per_trial(self._optuna, self._sampler, self.seed)

    def _directions(self) -> list:
        """One Optuna direction per objective; the score's comes first."""
        return ["maximize" if self.mode == "max" else "minimize"]

    def _values(self, result):
        """What the objective returns for a scored candidate (one value per direction)."""
        return result["mean_score"]

    def _pruner(self):
        return self._optuna.pruners.NopPruner()

    def _watch(self, trial, where):
        """``watch_first_fold`` for run_folds (BayesSearch's pruning), or None."""
        return None

    # ---- the study ----

    def _open_study(self, where, create=True):
        """The study, created (or loaded if it exists), its directions and parameter space
        checked against this search's before any trial runs."""
        optuna = self._optuna
        storage = open_storage(self.storage, where=where)
        directions = self._directions()
        sampler = self._seeded_sampler()
        try:
            if create:
                study = optuna.create_study(
                    storage=storage,
                    study_name=self.study_name,
                    directions=directions,
                    sampler=sampler,
                    pruner=self._pruner(),
                    load_if_exists=True,
                )
            else:
                study = optuna.load_study(
                    storage=storage, study_name=self.study_name, sampler=sampler, pruner=self._pruner()
                )
        except KeyError:  # load_study of a missing study
            names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
            raise ValueError(
                f"{where}: storage {mask_url(self.storage)!r} holds no study {self.study_name!r} "
                f"(it holds {names or 'none'})"
            ) from None
        except Exception as exc:  # the database went away, or refused the URL's user
            if type(exc).__module__.split(".")[0] != "sqlalchemy":
                raise
            detail = scrub(str(getattr(exc, "orig", None) or exc).strip().splitlines()[0], self.storage)
            raise RuntimeError(f"{where}: storage {mask_url(self.storage)!r}: {detail}") from None
        self._check_directions(study, directions, where)
        self._check_space(study, where)
        return study

    def _optuna_space(self) -> dict:
        """{name: optuna distribution} of this search's space (what suggest would store)."""
        recorder = _Recorder(self._optuna.distributions)
        for name, d in self._dists.items():
            d.suggest(recorder, name)
        return recorder.space

    def _check_space(self, study, where) -> None:
        """Refuse a study made with another parameter space before any trial of this
        search is stored there (a mismatched trial would also break the other search)."""
        to_json = self._optuna.distributions.distribution_to_json
        ours = self._optuna_space()
        ours_json = {name: to_json(d) for name, d in ours.items()}

        def refuse(detail):
            raise ValueError(
                f"{where}: study {self.study_name!r} in {mask_url(self.storage)!r} was made with another "
                f"parameter space ({detail}); use another study_name, or the param_distributions it was made with"
            )

        stored = study.user_attrs.get(self._SPACE_ATTR)
        if stored is not None and stored != ours_json:
            changed = sorted(set(stored) ^ set(ours_json)) or [n for n in ours_json if stored[n] != ours_json[n]]
            refuse(f"it differs in {changed}: stored {sorted(stored)}")
        complete = self._optuna.trial.TrialState.COMPLETE
        for trial in study.get_trials(deepcopy=False):
            for name, dist in trial.distributions.items():
                if name not in ours:
                    refuse(f"trial {trial.number} has {name!r}, which this search does not search over")
                if dist != ours[name]:
                    refuse(f"trial {trial.number} drew {name!r} from {dist}, this search from {ours[name]}")
            missing = [name for name in ours if name not in trial.distributions]
            if missing and trial.state == complete:
                refuse(f"trial {trial.number} has no value for {missing}")
        if stored is None:
            study.set_user_attr(self._SPACE_ATTR, ours_json)

    # ---- the search ----

    def fit(self, X, y):
        """Run n_iter trials on the study (fewer if the study reaches n_trials_total
        complete trials first), then refit the best trial of the whole study, whichever
        worker ran it, on all of (X, y). Returns self."""
        optuna = self._optuna
        where = self._where("fit")
        self.prepare(X, y)
        verbosity = optuna.logging.get_verbosity()
        # Optuna logs every trial, and a failed one with its traceback, which is then raised
        # again: verbose=1 prints our own line per trial instead, and an error shows once
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        try:
            study = self._open_study(where)
            fail_dead_workers(study)  # a journal file has no heartbeat
            me, done, current = worker_id(), [0], [None]

            def objective(trial):
                current[0] = self.current_trial_ = trial.number
                trial.set_user_attr(WORKER_ATTR, me)  # first: a worker killed from here on is found
                params = {name: d.suggest(trial, name) for name, d in self._dists.items()}
                result = self._evaluate(params, X, y, self._watch(trial, where))
                for key, value in result.items():
                    if key != "params":
                        trial.set_user_attr(key, value)
                return self._values(result)

            def report(study, trial):
                fail_dead_workers(study)  # a worker of this machine that died meanwhile
                entry = self._result(trial)
                if entry is not None:
                    done[0] += 1
                    self._report(done[0] - 1, self.n_iter, entry)

            callbacks = [report]
            if self.n_trials_total is not None:
                callbacks.append(optuna.study.MaxTrialsCallback(self.n_trials_total))
            if self._complete(study) < (self.n_trials_total or math.inf):
                try:
                    study.optimize(objective, n_trials=self.n_iter, callbacks=callbacks)
                except _GridDone:  # the trial that found the grid used up is failed, without parameters
                    pass
                except KeyboardInterrupt:  # Optuna has marked the trial failed: queue it again
                    self._requeue(study, current[0], me)
                    raise
            self.study_ = study
            self.results_ = self._results(study)
        finally:
            optuna.logging.set_verbosity(verbosity)
            if "study" in locals():
                close(study._storage)
        return self._finish(X, y)

    def load(self):
        """Read the study's trials (every worker's) into results_, best_params_,
        best_score_ (and pareto_front_), without running or refitting anything: what
        ``xpnn tune --show`` prints. The study must exist. Returns self."""
        where = self._where("load")
        if self.storage is None:
            raise ValueError(f"{where}: a study in memory is gone with its process; give the storage it is in")
        verbosity = self._optuna.logging.get_verbosity()
        self._optuna.logging.set_verbosity(self._optuna.logging.ERROR)
        try:
            self.study_ = self._open_study(where, create=False)
            self.results_ = self._results(self.study_)
        finally:
            self._optuna.logging.set_verbosity(verbosity)
            if hasattr(self, "study_"):
                close(self.study_._storage)
        self._choose(where)
        return self

    def _results(self, study) -> list:
        return [r for r in (self._result(t) for t in study.get_trials(deepcopy=False)) if r is not None]

    def _complete(self, study) -> int:
        return len(study.get_trials(deepcopy=False, states=(self._optuna.trial.TrialState.COMPLETE,)))

    def _requeue(self, study, number, me) -> None:
        """After Ctrl-C: this worker's interrupted trial (failed by Optuna) is queued for one
        retry, so that the next worker runs its parameters."""
        if number is None:
            return
        trial = study.get_trials(deepcopy=False)[number]
        if trial.state == self._optuna.trial.TrialState.FAIL and trial.user_attrs.get(WORKER_ATTR) == me:
            retry_once(study, trial)

    def _check_directions(self, study, directions, where):
        found = [d.name.lower() for d in study.directions]
        if found == directions:
            return
        if len(found) == len(directions) == 1:
            raise ValueError(
                f"{where}: study {self.study_name!r} in {mask_url(self.storage)!r} is set to {found[0]}, but "
                f"scoring={self.scoring!r} must be {directions[0]}d; use another study_name"
            )
        raise ValueError(
            f"{where}: study {self.study_name!r} in {mask_url(self.storage)!r} has the directions {found}, but "
            f"this search needs {directions}; use another study_name"
        )

    def _result(self, trial):
        """The results_ entry of a finished trial, None for a running or failed one."""
        state = self._optuna.trial.TrialState
        attrs = trial.user_attrs
        if trial.state == state.PRUNED:
            score = {
                "mean_score": None,
                "std_score": None,
                "scores": [],
                "pruned": True,
                "pruned_at_epoch": attrs.get("pruned_at_epoch", trial.last_step or 0),
            }
        elif "mean_score" in attrs and trial.state in (state.COMPLETE, state.FAIL):  # FAIL: a NaN score
            score = {k: attrs[k] for k in self._RESULT_KEYS if k in attrs}
            score["pruned"] = False
        else:
            return None
        missing = [name for name in self._dists if name not in trial.params]
        if missing:
            raise ValueError(
                f"{self._where('fit')}: trial {trial.number} of study {self.study_name!r} has no "
                f"value for {missing}: the study was made with other param_distributions "
                f"({sorted(trial.params)}); use another study_name"
            )
        params = {name: d.decode(trial.params[name]) for name, d in self._dists.items()}
        return {"number": trial.number, "params": params, **score, "fit_time": attrs.get("fit_time", 0.0)}


class BayesSearch(_OptunaSearch):
    """Bayesian optimisation with Optuna's TPE sampler: each trial's candidate is proposed
    from the scores of the trials before it. Needs Optuna: ``pip install "xpnn[tune]"``.

    Args:
        param_distributions: as in RandomSearch (Choice, Uniform, LogUniform, IntUniform
            or lists).
        n_iter: the trials this ``fit`` (this worker) adds to the study.
        seed: seeds the sampler: trial number n is drawn with seed + n, so the same seed on
            the same study gives the same trials, a continued study does not propose its
            first candidates again, and workers running at once draw different ones.
        storage: where the study lives, so that several fits, processes or machines work
            on it at once (see ``xpnn.model_selection.storage``): None (in memory, a new
            study per fit), ``"sqlite:///study.db"`` (one worker at a time),
            ``"journal:study.journal"`` (a journal file: workers on one machine),
            ``"postgresql://user:password@host:5432/db"`` (workers on many machines), or an
            optuna storage object. The study is created there, or loaded if it exists; its
            parameter space and direction must be this search's. A worker that dies
            mid-trial has that trial marked failed (on a database by its missed heartbeats,
            within two minutes; on this machine when a worker there starts or ends a trial) and retried
            once by another worker.
        study_name: the study's name in the storage ("xpnn" by default when storage is given).
        pruning: True stops unpromising trials early with Optuna's MedianPruner: during the
            first fold's fit, the held-out score is reported after every epoch, and a trial
            whose score at that epoch is worse than the median of earlier trials' scores at
            the same epoch is stopped (nothing is pruned before 5 trials have finished). It is a callback
            added to the first fold's fit, so the training itself is the same as without it;
            the cost is one forward pass over the held-out fold per epoch. False: no pruning;
            an ``optuna.pruners.BasePruner`` instance is used as given.
        sampler: "tpe" (Optuna's TPE), "random" (independent random draws) or "grid"
            (every combination of a space of lists and IntUniform ranges, each once across
            all workers, in a seeded random order).
        n_trials_total: stop every worker once the study holds this many complete trials
            (trials running at that moment still finish); None: each runs its n_iter.

    After fit, besides the shared attributes: ``study_`` (the Optuna study) and, in each
    results_ entry, "number" (the trial number in the study), "pruned" and, for a pruned
    trial, "pruned_at_epoch" (its mean_score and std_score are None). results_ holds every
    finished trial of the study, including those run by other processes.
    """

    _SAMPLERS = ("tpe", "random", "grid")

    def __init__(
        self,
        build_fn,
        param_distributions,
        n_iter: int = 10,
        cv=3,
        seed: int = 0,
        fit_kwargs=None,
        scoring="accuracy",
        storage=None,
        study_name=None,
        pruning=True,
        verbose: int = 0,
        sampler="tpe",
        n_trials_total=None,
    ):
        where = type(self).__name__
        super().__init__(
            build_fn,
            param_distributions,
            n_iter,
            cv,
            seed,
            fit_kwargs,
            scoring,
            storage,
            study_name,
            verbose,
            n_trials_total,
        )
        if not isinstance(pruning, bool) and not isinstance(pruning, self._optuna.pruners.BasePruner):
            raise TypeError(f"{where}: pruning must be True, False or an optuna pruner, found {pruning!r}")
        self.pruning = pruning
        if sampler not in self._SAMPLERS:
            raise ValueError(f"{where}: sampler must be one of {', '.join(self._SAMPLERS)}, found {sampler!r}")
        self.sampler = sampler
        if sampler == "grid":
            self._grid = self._grid_space(where)

    def _grid_space(self, where) -> dict:
        """{name: the values Optuna stores} for GridSampler: every parameter discrete."""
        grid = {}
        for name, dist in self._optuna_space().items():
            if isinstance(dist, self._optuna.distributions.CategoricalDistribution):
                grid[name] = list(dist.choices)
            elif isinstance(dist, self._optuna.distributions.IntDistribution):
                grid[name] = list(range(dist.low, dist.high + 1))
            else:
                raise ValueError(
                    f"{where}: sampler='grid' needs a list of values or an IntUniform for every "
                    f"parameter; {name!r} is {self._dists[name]!r}"
                )
        return grid

    def _sampler(self, seed):
        samplers = self._optuna.samplers
        if self.sampler == "random":
            return samplers.RandomSampler(seed=seed)
        if self.sampler == "grid":
            return _trial_number_grid(self._optuna, self._grid, self.seed)
        with warnings.catch_warnings():  # constant_liar is marked experimental
            warnings.simplefilter("ignore", self._optuna.exceptions.ExperimentalWarning)
            # constant_liar: a running trial (another worker's) counts as a poor result, so
            # that workers at once do not all propose the same promising region
            return samplers.TPESampler(seed=seed, constant_liar=True)

    def _pruner(self):
        pruners = self._optuna.pruners
        if self.pruning is True:
            return pruners.MedianPruner()
        return pruners.NopPruner() if self.pruning is False else self.pruning

    def _watch(self, trial, where):
        if self.pruning is False:
            return None

        def watch(X_test, y_test):
            return _Pruning(self._optuna, trial, self._scorer, X_test, y_test, where)

        return watch


_OBJECTIVES = (("score",), ("score", "n_params"))


class EvolutionSearch(_OptunaSearch):
    """Evolutionary search with Optuna: CMA-ES for the score alone, or NSGA-II for the
    score against the model's size. Needs Optuna, and the ``cmaes`` package for CMA-ES:
    ``pip install "xpnn[tune]"``.

    CMA-ES (``objectives=("score",)``, Optuna's CmaEsSampler) keeps a multivariate normal
    distribution over the numeric parameters (Uniform, LogUniform on a log scale,
    IntUniform rounded): each generation of ``population_size`` trials is drawn from it,
    and its mean, step size and covariance move towards the generation's best trials. It
    starts at the centre of the space with a step of a sixth of each range. CMA-ES cannot
    model a categorical parameter: every Choice (list) parameter is drawn by an
    independent TPE sampler instead, which learns which option scores well, one parameter
    at a time (Optuna's fallback; its warning about it is switched off). For ordered
    numbers (layer widths) prefer IntUniform, which CMA-ES does model; a space of Choice
    parameters only is TPE alone, warned about (BayesSearch does the same). The first
    trial is drawn at random; a generation counts only trials that finished with a finite
    score, so n_iter should be a few times population_size. Nothing is pruned: both
    samplers rank whole generations by their final scores.

    NSGA-II (``objectives=("score", "n_params")``, Optuna's NSGAIISampler) maximizes the
    score (minimizes it for a loss) and minimizes the number of trained parameters
    (``model.count_params()`` of the fitted model), a genetic algorithm that handles every
    kind of parameter (Choice included): the first generation is random, the later ones
    are bred from the non-dominated trials by crossover and mutation. ``pareto_front_``
    then holds the trade-offs, and ``best_params_`` (refit as ``best_model_``) is the
    front's best score (the fewest parameters on ties).

    Args:
        param_distributions: as in RandomSearch (Choice, Uniform, LogUniform, IntUniform
            or lists).
        n_iter: the trials this ``fit`` adds to the study.
        seed: seeds the samplers: the same seed gives the same trials and scores (trial
            number n is drawn with seed + n, as in BayesSearch).
        objectives: ``("score",)`` (CMA-ES) or ``("score", "n_params")`` (NSGA-II).
        population_size: trials per generation, at least 4. None: CMA-ES's own default,
            4 + floor(3 ln d) for d numeric parameters (6 for two); for NSGA-II
            n_iter // 4, between 4 and 50 (Optuna's default of 50 would leave a budget of
            20 trials all random).
        storage, study_name, n_trials_total: as in BayesSearch.

    The other arguments are as in GridSearch.

    After fit, besides the shared attributes: ``study_`` (the Optuna study), in each
    results_ entry "number" (the trial in the study) and "n_params" (the model's trained
    parameters), and ``pareto_front_``: a list of ``(params, score, n_params)``, the
    trials that no other trial beats on both score and size, best score first (one
    entry for trials tied on both); for a single objective, the best trial alone.
    """

    _RESULT_KEYS = ("mean_score", "std_score", "scores", "n_params")

    def __init__(
        self,
        build_fn,
        param_distributions,
        n_iter: int = 20,
        cv=3,
        seed: int = 0,
        fit_kwargs=None,
        scoring="accuracy",
        objectives=("score",),
        population_size=None,
        storage=None,
        study_name=None,
        verbose: int = 0,
        n_trials_total=None,
    ):
        where = type(self).__name__
        super().__init__(
            build_fn,
            param_distributions,
            n_iter,
            cv,
            seed,
            fit_kwargs,
            scoring,
            storage,
            study_name,
            verbose,
            n_trials_total,
        )
        given = (objectives,) if isinstance(objectives, str) else objectives
        if not isinstance(given, (tuple, list)) or tuple(given) not in _OBJECTIVES:
            raise ValueError(
                f"{where}: objectives must be ('score',) (CMA-ES) or ('score', 'n_params') "
                f"(NSGA-II: score against model size), found {objectives!r}"
            )
        self.objectives = tuple(given)
        # below 4, CMA-ES's covariance update has a zero learning rate (and divides by it)
        self.population_size = (
            None if population_size is None else integer(population_size, "population_size", where, 4)
        )
        if self.multi_objective:
            return
        numeric = [name for name, d in self._dists.items() if not isinstance(d, Choice)]
        if not numeric:
            warnings.warn(
                f"{where}: every parameter is a Choice, which CMA-ES cannot model: the search is "
                f"Optuna's TPE alone (as BayesSearch); give ranges (Uniform, LogUniform, IntUniform) "
                f"for CMA-ES to work on",
                UserWarning,
                stacklevel=2,
            )
        else:
            try:
                import cmaes  # noqa: F401  Optuna's CmaEsSampler imports it only when it first samples
            except ImportError:
                raise ImportError(
                    f'{where} needs the cmaes package for CMA-ES: pip install "xpnn[tune]" (or pip '
                    f'install cmaes); objectives=("score", "n_params") (NSGA-II) does not'
                ) from None

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    def _sampler(self, seed):
        samplers = self._optuna.samplers
        if self.multi_objective:
            size = self.population_size or min(max(self.n_iter // 4, 4), 50)
            return samplers.NSGAIISampler(population_size=size, seed=seed)
        # Choice parameters fall to the independent sampler: TPE, so that they still learn
        # from the scores (Optuna's default there is random sampling)
        return samplers.CmaEsSampler(
            seed=seed,
            popsize=self.population_size,
            independent_sampler=_seed_per_trial(self._optuna, lambda s: samplers.TPESampler(seed=s), seed),
            warn_independent_sampling=False,
        )

    def _seeded_sampler(self):
        if self.multi_objective:
            return super()._seeded_sampler()
        # CMA-ES seeds each trial's draw with the trial number itself; its independent
        # sampler (the first trial, Choice parameters) is seeded per trial above
        return self._sampler(self.seed)

    def _directions(self) -> list:
        return super()._directions() + (["minimize"] if self.multi_objective else [])

    def _values(self, result):
        if self.multi_objective:
            return result["mean_score"], result["n_params"]
        return result["mean_score"]

    def _evaluate(self, params, X, y, watch_first_fold=None, build_fn=None) -> dict:
        """Cross-validate one candidate, and count the trained parameters of its models."""
        built = []

        def build(**kwargs):
            model = self.build_fn(**kwargs)
            built.append(model)
            return model

        result = super()._evaluate(params, X, y, watch_first_fold, build)
        # every fold builds the same architecture: its first model, fitted (so lazily sized
        # layers are built), gives the size
        count = getattr(built[0], "count_params", None)
        if not callable(count):
            raise TypeError(
                f"{self._where('fit')}: build_fn must return a model with count_params() (a "
                f"Sequential), found {type(built[0]).__name__}"
            )
        result["n_params"] = int(count())
        return result

    def _pareto(self) -> list:
        """Indices into results_ of the non-dominated trials with a finite score, best
        score first (then fewest parameters); of trials tied on both, the earliest."""
        sign = 1.0 if self.mode == "max" else -1.0
        # both "larger is better": the score's sign, and minus the size
        key = {
            i: (sign * r["mean_score"], -r["n_params"])
            for i, r in enumerate(self.results_)
            if _finite(r["mean_score"]) and "n_params" in r
        }
        front, taken = [], set()
        for i, a in key.items():
            dominated = any(b[0] >= a[0] and b[1] >= a[1] and b != a for b in key.values())
            if not dominated and a not in taken:
                taken.add(a)
                front.append(i)
        return sorted(front, key=lambda i: (-key[i][0], -key[i][1], i))

    def _best_index(self):
        if not self.multi_objective:
            return super()._best_index()
        front = self._pareto()
        return front[0] if front else None

    def _choose(self, where) -> None:
        super()._choose(where)
        front = self._pareto() if self.multi_objective else [self.best_index_]
        self.pareto_front_ = [
            (dict(self.results_[i]["params"]), self.results_[i]["mean_score"], self.results_[i]["n_params"])
            for i in front
        ]

    def _extra_columns(self) -> dict:
        columns = {"n_params": lambda r: f"{r['n_params']:,}" if "n_params" in r else ""}
        if self.multi_objective and hasattr(self, "pareto_front_"):
            on_front = {self.results_[i]["number"] for i in self._pareto()}
            columns["Pareto front"] = lambda r: "yes" if r.get("number") in on_front else ""
        return columns

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scoring={self.scoring!r}, cv={self.cv!r}, objectives={self.objectives!r})"
