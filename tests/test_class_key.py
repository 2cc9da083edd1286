"""The teacher key: made at start unless CONVAE_TEACHER_KEY gives one, never shown by repr,
checked in constant time, and wrong keys limited per session and per process."""

from __future__ import annotations

import pytest

from convae.classroom import (
    ClassService,
    Lead,
    Seat,
    TeacherKey,
    TeacherToken,
    TooManyWrongKeys,
    WrongTeacherKey,
)
from convae.classroom import key as tk
from convae.classroom.memory_store import MemoryStore
from convae.classroom.ratelimit import WrongKeyLimiter

KEY = "the-right-key-for-these-tests-42"


class FakeClock:
    """A monotonic clock the test moves, so the one-minute window needs no waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_generated_key_is_random_url_safe_and_at_least_128_bits():
    keys = {TeacherKey.from_env({}).reveal() for _ in range(20)}
    assert len(keys) == 20
    for key in keys:
        assert len(key) >= 22 and all(c.isalnum() or c in "-_" for c in key)  # 22 x 6 bits
    assert TeacherKey.from_env({}).generated
    assert TeacherKey.from_env({"CONVAE_TEACHER_KEY": "  "}).generated


def test_the_key_comes_from_the_environment():
    key = TeacherKey.from_env({"CONVAE_TEACHER_KEY": f" {KEY} "})
    assert key.reveal() == KEY and not key.generated
    for bad in ("short", "has spaces in it, see?!", "ключ-ключ-ключ-ключ-ключ"):
        with pytest.raises(ValueError, match="CONVAE_TEACHER_KEY must be at least 16"):
            TeacherKey.from_env({"CONVAE_TEACHER_KEY": bad})


def test_the_process_key_is_shared_and_verifies(monkeypatch):
    monkeypatch.setattr(tk, "_process_key", None)
    monkeypatch.setenv("CONVAE_TEACHER_KEY", KEY)
    assert tk.teacher_key() == KEY
    token = tk.verify(KEY)
    assert tk.process_key().check(token)
    assert ClassService(MemoryStore()).role(Lead(token, None)).value == "teacher"


def test_nothing_prints_the_key():
    key = TeacherKey(KEY)
    token = key.verify(KEY)
    svc = ClassService(MemoryStore(), key)
    lead = svc.start(token)
    seat = svc.join(lead.info.code)
    shown = [repr(key), str(key), f"{key}", repr(token), str(token), repr(lead), repr(seat)]
    for text in shown:
        assert KEY not in text and token.mac not in text and token.token_id not in text
    assert seat.student_id not in repr(seat)
    assert "<hidden>" in repr(key) and "<hidden>" in repr(token)


def test_a_wrong_key_gets_a_plain_message_without_the_key():
    key = TeacherKey(KEY)
    for wrong in ("the-right-key-for-these-tests-43", "", KEY[:-1], KEY + "x", KEY.upper()):
        with pytest.raises(WrongTeacherKey) as err:
            key.verify(wrong, session=f"s-{wrong}")
        assert "not the teacher key" in str(err.value)
        assert KEY not in str(err.value) and (not wrong or wrong not in str(err.value))
    assert key.check(key.verify(f"  {KEY}\n"))  # pasted with spaces around it


def test_tokens_are_checked_by_their_mac():
    key, other = TeacherKey(KEY), TeacherKey("another-key-on-another-server")
    token = key.verify(KEY)
    assert key.check(token)
    assert not other.check(token)  # made under another key
    assert not key.check(TeacherToken(token.token_id, "0" * 64))
    assert not key.check(TeacherToken("made-up", token.mac))
    for thing in (None, KEY, token.mac, {"token_id": token.token_id, "mac": token.mac}):
        assert not key.check(thing)
    assert not key.check(TeacherToken(123, None))  # type: ignore[arg-type]


def test_five_wrong_keys_a_minute_per_session_then_wait():
    clock = FakeClock()
    limiter = WrongKeyLimiter(per_session=5, per_process=30, window_s=60, clock=clock)
    key = TeacherKey(KEY, limiter=limiter)
    for n in range(5):
        clock.now += 1
        with pytest.raises(WrongTeacherKey, match="not the teacher key"):
            key.verify(f"wrong-{n}", session="s1")
    # The sixth try is refused without checking, even with the right key.
    with pytest.raises(TooManyWrongKeys, match=r"Too many wrong keys: wait 56 s\.") as err:
        key.verify(KEY, session="s1")
    assert err.value.wait_s == 56  # the first failure (t=1001) leaves the window at 1061
    assert key.check(key.verify(KEY, session="s2"))  # another session is not held up
    clock.now += 56
    assert key.check(key.verify(KEY, session="s1"))


def test_the_process_limit_holds_across_sessions():
    clock = FakeClock()
    limiter = WrongKeyLimiter(per_session=5, per_process=30, window_s=60, clock=clock)
    for n in range(30):
        limiter.check(f"session-{n}")
        limiter.failed(f"session-{n}")
    with pytest.raises(TooManyWrongKeys, match="wait 60 s"):
        limiter.check("a-fresh-session")
    clock.now += 60
    limiter.check("a-fresh-session")


def test_a_right_key_starts_the_sessions_count_again():
    clock = FakeClock()
    limiter = WrongKeyLimiter(per_session=5, per_process=30, window_s=60, clock=clock)
    for _ in range(4):
        limiter.failed("s1")
    limiter.succeeded("s1")
    for _ in range(4):
        limiter.failed("s1")
    limiter.check("s1")  # 4 since the right key: still allowed


def test_seats_and_leads_are_roles_not_strings():
    key = TeacherKey(KEY)
    svc = ClassService(MemoryStore(), key)
    lead = svc.start(key.verify(KEY))
    seat = svc.join(lead.info.code)
    assert isinstance(seat, Seat) and len(seat.student_id) >= 22  # 128 random bits
    assert seat.student_id != svc.join(lead.info.code).student_id
