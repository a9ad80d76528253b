"""Tests for `papers list --like`: stored papers ranked by how alike they read to a seed."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from conftest import LISTING_000

Run = Callable[..., Any]


def test_a_stored_paper_as_seed_ranks_the_others_and_leaves_itself_out(run: Run) -> None:
    """Given a paper's id, the list holds the other papers most alike first, each with its
    similarity and the seed's title in the JSON."""
    assert run("ingest", str(LISTING_000)).exit_code == 0
    stored = json.loads(run("papers", "list", "--json").stdout)
    seed = next(p for p in stored if p["title"].startswith("Diffusion Transformers with"))
    result = run("papers", "list", "--like", seed["short_id"], "--json")
    assert result.exit_code == 0, result.output
    ranked = json.loads(result.stdout)
    assert seed["id"] not in {p["id"] for p in ranked}
    scores = [p["similarity"] for p in ranked]
    assert scores == sorted(scores, reverse=True) and 0 < scores[-1] <= scores[0] < 1
    assert {p["like"] for p in ranked} == {seed["title"]}
    assert "image generation" in (ranked[0]["title"] + ranked[0]["abstract"]).lower()


def test_free_text_ranks_papers_and_each_line_says_how_alike(run: Run) -> None:
    """A text that names no stored paper is the seed itself; a line under each paper gives
    the similarity, and papers sharing no word with it are left out."""
    assert run("ingest", str(LISTING_000)).exit_code == 0
    result = run("papers", "list", "--like", "vision transformer efficiency", "--limit", "3")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert "TurboViT" in lines[1]
    assert lines[2].strip() == "like 0.16: vision transformer efficiency"
    unrelated = run("papers", "list", "--like", "quantum chromodynamics lattice")
    assert unrelated.stdout.splitlines()[-1] == "No papers."


def test_like_and_match_together_are_refused(run: Run) -> None:
    """The two options rank differently: asking for both is a usage error, exit 2."""
    result = run("papers", "list", "--like", "x", "--match", "a@example.org")
    assert result.exit_code == 2
    assert "--match and --like rank differently" in result.stderr


