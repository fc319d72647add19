"""The ticket page shows an attachment's size as a person reads it, not as a count of bytes."""

import pytest

from services.tracker.web import human_size


@pytest.mark.parametrize("size, shown", [
    (0, "0 字节"), (1023, "1023 字节"), (1024, "1.0 KB"), (46_387, "45.3 KB"), (1023 * 1024, "1023.0 KB"),
    (1024 * 1024, "1.0 MB"), (2_202_009, "2.1 MB"), (3 * 1024 ** 3, "3.0 GB"),
])
def test_sizes_read_in_bytes_kb_mb_or_gb(size, shown):
    assert human_size(size) == shown
