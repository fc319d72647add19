"""Short-lived signed grants to download one attachment of one ticket.

Department staff may open a citizen's photo or scan only on their own department's tickets,
and only the tracker knows which department a ticket is assigned to; intake keeps the files
and must not read the tracker's tables. So the tracker, having just shown the ticket to a
user, signs a grant naming the ticket, the file, the user and the department, and intake
checks the signature and that the grant is this user's and this file's.

Grants are signed with the secret every service shares (as session cookies are), under a salt
of their own, so that neither a session cookie nor any other token signed with that secret
passes for a grant, nor a grant for them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import timedelta

from itsdangerous import BadData, SignatureExpired, URLSafeTimedSerializer

from jiesu.errors import ApiError
from jiesu.identity import User

SALT = "jiesu.attachment"
LIFETIME = timedelta(minutes=10)  # long enough to click, short enough that a copied link soon dies


@dataclass(frozen=True)
class AttachmentGrant:
    number: str  # 工单编号
    sha256: str
    username: str
    role: str
    department: str | None  # the unit the user works for (department staff), else None

    @classmethod
    def for_user(cls, user: User, number: str, sha256: str) -> AttachmentGrant:
        return cls(number, sha256, user.username, user.role.value, user.department)


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=SALT)


def sign(secret: str, grant: AttachmentGrant) -> str:
    """The grant as a URL-safe token, valid for LIFETIME from now."""
    return _serializer(secret).dumps(asdict(grant))


def read(secret: str, token: str, max_age: timedelta = LIFETIME) -> AttachmentGrant:
    """The grant a token carries, if we signed it and it is younger than `max_age`."""
    try:
        data = _serializer(secret).loads(token, max_age=int(max_age.total_seconds()))
    except SignatureExpired:
        raise ApiError(403, "grant_expired", "下载链接已过期，请刷新工单页面后重新下载",
                       "The download link has expired; reload the ticket page and download again") from None
    except BadData:
        raise _invalid() from None
    try:
        return AttachmentGrant(**data)
    except TypeError:  # signed by us, but not a grant (another version's fields)
        raise _invalid() from None


def check(secret: str, token: str, *, number: str, sha256: str, user: User) -> AttachmentGrant:
    """The grant, if it opens exactly this attachment of this ticket for this user as they are now."""
    grant = read(secret, token)
    if grant != AttachmentGrant.for_user(user, number, sha256):
        raise ApiError(403, "grant_mismatch", "此下载链接不是为您或这个附件签发的，请从工单页面重新打开附件",
                       "This download link was issued for another user or another attachment; "
                       "open the attachment from the ticket page")
    return grant


def _invalid() -> ApiError:
    return ApiError(403, "grant_invalid", "下载链接无效，请从工单页面重新打开附件",
                    "The download link is not valid; open the attachment from the ticket page")
