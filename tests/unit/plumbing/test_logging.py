import json
import logging


from jiesu.logging import configure, get_logger
from jiesu.privacy import mask_phones


def test_phone_numbers_never_reach_a_log_line(capsys):
    configure("json", "INFO")
    log = get_logger("test")
    log.info("caller 13800138000 rang", citizen={"phone": "13912345678", "name": "张三"}, note="座机 010-87654321")
    logging.getLogger("stdlib").warning("from the standard library: 13700001111")
    out = capsys.readouterr().err
    assert "13800138000" not in out and "13912345678" not in out and "87654321" not in out
    assert "13700001111" not in out
    line = json.loads(out.splitlines()[0])
    assert line["citizen"]["phone"] == "139****5678"
    configure("console", "INFO")


def test_ticket_numbers_and_ids_are_left_alone():
    text = "工单 12345-20261123-000001 id 01a204aa-7f90-76a0-8e0d-5cd8f0f0e454"
    assert mask_phones(text) == text
