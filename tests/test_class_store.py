"""The class store, one suite for both implementations: the in-process store and Redis on a
real redis-server (``class_store`` runs each test on both). Plus what only Redis has: keys
that all expire with the class, and Redis stopped mid-class and started again. (A class
ending by itself, on both stores: tests/test_class_service.py.)"""

from __future__ import annotations

import time

import pytest
import redis

from convae.classroom import ClassStoreConfigError, ClassStoreUnavailable, open_store
from convae.classroom.memory_store import MemoryStore
from convae.classroom.redis_store import RedisStore
from convae.classroom.store import AnswerOutcome, ClassRecord

from .redistools import RedisServer


def _record(n: int = 1, life_s: float = 600.0) -> ClassRecord:
    now = time.time()
    return ClassRecord(f"class-{n}", f"CODE{n:02d}", now, now + life_s)


def _question(qid: str, options=("A", "B")) -> dict:
    return {"qid": qid, "question": {"options": list(options)}, "state": "open"}


def test_a_new_class_has_version_1_and_no_view(class_store):
    rec = _record()
    assert class_store.create(rec, rec.ends_at + 60)
    assert class_store.version(rec.class_id) == 1
    snap = class_store.snapshot(rec.class_id)
    assert (snap.record, snap.version, snap.view, snap.question) == (rec, 1, None, None)
    assert class_store.class_for_code(rec.code) == rec.class_id
    assert class_store.version("no-such-class") is None
    assert class_store.snapshot("no-such-class") is None
    assert class_store.class_for_code("NOCODE") is None


def test_a_code_is_claimed_once(class_store):
    a, b = _record(1), _record(2)
    b = ClassRecord(b.class_id, a.code, b.created, b.ends_at)
    assert class_store.create(a, a.ends_at + 60)
    assert not class_store.create(b, b.ends_at + 60)
    assert class_store.class_for_code(a.code) == a.class_id
    assert class_store.version(b.class_id) is None  # nothing of b was stored


def test_the_view_and_the_question_bump_the_version(class_store):
    rec = _record()
    class_store.create(rec, rec.ends_at + 60)
    view = {"page": "layer-by-layer", "params": {"step": "conv1"}}
    assert class_store.set_view(rec.class_id, view) == 2
    assert class_store.version(rec.class_id) == 2
    assert class_store.snapshot(rec.class_id).view == view
    assert class_store.set_question(rec.class_id, _question("q1"), True, True) == 3
    assert class_store.snapshot(rec.class_id).question == _question("q1")
    # off the screen: the version changes again, the record stays in the asked list
    assert class_store.set_question(rec.class_id, _question("q1"), False, False) == 4
    assert class_store.snapshot(rec.class_id).question is None
    assert class_store.asked(rec.class_id) == [_question("q1")]


def test_answers_count_per_seat_and_only_while_open(class_store):
    rec = _record()
    cid = rec.class_id
    class_store.create(rec, rec.ends_at + 60)
    for seat in ("s1", "s2", "s3"):
        assert class_store.add_student(cid, seat, {"seen": 1.0, "following": True})
    class_store.set_question(cid, _question("q1"), True, True)
    assert class_store.put_answer(cid, "q1", "s1", "A") is AnswerOutcome.STORED
    assert class_store.put_answer(cid, "q1", "s2", "A") is AnswerOutcome.STORED
    assert class_store.answer_counts(cid, "q1") == {"A": 2}
    # a second answer replaces the seat's first
    assert class_store.put_answer(cid, "q1", "s1", "B") is AnswerOutcome.STORED
    assert class_store.answer_counts(cid, "q1") == {"A": 1, "B": 1}
    assert class_store.put_answer(cid, "q1", "forged", "A") is AnswerOutcome.NOT_A_STUDENT
    assert class_store.put_answer(cid, "q2", "s3", "A") is AnswerOutcome.NOT_OPEN
    class_store.set_question(cid, {**_question("q1"), "state": "closed"}, False, True)
    assert class_store.put_answer(cid, "q1", "s3", "A") is AnswerOutcome.NOT_OPEN
    assert class_store.answer_counts(cid, "q1") == {"A": 1, "B": 1}
    assert class_store.put_answer("no-such-class", "q1", "s1", "A") is AnswerOutcome.NO_CLASS