def test_a_like_rule_chooses_papers_and_says_why_in_the_dry_run_and_the_email(
    run: Run, tmp_path: Any, monkeypatch: Any
) -> None:
    """A rule seeded with a stored paper's title selects the papers most like it; the dry
    run's JSON and the email's text give each one's reason with its cosine."""
    assert run("ingest", str(LISTING_000)).exit_code == 0
    seed = "Diffusion Transformers with Representation Autoencoders"
    (tmp_path / "s.yaml").write_text(
        "subscribers:\n  - email: ada@lab.example\n    max_papers: 50\n    rules:\n"
        f'      - {{name: Like RAE, like: ["{seed}"], top: 3}}\n',
        encoding="utf-8",
    )
    assert run("subscriptions", "sync", str(tmp_path / "s.yaml")).exit_code == 0
    dry = run("send-now", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    (reader,) = json.loads(dry.stdout)
    assert len(reader["papers"]) == 3
    for paper in reader["papers"]:
        assert paper["rules"] == ["Like RAE"]
        (reason,) = paper["similar"]
        assert reason.startswith(f"like: {seed} (0.")
    shown = " ".join(run("preview", "ada@lab.example").stdout.split())
    assert f"matched: like: {seed} (0." in shown and "(Like RAE)" in shown


def test_a_seed_that_names_nothing_is_refused_with_a_reason(run: Run) -> None:
    """An arXiv id no stored paper has, or a text with no words, is one error line."""
    assert run("ingest", str(LISTING_000)).exit_code == 0
    unknown = run("papers", "list", "--like", "2399.00001")
    assert unknown.exit_code == 1
    assert unknown.stderr.startswith("Error: --like: arXiv id 2399.00001 is not a stored paper")
    empty = run("papers", "list", "--like", "  -- ")
    assert empty.exit_code == 1 and "nothing to compare with" in empty.stderr


def test_sync_fetches_a_seed_given_by_arxiv_id_and_never_sends_it_as_new(
    run: Run, tmp_path: Any, monkeypatch: Any, arxiv_api: Any
) -> None:
    """A seed's arXiv id that no stored paper has is fetched from arXiv on sync and stored
    as first seen when arXiv published it; an id arXiv lacks is a located error."""
    from arxivapi import load_corpus

    monkeypatch.setenv("DIGESTBOT_ENRICH", "true")
    monkeypatch.setenv("DIGESTBOT_ARXIV_API_BASE_URL", arxiv_api.base_url)
    monkeypatch.setenv("DIGESTBOT_ARXIV_API_DELAY", "0")
    entry = next(
        e
        for e in load_corpus()
        if e["listing"].startswith("002_") and not e["decoy"] and not e["withhold"]
    )
    assert run("ingest", "--no-enrich", str(LISTING_000)).exit_code == 0
    subs = tmp_path / "s.yaml"
    rule = '      - {{name: Seeded, like: ["{seed}"], top: 2}}\n'
    head = "subscribers:\n  - email: ada@lab.example\n    rules:\n"
    subs.write_text(head + rule.format(seed=entry["id"]), encoding="utf-8")
    synced = run("subscriptions", "sync", str(subs))
    assert synced.exit_code == 0, synced.output
    assert "Fetched 1 like: seed from arXiv" in synced.stdout
    (stored,) = [
        p
        for p in json.loads(run("papers", "list", "--json", "--limit", "100").stdout)
        if p["arxiv_id"] == entry["id"]
    ]
    assert stored["first_seen"].startswith(entry["published"][:10])
    dry = json.loads(run("send-now", "--dry-run", "--json").stdout)
    assert entry["id"] not in {p["id"] for p in dry[0]["papers"]}
    assert len(dry[0]["papers"]) == 2
    subs.write_text(head + rule.format(seed="2399.00001"), encoding="utf-8")
    refused = run("subscriptions", "sync", str(subs))
    assert refused.exit_code == 1
    assert "arXiv has no 2399.00001" in refused.stdout
    assert (
        f"{subs}:4:" in refused.stderr
        and "arXiv id 2399.00001 is not a stored paper" in refused.stderr
    )


def test_a_seed_fetch_from_a_down_api_warns_and_the_sync_writes_nothing(
    run: Run, tmp_path: Any, monkeypatch: Any
) -> None:
    """arXiv unreachable: one warning, then the id is a located error, exit 1, and the
    database is as it was."""
    from conftest import db_fingerprint, free_port

    monkeypatch.setenv("DIGESTBOT_ENRICH", "true")
    monkeypatch.setenv("DIGESTBOT_ARXIV_API_BASE_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("DIGESTBOT_HTTP_RETRIES", "0")
    assert run("ingest", "--no-enrich", str(LISTING_000)).exit_code == 0
    before = db_fingerprint(tmp_path / "digestbot.db")
    subs = tmp_path / "s.yaml"
    subs.write_text(
        'subscribers:\n  - email: ada@lab.example\n    rules:\n      - {like: ["2501.04821"]}\n',
        encoding="utf-8",
    )
    result = run("subscriptions", "sync", str(subs))
    assert result.exit_code == 1
    warning, *errors = result.stderr.splitlines()
    assert warning.startswith("Warning: could not fetch like: seeds from arXiv: http://127.0.0.1:")
    assert (
        errors[0].startswith(f"Error: {subs}:4:")
        and "2501.04821 is not a stored paper" in errors[0]
    )
    assert db_fingerprint(tmp_path / "digestbot.db") == before


def test_validate_before_the_first_sync_notes_the_ids_sync_will_fetch(
    run: Run, tmp_path: Any, monkeypatch: Any
) -> None:
    """With lookups on, an unstored arXiv id is a note, not an error: the sync fetches it.
    With them off it is a located error, since nothing will fetch it."""
    assert run("ingest", "--no-enrich", str(LISTING_000)).exit_code == 0
    subs = tmp_path / "s.yaml"
    subs.write_text(
        'subscribers:\n  - email: ada@lab.example\n    rules:\n      - {like: ["2403.25018"]}\n',
        encoding="utf-8",
    )
    off = run("subscriptions", "validate", str(subs))
    assert off.exit_code == 1 and "arXiv id 2403.25018 is not a stored paper" in off.stderr
    monkeypatch.setenv("DIGESTBOT_ENRICH", "true")
    on = run("subscriptions", "validate", str(subs))
    assert on.exit_code == 0, on.output
    assert "Note: like: seed 2403.25018 is not stored yet" in on.stdout
