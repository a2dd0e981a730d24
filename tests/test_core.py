"""The core object and the Python API: ``from spinlens import Spinlens``.

Most tests give the core the phrase detector and matcher of test_server_api, so they know what
to expect; the fresh-install check and the import test use the shipped models.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import spinlens
from spinlens import Analysis, Failure, Settings, Spinlens, SpinlensError, to_frames
from spinlens.model import Document, Source
from spinlens.pipeline import Pipeline
from spinlens.store import Store

from .conftest import EXAMPLES, REPO
from .test_server_api import ARTICLE, TEAM_CSV, PhraseDetector, PhraseMatcher

BLOG_TXT = EXAMPLES / "site-builder-blog.txt"


@pytest.fixture
def core(tmp_path: Path) -> Spinlens:
    """A core over the phrase pipeline and a fresh store."""
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    with Spinlens(
        Settings(home=tmp_path / "home"),
        pipeline=Pipeline(PhraseDetector(), [PhraseMatcher()]),
        store=store,
        fetch=fake_fetch,
    ) as sl:
        yield sl
    store.close()


def fake_fetch(url: str, **options: object) -> Document:
    """Stands in for the web: the page at any URL is ARTICLE."""
    return Document(source=Source(kind="url", location=url), body=ARTICLE, media_type="text/plain")


# -- settings -----------------------------------------------------------------------------------


def test_settings_take_flags_then_environment_then_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("SPINLENS_WORKERS", "5")
    monkeypatch.setenv("SPINLENS_DATABASE_URL", "sqlite:///from-env.db")
    monkeypatch.setenv("SPINLENS_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("SPINLENS_API_TOKEN", "")  # empty: no token
    settings = Settings(workers=3)
    assert settings.workers == 3  # the flag wins
    assert settings.database_url == "sqlite:///from-env.db"  # then the environment
    assert settings.store_url == "sqlite:///from-env.db"
    assert settings.models_dir == tmp_path / "models"
    assert settings.api_token is None
    assert settings.max_pending == 64  # then the default
    assert Spinlens(workers=7).settings.workers == 7
    assert Spinlens().settings.workers == 5


def test_a_bad_setting_is_one_line_naming_it(monkeypatch):
    monkeypatch.setenv("SPINLENS_WORKERS", "many")
    with pytest.raises(SpinlensError, match=r"^setting workers: .*integer"):
        Spinlens()
    monkeypatch.delenv("SPINLENS_WORKERS")
    with pytest.raises(SpinlensError, match="setting sensitivity"):
        Spinlens(sensitivity="paranoid")
    with pytest.raises(SpinlensError, match="setting narrative"):
        Spinlens(narrative=False)  # mistyped: refused, not ignored


def test_no_module_reads_spinlens_variables_but_config():
    """One place reads SPINLENS_* (config.Settings); everything else takes Settings."""
    readers = []
    for path in (REPO / "src" / "spinlens").rglob("*.py"):
        if path.name == "config.py":
            continue
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and node.value.startswith("SPINLENS_")
                and _reads_environment(path)
            ):
                readers.append(f"{path.relative_to(REPO)}: {node.value}")
    assert readers == []


def _reads_environment(path: Path) -> bool:
    text = path.read_text("utf-8")
    return "os.environ" in text or "getenv" in text or "envvar=" in text


# -- the Python API ---------------------------------------------------------------------------


def test_analyze_text_gives_an_analysis_with_its_reports(core):
    analysis = core.analyze(ARTICLE)
    assert isinstance(analysis, Analysis)
    assert analysis.source.kind == "text"
    assert analysis.summary.technique_counts["Loaded_Language"] == 1
    assert json.loads(analysis.to_json())["id"] == analysis.id
    assert "<mark" in analysis.to_html() and "shameful" in analysis.to_html()
    assert analysis.to_markdown().startswith("# Foreign hands behind the unrest")
    assert "ngo-foreign-funding" in [n.claim_id for n in analysis.narratives]
    assert core.history().total == 0  # the Python API keeps nothing unless asked


def test_how_analyze_reads_a_source(core, tmp_path):
    page = tmp_path / "page.txt"
    page.write_text(ARTICLE, encoding="utf-8")
    assert core.analyze(str(page)).source.location == str(page)  # an existing path
    assert core.analyze(page).source.kind == "file"
    assert core.analyze("https://example.com/news/1").source.kind == "url"
    assert core.analyze_url("https://example.com/news/1").source.location.endswith("/1")
    # Two words are text, however path-like; kind="text" or analyze_text say it outright.
    assert core.analyze_text(str(page)).article.text == str(page)
    # A missing file named like a document is refused, not analysed as its name.
    with pytest.raises(SpinlensError, match=r"^nowhere\.txt: no such file"):
        core.analyze("nowhere.txt")
    (tmp_path / "other.txt").write_text(ARTICLE, encoding="utf-8")
    with pytest.raises(SpinlensError, match="several documents: use analyze_many"):
        core.analyze(tmp_path)  # a directory of two


def test_bad_input_raises_the_line_the_cli_prints(core, tmp_path):
    missing = tmp_path / "missing.html"
    with pytest.raises(SpinlensError) as raised:
        core.analyze_file(missing)
    cli = subprocess.run(
        [sys.executable, "-m", "spinlens", "analyze", str(missing)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert cli.returncode == 2
    assert cli.stderr.strip() == f"error: {raised.value}"
    with pytest.raises(SpinlensError, match="pasted text"):
        core.analyze_text("   ")


def test_analyze_many_is_lazy_and_goes_on_past_failures(core, tmp_path):
    pulled: list[str] = []

    def sources():
        for source in (ARTICLE, str(tmp_path / "gone.html"), "https://example.com/2"):
            pulled.append(source)
            yield source

    results = core.analyze_many(sources())
    first = next(results)
    assert isinstance(first, Analysis) and len(pulled) == 1  # nothing read ahead
    rest = list(results)
    assert isinstance(rest[0], Failure) and rest[0].reason.startswith("no such file (")
    assert rest[0].location == str(tmp_path / "gone.html")
    assert isinstance(rest[1], Analysis) and rest[1].source.kind == "url"


def test_to_frames(core):
    frames = to_frames(core.analyze_many([ARTICLE, "gone.html"]))
    assert list(frames.articles["title"]) == ["Foreign hands behind the unrest in the capital"]
    assert len(frames.findings) == 5
    assert set(frames.findings["analysis_id"]) == set(frames.articles["analysis_id"])
    row = frames.narratives.iloc[0]
    assert row["claim_id"] == "ngo-foreign-funding"
    text = core.analyze(ARTICLE).article.text
    assert text[row["evidence_start"] : row["evidence_end"]] == "financed from abroad"
    assert list(frames.failures["location"]) == ["gone.html"]


def test_history_and_get_see_what_the_faces_save(core):
    from spinlens.core import Submission

    saved = core.analyze_submission(Submission("text", ARTICLE), save=True)
    assert core.get(saved.id) == saved
    assert isinstance(core.get(saved.id), Analysis)
    assert [i.id for i in core.history(technique="Loaded_Language").items] == [saved.id]
    assert core.history(technique="Doubt").total == 0


def test_a_fresh_install_runs_the_readme_line():
    """The issue's check, as a user types it, with the shipped models."""
    line = (
        "from spinlens import Spinlens; "
        "print(Spinlens().analyze(open('examples/site-builder-blog.txt').read()).summary)"
    )
    result = subprocess.run(
        [sys.executable, "-c", line], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "technique_counts={'" in result.stdout and "flagged_share=" in result.stdout


def test_the_package_is_typed_and_exports_its_api():
    assert (Path(spinlens.__file__).parent / "py.typed").exists()
    pyproject = (REPO / "pyproject.toml").read_text("utf-8")
    assert '"py.typed"' in pyproject
    for name in ("Spinlens", "Analysis", "Settings", "SpinlensError", "to_frames", "__version__"):
        assert name in spinlens.__all__ and hasattr(spinlens, name)


# -- catalogues: an import keeps every setting --------------------------------------------------


def test_an_import_keeps_the_matchers_settings_and_loaded_encoders(tmp_path):
    from spinlens.narratives import EmbeddingMatcher

    settings = Settings(home=tmp_path / "home")
    matcher = EmbeddingMatcher(
        store_path=settings.catalogue_path,
        claim_threshold=0.97,
        threshold=0.66,
        top=3,
        catalogues=["team"],
        cache_dir=tmp_path / "vectors",
    )
    # As if USE had been loaded for a Russian article (a stand-in: loading it takes seconds).
    sentinel = SimpleNamespace(name=matcher._multilingual_name())
    matcher._multilingual_encoder = sentinel
    sl = Spinlens(settings, pipeline=Pipeline(PhraseDetector(), [matcher]))
    (team := tmp_path / "team.csv").write_text(TEAM_CSV, encoding="utf-8")
    report = sl.import_catalogue(team, catalogue="team")
    assert report.added == 1
    (after,) = sl.pipeline.matchers
    assert after is not matcher  # it reads the new claims...
    assert [c for c in after.index.items if "grain" in str(c)]  # ...which are in its index
    assert (after.claim_threshold, after.threshold, after.top) == (0.97, 0.66, 3)
    assert after.catalogues == frozenset({"team"})
    assert after.store_path == settings.catalogue_path
    assert after.encoder is matcher.encoder
    assert after._multilingual_encoder is sentinel
    assert sl.search("the grain agreement only helps wealthy nations", top=1)[0].claim_id == (
        "team:grain-1"
    )


# -- no import cycle ----------------------------------------------------------------------------


def module_imports(src: Path, package: str) -> dict[str, set[str]]:
    """Each module of ``package`` -> the modules of it that it imports, anywhere in its code
    (inside functions and ``if TYPE_CHECKING`` too: a cycle hidden there is still a cycle)."""
    modules: dict[str, Path] = {}
    for path in (src / package).rglob("*.py"):
        name = ".".join(path.relative_to(src).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
                base = node.module or ""
                if node.level:
                    parts = module.split(".") if is_package else module.split(".")[:-1]
                    parts = parts[: len(parts) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            else:
                continue
            for target in targets:
                found = resolve(target) if target.split(".")[0] == package else None
                # A module may import its own package (its __init__): that is not a cycle.
                if found and found != module and not module.startswith(found + "."):
                    graph[module].add(found)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_in_src():
    graph = module_imports(REPO / "src", "spinlens")
    assert "spinlens.server.app" in graph and graph["spinlens.server.app"]
    assert cycles(graph) == []


def test_the_cycle_check_finds_a_cycle(tmp_path):
    package = tmp_path / "pkg"
    (package / "server").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "server" / "__init__.py").write_text("")
    (package / "server" / "app.py").write_text("def create():\n    from pkg.server import api\n")
    (package / "server" / "api.py").write_text("from pkg.server.app import create\n")
    assert cycles(module_imports(tmp_path, "pkg")) == [["pkg.server.api", "pkg.server.app"]]