def test_a_heartbeat_never_creates_a_seat(class_store):
    rec = _record()
    class_store.create(rec, rec.ends_at + 60)
    assert not class_store.touch_student(rec.class_id, "forged", {"seen": 1.0, "following": True})
    assert class_store.presences(rec.class_id) == []
    assert class_store.add_student(rec.class_id, "s1", {"seen": 1.0, "following": True})
    assert class_store.touch_student(rec.class_id, "s1", {"seen": 2.0, "following": False})
    assert class_store.presences(rec.class_id) == [{"seen": 2.0, "following": False}]
    class_store.remove_student(rec.class_id, "s1")
    assert not class_store.touch_student(rec.class_id, "s1", {"seen": 3.0, "following": True})


def test_ending_a_class_removes_it_and_no_write_brings_it_back(class_store):
    rec = _record()
    cid = rec.class_id
    class_store.create(rec, rec.ends_at + 60)
    class_store.add_student(cid, "s1", {"seen": 1.0, "following": True})
    class_store.set_question(cid, _question("q1"), True, True)
    class_store.put_answer(cid, "q1", "s1", "A")
    class_store.delete(cid, rec.code, time.time() + 60)
    assert class_store.version(cid) is None and class_store.snapshot(cid) is None
    assert class_store.class_for_code(rec.code) == cid  # a late student hears it ended
    assert class_store.set_view(cid, {"page": "", "params": {}}) is None
    assert class_store.set_question(cid, _question("q2"), True, True) is None
    assert not class_store.add_student(cid, "s2", {"seen": 1.0, "following": True})
    assert not class_store.touch_student(cid, "s1", {"seen": 1.0, "following": True})
    assert class_store.put_answer(cid, "q1", "s1", "B") is AnswerOutcome.NO_CLASS
    assert class_store.presences(cid) == [] and class_store.asked(cid) == []
    assert class_store.answer_counts(cid, "q1") == {}
    assert not class_store.extend(rec, rec.ends_at + 60)


def test_extend_moves_the_end(class_store):
    rec = _record(life_s=60.0)
    class_store.create(rec, rec.ends_at + 10)
    later = ClassRecord(rec.class_id, rec.code, rec.created, rec.ends_at + 3600)
    assert class_store.extend(later, later.ends_at + 10)
    assert class_store.snapshot(rec.class_id).record.ends_at == later.ends_at


def _ttls_ms(url: str, prefix: str) -> dict[str, int]:
    """Every key under ``prefix`` with its time to live in ms (-1: none)."""
    r = redis.Redis.from_url(url, decode_responses=True)
    ttls = {k: r.pttl(k) for k in r.scan_iter(f"{prefix}:*")}
    r.close()
    return ttls


def test_every_redis_key_of_a_class_expires_with_it(redis_server):
    store = RedisStore(redis_server.url, prefix="ttl-test")
    rec = _record(life_s=600.0)
    cid = rec.class_id
    store.create(rec, rec.ends_at + 100)
    store.set_view(cid, {"page": "", "params": {}})
    store.add_student(cid, "s1", {"seen": 1.0, "following": True})
    store.set_question(cid, _question("q1"), True, True)
    store.put_answer(cid, "q1", "s1", "A")
    ttls = _ttls_ms(redis_server.url, store.prefix)
    names = {k.split("}:", 1)[-1] for k in ttls}
    assert names >= {
        "meta",
        "version",
        "view",
        "question",
        "open",
        "asked",
        "students",
        "answers:q1",
    }
    assert all(0 < t <= 600_000 for k, t in ttls.items() if ":code:" not in k), ttls
    code_key = f"ttl-test:code:{rec.code}"
    assert 600_000 < ttls[code_key] <= 700_000  # the code outlives the class a little
    # extend: every key moves, the answer hash of a question asked before included
    later = ClassRecord(cid, rec.code, rec.created, rec.ends_at + 3000)
    store.extend(later, later.ends_at + 100)
    ttls = _ttls_ms(redis_server.url, store.prefix)
    assert all(3_000_000 < t <= 3_600_000 for k, t in ttls.items() if ":code:" not in k), ttls
    store.delete(cid, rec.code, time.time() + 50)
    assert set(_ttls_ms(redis_server.url, store.prefix)) == {
        code_key
    }  # only the code's note that it ended
    store.close()


