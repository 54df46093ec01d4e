"""``xpnn tune``: one worker of a hyper-parameter search on a shared Optuna study.

Start the same command several times, on one machine (the default journal file in the run
folder) or on many (``--storage postgresql://...``), and the workers share the study:
each runs its ``--trials``, every one reports and retrains the study's best. The search
itself is BayesSearch or EvolutionSearch (xpnn.model_selection); this module reads the
space file, builds the MLPs, and writes the run's files.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys

from .cli import EXIT_INTERRUPTED, MAX_CLASSES, UsageError, load_data

SAMPLERS = ("tpe", "cmaes", "nsga2", "random", "grid")
PRUNERS = ("median", "hyperband")
STORAGE_ENV = "XPNN_STORAGE"  # the storage URL, kept off the command line (and the process list)
# A space for the MLP when --space is not given: widths and learning rate on log scales
DEFAULT_SPACE = {
    "hidden": {"int": [16, 256], "log": True},
    "layers": [1, 2],
    "lr": {"float": [1e-4, 1e-1], "log": True},
    "batch_size": [32, 64, 128],
    "activation": ["relu", "tanh"],
    "dropout": {"float": [0.0, 0.5]},
}
# what a space may search over: the MLP's build arguments, and the batch size of its fit
PARAMS = {
    "hidden": "units per hidden layer (int)",
    "layers": "number of hidden layers (int)",
    "lr": "learning rate (float)",
    "batch_size": "samples per step (int)",
    "activation": "hidden activation (name)",
    "dropout": "dropout rate after each hidden layer, in [0, 1) (float)",
    "optimizer": "optimizer name (adam, sgd, ...)",
}
FIXED = {
    "hidden": 64,
    "layers": 1,
    "lr": 1e-3,
    "batch_size": 32,
    "activation": "relu",
    "dropout": 0.0,
    "optimizer": "adam",
}
STUDY_FILE = "study.journal"


# ---- the space file -----------------------------------------------------------------------


def read_space(path) -> dict:
    """{name: Distribution} from a JSON or TOML file (see parse_space)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except IsADirectoryError:
        raise UsageError(f"--space {path}: is a folder; expected a JSON or TOML file") from None
    except OSError as exc:
        raise UsageError(f"--space {path}: cannot read it ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"--space {path}: is not UTF-8 text; expected a JSON or TOML file") from None
    if path.lower().endswith(".toml"):
        try:
            import tomllib  # type: ignore[import-not-found,unused-ignore]
        except ImportError:  # Python 3.10
            import tomli as tomllib  # type: ignore[import-not-found,no-redef,unused-ignore]
        try:
            spec = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"--space {path}: not valid TOML: {exc}") from None
    else:
        try:
            spec = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(
                f"--space {path}: not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno} "
                f"(a .toml file is read as TOML)"
            ) from None
    return parse_space(spec, f"--space {path}")


