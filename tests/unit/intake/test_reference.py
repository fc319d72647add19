from services.intake.service import reference


def test_a_long_idempotency_key_still_identifies_its_retries():
    key = "k" * 300
    assert len(reference(key, None)) <= 200
    assert reference(key, None) == reference(key, None)
    assert reference(key, None) != reference(key + "x", None)


def test_the_header_wins_over_the_channel_reference_and_a_missing_one_is_unique():
    assert reference("abc", "call-1") == "idem:abc"
    assert reference(None, "call-1") == "call-1"
    assert reference(None, None) != reference(None, None)
