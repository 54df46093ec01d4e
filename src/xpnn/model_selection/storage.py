"""Where an Optuna study lives, so that several workers can share it.

- ``None``: in memory, one process.
- ``"sqlite:///FILE.db"``: a file, for one worker at a time (or fits run one after the
  other). SQLite locks the whole file for each write: workers running at once wait on each
  other and fail with "database is locked".
- ``"journal:FILE"``: Optuna's journal file, an append-only log guarded by a file lock:
  many workers on one machine (or on a file system with working locks), no server.
- ``"postgresql://USER:PASSWORD@HOST:PORT/DB"``: a PostgreSQL server, for workers on many
  machines. Trials send a heartbeat; a worker that stops sending it (killed, machine
  lost) has its trial marked failed and retried once by another worker.

A URL's password never leaves this module in a message: ``mask_url`` writes ``***``.
"""

from __future__ import annotations

import os
import re
import socket
import warnings

FORMS = (
    "None (in memory), 'sqlite:///FILE.db' (one worker), 'journal:FILE' (many workers on one machine), "
    "'postgresql://USER:PASSWORD@HOST:PORT/DB' (many machines) or an optuna storage object"
)
HEARTBEAT_SECONDS = 60  # a running trial's heartbeat; it is stale after GRACE_FACTOR beats
GRACE_FACTOR = 2
WORKER_ATTR = "xpnn:worker"  # "host:pid" of the process running a trial


# "user:password@" in a URL, also a malformed one ("postgres//user:password@host/db")
_CREDENTIALS = re.compile(r"(?P<user>[^/:@]*):(?P<password>[^@]*)@")


def mask_url(url) -> str:
    """The URL with its password replaced by ``***`` (``postgresql://user:***@host/db``)."""
    if not isinstance(url, str):
        return repr(url)
    if url.startswith("journal:"):  # a file path: no credentials
        return url
    scheme, sep, rest = url.rpartition("://")
    masked = _CREDENTIALS.sub(lambda m: f"{m['user']}:***@", rest, count=1)
    return f"{scheme}{sep}{masked}"


def scrub(text: str, url) -> str:
    """``text`` with the URL's password (if any) replaced by ``***``: for messages that come
    from a database driver and may quote it."""
    password = _password(url)
    if not password:
        return text
    from urllib.parse import unquote

    return text.replace(password, "***").replace(unquote(password), "***")  # as written, and decoded


def _password(url):
    if not isinstance(url, str) or url.startswith("journal:"):
        return None
    found = _CREDENTIALS.search(url.rpartition("://")[2])
    return found["password"] or None if found else None


def check_storage(storage, where="check_storage"):
    """``storage`` if it is one of the accepted forms, else a one-line error naming the
    argument, what was found (password masked) and the accepted forms. Nothing is opened."""
    import optuna

    if storage is None or isinstance(storage, optuna.storages.BaseStorage):
        return storage
    if not isinstance(storage, str):
        raise TypeError(f"{where}: storage must be {FORMS}, found {type(storage).__name__} {storage!r}")
    found = mask_url(storage)
    if storage.startswith("journal:"):
        if not _journal_path(storage):
            raise ValueError(f"{where}: storage {found!r} names no file; expected 'journal:FILE'")
        return storage
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        url = make_url(storage)
        url.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError):
        raise ValueError(f"{where}: storage must be {FORMS}, found {found!r}") from None
    except ImportError as exc:  # the dialect is known but its driver is not installed
        raise ImportError(
            f"{where}: storage {found!r} needs a database driver: {exc} "
            f'(for PostgreSQL: pip install "xpnn[tune]", which brings psycopg2-binary)'
        ) from None
    if url.get_backend_name() == "postgresql" and not url.database:
        raise ValueError(f"{where}: storage {found!r} names no database; expected {FORMS}")
    return storage


def _journal_path(url: str) -> str:
    """The file of 'journal:FILE' ('journal:///abs/path' and 'journal:rel/path' both work)."""
    path = url[len("journal:") :]
    return path[2:] if path.startswith("//") else path