def parse_space(spec, where) -> dict:
    """{name: Distribution} from ``{"hidden": {"int": [16, 256], "log": true}, "lr":
    {"float": [1e-4, 1e-1], "log": true}, "activation": ["relu", "tanh"]}``: a list is a
    choice, {"int": [low, high]} and {"float": [low, high]} ranges (both ends included),
    with "log": true for a logarithmic scale. Errors name the key."""
    from .model_selection import Choice, Distribution, IntUniform, LogUniform, Uniform

    if not isinstance(spec, dict) or not spec:
        raise UsageError(f"{where}: expected a table of parameters such as {json.dumps({'lr': DEFAULT_SPACE['lr']})}")
    space: dict[str, Distribution] = {}
    for name, value in spec.items():
        key = f"{where}: {name}"
        if name not in PARAMS:
            raise UsageError(f"{key}: unknown parameter; expected one of {', '.join(PARAMS)}")
        if isinstance(value, list):
            if not value or not all(isinstance(v, (str, int, float, bool)) for v in value):
                raise UsageError(f"{key}: expected a non-empty list of numbers or strings, found {value!r}")
            space[name] = Choice(value)
            continue
        if not isinstance(value, dict) or len(set(value) & {"int", "float"}) != 1:
            raise UsageError(
                f'{key}: expected a list of values, {{"int": [low, high]}} or {{"float": [low, high]}} '
                f'(with "log": true for a log scale), found {json.dumps(value)}'
            )
        kind = "int" if "int" in value else "float"
        extra = set(value) - {kind, "log"}
        if extra:
            raise UsageError(f"{key}: unknown field {sorted(extra)[0]!r}; expected {kind!r} and optionally 'log'")
        bounds, log = value[kind], value.get("log", False)
        number = int if kind == "int" else (int, float)
        if (
            not isinstance(bounds, list)
            or len(bounds) != 2
            or not all(isinstance(b, number) and not isinstance(b, bool) for b in bounds)
        ):
            raise UsageError(f"{key}: {kind} expects [low, high] ({kind}s), found {json.dumps(bounds)}")
        if not isinstance(log, bool):
            raise UsageError(f"{key}: log expects true or false, found {json.dumps(log)}")
        low, high = bounds
        if not low < high:
            raise UsageError(f"{key}: {kind} expects low < high, found [{low}, {high}]")
        if log and low <= 0:
            raise UsageError(f"{key}: a log scale needs low > 0, found [{low}, {high}]")
        if kind == "int":
            space[name] = IntUniform(low, high, log=log)
        else:
            space[name] = (LogUniform if log else Uniform)(float(low), float(high))
    return space


# ---- the models ---------------------------------------------------------------------------


def make_build(n_inputs, n_classes, backend, seed, tensorboard=None, trial_number=None):
    """build_fn(**params) for the searches: the MLP n_inputs -> layers x hidden -> n_classes,
    compiled with the optimizer and learning rate; batch_size is kept as the model's fit
    default (a search's fit arguments are the same for every trial).

    tensorboard: a folder: the first fold's fit of each trial writes a TensorBoard run
    ``tensorboard/trial-<number>`` with the trial's parameters as its hparams; the number
    comes from ``trial_number()``."""
    from . import Dense, Dropout, Sequential
    from .layers import get_activation
    from .optimizers import get_optimizer

    def build(**params):
        p = {**FIXED, **params}
        layers, fan_in = [], n_inputs
        for _ in range(int(p["layers"])):
            layers += [
                Dense(fan_in, int(p["hidden"]), init="he_uniform"),
                get_activation(p["activation"], "activation"),
            ]
            if p["dropout"] > 0:
                layers.append(Dropout(float(p["dropout"])))
            fan_in = int(p["hidden"])
        layers.append(Dense(fan_in, n_classes, init="he_uniform"))
        model = Sequential(layers, backend=backend, seed=seed)
        model.compile("softmax_cross_entropy", get_optimizer(p["optimizer"], lr=float(p["lr"])), metrics=["accuracy"])
        extra = []
        number = trial_number() if tensorboard is not None and trial_number is not None else None
        if number is not None and number not in logged:  # its first fold only: one run per trial
            logged.add(number)
            extra.append(TensorBoard(os.path.join(tensorboard, f"trial-{number}"), hparams=dict(params)))
        fit, batch_size = model.fit, int(p["batch_size"])

        def fit_with_defaults(X, y, callbacks=(), **kwargs):
            return fit(X, y, batch_size=batch_size, callbacks=[*extra, *callbacks], **kwargs)

        model.fit = fit_with_defaults
        return model

    logged: set = set()
    if tensorboard is not None:
        from .tensorboard import TensorBoard
    return build


# ---- the command --------------------------------------------------------------------------


