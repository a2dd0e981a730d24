"""spinlens: see how a news or blog article manipulates its reader.

The Python API::

    from spinlens import Spinlens

    sl = Spinlens()                      # settings as keyword arguments, e.g. narratives=False
    analysis = sl.analyze("https://example.com/news/1")   # a URL, a path or text
    analysis.summary, analysis.to_html()
    frames = spinlens.to_frames(sl.analyze_many(paths))   # pandas, with the frames extra

Bad input raises :class:`SpinlensError` with the one line the command line prints.
"""

from spinlens.config import Settings
from spinlens.core import Analysis, Spinlens, Submission
from spinlens.errors import SpinlensError
from spinlens.frames import Frames, to_frames
from spinlens.model import Failure, Finding, NarrativeMatch
from spinlens.version import __version__

__all__ = [
    "Analysis",
    "Failure",
    "Finding",
    "Frames",
    "NarrativeMatch",
    "Settings",
    "Spinlens",
    "SpinlensError",
    "Submission",
    "__version__",
    "to_frames",
]
