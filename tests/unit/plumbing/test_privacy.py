"""One phone pattern for logs, notifications and masked views: every way a number is written, and
every figure that only looks like one."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from jiesu.privacy import mask_contact_in, mask_name, mask_phone, mask_phones, redact_phones
from services.tracker.notify import scrub

PHONES = [  # (as written, as masked)
    ("13800138000", "138****8000"),
    ("138 0013 8000", "138****8000"),
    ("138-0013-8000", "138****8000"),
    ("19912345678", "199****5678"),
    ("+86 138 0013 8000", "138****8000"),
    ("+8613800138000", "138****8000"),
    ("+86-138-0013-8000", "138****8000"),
    ("0086 13800138000", "138****8000"),
    ("8613800138000", "138****8000"),
    ("010-12345678", "010****5678"),
    ("01062345678", "010****5678"),
    ("0755 1234 5678", "075****5678"),
    ("0755-1234-5678", "075****5678"),
    ("0371-6234567", "037****4567"),
    ("(021)12345678", "021****5678"),
    ("(021) 1234 5678", "021****5678"),
    ("（021）12345678", "021****5678"),
    ("010-12345678-123", "010****5678"),
    ("010-62345678转8001", "010****5678"),
    ("021-62345678 ext 12", "021****5678"),
    ("+86 10 6234 5678", "010****5678"),
    ("+86-755-12345678", "075****5678"),
]


@pytest.mark.parametrize(("written", "masked"), PHONES)
def test_every_way_of_writing_a_number_is_masked(written, masked):
    assert mask_phones(written) == masked
    assert mask_phones(f"市民{written}反映") == f"市民{masked}反映"  # Chinese text around it is no boundary
    assert mask_phones(f"call {written}, please") == f"call {masked}, please"
    assert redact_phones(f"市民{written}反映") == "市民***反映"


@pytest.mark.parametrize(("written", "masked"), [
    ("电话：62345678", "电话：****5678"),
    ("座机 6234-5678", "座机 ****5678"),
    ("联系电话是6234567", "联系电话是****4567"),
    ("手机:62345678", "手机:****5678"),
    ("Tel: 62345678", "Tel: ****5678"),
])
def test_a_local_number_without_area_code_is_masked_when_introduced_as_a_phone(written, masked):
    assert mask_phones(written) == masked


NOT_PHONES = [
    "12345-20261122-000123",  # ticket number
    "工单 12345-20261122-000123 已答复",
    "01a204aa-7f90-76a0-8e0d-5cd8f0f0e454",  # UUIDs
    "01937c4e-0000-7000-8000-075512345678",
    "2026-11-22", "2026-11-22T10:00:00+08:00", "2026-11-22T02:00:00.123456+00:00",  # ISO dates and timestamps
    "20261122", "1732000000", "1732000000000",  # compact dates, Unix seconds and milliseconds
    "12345", "请拨打 12345 热线",  # the hotline itself
    "补偿金额 13800000 元", "¥1,380,000.00", "62345678 元",  # amounts
    "尾号 8000", "phone_last4=8000",  # the progress look-up's last four digits
    "138001380001", "1380013800",  # one digit too many, one too few
    "0123456789",  # no such area code
    "iphone 62345678", "offset=62345678",  # a local-length figure not introduced as a phone
    "DB-a6-1", "M-CGW", "v2026.11.3",
]


@pytest.mark.parametrize("text", NOT_PHONES)
def test_what_only_looks_like_a_phone_number_is_left_alone(text):
    assert mask_phones(text) == text
    assert redact_phones(text) == text


def test_a_notification_loses_the_citizens_number_however_it_was_typed_and_keeps_the_ticket_number():
    text = scrub("市民138 0013 8000（座机 0755-1234-5678，电话62345678）反映，工单 12345-20261123-000001，"
                 "另留 1380013800x", "1380013800x")
    assert text == "市民***（座机 ***，电话***）反映，工单 12345-20261123-000001，另留 ***"


@pytest.mark.parametrize(("phone", "masked"), [
    ("13800138000", "138****8000"), ("010-62345678", "010*****5678"), ("62345678", "****5678"),
    ("6234567", "***4567"), ("1234", "****"), ("", ""), (None, ""),
])
def test_a_known_number_keeps_at_most_its_ends(phone, masked):
    assert mask_phone(phone) == masked


def test_a_name_keeps_only_the_family_name():
    assert (mask_name("张三丰"), mask_name("王芳"), mask_name(""), mask_name(None)) == ("张**", "王*", "", "")


def test_free_text_hides_the_citizens_name_and_any_number_in_it():
    text = "王芳反映：请回电 138-0013-8000 或 0086 13900001111，邻居张先生也有意见。工单 12345-20261122-000123"
    assert mask_contact_in(text, "王芳", "138-0013-8000") == \
        "王*反映：请回电 138****8000 或 139****1111，邻居张先生也有意见。工单 12345-20261122-000123"
    assert mask_contact_in(None, "王芳", "13800138000") is None


@pytest.mark.parametrize("written", ["0101 2345 678", "010-1234-5678", "（010）12345678", "0 1 0 1 2 3 4 5 6 7 8"])
def test_the_citizens_own_number_kept_as_digits_is_masked_however_the_text_spaces_it(written):
    """Numbers are kept as their digits (plain_phone); the citizen may have written theirs out in any groups, some
    of which no phone pattern knows: it is masked all the same, and a longer figure holding its digits is not."""
    text = f"请打座机 {written} 找我，订单号 9901012345678123"
    masked = mask_contact_in(text, None, "01012345678")
    assert masked == "请打座机 010****5678 找我，订单号 9901012345678123"


def test_a_masked_ticket_view_masks_the_free_text_too():
    from datetime import UTC, datetime

    from jiesu.identity import User
    from schemas.enums import Role
    from services.tracker.queries import ticket_view

    row = SimpleNamespace(
        ticket_id="t1", number="12345-20261122-000123", state="assigned", channel="hotline", kind="complaint",
        urgency="normal", subject="王芳 13800138000 噪音", description="王芳说：晚上请打 13800138000",
        citizen_name="王芳", citizen_phone="13800138000", confidential=True, district=None, street=None,
        address="幸福路 1 号", category=None, lead_code=None, lead_name=None, co_handlers=[], routing=None,
        received_at=None, assigned_at=None, sign_for_due=None, contact_due=None, reply_due=None, warn_at=None,
        calendar_unconfirmed=False, reply="已联系王芳", replied_at=None)
    now = datetime.now(UTC)
    dept = ticket_view(row, User(1, "d", "d", Role.DEPARTMENT, "M-CGW"), now)
    assert dept["citizen"] == {"name": "王*", "phone": "138****8000", "confidential": True, "masked": True}
    assert (dept["subject"], dept["description"], dept["reply"]) == (
        "王* 138****8000 噪音", "王*说：晚上请打 138****8000", "已联系王*")
    supervisor = ticket_view(row, User(2, "s", "s", Role.SUPERVISOR), now)
    assert supervisor["description"] == row.description and supervisor["citizen"]["phone"] == "13800138000"


def test_the_dispatch_queue_shows_no_phone_number_typed_into_the_text():
    from datetime import UTC, datetime

    from services.router.api import _queue_item

    now = datetime.now(UTC)
    row = SimpleNamespace(ticket_id="t1", number="12345-20261122-000123", received_at=now, decided_at=now,
                          subject="请回电13800138000", description="噪音扰民，座机 010-62345678，工单 12345-20261122-000100",
                          kind="complaint", urgency="normal", district="D-01", street=None, why="", returns=0,
                          excluded=[], suggestions=[])
    item = _queue_item(row)
    assert item["subject"] == "请回电138****8000"
    assert item["description"] == "噪音扰民，座机 010****5678，工单 12345-20261122-000100"
