"""The code space: where the encoder puts each picture, and what its code knows.

For the "Code space" page (issue 23), in single-purpose modules:

* :mod:`.features` - a split's codes (shape read from the model), raw pixels, PCA of them;
* :mod:`.projection` - 2-D maps: exact PCA, and t-SNE (openTSNE);
* :mod:`.neighbours` - every picture's nearest neighbours and how often they share its class;
* :mod:`.probe` - a linear class probe with a fixed recipe;
* :mod:`.channels` - each code channel switched off, swapped, and correlated with
  brightness, colour and edges;
* :mod:`.selection` - what one click or lasso shows: pictures, both decoders'
  reconstructions and PSNR, a channel switched off or swapped;
* :mod:`.cache` and :mod:`.cached` - every result computed once per (weights digest,
  split fingerprint, method, parameters) and read from ``<data root>/cache/codespace``;
  :class:`~.cached.CodeSpace` is what the page calls;
* :mod:`.cli` - ``python -m convae probe CKPT``.

Nothing here imports streamlit; long work reports through ``progress(done, total, what)``.
"""

from .cached import CodeSpace
from .features import TooSmallError

__all__ = ["CodeSpace", "TooSmallError"]
