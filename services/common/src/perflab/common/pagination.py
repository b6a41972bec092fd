"""Opaque page tokens for keyset pagination."""

import base64


class InvalidPageToken(ValueError):
    pass


def encode_token(*parts: str) -> str:
    return base64.urlsafe_b64encode("|".join(parts).encode()).decode().rstrip("=")


def decode_token(token: str, parts: int) -> list[str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (ValueError, UnicodeDecodeError) as exc:  # binascii.Error is a ValueError
        raise InvalidPageToken("page_token is not a token this API issued") from exc
    values = raw.split("|")
    if len(values) != parts:
        raise InvalidPageToken("page_token is not a token this API issued")
    return values
