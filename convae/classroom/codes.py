"""Join codes, class ids and student ids.

A join code is what students type from the projector: six characters from an alphabet
without look-alikes (no 0/O, 1/I/L, 5/S, 2/Z, 8/B), so 25**6 = 244 million codes, of which
a server has a handful live at a time; uniqueness among live classes is the store's job
(it claims a code atomically and the service draws again on a clash). Codes are typed in
any case and with spaces or dashes, so they are read back normalised.

A class id and a student id are unguessable (128 random bits, URL-safe): the class id
names the record in the store, the student id names one browser session's seat in a
class. Neither says anything about a person.
"""

from __future__ import annotations

import re
import secrets

CODE_ALPHABET = "34679ACDEFGHJKMNPQRTUVWXY"  # 25 characters, none mistaken for another
CODE_LENGTH = 6
_CODE = re.compile(f"[{CODE_ALPHABET}]{{{CODE_LENGTH}}}")
ID_BYTES = 16  # 128 bits


def new_code() -> str:
    """A random join code, e.g. "K7RX4M"."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalise_code(text: str) -> str | None:
    """The code a person typed, upper-cased without spaces or dashes, or None when it cannot
    be a join code (wrong length or a character not in the alphabet)."""
    code = re.sub(r"[\s-]", "", str(text)).upper()
    return code if _CODE.fullmatch(code) else None


def new_id() -> str:
    """A random id for a class or a student's seat (128 bits, 22 URL-safe characters)."""
    return secrets.token_urlsafe(ID_BYTES)
