"""`jiesu up --port` and `jiesu run --port`: links in mails and rating links name the port the server listens on."""

from __future__ import annotations

from argparse import Namespace

from jiesu.cli import _listening
from jiesu.config import Settings
from jiesu.mailer import public_base_url


def test_the_port_and_host_given_on_the_command_line_are_the_ones_links_name(tmp_path):
    settings = Settings(data_dir=tmp_path, secret_key="k", _env_file=None)
    assert public_base_url(settings) == "http://127.0.0.1:8000"
    given = _listening(Namespace(host=None, port=8719), settings)
    assert (given.host, given.port) == ("127.0.0.1", 8719)
    assert public_base_url(given) == "http://127.0.0.1:8719"
    assert public_base_url(_listening(Namespace(host="10.0.0.5", port=None), settings)) == "http://10.0.0.5:8000"
    # JIESU_PUBLIC_URL, where citizens reach the pages through a proxy, still wins.
    behind = Settings(data_dir=tmp_path, secret_key="k", public_url="https://12345.example.gov.cn/", _env_file=None)
    assert public_base_url(_listening(Namespace(host=None, port=8719), behind)) == "https://12345.example.gov.cn"


class _Built(Exception):
    pass


def test_jiesu_up_builds_its_app_with_the_port_given(tmp_path, monkeypatch):
    import jiesu.app
    import jiesu.embedded_broker
    from jiesu.cli import cmd_up

    built = []

    def build_app(settings, services, **kwargs):
        built.append(settings)
        raise _Built

    async def no_topics(*args, **kwargs):
        return None

    monkeypatch.setattr(jiesu.app, "build_app", build_app)
    monkeypatch.setattr(jiesu.embedded_broker, "ensure_topics", no_topics)
    settings = Settings(data_dir=tmp_path, secret_key="k", broker_url="127.0.0.1:1", _env_file=None)
    try:
        cmd_up(Namespace(host=None, port=8719), settings)
    except _Built:
        pass
    assert [s.port for s in built] == [8719]


def test_listening_on_every_address_without_a_public_url_is_warned_of(tmp_path, capsys):
    settings = Settings(data_dir=tmp_path, secret_key="k", _env_file=None)
    _listening(Namespace(host="0.0.0.0", port=None), settings)
    assert "JIESU_PUBLIC_URL" in capsys.readouterr().err
    _listening(Namespace(host="0.0.0.0", port=None), settings.model_copy(update={"public_url": "https://x.gov.cn"}))
    _listening(Namespace(host=None, port=8719), settings)
    assert capsys.readouterr().err == ""