def open_storage(storage, heartbeat_interval: int = HEARTBEAT_SECONDS, where="open_storage"):
    """An optuna storage for a storage URL: a journal file, or a database whose running
    trials send a heartbeat every ``heartbeat_interval`` seconds (a trial silent for twice
    that is failed and retried once). None and storage objects are returned as they are.
    Errors name the storage with its password masked."""
    import optuna

    check_storage(storage, where)
    if storage is None or not isinstance(storage, str):
        return storage
    found = mask_url(storage)
    if storage.startswith("journal:"):
        path = _journal_path(storage)
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise ValueError(f"{where}: storage {found!r}: the folder {folder} does not exist")
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        # an O_EXCL lock file: it works on every file system, NFS included
        return optuna.storages.JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))
    import sqlalchemy.exc

    try:
        with _schema_lock(storage), warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats are
            return optuna.storages.RDBStorage(
                storage,
                heartbeat_interval=heartbeat_interval,
                grace_period=GRACE_FACTOR * heartbeat_interval,
                **{_stale_callback_name(optuna): retry_once},  # type: ignore[arg-type]
                # pre-ping: a long-idle worker's pooled connection may have been dropped
                engine_kwargs={"pool_pre_ping": True},
            )
    except sqlalchemy.exc.SQLAlchemyError as exc:
        detail = scrub(str(getattr(exc, "orig", None) or exc).strip().splitlines()[0], storage)
        raise RuntimeError(f"{where}: cannot open storage {found!r}: {detail}") from None


def _stale_callback_name(optuna) -> str:
    """RDBStorage's argument for the stale-trial callback (Optuna 4.9 renamed it)."""
    import inspect

    name = "heartbeat_stale_trial_callback"
    return name if name in inspect.signature(optuna.storages.RDBStorage).parameters else "failed_trial_callback"


class _schema_lock:
    """For PostgreSQL, a session advisory lock around the first connection: two workers that
    start at once would otherwise both create Optuna's tables, and one dies with
    "duplicate key value violates unique constraint". Other databases: nothing."""

    KEY = 0x78706E6E  # "xpnn": any constant that every worker agrees on

    def __init__(self, url):
        self.url, self.engine, self.connection = url, None, None

    def __enter__(self):
        if not self.url.startswith("postgresql"):
            return self
        import sqlalchemy

        self.engine = sqlalchemy.create_engine(self.url, poolclass=sqlalchemy.pool.NullPool)
        self.connection = self.engine.connect()
        self.connection.execute(sqlalchemy.text(f"SELECT pg_advisory_lock({self.KEY})"))
        return self

    def __exit__(self, *exc_info):
        if self.connection is not None:
            import sqlalchemy

            try:
                self.connection.execute(sqlalchemy.text(f"SELECT pg_advisory_unlock({self.KEY})"))
            finally:
                self.connection.close()
                self.engine.dispose()


def close(storage) -> None:
    """Close the idle database connections of a storage (they reopen when next needed)."""
    engine = getattr(storage, "engine", None)
    if engine is not None:
        engine.dispose()


def worker_id() -> str:
    """``host:pid`` of this process: which worker ran a trial."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    try:  # a killed child its parent has not reaped yet is a zombie: dead
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def fail_dead_workers(study) -> list:
    """Mark failed the running trials of workers on this machine whose process has ended,
    and queue each for one retry (as the heartbeat does on a database, where it takes the
    grace period; a journal file has no heartbeat). The searches call it as a worker starts
    and after each of its trials. Returns the failed trials' numbers."""
    import optuna

    state = optuna.trial.TrialState
    host = socket.gethostname()
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(state.RUNNING,)):
        worker = trial.user_attrs.get(WORKER_ATTR, "")
        name, _, pid = worker.rpartition(":")
        if name != host or not pid.isdigit() or _alive(int(pid)):
            continue
        try:
            if not study._storage.set_trial_state_values(trial._trial_id, state=state.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:  # another worker got there first
            continue
        retry_once(study, study._storage.get_trial(trial._trial_id))
        failed.append(trial.number)
    return failed


def retry_once(study, trial) -> None:
    """Queue a failed trial's parameters once more (a retry that fails is not retried).
    As Optuna's RetryHeartbeatStaleTrialCallback(max_retry=1), but without the dead
    worker's id, which would otherwise mark the retry dead before its new worker sets its own."""
    import optuna

    history = list(trial.system_attrs.get("retry_history", []))
    if history:
        return
    user_attrs = {k: v for k, v in trial.user_attrs.items() if k != WORKER_ATTR}
    system_attrs = {**trial.system_attrs, "failed_trial": trial.number, "retry_history": [trial.number]}
    study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.WAITING,
            params=trial.params,
            distributions=trial.distributions,
            user_attrs=user_attrs,
            system_attrs=system_attrs,
        )
    )
