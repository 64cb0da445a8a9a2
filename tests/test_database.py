"""Database diagnosis names the cause and the fix."""

import os
import stat

from fiftyone_dcd import database


def test_working_mongod_passes():
    if os.environ.get("FIFTYONE_DATABASE_URI"):
        assert database.diagnose() is None
    else:
        assert database.check_mongod() is None


def test_broken_mongod_is_explained(tmp_path):
    fake = tmp_path / "mongod"
    fake.write_text(
        "#!/bin/sh\necho 'libcrypto.so.1.1: cannot open' >&2\n" "exit 127\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    problem = database.check_mongod(str(fake))
    assert "cannot run" in problem and "libcrypto.so.1.1" in problem


def test_missing_mongod_is_explained(tmp_path):
    problem = database.check_mongod(str(tmp_path / "absent"))
    assert "missing" in problem


def test_unreachable_uri_is_explained(monkeypatch):
    monkeypatch.setenv("FIFTYONE_DATABASE_URI", "mongodb://127.0.0.1:9/")
    problem = database.diagnose()
    assert "does not answer" in problem
    assert "unset FIFTYONE_DATABASE_URI" in problem
