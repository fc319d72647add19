"""Download grants for attachments: signed by the tracker, read by intake, for one user, one file, ten minutes."""

import time

import pytest
from itsdangerous import BadSignature, URLSafeTimedSerializer

from jiesu import attachment_grants
from jiesu.attachment_grants import LIFETIME, AttachmentGrant, check, read, sign
from jiesu.errors import ApiError
from jiesu.identity import User
from schemas.enums import Role

SECRET = "test-secret"
NUMBER = "12345-20261124-000001"
SHA = "a" * 64
STAFF = User(7, "cgw-li", "李", Role.DEPARTMENT, "M-CGW")


def granted(user: User = STAFF, number: str = NUMBER, sha256: str = SHA) -> str:
    return sign(SECRET, AttachmentGrant.for_user(user, number, sha256))


def refused(code: str, call, *args, **kwargs) -> ApiError:
    with pytest.raises(ApiError) as err:
        call(*args, **kwargs)
    assert err.value.code == code and err.value.status == 403
    assert err.value.zh and err.value.en
    return err.value


def test_a_grant_names_the_ticket_the_file_the_user_and_the_department():
    token = granted()
    assert read(SECRET, token) == AttachmentGrant(NUMBER, SHA, "cgw-li", "department", "M-CGW")
    assert check(SECRET, token, number=NUMBER, sha256=SHA, user=STAFF).department == "M-CGW"


def test_a_grant_lasts_ten_minutes(monkeypatch):
    token = granted()
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + LIFETIME.total_seconds() - 5)
    assert read(SECRET, token).sha256 == SHA
    monkeypatch.setattr(time, "time", lambda: now + LIFETIME.total_seconds() + 5)
    error = refused("grant_expired", read, SECRET, token)
    assert "过期" in error.zh and "expired" in error.en


@pytest.mark.parametrize("tamper", [
    lambda t: t[:5] + ("A" if t[5] != "A" else "B") + t[6:],  # the payload
    # the signature's first character: its last carries two unused bits in base64, so changing it may change nothing
    lambda t: (lambda head, sig: f"{head}.{'A' if sig[0] != 'A' else 'B'}{sig[1:]}")(*t.rsplit(".", 1)),
    lambda t: t.split(".")[0],  # the signature cut off
    lambda t: "not-a-grant",
])
def test_a_tampered_grant_is_invalid(tamper):
    refused("grant_invalid", read, SECRET, tamper(granted()))


def test_a_grant_under_another_secret_or_salt_is_invalid():
    payload = {"number": NUMBER, "sha256": SHA, "username": "cgw-li", "role": "department", "department": "M-CGW"}
    refused("grant_invalid", read, "another-secret", granted())
    refused("grant_invalid", read, SECRET, URLSafeTimedSerializer(SECRET, salt="jiesu-session").dumps(payload))
    with pytest.raises(BadSignature):  # nor does a grant pass for a session cookie
        URLSafeTimedSerializer(SECRET, salt="jiesu-session").loads(granted())


def test_something_else_signed_under_the_grants_salt_is_not_a_grant():
    other = URLSafeTimedSerializer(SECRET, salt=attachment_grants.SALT).dumps({"id": 1, "u": "cgw-li"})
    refused("grant_invalid", read, SECRET, other)


@pytest.mark.parametrize("number, sha256, user", [
    ("12345-20261124-000002", SHA, STAFF),  # another ticket
    (NUMBER, "b" * 64, STAFF),  # another file of the ticket
    (NUMBER, SHA, User(8, "cgw-wang", "王", Role.DEPARTMENT, "M-CGW")),  # a colleague
    (NUMBER, SHA, User(7, "cgw-li", "李", Role.DEPARTMENT, "U-ZLS")),  # moved to another unit since
    (NUMBER, SHA, User(7, "cgw-li", "李", Role.VISITOR)),  # another role since
])
def test_a_grant_opens_only_its_own_file_for_its_own_user(number, sha256, user):
    error = refused("grant_mismatch", check, SECRET, granted(), number=number, sha256=sha256, user=user)
    assert "签发" in error.zh and "another" in error.en
