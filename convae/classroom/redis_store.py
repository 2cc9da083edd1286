"""The Redis class store, for app replicas behind HAProxy (``CONVAE_CLASS_STORE=redis://...``).

Key schema (``P`` is the prefix, ``convae:class`` by default; ``{cid}`` is the class id in
braces, a Redis Cluster hash tag, so one class's keys share a slot and its scripts may
touch them together):

============================== ======== ================================================
key                            type     holds
============================== ======== ================================================
``P:code:<CODE>``              string   the class id a join code names
``P:{cid}:meta``               string   JSON of the :class:`ClassRecord` (id, code, times)
``P:{cid}:version``            string   integer, INCR on every view or question change
``P:{cid}:view``               string   JSON of the teacher's current view
``P:{cid}:question``           string   JSON of the question on screen
``P:{cid}:open``               string   the qid of the question taking answers
``P:{cid}:asked``              hash     qid -> JSON of every question asked (for export)
``P:{cid}:students``           hash     seat id -> JSON {"seen", "following"}
``P:{cid}:answers:<qid>``      hash     seat id -> option, one hash per question
============================== ======== ================================================

Every key a class owns expires when the class ends (PXAT at creation; the scripts below
give a key they create the time to live the meta key has left, and ``extend`` moves them
all); the code key lives a little longer so that a late student hears the class ended.
Writes are Lua scripts so that "the class still exists, the seat exists, this question is
the open one" is checked and the write done in one atomic step, and no write can bring back
a key without expiry after the class ended.

A student's poll, :meth:`RedisStore.version`, is one GET. Connection and timeout errors
from redis-py become :class:`ClassStoreUnavailable`; redis-py reconnects on the next call,
so calls work again as soon as Redis is back. Any other Redis error (out of memory, a
read-only replica) is reported the same way.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .errors import ClassStoreUnavailable
from .store import AnswerOutcome, ClassRecord, ClassStore, Snapshot, without_password

PREFIX = "convae:class"
SOCKET_TIMEOUT_S = 2.0  # a page waits at most this long on a Redis that stopped answering
CONNECT_TIMEOUT_S = 1.0
T = TypeVar("T")

# KEYS: code, meta, version. ARGV: class id, meta JSON, class end (ms), code end (ms).
_CREATE = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PXAT', ARGV[4]) then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PXAT', ARGV[3])
redis.call('SET', KEYS[3], 1, 'PXAT', ARGV[3])
return 1
"""
# KEYS: meta, view, version. ARGV: view JSON.
_SET_VIEW = """
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then return false end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ttl)
return redis.call('INCR', KEYS[3])
"""
# KEYS: meta, version, question, open, asked. ARGV: qid, record JSON, open?, on screen?
_SET_QUESTION = """
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then return false end
redis.call('HSET', KEYS[5], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[5], ttl)
if ARGV[3] == '1' then
  redis.call('SET', KEYS[4], ARGV[1], 'PX', ttl)
elseif redis.call('GET', KEYS[4]) == ARGV[1] then
  redis.call('DEL', KEYS[4])
end
if ARGV[4] == '1' then
  redis.call('SET', KEYS[3], ARGV[2], 'PX', ttl)
else
  local shown = redis.call('GET', KEYS[3])
  if shown and cjson.decode(shown)['qid'] == ARGV[1] then redis.call('DEL', KEYS[3]) end
end
return redis.call('INCR', KEYS[2])
"""
# KEYS: meta, students. ARGV: seat id, presence JSON, must the seat exist?
_PUT_STUDENT = """
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then return 0 end
if ARGV[3] == '1' and redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ttl)
return 1
"""
# KEYS: meta, open, students, answers. ARGV: qid, seat id, option.
# Returns 0 stored, 1 not the open question, 2 no such seat, 3 no class.
_PUT_ANSWER = """
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then return 3 end
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 1 end
if redis.call('HEXISTS', KEYS[3], ARGV[2]) == 0 then return 2 end
redis.call('HSET', KEYS[4], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[4], ttl)
return 0
"""
# The answer hashes are found from the asked hash inside the script (same hash tag, so the
# same slot), so a question asked a moment before cannot keep its old expiry.
# KEYS: meta, code, asked, then the class's other fixed keys.
# ARGV: meta JSON, class end (ms), code end (ms), answers key prefix.
_EXTEND = """
if redis.call('PTTL', KEYS[1]) <= 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
redis.call('PEXPIREAT', KEYS[2], ARGV[3])
for i = 3, #KEYS do redis.call('PEXPIREAT', KEYS[i], ARGV[2]) end
for _, qid in ipairs(redis.call('HKEYS', KEYS[3])) do
  redis.call('PEXPIREAT', ARGV[4] .. qid, ARGV[2])
end
return 1
"""
# KEYS: meta, code, asked, then the class's other fixed keys.
# ARGV: class id, code end (ms), answers key prefix.
_DELETE = """
for _, qid in ipairs(redis.call('HKEYS', KEYS[3])) do redis.call('DEL', ARGV[3] .. qid) end
redis.call('DEL', KEYS[1], unpack(KEYS, 3))
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('PEXPIREAT', KEYS[2], ARGV[2]) end
return 1
"""
_OUTCOMES = (
    AnswerOutcome.STORED,
    AnswerOutcome.NOT_OPEN,
    AnswerOutcome.NOT_A_STUDENT,
    AnswerOutcome.NO_CLASS,
)


