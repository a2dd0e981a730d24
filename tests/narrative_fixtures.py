"""The narratives tests' fixture folder.

The two EUvsDisinfo-layout files are kept as ``*.csv.in``: a first line saying their rows are
invented, then the rows without the export's header line, so no committed file reads like the
real export. The tests get them as plain ``.csv`` files, header restored, in a temporary copy of
the folder.
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from pathlib import Path

SOURCE = Path(__file__).parent / "fixtures" / "narratives"
# The two EUvsDisinfo export layouts' header lines (see spinlens.narratives.importers).
HEADERS = {
    "euvsdisinfo_disproofs.csv.in": ";".join(
        f'"{column}"'
        for column in [
            "issue",
            "date",
            "outlet",
            "language",
            "origin",
            "reported by",
            "keywords",
            "source",
            "title",
            "summary",
            "disproof",
        ]
    ),
    "euvsdisinfo_cases.csv.in": ",".join(
        ["date", "id", "title", "countries", "keywords", "languages", "outlets"]
    ),
}


def _materialise() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="spinlens-narrative-fixtures-"))
    atexit.register(shutil.rmtree, folder, True)
    for path in SOURCE.iterdir():
        if path.name.endswith(".csv.in"):
            rows = path.read_text(encoding="utf-8").split("\n", 1)[1]
            text = HEADERS[path.name] + "\n" + rows
            (folder / path.name.removesuffix(".in")).write_text(text, encoding="utf-8")
        elif path.is_file():
            shutil.copy(path, folder / path.name)
    return folder


FIXTURES = _materialise()


def write_claimreview_feed(path: Path, n: int) -> None:
    """A schema.org DataFeed of ``n`` distinct ClaimReviews, on one line as feeds are served
    (about 520 bytes a review), written without holding it in memory."""
    with path.open("w", encoding="utf-8") as f:
        f.write('{"@context":"https://schema.org","@type":"DataFeed","dataFeedElement":[')
        for i in range(n):
            review = {
                "@type": "ClaimReview",
                "url": f"https://factcheck.example/reviews/{i}",
                "claimReviewed": f"Claim number {i} says the moon is made of cheese {i % 97}",
                "datePublished": "2021-05-04",
                "author": {"@type": "Organization", "name": "Example Fact Check"},
                "reviewRating": {"@type": "Rating", "ratingValue": 1, "alternateName": "False"},
                "itemReviewed": {
                    "@type": "Claim",
                    "author": {"@type": "Person", "name": "A Blogger"},
                    "datePublished": "2021-05-01",
                    "appearance": [{"url": f"https://blog.example/{i}"}],
                },
            }
            item = {"@type": "DataFeedItem", "item": [review]}
            f.write(("," if i else "") + json.dumps(item, separators=(",", ":")))
        f.write("]}")