def test_redis_stopped_mid_class_and_started_again(redis_binary, tmp_path):
    """While Redis is down every call raises ClassStoreUnavailable; once it is back (with
    its data, as a Redis that saves does) the next call works and the class goes on."""
    server = RedisServer(redis_binary, tmp_path)
    server.start()
    store = RedisStore(server.url)
    try:
        rec = _record()
        cid = rec.class_id
        store.create(rec, rec.ends_at + 60)
        store.add_student(cid, "s1", {"seen": 1.0, "following": True})
        assert store.set_view(cid, {"page": "recon", "params": {}}) == 2
        server.stop(save=True)
        calls = [
            lambda: store.version(cid),
            lambda: store.snapshot(cid),
            lambda: store.set_view(cid, {"page": "", "params": {}}),
            lambda: store.touch_student(cid, "s1", {"seen": 2.0, "following": True}),
            lambda: store.put_answer(cid, "q1", "s1", "A"),
            lambda: store.class_for_code(rec.code),
            store.ping,
        ]
        for call in calls:
            with pytest.raises(ClassStoreUnavailable, match=r"cannot be reached"):
                call()
        server.start()
        assert store.version(cid) == 2  # the first call after the restart works
        assert store.snapshot(cid).view == {"page": "recon", "params": {}}
        assert store.touch_student(cid, "s1", {"seen": 3.0, "following": True})
        assert store.set_view(cid, {"page": "", "params": {}}) == 3
        # A Redis that refuses writes (out of memory) is reported the same way, not a crash.
        admin = redis.Redis.from_url(server.url)
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", 1)
        with pytest.raises(ClassStoreUnavailable, match=r"refused a call \(OutOfMemoryError\)"):
            store.set_view(cid, {"page": "recon", "params": {}})
        admin.close()
    finally:
        store.close()
        server.stop()


def test_open_store_reads_the_setting(monkeypatch):
    monkeypatch.delenv("CONVAE_CLASS_STORE", raising=False)
    assert isinstance(open_store(), MemoryStore)
    assert isinstance(open_store("memory"), MemoryStore)
    store = open_store("redis://localhost:6390/2")  # connects on first use only
    assert isinstance(store, RedisStore) and store.where == "localhost:6390/2"
    monkeypatch.setenv("CONVAE_CLASS_STORE", "redis://127.0.0.1:6391")
    assert open_store().where == "127.0.0.1:6391"


@pytest.mark.parametrize(
    "spec",
    [
        "mem",
        "redis://",
        "redis://host:port/0",
        "redis://host:6379/db",
        "http://host:6379/0",
        "/tmp/x",
    ],
)
def test_a_bad_store_setting_names_both_forms(spec):
    with pytest.raises(ClassStoreConfigError) as err:
        open_store(spec)
    assert "memory" in str(err.value) and "redis://host:port/db" in str(err.value)


def test_a_bad_store_setting_hides_a_password():
    with pytest.raises(ClassStoreConfigError) as err:
        open_store("redis://user:s3cret@host:bad/0")
    assert "s3cret" not in str(err.value)


def test_unreachable_redis_raises_the_one_exception(redis_binary):
    from .redistools import free_port

    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    for call in (store.ping, lambda: store.version("x"), lambda: store.create(_record(), 0)):
        with pytest.raises(ClassStoreUnavailable):
            call()
