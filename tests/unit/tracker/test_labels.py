"""How the tracker's pages name who did something, and how a notice closes someone's sentence."""

from services.tracker.queries import dispatch_reason
from services.tracker.timers import sentence
from services.tracker.web import actor_label, timeline_lines


def _line(actor: str, summary: str, event_type: str = "TicketAssigned", **reason) -> dict:
    return {"at": "2026-11-24T09:00:00+00:00", "event_type": event_type, "actor": actor, "summary": summary,
            **reason}


def test_the_system_and_its_parts_are_named_in_chinese():
    assert [actor_label(a) for a in ("system", "router", "citizen", "mailbox")] == ["系统", "智能派单", "市民", "市长信箱"]


def test_a_user_name_becomes_the_persons_name_or_else_their_role():
    names = {"supervisor": "督查室 陈刚"}
    assert actor_label("supervisor", names) == "督查室 陈刚"
    assert actor_label("supervisor") == "督查室"  # no such user any more: the role
    assert actor_label("operator") == "话务员" and actor_label("dispatcher") == "派单员"


def test_a_part_of_the_system_is_never_taken_for_a_user_of_the_same_name():
    assert actor_label("system", {"system": "张三"}) == "系统"


def test_a_name_already_written_is_shown_as_it_is():
    assert actor_label("王丽（M-CGW）") == "王丽（M-CGW）"


def test_a_dispatch_a_dispatcher_decided_names_the_dispatcher_and_its_basis_in_chinese():
    [line] = timeline_lines([_line("router", "派单至 市城市管理委员会（依据：dispatcher）")], {})  # as written before
    assert (line["actor"], line["summary"]) == ("派单员", "派单至 市城市管理委员会（依据：人工派单）")
    [line] = timeline_lines([_line("router", "派单至 市城市管理委员会（依据：人工派单）")], {})
    assert (line["actor"], line["summary"]) == ("派单员", "派单至 市城市管理委员会（依据：人工派单）")


def test_a_dispatch_by_rule_is_the_routers_and_keeps_its_basis():
    [line] = timeline_lines([_line("router", "派单至 市水务局，协办 解放路街道（依据：规则 R-012）")], {})
    assert (line["actor"], line["summary"]) == ("智能派单", "派单至 市水务局，协办 解放路街道（依据：规则 R-012）")
    [line] = timeline_lines([_line("router", "派单至 市水务局（依据：reroute）")], {})
    assert (line["actor"], line["summary"]) == ("智能派单", "派单至 市水务局（依据：退单重派）")


def test_a_dispatch_line_takes_its_method_from_its_data_not_from_its_words():
    [line] = timeline_lines([_line("router", "派单至 市城市管理委员会", method="dispatcher", by="wangli")],
                            {"wangli": "王丽"})
    assert (line["actor"], line["summary"]) == ("派单员 王丽", "派单至 市城市管理委员会")
    [line] = timeline_lines([_line("router", "派单至 市水务局（依据：规则 R-012）", method="rule")], {})
    assert (line["actor"], line["summary"]) == ("智能派单", "派单至 市水务局（依据：规则 R-012）")
    assert set(line) == {"at", "event_type", "actor", "summary"}  # the page's line, not the data behind it


def test_a_dispatch_lines_data_gives_the_page_its_method_and_dispatcher_and_nothing_else():
    data = {"lead": "M-CGW", "reason": {"method": "dispatcher", "by": "wangli", "note": "市民来电指定", "score": None,
                                        "rule_id": None, "top_features": []}}
    assert dispatch_reason(data) == {"method": "dispatcher", "by": "wangli"}
    assert dispatch_reason({"lead": "M-CGW", "reason": {"method": "rule", "rule_id": "R-012", "by": None}}) == {
        "method": "rule"}
    assert dispatch_reason({"lead": "M-CGW"}) == dispatch_reason({}) == dispatch_reason(None) == {}  # written before


def test_only_dispatch_lines_have_their_basis_rewritten():
    text = "办理意见：群众反映（依据：rule）"
    [line] = timeline_lines([_line("王丽（M-CGW）", text, "CoHandlerNoted")], {})
    assert line["summary"] == text


def test_a_reason_that_ends_a_sentence_gets_no_second_full_stop():
    assert sentence("同一工地噪音多次投诉，请尽快查处。") == "同一工地噪音多次投诉，请尽快查处。"
    assert sentence("请尽快查处！") == "请尽快查处。"
    assert sentence("请尽快查处. ") == "请尽快查处。"  # a half-width stop, and a space after it
    assert sentence("第 2 次回访不满意") == "第 2 次回访不满意。"
