"""Setting widgets drawn the same way on every page: kept for the session.

A setting keeps its value while the student moves between pages (``persist_state``), so
a choice made on Train or Style is still there on coming back. Two shapes recur: a short
list of choices as one horizontal row of radio buttons, and a select slider whose
options are a fixed ladder with the library's default snapped onto it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import streamlit as st


def nearest(options: Sequence[float], value: float) -> float:
    """The option closest to a default (select sliders take only their options).

    Args:
        options: the slider's ladder.
        value: the default, e.g. a field of :class:`convae.style.StyleConfig`.

    Returns:
        The option with the smallest distance to ``value`` (the first of a tie).
    """
    return min(options, key=lambda o: abs(o - value))


def radio_row(
    label: str,
    options: Sequence[str],
    key: str,
    where: Any = st,
    labels: Mapping[str, str] | None = None,
    help: str | None = None,
) -> str:
    """A horizontal row of radio buttons kept for the session.

    Args:
        label: the widget's label.
        options: the values to choose from.
        key: the widget (and session state) key.
        where: ``st`` or a column / container to draw it in.
        labels: what to show for each value (the value itself when missing).
        help: the tooltip.

    Returns:
        The chosen value.
    """
    shown = labels or {o: str(o) for o in options}
    return _one_of(where.radio, label, shown, key, help, horizontal=True)


def ladder_slider(
    label: str,
    options: Sequence[float],
    default: float,
    key: str,
    help: str | None = None,
) -> float:
    """A select slider over a fixed ladder of values, starting at the option nearest to
    ``default``, kept for the session.

    Args:
        label: the widget's label.
        options: the ladder.
        default: the library's default (snapped with :func:`nearest`).
        key: the widget (and session state) key.
        help: the tooltip.

    Returns:
        The chosen option.
    """
    return st.select_slider(
        label,
        options,
        value=nearest(options, default),
        key=key,
        persist_state="session",
        help=help,
    )


def segmented(
    label: str,
    labels: Mapping[str, str],
    key: str,
    default: str,
    where: Any = st,
    help: str | None = None,
) -> str:
    """A row of buttons of which exactly one is on (a required segmented control), kept
    for the session.

    Args:
        label: the widget's label.
        labels: value -> what its button says, in button order.
        key: the widget (and session state) key.
        default: the value on at first.
        where: ``st`` or a column / container to draw it in.
        help: the tooltip.

    Returns:
        The chosen value.
    """
    return _one_of(
        where.segmented_control, label, labels, key, help, default=default, required=True
    )


def _one_of(
    widget: Any, label: str, labels: Mapping[str, str], key: str, help: str | None, **extra: Any
) -> str:
    """``widget`` (st.radio, st.segmented_control, ...) over ``labels``' values, showing
    their labels, kept for the session; ``extra``: the widget's own arguments."""
    return widget(
        label,
        list(labels),
        key=key,
        format_func=labels.get,
        persist_state="session",
        help=help,
        **extra,
    )