def _reachable(method: Callable[..., T]) -> Callable[..., T]:
    """Turn redis-py's errors into ClassStoreUnavailable: connection and timeout errors above
    all, but also a Redis that refuses to write (out of memory, a read-only replica after a
    failover), so that a page shows its one line instead of crashing."""

    @functools.wraps(method)
    def call(self: RedisStore, *args, **kwargs) -> T:
        try:
            return method(self, *args, **kwargs)
        except redis.exceptions.RedisError as exc:
            lost = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
            what = "cannot be reached" if isinstance(exc, lost) else "refused a call"
            raise ClassStoreUnavailable(
                f"The class store (Redis at {self.where}) {what} ({type(exc).__name__}); "
                "the class goes on when it is back."
            ) from None

    return call


def _ms(t: float) -> int:
    return int(t * 1000)


class RedisStore(ClassStore):
    """Live classes in Redis.

    Args:
        url: "redis://host:port/db".
        prefix: the keys' common prefix.
        client: a ready redis.Redis (decode_responses=True) instead of ``url``'s.
    """

    def __init__(self, url: str, prefix: str = PREFIX, client: redis.Redis | None = None) -> None:
        self.where = without_password(url).removeprefix("redis://")
        self.prefix = prefix
        # One retry with no wait: after Redis restarts, the pooled connection's first use
        # fails and the retry reconnects; while Redis is down, a call fails at once.
        self._r = client or redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=SOCKET_TIMEOUT_S,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            retry=Retry(NoBackoff(), 1),
        )
        scripts = (_CREATE, _SET_VIEW, _SET_QUESTION, _PUT_STUDENT, _PUT_ANSWER, _EXTEND, _DELETE)
        (
            self._create,
            self._set_view,
            self._set_question,
            self._put_student,
            self._put_answer,
            self._extend,
            self._delete,
        ) = (self._r.register_script(s) for s in scripts)

    def __repr__(self) -> str:
        return f"RedisStore({self.where!r})"

    def _key(self, class_id: str, name: str) -> str:
        return f"{self.prefix}:{{{class_id}}}:{name}"

    def _code_key(self, code: str) -> str:
        return f"{self.prefix}:code:{code}"

    def _fixed_keys(self, class_id: str) -> list[str]:
        """The class's keys besides meta, code and asked (answers are found from asked)."""
        return [self._key(class_id, n) for n in ("version", "view", "question", "open", "students")]

    @_reachable
    def create(self, record: ClassRecord, code_until: float) -> bool:
        keys = [
            self._code_key(record.code),
            *(self._key(record.class_id, n) for n in ("meta", "version")),
        ]
        args = [record.class_id, json.dumps(record.to_dict()), _ms(record.ends_at), _ms(code_until)]
        return bool(self._create(keys=keys, args=args))

    @_reachable
    def class_for_code(self, code: str) -> str | None:
        return self._r.get(self._code_key(code))

    @_reachable
    def version(self, class_id: str) -> int | None:
        v = self._r.get(self._key(class_id, "version"))
        return None if v is None else int(v)

    @_reachable
    def snapshot(self, class_id: str) -> Snapshot | None:
        names = ("meta", "version", "view", "question")
        meta, version, view, question = self._r.mget([self._key(class_id, n) for n in names])
        if meta is None or version is None:
            return None
        loads = lambda t: None if t is None else json.loads(t)  # noqa: E731
        return Snapshot(
            ClassRecord.from_dict(json.loads(meta)), int(version), loads(view), loads(question)
        )

    def _all_keys(self, record_id: str, code: str) -> list[str]:
        meta, asked = self._key(record_id, "meta"), self._key(record_id, "asked")
        return [meta, self._code_key(code), asked, *self._fixed_keys(record_id)]

    @_reachable
    def extend(self, record: ClassRecord, code_until: float) -> bool:
        args = [
            json.dumps(record.to_dict()),
            _ms(record.ends_at),
            _ms(code_until),
            self._key(record.class_id, "answers:"),
        ]
        return bool(self._extend(keys=self._all_keys(record.class_id, record.code), args=args))

    @_reachable
    def delete(self, class_id: str, code: str, code_until: float) -> None:
        args = [class_id, _ms(code_until), self._key(class_id, "answers:")]
        self._delete(keys=self._all_keys(class_id, code), args=args)

    @_reachable
    def set_view(self, class_id: str, view: dict) -> int | None:
        keys = [self._key(class_id, n) for n in ("meta", "view", "version")]
        return self._set_view(keys=keys, args=[json.dumps(view)])

    @_reachable
    def set_question(
        self, class_id: str, record: dict, open_for_answers: bool, on_screen: bool
    ) -> int | None:
        keys = [self._key(class_id, n) for n in ("meta", "version", "question", "open", "asked")]
        args = [record["qid"], json.dumps(record), int(open_for_answers), int(on_screen)]
        return self._set_question(keys=keys, args=args)

    @_reachable
    def asked(self, class_id: str) -> list[dict]:
        return [json.loads(t) for t in self._r.hvals(self._key(class_id, "asked"))]

    def add_student(self, class_id: str, student_id: str, presence: dict) -> bool:
        return self._student(class_id, student_id, presence, must_exist=False)

    def touch_student(self, class_id: str, student_id: str, presence: dict) -> bool:
        return self._student(class_id, student_id, presence, must_exist=True)

    @_reachable
    def _student(self, class_id: str, student_id: str, presence: dict, must_exist: bool) -> bool:
        keys = [self._key(class_id, "meta"), self._key(class_id, "students")]
        return bool(
            self._put_student(keys=keys, args=[student_id, json.dumps(presence), int(must_exist)])
        )

    @_reachable
    def remove_student(self, class_id: str, student_id: str) -> None:
        self._r.hdel(self._key(class_id, "students"), student_id)

    @_reachable
    def presences(self, class_id: str) -> list[dict]:
        return [json.loads(t) for t in self._r.hvals(self._key(class_id, "students"))]

    @_reachable
    def put_answer(self, class_id: str, qid: str, student_id: str, option: str) -> AnswerOutcome:
        keys = [self._key(class_id, n) for n in ("meta", "open", "students", f"answers:{qid}")]
        return _OUTCOMES[int(self._put_answer(keys=keys, args=[qid, student_id, option]))]

    @_reachable
    def answer_counts(self, class_id: str, qid: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for option in self._r.hvals(self._key(class_id, f"answers:{qid}")):
            counts[option] = counts.get(option, 0) + 1
        return counts

    @_reachable
    def ping(self) -> None:
        self._r.ping()

    def close(self) -> None:
        self._r.close()
