"""Property-based API tests: schemathesis generates requests from the OpenAPI schema and checks
that every answer conforms to it (status codes, content types, bodies: the analysis schema or
the documented error body), that the token is enforced, and that nothing fails with a 5xx."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from spinlens.core import Spinlens
from spinlens.errors import IngestError
from spinlens.model import Document, Source
from spinlens.server import Settings, create_app

from .test_server_api import ARTICLE, phrase_pipeline

TOKEN = "schemathesis-token"


def offline_fetch(url: str, **_options: object) -> Document:
    """Stands in for the fetcher so generated URLs never reach the network: an http(s) URL
    gives the test article, anything else the fetcher's kind of refusal."""
    if not url.lower().startswith(("http://", "https://")):
        raise IngestError("unsupported URL (only http and https are fetched)")
    return Document(source=Source(kind="url", location=url), body=ARTICLE, media_type="text/plain")


# The schema is loaded when this module is imported (schemathesis' fixture-based loading does
# not work with pytest 9), so the app gets its own store directory, removed afterwards.
_HOME = Path(tempfile.mkdtemp(prefix="spinlens-schemathesis-"))
_SETTINGS = Settings(
    api_token=TOKEN,
    home=_HOME,  # catalogues too: generated DELETEs never reach the user's own
    database_url=f"sqlite:///{_HOME / 'store.db'}",
    # Generous limits: the generator sends many requests from one client in seconds.
    requests_per_minute=100_000,
    analyses_per_minute=100_000,
)
app = create_app(spinlens=Spinlens(_SETTINGS, pipeline=phrase_pipeline(), fetch=offline_fetch))
# A request can fit the schema and still hold no article (empty or binary text): the API
# answers 422 with the documented error body, which the checks accept for generated input.
CONFIG = schemathesis.Config.from_dict(
    {"checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "404", "422"]}}}
)
schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=CONFIG)


@pytest.fixture(scope="module", autouse=True)
def _remove_store() -> Iterator[None]:
    yield
    shutil.rmtree(_HOME, ignore_errors=True)


@schema.parametrize()
@settings(
    max_examples=30,
    derandomize=True,  # the same requests on every run: CI results do not depend on luck
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_the_api_keeps_its_schema(case):
    case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"})
