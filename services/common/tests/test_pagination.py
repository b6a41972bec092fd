import pytest

from perflab.common.pagination import InvalidPageToken, decode_token, encode_token


def test_token_round_trips_its_parts() -> None:
    token = encode_token("2026-11-23T20:00:00+00:00", "abc")
    assert decode_token(token, 2) == ["2026-11-23T20:00:00+00:00", "abc"]


@pytest.mark.parametrize("token", ["!!!", encode_token("a"), "bm90IHV0Zjg\udcff"])
def test_foreign_tokens_are_rejected(token: str) -> None:
    with pytest.raises(InvalidPageToken):
        decode_token(token, 2)
