"""The media resolver's memory: derived URLs and decoded base64 are remembered exactly, and
boundedly, and a remembered answer is the one a fresh resolution gives."""

from __future__ import annotations

import asyncio
import base64
import binascii
import string
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mock_server import media
from mock_server.domain import resolver as resolver_module
from mock_server.domain.fixtures import FixtureSet
from mock_server.domain.models import MetaSource, VideoMeta
from mock_server.domain.resolver import (
    BASE64_CACHE_BYTES,
    BASE64_CACHE_ENTRIES,
    BASE64_KEY_CHARS,
    NOT_BASE64,
    MediaResolver,
    Recent,
    decode_base64,
)
from mock_server.domain.rules import MAX_SOUND_BYTES, MediaFacts
from mock_server.urls import is_url, split_url

SOUND_FIELD = "face_choose[0].sound_file"
VIDEO = "https://example.com/videos/speaker.mp4"
SOUND = "https://example.com/audio/speech.mp3"
AUDIO = media.make_audio(media.MediaFormat.MP3, 3000)


class Counting:
    """A fetcher and an own-files hook that count their calls; own files can be added."""

    def __init__(self) -> None:
        self.fetched: list[str] = []
        self.own_asked: list[str] = []
        self.own: dict[str, bytes] = {}

    async def fetch(self, url: str, limit: int) -> bytes:
        self.fetched.append(url)
        return media.make_audio(media.MediaFormat.MP3, 3000)

    async def own_files(self, url: str) -> bytes | None:
        self.own_asked.append(url)
        return self.own.get(url)


def make_resolver(hooks: Counting | None = None) -> MediaResolver:
    hooks = hooks or Counting()
    return MediaResolver(FixtureSet(), fetch=hooks.fetch, own_files=hooks.own_files)


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


class TestRecent:
    def test_it_keeps_the_most_recently_used_within_its_entry_count(self) -> None:
        """Past its entry count the least recently used entry goes; a get counts as a use."""
        recent: Recent[str, int] = Recent(entries=2, budget=100)
        recent.put("a", 1, 1)
        recent.put("b", 2, 1)
        assert recent.get("a") == 1
        recent.put("c", 3, 1)
        assert (recent.get("a"), recent.get("b"), recent.get("c")) == (1, None, 3)
        assert len(recent) == 2

    def test_it_stays_within_its_budget_and_skips_entries_over_a_quarter(self) -> None:
        """The costs kept never pass the budget; an entry costing over a quarter of it is not
        kept at all (it would evict everything else)."""
        recent: Recent[int, int] = Recent(entries=100, budget=100)
        recent.put(0, 0, 26)
        assert recent.get(0) is None and recent.used == 0
        for i in range(20):
            recent.put(i, i, 25)
            assert recent.used <= 100
        print(f"kept {len(recent)} entries costing {recent.used} of a budget of 100")
        assert len(recent) == 4 and recent.get(19) == 19 and recent.get(15) is None

    def test_putting_a_key_again_replaces_its_cost(self) -> None:
        """A key put twice is counted once, at its newest cost."""
        recent: Recent[str, int] = Recent(entries=10, budget=100)
        recent.put("a", 1, 20)
        recent.put("a", 2, 5)
        assert (recent.get("a"), recent.used, len(recent)) == (2, 5, 1)


