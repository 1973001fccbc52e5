"""Host keys of the SFTP server fixture (asyncssh on loopback): unknown and changed keys refused by default, an
unparseable known_hosts line reported as our configuration error with file and line, and opt-in trust on
first use that logs the fingerprint, records the key and still refuses a changed key afterwards."""

from __future__ import annotations

import logging

import paramiko
import pytest

from fc_assets.resources.sftp import SFTPConfigError, SFTPResource, fingerprint


def resource(sftp_server, known_hosts, **kw) -> SFTPResource:
    return SFTPResource(
        host=sftp_server.host,
        port=sftp_server.port,
        username=sftp_server.user,
        password=sftp_server.password,
        known_hosts=str(known_hosts),
        timeout_s=20.0,
        **kw,
    )


def connect(res: SFTPResource) -> None:
    with res.session():
        pass


def host_spec(sftp_server) -> str:
    return f"[{sftp_server.host}]:{sftp_server.port}"


def server_key(sftp_server) -> paramiko.PKey:
    return paramiko.HostKeys(str(sftp_server.known_hosts)).lookup(host_spec(sftp_server))["ssh-ed25519"]


def other_ed25519_line(host: str) -> str:
    import asyncssh  # paramiko cannot generate ed25519 keys

    pub = asyncssh.generate_private_key("ssh-ed25519").export_public_key("openssh").decode().strip()
    return f"{host} {pub}\n"


def test_known_key_connects(sftp_server):
    with resource(sftp_server, sftp_server.known_hosts).session() as s:
        assert s.list_dir(".", "*.nothing") == []


def test_unknown_host_refused_by_default(sftp_server, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text(other_ed25519_line("[elsewhere.example]:22"))
    with pytest.raises(SFTPConfigError, match="not found in known_hosts"):
        connect(resource(sftp_server, known))
    missing = tmp_path / "absent_known_hosts"
    with pytest.raises(SFTPConfigError, match="does not exist"):
        connect(resource(sftp_server, missing))
    assert not missing.exists()


def test_changed_host_key_refused_by_default_and_with_trust_on_first_use(sftp_server, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text(other_ed25519_line(host_spec(sftp_server)))
    before = known.read_text()
    for tofu in (False, True):
        with pytest.raises(SFTPConfigError, match="changed"):
            connect(resource(sftp_server, known, trust_on_first_use=tofu))
    assert known.read_text() == before


def test_known_host_with_only_another_key_type_is_not_trusted_on_first_use(sftp_server, tmp_path):
    # paramiko hands this case to the missing-key policy: TOFU must treat it as a changed key
    rsa = paramiko.RSAKey.generate(2048)
    known = tmp_path / "known_hosts"
    known.write_text(f"{host_spec(sftp_server)} ssh-rsa {rsa.get_base64()}\n")
    with pytest.raises(SFTPConfigError, match="changed"):
        connect(resource(sftp_server, known, trust_on_first_use=True))
    assert "ssh-ed25519" not in known.read_text()


def test_unparseable_known_hosts_line_is_our_configuration_error(sftp_server, tmp_path):
    known = tmp_path / "known_hosts"
    good = sftp_server.known_hosts.read_text()
    known.write_text("# partner servers\n" + good + "[broken.example]:22 ssh-ed25519 AAAA!!not-base64\n")
    with pytest.raises(SFTPConfigError) as info:
        connect(resource(sftp_server, known))
    message = str(info.value)
    assert f"{known}, line 3" in message and "cannot be parsed" in message
    assert not isinstance(info.value, paramiko.hostkeys.InvalidHostKey)


def test_trust_on_first_use_logs_fingerprint_records_key_then_verifies(sftp_server, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="fc_assets.sftp")
    known = tmp_path / "ssh" / "known_hosts"  # does not exist yet: created
    with resource(sftp_server, known, trust_on_first_use=True).session() as s:
        assert s.list_dir(".", "*.nothing") == []
    expected = fingerprint(server_key(sftp_server))
    (record,) = [r for r in caplog.records if "trust on first use" in r.getMessage()]
    assert expected in record.getMessage() and host_spec(sftp_server) in record.getMessage()
    assert paramiko.HostKeys(str(known)).lookup(host_spec(sftp_server))["ssh-ed25519"] == server_key(
        sftp_server
    )
    caplog.clear()
    # the recorded key is now verified like any other: the default policy connects, nothing is logged again
    with resource(sftp_server, known).session() as s:
        assert s.list_dir(".", "*.nothing") == []
    connect(resource(sftp_server, known, trust_on_first_use=True))
    assert not [r for r in caplog.records if "trust on first use" in r.getMessage()]
    assert len(known.read_text().splitlines()) == 1


def test_trust_on_first_use_comes_from_the_setting(settings_env, tmp_path):
    settings_env(FC_SFTP_TRUST_ON_FIRST_USE="true")
    assert SFTPResource.from_settings().trust_on_first_use is True
    settings_env(FC_SFTP_TRUST_ON_FIRST_USE=None)
    assert SFTPResource.from_settings().trust_on_first_use is False
