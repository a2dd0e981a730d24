"""Removing a catalogue through the REST API and the web UI (issue 16): both call the core's
``Spinlens.remove_catalogue``, as ``spinlens narratives remove`` does, so analyses made after a
removal no longer match its claims; the shipped starter catalogue cannot be removed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from spinlens.core import Spinlens
from spinlens.narratives import EmbeddingMatcher
from spinlens.narratives.catalogue import STARTER_CATALOGUE, ShippedCatalogue, UnknownCatalogue
from spinlens.pipeline import Pipeline
from spinlens.server import Settings, create_app
from spinlens.store import Store

from .test_server_api import GRAIN_VERBATIM, TEAM_CSV, PhraseDetector

TOKEN = "catalogue-test-token"


@pytest.fixture(scope="module")
def matcher(tmp_path_factory: pytest.TempPathFactory) -> EmbeddingMatcher:
    """The encoder, loaded once for the module; each test's core reloads it over its own store."""
    return EmbeddingMatcher(store_path=tmp_path_factory.mktemp("unused") / "catalogue.sqlite3")


@pytest.fixture
def core(tmp_path: Path, matcher: EmbeddingMatcher) -> Iterator[Spinlens]:
    """A core whose catalogue store holds the team catalogue (one claim)."""
    settings = Settings(home=tmp_path / "home", api_token=TOKEN)
    own = EmbeddingMatcher(
        store_path=settings.catalogue_path, encoder=matcher.encoder, cache_dir=settings.cache_dir
    )
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    with Spinlens(settings, pipeline=Pipeline(PhraseDetector(), [own]), store=store) as sl:
        report = sl.import_catalogue(TEAM_CSV.encode(), name="team.csv", catalogue="team")
        assert report.added == 1
        yield sl
    store.close()


@pytest.fixture
def client(core: Spinlens) -> Iterator[TestClient]:
    app = create_app(spinlens=core)
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        yield client


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _claims_found(client: TestClient, text: str) -> list[str]:
    answer = client.post("/api/v1/analyses", json={"text": text}, headers=AUTH)
    assert answer.status_code == 201, answer.text
    return [n["claim_id"] for n in answer.json()["narratives"]]


def test_the_core_removes_a_catalogue_and_its_matchers_forget_it(core: Spinlens) -> None:
    assert core.catalogues() == {STARTER_CATALOGUE: core.catalogues()[STARTER_CATALOGUE], "team": 1}
    assert "team:grain-1" in [n.claim_id for n in core.analyze_text(GRAIN_VERBATIM).narratives]
    assert core.remove_catalogue("team") == 1
    assert "team" not in core.catalogues()
    assert "team:grain-1" not in [n.claim_id for n in core.analyze_text(GRAIN_VERBATIM).narratives]
    assert all(m.catalogue != "team" for m in core.search("grain deal rich countries", top=20))
    with pytest.raises(UnknownCatalogue, match=r"no catalogue named 'team' \(there are: none\)"):
        core.remove_catalogue("team")
    with pytest.raises(ShippedCatalogue, match="shipped with spinlens and cannot be removed"):
        core.remove_catalogue(STARTER_CATALOGUE)


def test_the_api_lists_and_removes_catalogues(client: TestClient) -> None:
    listed = client.get("/api/v1/catalogues", headers=AUTH)
    assert listed.status_code == 200, listed.text
    catalogues = listed.json()["catalogues"]
    assert catalogues[0]["name"] == STARTER_CATALOGUE and catalogues[0]["shipped"] is True
    assert {"name": "team", "entries": 1, "shipped": False} in catalogues
    assert "team:grain-1" in _claims_found(client, GRAIN_VERBATIM)

    # A write: the token is required, and another site's page may not send it.
    assert client.delete("/api/v1/catalogues/team").status_code == 401
    cross = client.delete(
        "/api/v1/catalogues/team", headers={**AUTH, "Sec-Fetch-Site": "cross-site"}
    )
    assert cross.status_code == 403 and cross.json()["error"]["code"] == "cross_origin"

    removed = client.delete("/api/v1/catalogues/team", headers=AUTH)
    assert removed.status_code == 200, removed.text
    assert removed.json() == {"catalogue": "team", "removed": 1}
    assert "team:grain-1" not in _claims_found(client, GRAIN_VERBATIM)
    names = [c["name"] for c in client.get("/api/v1/catalogues", headers=AUTH).json()["catalogues"]]
    assert names == [STARTER_CATALOGUE]

    again = client.delete("/api/v1/catalogues/team", headers=AUTH)
    assert again.status_code == 404
    assert again.json() == {
        "error": {"code": "not_found", "message": "no catalogue named 'team' (there are: none)"}
    }
    shipped = client.delete(f"/api/v1/catalogues/{STARTER_CATALOGUE}", headers=AUTH)
    assert shipped.status_code == 409
    assert shipped.json()["error"]["code"] == "shipped_catalogue"
    assert "cannot be removed" in shipped.json()["error"]["message"]


def _sign_in(client: TestClient) -> None:
    signed = client.post("/login", data={"token": TOKEN, "next": "/"}, follow_redirects=False)
    assert signed.status_code == 303


def test_the_catalogue_page_removes_with_a_form(client: TestClient) -> None:
    # Signed out: to the sign-in page, and a remove is refused without touching anything.
    assert (
        client.get("/catalogues", follow_redirects=False).headers["location"].startswith("/login")
    )
    refused = client.post("/catalogues/remove", data={"name": "team"}, follow_redirects=False)
    assert refused.status_code == 303 and refused.headers["location"].startswith("/login")
    _sign_in(client)

    page = client.get("/catalogues")
    assert page.status_code == 200
    assert "script-src 'none'" in page.headers["content-security-policy"]
    assert "<script" not in page.text  # a plain form: works under the CSP, without script
    assert 'href="/catalogues"' in page.text  # in the navigation
    assert STARTER_CATALOGUE in page.text and "cannot be removed" in page.text
    assert '<form method="post" action="/catalogues/remove">' in page.text
    assert '<input type="hidden" name="name" value="team">' in page.text
    assert page.text.count('action="/catalogues/remove"') == 1  # none for the starter catalogue

    cross = client.post(
        "/catalogues/remove",
        data={"name": "team"},
        headers={"Sec-Fetch-Site": "cross-site"},
        follow_redirects=False,
    )
    assert cross.status_code == 403
    removed = client.post("/catalogues/remove", data={"name": "team"}, follow_redirects=False)
    assert removed.status_code == 303
    assert removed.headers["location"] == "/catalogues?removed=team&claims=1"
    after = client.get(removed.headers["location"])
    assert "Removed catalogue team (1 claims)." in after.text
    assert 'value="team"' not in after.text

    missing = client.post("/catalogues/remove", data={"name": "team"})
    assert missing.status_code == 404 and "no catalogue named" in missing.text
    shipped = client.post("/catalogues/remove", data={"name": STARTER_CATALOGUE})
    assert shipped.status_code == 409 and "cannot be removed" in shipped.text
    assert client.post("/catalogues/remove", data={}).status_code == 422
