"""The teacher's view: exactly a shared link's settings, a page and its query parameters.

"Copy link to this view", a lesson step (``convae.lessons.Step``) and what a following
student's screen shows are one format: the page's url path (``"layer-by-layer"``; ``""``
for the first page) and the query parameters as text (``{"models":
"shipped:cifar10-upsample.pt", "step": "conv1"}``). The follow UI applies a view with the
same code that applies a shared link, so a value that does not exist here is dropped with
the link's notice, never trusted.

The checks here only bound what goes into the store (sizes and types), so that a
mistaken caller gets a clear error instead of filling the store.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

MAX_PARAMS = 32
MAX_TEXT = 2000  # characters in a page path or a parameter's value (a list of models fits)
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_PAGE = re.compile(r"[A-Za-z0-9_-]{0,64}")


@dataclass(frozen=True)
class View:
    """A page and its query parameters, as in a shared link.

    Attributes:
        page: the page's url path, without slashes ("" is the first page).
        params: query parameter -> value, both text.
    """

    page: str
    params: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        page = str(self.page).strip("/")
        if not _PAGE.fullmatch(page):
            raise ValueError(
                f"a view's page must be a url path like 'layer-by-layer', not {page!r}"
            )
        if not isinstance(self.params, Mapping) or len(self.params) > MAX_PARAMS:
            raise ValueError(f"a view's params must be a mapping of at most {MAX_PARAMS} entries")
        params = {}
        for k, v in self.params.items():
            if not isinstance(k, str) or not _NAME.fullmatch(k):
                raise ValueError(f"a view's parameter name must be short text, not {k!r}")
            if not isinstance(v, str) or len(v) > MAX_TEXT:
                raise ValueError(
                    f"the view's parameter {k!r} must be text of at most {MAX_TEXT} characters"
                )
            params[k] = v
        object.__setattr__(self, "page", page)
        object.__setattr__(self, "params", params)

    def to_dict(self) -> dict:
        """{"page": ..., "params": {...}}, what the store keeps."""
        return {"page": self.page, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, d: Mapping) -> View:
        """The view a :meth:`to_dict` gave (raises ValueError on anything else)."""
        if not isinstance(d, Mapping) or set(d) != {"page", "params"}:
            raise ValueError(f"not a stored view: {d!r}")
        return cls(d["page"], d["params"])

    @classmethod
    def from_step(cls, step) -> View:
        """The view of a lesson step (``convae.lessons.Step``: ``page`` and ``params``)."""
        return cls(step.page, dict(step.params))

    def link(self) -> str:
        """The relative link, e.g. "layer-by-layer?step=conv1&colour=layer"."""
        query = urlencode(dict(self.params), safe=",:")
        return f"{self.page}?{query}" if query else self.page
