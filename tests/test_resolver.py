"""The media resolver's pure helpers: base64 decoding and URL recognition."""

from __future__ import annotations

import base64
import binascii
import string

from hypothesis import given
from hypothesis import strategies as st

from mock_server import media
from mock_server.domain.resolver import NOT_BASE64, decode_base64
from mock_server.domain.rules import MAX_SOUND_BYTES, MediaFacts
from mock_server.urls import is_url, split_url

AUDIO = media.make_audio(media.MediaFormat.MP3, 3000)


def _old_decode_base64(value: str) -> bytes | str:
    """decode_base64 as it was before its no-whitespace fast path: the reference."""
    if value.startswith("data:"):
        return "data"
    payload = "".join(value.split())
    if len(payload) * 3 // 4 > MAX_SOUND_BYTES + 3:
        return "over"
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        return f"{NOT_BASE64}: neither an http(s) URL nor base64 ({exc})"
    if len(data) > MAX_SOUND_BYTES:
        return "over"
    return data


def _outcome(result: bytes | MediaFacts) -> bytes | str:
    if isinstance(result, bytes):
        return result
    if result.over_limit is not None:
        return "over"
    assert result.not_a_source is not None
    return "data" if result.not_a_source.endswith("prefix of a data: URI") else result.not_a_source


_B64_CHARS = string.ascii_letters + string.digits + "+/="


class TestDecodeBase64:
    @given(
        st.lists(
            st.one_of(
                st.sampled_from(list(_B64_CHARS)),
                st.sampled_from([" ", "\n", "\t", "\r", "\x0b", "\x1c", "\xa0", "\u2028"]),
                st.sampled_from(["-", "_", "é", ":", ",", "\x00"]),
            ),
            max_size=40,
        ).map("".join)
    )
    def test_the_fast_path_answers_what_the_stripping_path_did(self, value: str) -> None:
        """Bytes, refusals and their messages are those of the decoder before the fast path."""
        assert _outcome(decode_base64(value)) == _old_decode_base64(value)

    def test_whitespace_is_still_stripped(self) -> None:
        """Base64 wrapped at 76 columns (what `base64` the tool writes) decodes."""
        payload = base64.b64encode(AUDIO).decode()
        wrapped = "\n".join(payload[i : i + 76] for i in range(0, len(payload), 76))
        assert decode_base64(wrapped) == AUDIO

    def test_over_the_limit_without_whitespace_is_over_the_limit(self) -> None:
        """A payload of just over 5 MB decoded is refused as over the limit."""
        value = base64.b64encode(bytes(MAX_SOUND_BYTES + 1)).decode()
        result = decode_base64(value)
        assert isinstance(result, MediaFacts) and result.over_limit == MAX_SOUND_BYTES


class TestIsUrl:
    @given(st.text(alphabet=st.sampled_from(list("htpsfile:/ \t\n\x01Ab.x[]1")), max_size=20))
    def test_it_is_what_the_split_scheme_says(self, value: str) -> None:
        """The no-colon shortcut answers what splitting the value would."""
        assert is_url(value) == (split_url(value).scheme.lower() in ("http", "https", "file"))
