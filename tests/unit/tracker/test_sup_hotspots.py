"""Hotspots: single-link clusters of similar complaints (same place and category already grouped)."""

from types import SimpleNamespace as Row

from services.tracker.hotspots import clusters


def _row(subject, description=""):
    return Row(subject=subject, description=description)


def test_paraphrases_of_one_matter_cluster_and_an_unrelated_complaint_stays_alone():
    rows = [_row("解放路工地夜间施工噪音扰民", "每天晚上十一点以后工地还在打桩"),
            _row("解放路工地夜里打桩噪音太大", "晚上打桩声音很大影响休息"),
            _row("夜间施工噪音扰民解放路工地", "工地夜间施工噪音扰民，孩子睡不着"),
            _row("楼下烧烤店油烟太大", "每天傍晚油烟飘进家里")]
    groups = sorted(clusters(rows), key=len, reverse=True)
    assert [len(g) for g in groups] == [3, 1]
    assert groups[1][0].subject == "楼下烧烤店油烟太大"


def test_single_link_joins_a_chain_through_its_middle():
    rows = [_row("东门菜市场门口占道经营"), _row("菜市场门口占道经营严重"), _row("菜市场门口严重占道摆摊")]
    assert [len(g) for g in clusters(rows)] == [3]