def add_parser(sub) -> None:
    """The ``tune`` subcommand, in xpnn's parser."""
    t = sub.add_parser(
        "tune",
        help="one worker of a hyper-parameter search; start it several times (or on several machines) to share a study",
    )
    t.add_argument("--data", default="digits", help="digits (bundled), fashion-mnist, mnist or a PATH.csv")
    t.add_argument("--data-home", default=None, help="folder holding the IDX files of fashion-mnist/mnist")
    t.add_argument(
        "--space",
        default=None,
        help="JSON or TOML file of the search space, e.g. "
        '{"hidden": {"int": [16, 256], "log": true}, "activation": ["relu", "tanh"]} '
        f"(default: {json.dumps(DEFAULT_SPACE)})",
    )
    t.add_argument("--trials", type=int, default=None, help="trials this worker runs (required unless --show)")
    t.add_argument(
        "--trials-total",
        type=int,
        default=None,
        help="stop every worker once the study holds this many complete trials",
    )
    t.add_argument("--sampler", default="tpe", choices=SAMPLERS, help="default: tpe; nsga2 also minimizes the size")
    t.add_argument(
        "--storage",
        default=None,
        help=f"where the study lives: journal:FILE (one machine), postgresql://USER:PASSWORD@HOST:PORT/DB "
        f"(many machines), sqlite:///FILE.db (one worker); default: ${STORAGE_ENV}, else the journal file "
        f"{STUDY_FILE} in --out",
    )
    t.add_argument("--study", default="xpnn", help="the study's name in the storage (default: xpnn)")
    t.add_argument("--cv", type=int, default=3, help="folds per trial (default: 3)")
    t.add_argument("--epochs", type=int, default=10, help="epochs per fit (default: 10)")
    t.add_argument(
        "--prune",
        nargs="?",
        const="median",
        default=None,
        choices=PRUNERS,
        help="stop hopeless trials early: median (the default pruner) or hyperband (tpe, random, grid)",
    )
    t.add_argument("--seed", type=int, default=0, help="seeds the sampler and the models (default: 0)")
    t.add_argument(
        "--out", default=None, help="run folder, shared by the workers of one machine (default: runs/tune-STUDY)"
    )
    t.add_argument("--show", action="store_true", help="print the study's table and best trial; run nothing")
    t.add_argument(
        "--tensorboard",
        default=None,
        metavar="DIR",
        help="TensorBoard logs, one run per trial: DIR/trial-<number> (the first fold's fit, with the "
        "trial's parameters in the HParams view): tensorboard --logdir DIR (needs tensorboardX)",
    )
    t.add_argument("--backend", default=None, help="numpy (default), cupy, torch, jax or array_api_strict")
    t.add_argument("--device", default=None, help="the backend's device")
    t.set_defaults(func=cmd_tune)


def cmd_tune(args) -> int:
    from .model_selection.storage import mask_url, scrub

    storage = args.storage or os.environ.get(STORAGE_ENV) or None
    try:
        return _tune(args, storage)
    except (UsageError, ValueError, TypeError, RuntimeError, KeyError, OSError, ImportError) as exc:
        # one line, whatever raised it, and never the storage's password
        raise UsageError(scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc), storage)) from None
    except Exception as exc:  # a database error mid-run: not a traceback with the URL in it
        if type(exc).__module__.split(".")[0] not in ("sqlalchemy", "psycopg", "psycopg2", "optuna"):
            raise
        detail = scrub(str(getattr(exc, "orig", None) or exc).strip().splitlines()[0], storage)
        raise UsageError(f"storage {mask_url(storage)}: {type(exc).__name__}: {detail}") from None


def _check_numbers(args) -> None:
    if args.show:
        return
    if args.trials is None:
        raise UsageError("--trials N is required: the trials this worker runs (or --show to print the study)")
    for flag, value, low in (
        ("--trials", args.trials, 1),
        ("--trials-total", args.trials_total, 1),
        ("--cv", args.cv, 2),
        ("--epochs", args.epochs, 1),
        ("--seed", args.seed, 0),
    ):
        if value is not None and value < low:
            raise UsageError(f"{flag} must be at least {low}, found {value}")
    if args.prune and args.sampler in ("cmaes", "nsga2"):
        raise UsageError(f"--prune works with --sampler tpe, random or grid, not {args.sampler}")


