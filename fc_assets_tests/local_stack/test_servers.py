"""The local S3 and SFTP servers speak their real protocols: a Parquet round trip through pyarrow's S3
filesystem and DuckDB's httpfs, and an SFTP session that verifies the host key against known_hosts."""

import paramiko
import pyarrow as pa
import pytest


def test_lake_on_s3_roundtrip_and_duckdb(lake):
    table = pa.table({"id": [1, 2, 3], "ref": ["a", "b", "c"]})
    import pyarrow.parquet as pq

    with lake.atomic_write("t", "dt=2025-01-01", "part-0.parquet") as out:
        pq.write_table(table, out)
    assert lake.list_files("t") == ["t/dt=2025-01-01/part-0.parquet"]
    assert lake.list_files("_tmp") == []
    assert lake.read_parquet("t/dt=2025-01-01/part-0.parquet").to_pydict() == table.to_pydict()
    con = lake.duckdb()
    rows = con.sql(
        f"select dt, count(*) from read_parquet('{lake.uri_for('t')}/*/*.parquet', hive_partitioning=true) group by dt"
    ).fetchall()
    assert [(str(d), n) for d, n in rows] == [("2025-01-01", 3)]


def test_atomic_write_leaves_nothing_on_failure(lake):
    with pytest.raises(RuntimeError), lake.atomic_write("t", "x.bin") as out:
        out.write(b"half")
        raise RuntimeError("crash")
    assert not lake.exists("t", "x.bin")
    assert lake.list_files("_tmp") == []


def test_sftp_server_verifies_host_key(sftp_server):
    client = paramiko.SSHClient()
    client.load_host_keys(str(sftp_server.known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        sftp_server.host,
        sftp_server.port,
        username=sftp_server.user,
        password=sftp_server.password,
        look_for_keys=False,
        allow_agent=False,
    )
    try:
        sftp = client.open_sftp()
        sftp.mkdir("inbox")
        with sftp.open("inbox/a.csv", "w") as f:
            f.write("sku,qty\n1,2\n")
        assert sftp.listdir("inbox") == ["a.csv"]
        assert (sftp_server.root / "inbox" / "a.csv").read_text() == "sku,qty\n1,2\n"
    finally:
        client.close()


def test_sftp_server_rejects_unknown_host_key(sftp_server, tmp_path):
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    with pytest.raises(paramiko.SSHException):
        client.connect(
            sftp_server.host,
            sftp_server.port,
            username=sftp_server.user,
            password=sftp_server.password,
            look_for_keys=False,
            allow_agent=False,
        )
    client.close()


def test_stopping_a_server_stops_what_it_started(tmp_path):
    """`dagster dev` exits on SIGTERM before its code servers and run workers do; stopping it must not leave
    them running (CI saw a code server and a run's step process outlive `fc-assets demo`)."""
    import sys
    import time

    from fc_assets.local_stack.process import ServerProcess, _group_members

    slow_child = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
    leader = (
        "import signal, subprocess, sys, time; "
        f"subprocess.Popen([sys.executable, '-c', {slow_child!r}]); "
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0)); time.sleep(600)"
    )
    server = ServerProcess("leader", [sys.executable, "-c", leader], ready=lambda: True).start()
    deadline = time.monotonic() + 10
    while len(_group_members(server.proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_group_members(server.proc.pid)) == 2
    started = time.monotonic()
    server.stop(timeout=2)
    assert _group_members(server.proc.pid) == []
    assert time.monotonic() - started < 8
