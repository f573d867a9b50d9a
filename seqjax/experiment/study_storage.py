"""Where an Optuna study lives: a SQLite file in the sweep folder, any database URL, or a journal file.

* default: ``sqlite:///<out>/optuna.db`` (nothing to install or start; the workers of one machine share it);
* ``--storage URL``: any SQLAlchemy database URL Optuna's ``RDBStorage`` takes, e.g.
  ``postgresql://user@host/db`` (workers on many machines);
* ``--storage journal:PATH``: Optuna's ``JournalStorage(JournalFileBackend(PATH))``, an append-only file
  on a shared filesystem (workers on many machines, no database server).

Optuna is imported only when a storage is opened (it is the optional ``search`` extra).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seqjax.errors import UserError, describe

STUDY_DB = "optuna.db"
JOURNAL = "journal:"


def storage_url(storage: str | None, out: str | Path) -> str:
    """The URL of the study's storage: ``storage`` as given, else the SQLite file in ``out``.

    >>> storage_url(None, "/runs/s")
    'sqlite:////runs/s/optuna.db'
    >>> storage_url("journal:/shared/study.log", "/runs/s")
    'journal:/shared/study.log'
    """
    return storage if storage is not None else f"sqlite:///{Path(out).absolute() / STUDY_DB}"


def open_storage(url: str) -> Any:
    """The Optuna storage behind ``url``; one line when it cannot be opened.

    >>> open_storage("journal:")
    Traceback (most recent call last):
    ...
    seqjax.errors.UserError: --storage 'journal:': ...
    """
    import optuna

    hint = "give sqlite:///PATH, another database URL (e.g. postgresql://host/db) or journal:PATH"
    if url.startswith(JOURNAL):
        path = url[len(JOURNAL):]
        if not path:
            raise UserError(f"--storage {url!r}: journal: needs a file path, e.g. journal:/shared/study.log")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(path))
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    try:
        return optuna.storages.RDBStorage(url)
    except Exception as e:  # a malformed URL, an unknown driver, an unreachable server: one line
        raise UserError(f"--storage {url!r} cannot be opened ({describe(e, 120)}): {hint}") from None
