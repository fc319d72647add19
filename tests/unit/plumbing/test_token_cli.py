"""`jiesu token`: an administrator creates a machine client's token, lists a user's tokens by name and revokes one."""

from __future__ import annotations

import asyncio
from argparse import Namespace

import pytest

from jiesu.cli import build_parser, cmd_token
from jiesu.db import Database
from jiesu.identity import IdentityStore
from jiesu.migrate import upgrade_all
from schemas.enums import Role


@pytest.fixture
def settings(sqlite_settings):
    upgrade_all(sqlite_settings)

    async def make_user():
        store = IdentityStore(Database(sqlite_settings.database_url("identity")))
        await store.create_user("op", "password-123", Role.OPERATOR)
        await store.db.dispose()

    asyncio.run(make_user())
    return sqlite_settings


def _token(settings, *argv) -> int:
    return cmd_token(build_parser().parse_args(["token", *argv]), settings)


def _user_for(settings, token):
    async def look_up():
        store = IdentityStore(Database(settings.database_url("identity")))
        try:
            return await store.user_for_token(token)
        finally:
            await store.db.dispose()

    return asyncio.run(look_up())


def test_a_token_listed_by_name_and_revoked_by_name_no_longer_authenticates(settings, capsys):
    assert _token(settings, "op", "portal") == 0
    portal = capsys.readouterr().out.strip()
    assert _token(settings, "op", "kiosk") == 0
    kiosk = capsys.readouterr().out.strip()
    assert _user_for(settings, portal).username == "op"

    assert _token(settings, "op", "--list") == 0
    listed = capsys.readouterr().out
    assert "portal" in listed and "kiosk" in listed and portal not in listed  # the token itself is never shown

    assert _token(settings, "op", "portal", "--revoke") == 0
    assert "revoked 1 token" in capsys.readouterr().out
    assert _user_for(settings, portal) is None
    assert _user_for(settings, kiosk).username == "op"  # another name: untouched

    assert _token(settings, "op", "portal", "--revoke") == 2  # nothing of that name left in use
    assert "no token of that name in use" in capsys.readouterr().err


def test_unknown_users_and_missing_names_are_refused_in_chinese_and_english(settings, capsys):
    assert _token(settings, "nobody", "--list") == 2
    assert "没有此用户 / no such user: nobody" in capsys.readouterr().err
    assert _token(settings, "nobody", "portal", "--revoke") == 2
    assert "没有此用户 / no such user: nobody" in capsys.readouterr().err
    assert cmd_token(Namespace(username="op", name=None, list=False, revoke=True), settings) == 2
    assert "give the token's name" in capsys.readouterr().err
