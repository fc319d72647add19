"""Attachments: an allow-list checked against the bytes, size limits, safe names, checksums."""

import hashlib

import pytest

from services.intake.domain.attachments import MAX_FILE_BYTES, AttachmentRejected, check, check_all, safe_filename

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
PDF = b"%PDF-1.7\n%..."


def test_a_photo_is_kept_with_its_type_size_and_sha256():
    f = check("现场照片.png", PNG)
    assert (f.filename, f.content_type, f.size) == ("现场照片.png", "image/png", len(PNG))
    assert f.sha256 == hashlib.sha256(PNG).hexdigest()


def test_text_in_gb18030_is_accepted_as_text():
    assert check("说明.txt", "噪音记录：每晚十一点".encode("gb18030")).content_type == "text/plain"


@pytest.mark.parametrize("name, data, why", [
    ("run.exe", b"MZ\x90\x00", "类型不允许"),
    ("page.html", b"<html><script>alert(1)</script>", "类型不允许"),
    ("fake.png", b"<html>not a png</html>", "不符"),
    ("notes.txt", b"<!DOCTYPE html><script>x</script>", "不符"),
    ("scan.pdf", b"", "空文件"),
    ("big.pdf", b"%PDF-" + b"0" * MAX_FILE_BYTES, "超过"),
])
def test_dangerous_or_disguised_files_are_refused_with_a_reason(name, data, why):
    with pytest.raises(AttachmentRejected) as err:
        check(name, data)
    assert why in err.value.zh and err.value.en


def test_at_most_five_files():
    with pytest.raises(AttachmentRejected):
        check_all([(f"{i}.pdf", PDF) for i in range(6)])


def test_file_names_lose_paths_and_control_characters():
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("C:\\Users\\a\\照片.jpg") == "照片.jpg"
    assert safe_filename("a\x00b<>.pdf") == "a_b__.pdf"
    assert len(safe_filename("长" * 200 + ".pdf").encode()) <= 255