def _tune(args, storage) -> int:
    from .model_selection.storage import check_storage, mask_url, worker_id

    _check_numbers(args)
    space = read_space(args.space) if args.space else parse_space(DEFAULT_SPACE, "the default space")
    out = args.out or os.path.join("runs", f"tune-{args.study}")
    if storage is None:
        storage = "journal:" + os.path.join(out, STUDY_FILE)
    check_storage(storage, "--storage")
    shown = mask_url(storage)
    if args.show:
        return _show(args, space, storage, shown)
    os.makedirs(out, exist_ok=True)
    (X_train, y_train), (X_test, y_test), n_classes = _tune_data(args)
    if args.tensorboard:
        from .tensorboard import require_tensorboardx

        require_tensorboardx()  # before any trial, not in the first one
    holder: dict = {}  # the search, once made: its current_trial_ names the TensorBoard run
    build = make_build(
        X_train.shape[1],
        n_classes,
        args.backend,
        args.seed,
        tensorboard=args.tensorboard,
        trial_number=lambda: getattr(holder.get("search"), "current_trial_", None),
    )
    search = holder["search"] = _search(args, space, storage, build)
    print(
        f"xpnn tune: worker {worker_id()}: {args.trials} trials of study {args.study!r} in {shown} "
        f"({args.sampler}, {args.cv}-fold, {args.epochs} epochs; {X_train.shape[0]} training samples of {args.data})",
        flush=True,
    )
    try:
        search.fit(X_train, y_train)
    except KeyboardInterrupt:
        study = getattr(search, "study_", None)
        print(
            f"xpnn tune: interrupted (Ctrl-C): the running trial is marked failed and queued for the next "
            f"worker; the study {args.study!r} in {shown} keeps every complete trial"
            + (f" ({_count_complete(study)})" if study is not None else ""),
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    _say_best(search, shown)
    test = search.best_model_.evaluate(X_test, y_test)
    written = _write_best(args, search, shown, test, out, list(X_train.shape[1:]))
    print(f"best model retrained on the training split: test accuracy {test['accuracy']:.4f}")
    print(f"wrote {', '.join(written)} to {out}")
    return 0


def _show(args, space, storage, shown) -> int:
    """--show: print the study's trials and its best, running none."""
    search = _search(args, space, storage, build=lambda **p: None)
    search.load()
    print(search.to_markdown())
    _say_best(search, shown)
    return 0


def _tune_data(args):
    """Load --data as flat samples; the train and test splits and the number of classes."""
    (X_train, y_train), (X_test, y_test) = load_data(args.data, args.data_home, flatten=True, max_classes=MAX_CLASSES)
    if X_train.ndim != 2:
        raise UsageError(
            f"--data {args.data}: xpnn tune searches MLPs on flat samples, found shape {X_train.shape[1:]}"
        )
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    return (X_train, y_train), (X_test, y_test), n_classes


def _write_best(args, search, shown, test, out, sample_shape) -> list:
    """Write the best model, trials.csv, best.json and the plots to out; the names written."""
    from .io import atomic_write, save

    # the data, noted as xpnn train notes it: xpnn evaluate and predict name it after a mismatch
    flags = ["--data", args.data, *(["--data-home", args.data_home] if args.data_home else [])]
    notes = {"data": args.data, "data_flags": flags, "input_shape": sample_shape}
    save(search.best_model_, os.path.join(out, "best.safetensors"), notes=notes)
    _write_trials(search, os.path.join(out, "trials.csv"))
    summary = {
        "study": args.study,
        "storage": shown,
        "sampler": args.sampler,
        "scoring": "accuracy",
        "best_trial": search.results_[search.best_index_]["number"],
        "best_params": search.best_params_,
        "best_cv_score": search.best_score_,
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "trials_in_study": len(search.study_.trials),
        "data": args.data,
        "epochs": args.epochs,
        "cv": args.cv,
    }
    atomic_write(os.path.join(out, "best.json"), json.dumps(summary, indent=2).encode())
    return ["best.safetensors", "best.json", "trials.csv"] + _plots(search, out, args)


def _search(args, space, storage, build):
    from .model_selection import BayesSearch, EvolutionSearch

    common = dict(
        n_iter=args.trials or 1,
        cv=args.cv,
        seed=args.seed,
        fit_kwargs={"epochs": args.epochs},
        scoring="accuracy",
        storage=storage,
        study_name=args.study,
        verbose=1,
        n_trials_total=args.trials_total,
    )
    if args.sampler in ("cmaes", "nsga2"):
        objectives = ("score",) if args.sampler == "cmaes" else ("score", "n_params")
        return EvolutionSearch(build, space, objectives=objectives, **common)
    pruning = False
    if args.prune:
        import optuna

        pruning = (
            optuna.pruners.MedianPruner()
            if args.prune == "median"
            else optuna.pruners.HyperbandPruner(min_resource=1, max_resource=args.epochs)
        )
    return BayesSearch(build, space, pruning=pruning, sampler=args.sampler, **common)


def _count_complete(study) -> str:
    import optuna

    n = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    return f"{n} complete trial{'s' if n != 1 else ''}"


def _say_best(search, shown) -> None:
    best = search.results_[search.best_index_]
    print(
        f"best of {len(search.results_)} finished trials in {shown}: trial {best['number']}, "
        f"{json.dumps(search.best_params_)}: accuracy {search.best_score_:.4f} +/- {best['std_score']:.4f}"
    )


def _write_trials(search, path) -> None:
    """Every trial of the study (any worker, any state), atomically."""
    from .io import atomic_write
    from .model_selection.storage import WORKER_ATTR

    trials = search.study_.trials
    names = list(search.distributions)
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(
        ["number", "state", *names, "mean_accuracy", "std_accuracy", "n_params", "fit_time", "worker", "retry_of"]
    )
    for t in trials:
        attrs = t.user_attrs
        params = [search.distributions[n].decode(t.params[n]) if n in t.params else "" for n in names]
        writer.writerow(
            [
                t.number,
                t.state.name.lower(),
                *params,
                attrs.get("mean_score", ""),
                attrs.get("std_score", ""),
                attrs.get("n_params", ""),
                attrs.get("fit_time", ""),
                attrs.get(WORKER_ATTR, ""),
                t.system_attrs.get("failed_trial", ""),
            ]
        )
    atomic_write(path, text.getvalue().encode("utf-8"))


def _plots(search, out, args) -> list:
    """history.png (each trial's score, and the best so far) and, for nsga2, pareto.png."""
    try:
        from .plotting import pyplot

        plt = pyplot()
    except RuntimeError as exc:
        print(f"xpnn tune: no plots ({exc})", file=sys.stderr)
        return []
    from .io import atomic_write

    scored = sorted((r["number"], r["mean_score"]) for r in search.results_ if r["mean_score"] is not None)
    scored = [(n, s) for n, s in scored if math.isfinite(s)]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([n for n, _ in scored], [s for _, s in scored], "o", alpha=0.6, label="trial")
    best, running = [], -math.inf
    for _, s in scored:
        running = max(running, s)
        best.append(running)
    ax.step([n for n, _ in scored], best, where="post", color="C3", label="best so far")
    ax.set(xlabel="trial", ylabel=f"mean accuracy ({args.cv}-fold)", title=f"study {args.study}: optimization history")
    ax.legend()
    written = [_save(fig, os.path.join(out, "history.png"), atomic_write, plt)]
    if args.sampler == "nsga2":
        fig, ax = plt.subplots(figsize=(6, 4))
        points = [(r["n_params"], r["mean_score"]) for r in search.results_ if r["mean_score"] is not None]
        ax.plot([p for p, _ in points], [s for _, s in points], "o", alpha=0.4, label="trial")
        front = sorted((n, s) for _, s, n in search.pareto_front_)
        ax.step([n for n, _ in front], [s for _, s in front], "o-", where="post", color="C3", label="Pareto front")
        ax.set(xscale="log", xlabel="trained parameters", ylabel="mean accuracy", title=f"study {args.study}")
        ax.legend()
        written.append(_save(fig, os.path.join(out, "pareto.png"), atomic_write, plt))
    return written


def _save(fig, path, atomic_write, plt) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    atomic_write(path, buffer.getvalue())
    return os.path.basename(path)
