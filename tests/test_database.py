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


def test_external_database_uri(tmp_path):
    """FiftyOne and fiftyone-dcd work against a MongoDB given by
    FIFTYONE_DATABASE_URI (here a mongod started by hand)."""
    import socket
    import subprocess
    import sys
    import time

    mongod = database.find_mongod()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    dbpath = tmp_path / "db"
    dbpath.mkdir()
    proc = subprocess.Popen(
        [
            mongod,
            "--dbpath",
            str(dbpath),
            "--port",
            str(port),
            "--bind_ip",
            "127.0.0.1",
            "--nounixsocket",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        uri = "mongodb://127.0.0.1:%d/" % port
        for _ in range(100):
            if database.check_database_uri(uri, timeout_ms=200) is None:
                break
            time.sleep(0.2)

        script = (
            "import fiftyone as fo, fiftyone_dcd\n"
            "from fiftyone_dcd.database import diagnose\n"
            "assert diagnose() is None\n"
            "ds = fo.Dataset('dcd-uri-test', persistent=True)\n"
            "ds.add_sample(fo.Sample(filepath='/x.png', tags=['a']))\n"
            "print(fo.list_datasets(), ds.count_sample_tags())\n"
        )
        env = dict(os.environ, FIFTYONE_DATABASE_URI=uri)
        env.pop("FIFTYONE_DATABASE_DIR", None)
        out = subprocess.run(
            [sys.executable, "-c", script],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr
        assert "dcd-uri-test" in out.stdout and "{'a': 1}" in out.stdout
        # the dataset lives in that server, not in the embedded database
        import pymongo

        names = pymongo.MongoClient(uri)["fiftyone"].datasets.distinct("name")
        assert "dcd-uri-test" in names
    finally:
        proc.terminate()
        proc.wait(timeout=30)