class TestBase64Memory:
    audio = AUDIO
    payload = base64.b64encode(AUDIO).decode()

    def _flip_middle(self, value: str) -> str:
        middle = len(value) // 2
        other = "A" if value[middle] != "A" else "B"
        return value[:middle] + other + value[middle + 1 :]

    def test_the_same_string_is_answered_from_memory(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A payload sent again (a new but equal string) gets the facts of the first time,
        without being decoded again."""
        r = make_resolver()
        first = asyncio.run(r.sound(self.payload, SOUND_FIELD))
        assert first.meta is not None and first.data == self.audio
        decodes: list[str] = []
        original = resolver_module.decode_base64

        def counting(value: str) -> bytes | MediaFacts:
            decodes.append(value)
            return original(value)

        monkeypatch.setattr(resolver_module, "decode_base64", counting)
        again = asyncio.run(r.sound("".join(list(self.payload)), SOUND_FIELD))
        assert again is first and decodes == []

    def test_a_string_differing_in_one_middle_character_misses(self) -> None:
        """Same length, head and tail (the key), one character changed in the middle: it is
        decoded afresh and answered with its own bytes, never the remembered ones."""
        r = make_resolver()
        first = asyncio.run(r.sound(self.payload, SOUND_FIELD))
        changed = self._flip_middle(self.payload)
        k = BASE64_KEY_CHARS
        assert (len(changed), changed[:k], changed[-k:]) == (
            len(self.payload),
            self.payload[:k],
            self.payload[-k:],
        )
        other = asyncio.run(r.sound(changed, SOUND_FIELD))
        assert other is not first
        assert other.data == base64.b64decode(changed) != first.data
        back = asyncio.run(r.sound(self.payload, SOUND_FIELD))
        assert back.data == self.audio and back.facts == first.facts

    def test_another_field_is_another_entry(self) -> None:
        """The facts name their field: the same payload under another field is not mixed up."""
        r = make_resolver()
        a = asyncio.run(r.sound(self.payload, SOUND_FIELD))
        b = asyncio.run(r.sound(self.payload, "face_choose[1].sound_file"))
        assert (a.facts.field, b.facts.field) == (SOUND_FIELD, "face_choose[1].sound_file")

    def test_memory_is_bounded_in_entries(self) -> None:
        """Many distinct small payloads: at most the entry count is kept."""
        r = make_resolver()
        for i in range(BASE64_CACHE_ENTRIES + 16):
            # Distinct bytes after the audio: each is its own payload (and its own probe).
            payload = base64.b64encode(self.audio + i.to_bytes(4, "big")).decode()
            asyncio.run(r.sound(payload, SOUND_FIELD))
        print(f"base64 memory: {len(r._decoded)} entries of at most {BASE64_CACHE_ENTRIES}")
        assert len(r._decoded) == BASE64_CACHE_ENTRIES

    def test_memory_is_bounded_in_bytes(self) -> None:
        """Distinct 1.5 MB payloads: what is kept (base64 text and decoded bytes) stays within
        the byte budget."""
        r = make_resolver()
        for i in range(12):
            payload = base64.b64encode(self.audio + bytes(1024 * 1024) + bytes([i])).decode()
            asyncio.run(r.sound(payload, SOUND_FIELD))
            assert r._decoded.used <= BASE64_CACHE_BYTES
        used = r._decoded.used
        print(f"base64 memory: {len(r._decoded)} entries, {used} bytes of {BASE64_CACHE_BYTES}")
        assert 0 < len(r._decoded) < 12

    def test_a_hit_is_cheaper_than_a_decode(self) -> None:
        """A 1 MB payload sent again costs a comparison, not a decode and a hash: measured."""
        big = base64.b64encode(self.audio + bytes(1024 * 1024)).decode()
        r = make_resolver()

        async def timed(value: str) -> float:
            t0 = time.perf_counter()
            await r.sound(value, SOUND_FIELD)
            return time.perf_counter() - t0

        async def main() -> tuple[float, float]:
            await timed(big)  # the probe's own memory now knows these bytes
            r._decoded.clear()
            miss = await timed("".join(list(big)))  # decoded and hashed, not probed
            hit = await timed("".join(list(big)))
            return miss, hit

        miss, hit = asyncio.run(main())
        print(f"1 MB base64 sent again: decoded {miss * 1e3:.2f} ms, remembered {hit * 1e3:.3f} ms")
        assert hit * 5 < miss

    def test_a_reset_forgets_it(self) -> None:
        """clear() (the control API's reset) forgets the decoded payloads."""
        r = make_resolver()
        first = asyncio.run(r.sound(self.payload, SOUND_FIELD))
        r.clear()
        again = asyncio.run(r.sound(self.payload, SOUND_FIELD))
        assert again is not first and again.facts == first.facts and len(r._decoded) == 1

    def test_refusals_are_not_remembered(self) -> None:
        """A payload that is not base64 is refused each time, with the same message."""
        r = make_resolver()
        first = asyncio.run(r.sound("not base64!", SOUND_FIELD))
        again = asyncio.run(r.sound("not base64!", SOUND_FIELD))
        assert first.facts.not_a_source is not None and first.facts == again.facts
        assert len(r._decoded) == 0


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


class TestDerivedMemory:
    def test_a_derived_video_is_remembered_and_own_files_still_asked(self) -> None:
        """The second identify of one URL gets the same facts without deriving again; our own
        files are still asked each time (a result may appear at that URL later)."""
        hooks = Counting()
        r = make_resolver(hooks)
        first = asyncio.run(r.video_from_url(VIDEO))
        again = asyncio.run(r.video_from_url(VIDEO))
        assert again is first and first.meta is not None
        assert hooks.own_asked == [VIDEO, VIDEO]

    def test_an_own_file_appearing_at_a_derived_url_is_read(self) -> None:
        """Once the URL serves one of our own files, its real bytes are probed (read once)."""
        hooks = Counting()
        r = make_resolver(hooks)
        derived = asyncio.run(r.sound(SOUND, SOUND_FIELD))
        assert not derived.facts.read
        hooks.own[SOUND] = media.make_audio(media.MediaFormat.MP3, 4000)
        read = asyncio.run(r.sound(SOUND, SOUND_FIELD))
        assert read.facts.read and read.facts.duration_ms is not None
        assert 3900 <= read.facts.duration_ms <= 4100
        assert hooks.own_asked == [SOUND, SOUND]  # each request read it once

    def test_a_derived_sound_is_the_fresh_derivation(self) -> None:
        """A remembered derivation equals what a resolver that never saw the URL derives."""
        r = make_resolver()
        asyncio.run(r.sound(SOUND, SOUND_FIELD))
        remembered = asyncio.run(r.sound(SOUND, SOUND_FIELD))
        fresh = asyncio.run(make_resolver().sound(SOUND, SOUND_FIELD))
        assert remembered.facts == fresh.facts and remembered.meta == fresh.meta

    def test_loopback_urls_are_fetched_every_time(self) -> None:
        """Only derivations are remembered: a loopback URL is read on every request."""
        hooks = Counting()
        r = make_resolver(hooks)
        url = "http://127.0.0.1:9/speech.mp3"
        asyncio.run(r.sound(url, SOUND_FIELD))
        asyncio.run(r.sound(url, SOUND_FIELD))
        assert hooks.fetched == [url, url]

    def test_a_fixture_registered_later_wins(self) -> None:
        """Fixtures are looked up before the memory: registering one changes the answer."""
        fixtures = FixtureSet()
        hooks = Counting()
        r = MediaResolver(fixtures, fetch=hooks.fetch, own_files=hooks.own_files)
        derived = asyncio.run(r.video_from_url(VIDEO))
        assert derived.meta is not None
        fixtures.videos_by_url[VIDEO] = VideoMeta(
            7000, 1920, 1080, 1, "mp4", derived.meta.faces, MetaSource.FIXTURE
        )
        now = asyncio.run(r.video_from_url(VIDEO))
        assert now.facts.duration_ms == 7000
