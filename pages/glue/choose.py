"""Widgets that choose pictures: a test picture by its number, by class and number, or a
photo of your own. Layers, Code cells, Code, Style and the Uses pages share them; their
keys start with the page's prefix.
"""

from __future__ import annotations

import streamlit as st
import torch

from convae.data import DataSet, ImageSet
from convae.images import ImageDecodeError, image_to_input
from convae.models import AEConfig

UPLOAD_TYPES = ["png", "jpg", "jpeg", "gif", "bmp", "webp"]


def test_images(data: DataSet, classes: list[str]) -> ImageSet:
    """The test pictures of ``classes``; stops the page when there are none."""
    images = data.test.filter(classes)
    if len(images) == 0:
        st.warning(f"The test split has no pictures of {', '.join(classes)}.")
        st.stop()
    return images


def pick_image(
    page: str, images: ImageSet, label: str = "Test picture", suffix: str = ""
) -> tuple[torch.Tensor, str]:
    """A number input over ``images``: returns (1, C, H, W) floats and its class name."""
    key = f"{page}_index{suffix}"
    n = len(images)
    if st.session_state.get(key, 0) >= n:
        st.session_state[key] = 0
    i = st.number_input(f"{label} (0-{n - 1:,})", 0, n - 1, key=key, persist_state="session")
    return images.floats(slice(i, i + 1)), images.classes[int(images.labels[i])]


def _photo(page: str, cfg: AEConfig) -> tuple[torch.Tensor | None, str]:
    up = st.file_uploader(
        "Upload a photo",
        type=UPLOAD_TYPES,
        key=f"{page}_upload",
        help=f"Centre-cropped to a square and shrunk to {cfg.image_size}x{cfg.image_size}.",
    )
    if up is None:
        return None, ""
    try:
        x = image_to_input(up.getvalue(), cfg.in_channels, cfg.image_size, up.name)
    except ImageDecodeError as exc:
        st.error(str(exc))
        return None, ""
    return x, f"{up.name}, cropped and resized to {cfg.image_size}px"


def _by_class(page: str, data: DataSet, classes: list[str]) -> tuple[torch.Tensor, str]:
    # The first class that has test pictures (an empty class folder has none).
    counts = data.test.class_counts()
    default = next((c for c in classes if counts[c]), classes[0])
    default = "airplane" if "airplane" in classes else default
    if st.session_state.get(f"{page}_class") not in classes:
        st.session_state[f"{page}_class"] = default
    c1, c2 = st.columns(2)
    cls = c1.selectbox("Class", classes, key=f"{page}_class", persist_state="session")
    subset = data.test.positions([cls])  # where its pictures are: no copy of them
    if len(subset) == 0:  # an empty class folder: nothing to show, say so
        st.warning(
            f"The test split has no pictures of {cls}. Pick another class in the sidebar, "
            "or upload a photo."
        )
        st.stop()
    idx = c2.number_input(
        f"Picture (0-{len(subset) - 1:,})",
        0,
        max(len(subset) - 1, 0),
        key=f"{page}_index",
        persist_state="session",
    )
    idx = min(int(idx), len(subset) - 1)
    return data.test.floats(subset[idx : idx + 1]), f"test {cls} #{idx}"


def test_picture_or_photo(
    page: str, cfg: AEConfig, data: DataSet | None, classes: list[str]
) -> tuple[torch.Tensor, str]:
    """A test picture by class and number, or an uploaded photo (the only choice without a
    data set for this model). Returns (1, C, H, W) floats in [0, 1] and a caption; stops
    the page while there is nothing to show."""
    sources = ["test picture", "your photo"] if data is not None else ["your photo"]
    src = st.radio(
        "Picture", sources, key=f"{page}_source", horizontal=True, persist_state="session"
    )
    x, caption = _photo(page, cfg) if src == "your photo" else (None, "")
    if x is None and data is not None:
        if src == "your photo":
            st.caption("Showing a test picture until a photo is uploaded.")
        x, caption = _by_class(page, data, classes)
    if x is None:
        st.info("Upload a photo (JPEG, PNG, ...) to trace it through the model.")
        st.stop()
    return x, caption
