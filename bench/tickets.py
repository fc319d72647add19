"""Realistic hotline tickets for benchmarks and load tests, written for the demo city.

Deterministic for a seed, so two runs post the same tickets.
"""

from __future__ import annotations

import random
import uuid

from schemas.events import Envelope, TicketReceived, utcnow
from services.router.domain.directory import Directory

# (kind, urgency, subject, description) — {street} and {n} are filled in per ticket.
TEMPLATES = [
    ("complaint", "normal", "{street}夜间施工噪音扰民", "{street}{n}号附近工地每天晚上十一点以后还在施工，打桩声音很大，家里老人孩子都睡不着，希望有关部门尽快处理。"),
    ("help", "urgent", "{street}小区停水", "{street}{n}号小区从今天早上开始停水，没有提前通知，楼里有老人和婴儿，请尽快恢复供水。"),
    ("help", "urgent", "{street}附近闻到燃气味", "{street}{n}号楼道里有很明显的燃气味，担心泄漏，请燃气公司马上派人来检查。"),
    ("complaint", "normal", "{street}路灯不亮", "{street}{n}号门口的一排路灯已经坏了一个多星期，晚上出行很不安全。"),
    ("complaint", "normal", "公司拖欠工资", "我在{street}一家装修公司打工，老板已经拖欠我们三个月工资共计两万多元，多次讨要无果。"),
    ("consultation", "normal", "咨询社保转移手续", "我从外地调到本市工作，想咨询养老保险关系转移需要准备哪些材料，在哪里办理。"),
    ("complaint", "normal", "{street}餐馆油烟扰民", "{street}{n}号楼下新开的餐馆油烟直接排到居民楼，窗户都不敢开，气味很大。"),
    ("report", "normal", "{street}有人占道经营", "{street}{n}号路口每天早上有很多摊贩占道经营，堵塞交通，垃圾也不清理。"),
    ("suggestion", "normal", "建议在{street}增设公交站", "{street}新建小区入住了几千户，最近的公交站要走二十分钟，建议增设站点或调整线路。"),
    ("complaint", "normal", "{street}垃圾清运不及时", "{street}{n}号小区垃圾桶已经满了三天没人清运，天气热气味很大，蚊蝇很多。"),
    ("help", "normal", "孩子入学咨询", "孩子明年上小学，户口在{street}，房子是租的，想问一下入学需要哪些证明材料。"),
    ("complaint", "normal", "{street}暖气不热", "{street}{n}号楼供暖开始一周了，家里暖气温度只有十五度，反映给物业也没有解决。"),
    ("complaint", "normal", "超市销售过期食品", "在{street}一家超市买到的牛奶已经过期五天，找店家理论对方态度恶劣，拒绝退换。"),
    ("complaint", "normal", "{street}道路坑洼积水", "{street}{n}号附近路面坑洼很多，一下雨就大面积积水，电动车经过很容易摔倒。"),
    ("praise", "normal", "表扬{street}社区工作人员", "感谢{street}社区的工作人员，上周帮助我家独居老人办理了助老服务，非常耐心细致。"),
    ("complaint", "normal", "出租车拒载绕路", "昨晚在{street}打车，司机拒载短途乘客，另一辆车明显绕路多收了三十多元。"),
    ("help", "normal", "{street}楼道堆放杂物", "{street}{n}号楼道里堆满了纸箱和旧家具，存在消防隐患，物业一直不处理。"),
    ("complaint", "normal", "医院挂号难", "在市里医院挂专家号，网上永远显示约满，现场也挂不到，希望改善挂号制度。"),
]


def generate(directory: Directory, count: int, *, seed: int = 20261122, prefix: str = "bench") -> list[dict]:
    streets = list(directory.streets)
    return [ticket(streets, i, seed=seed, prefix=prefix) for i in range(count)]


def ticket(streets: list, i: int, *, seed: int = 20261122, prefix: str = "bench") -> dict:
    """The i-th ticket of a run: the same for the same seed, whether made alone or in a list."""
    rng = random.Random(seed * 1_000_003 + i)
    kind, urgency, subject, body = rng.choice(TEMPLATES)
    street = rng.choice(streets)
    n = rng.randint(1, 300)
    phone = f"13{rng.randint(0, 9)}{rng.randint(10_000_000, 99_999_999)}"
    return {
        "kind": kind,
        "urgency": urgency,
        "subject": subject.format(street=street.name, n=n),
        "description": body.format(street=street.name, n=n),
        "citizen": {"name": rng.choice("王李张刘陈杨赵黄周吴") + rng.choice(["先生", "女士"]), "phone": phone},
        "location": {"district": street.parent, "street": street.code, "address": f"{street.name}{n}号"},
        "source_ref": f"{prefix}-{seed}-{i}",
    }


def received(n: int, *, prefix: str = "bench") -> list[Envelope]:
    """N TicketReceived envelopes as intake writes them (each a new ticket id): the realistic events
    for feeding the broker or a consumer directly."""
    now = utcnow()
    return [Envelope.wrap(TicketReceived(number=f"12345-{now:%Y%m%d}-{i % 1_000_000:06d}", channel="hotline",
                                         received_at=now, **item), ticket_id=uuid.uuid4(), producer="intake")
            for i, item in enumerate(generate(Directory.default(), n, prefix=prefix))]
