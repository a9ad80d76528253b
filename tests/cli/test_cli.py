"""Tests for the command line: each command's output and exit code."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from conftest import (
    FEEDS,
    LISTING_000,
    LISTINGS,
    HttpServer,
    Reply,
    SmtpServer,
    db_fingerprint,
    free_port,
)
from helpers import ALICE_YAML, SENDER, host_environment, rows, subscribers

from digestbot import service
from digestbot.delivery import claims
from digestbot.delivery.pipeline import enqueue_digests
from digestbot.schedule import ledger
from digestbot.settings import Settings
from digestbot.store.engine import make_engine


def write_subscriptions(tmp_path: Path, text: str = ALICE_YAML) -> Path:
    path = tmp_path / "subscriptions.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_ingest_prints_new_known_and_skipped_counts(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The first ingest finds 39 new papers; the second only known ones."""
    first = run("ingest", str(LISTING_000))
    assert first.exit_code == 0
    assert "39 new, 0 already known, 0 skipped" in first.stdout
    second = run("ingest", str(LISTING_000))
    assert "0 new, 39 already known, 0 skipped" in second.stdout


def test_ingest_of_a_missing_file_is_one_error_line(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A wrong path is `Error: …` on stderr and exit 1."""
    result = run("ingest", str(tmp_path / "nope.txt"))
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: {tmp_path / 'nope.txt'}: no such file (check the path)"
    ]


def test_ingest_of_a_file_that_is_not_a_listing_changes_nothing(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A wrong file is one error line, exit 1, and the database is exactly as it was."""
    run("ingest", str(LISTING_000))
    before = db_fingerprint(tmp_path / "digestbot.db")
    bogus = tmp_path / "bogus.txt"
    bogus.write_text("just some notes\n", encoding="utf-8")
    result = run("ingest", str(bogus))
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"Error: {bogus}: not a Daily Papers listing")
    assert db_fingerprint(tmp_path / "digestbot.db") == before


def web_env(monkeypatch: pytest.MonkeyPatch, server: HttpServer) -> None:
    for name in ("HF", "ARXIV_RSS", "ARXIV_API"):
        monkeypatch.setenv(f"DIGESTBOT_{name}_BASE_URL", server.base_url)
    monkeypatch.setenv("DIGESTBOT_HTTP_RETRIES", "0")


def test_ingest_source_hf_fetches_the_given_date(run, http_server: HttpServer, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """`ingest --source hf --date D` asks the API for that day and prints the counts."""
    web_env(monkeypatch, http_server)
    http_server.route(
        "/api/daily_papers", Reply(body=(FEEDS / "hf_daily_papers_2025-01-15.json").read_bytes())
    )
    result = run("ingest", "--source", "hf", "--date", "2025-01-15")
    assert result.exit_code == 0, result.stderr
    assert "daily_papers?date=2025-01-15: 6 new, 0 already known, 0 skipped" in result.stdout
    listed = json.loads(run("papers", "list", "--json").stdout)
    halogen = next(p for p in listed if p["arxiv_id"] == "2501.08292")
    assert halogen["links"]["hf"] == "https://huggingface.co/papers/2501.08292"
    assert halogen["sources"] == [f"{http_server.base_url}/api/daily_papers?date=2025-01-15"]


def test_ingest_a_feed_url_then_an_arxiv_category(
    run, http_server: HttpServer, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """A URL argument is fetched and its format detected; --category picks arXiv RSS."""
    web_env(monkeypatch, http_server)
    url = http_server.route("/blog.xml", Reply(body=(FEEDS / "generic_atom_blog.xml").read_bytes()))
    http_server.route("/rss/cs.CL", Reply(body=(FEEDS / "arxiv_rss_cs.CL.xml").read_bytes()))
    assert "3 new" in run("ingest", url).stdout
    result = run("ingest", "--source", "arxiv", "--category", "cs.CL")
    assert f"{http_server.base_url}/rss/cs.CL: 4 new" in result.stdout
    listed = json.loads(run("papers", "list", "--json").stdout)
    assert {"cs.CL", "cs.AI"} <= {c for p in listed for c in p["categories"]}


def test_ingest_from_a_failing_server_is_one_line_and_stores_no_paper(  # type: ignore[no-untyped-def]
    run, tmp_path: Path, http_server: HttpServer, monkeypatch
) -> None:
    """A 503 is `Error: URL: HTTP 503 …`, exit 1; the papers are as they were and only the
    failed run is recorded (for `status`)."""
    web_env(monkeypatch, http_server)
    run("ingest", str(LISTING_000))
    before = run("papers", "list", "--json").stdout
    http_server.route("/api/daily_papers", Reply(503))
    result = run("ingest", "--source", "hf", "--date", "2025-01-15")
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(
        f"Error: {http_server.base_url}/api/daily_papers?date=2025-01-15: HTTP 503"
    )
    assert run("papers", "list", "--json").stdout == before
    engine = make_engine(f"sqlite:///{tmp_path / 'digestbot.db'}")
    (recorded,) = ledger.source_runs(engine).values()
    engine.dispose()
    assert recorded.source == "hf" and recorded.failures == 1


def test_ingest_all_reads_the_sources_section(
    run, tmp_path: Path, http_server: HttpServer, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """`ingest --all` fetches every source listed under `sources:`."""
    web_env(monkeypatch, http_server)
    http_server.route("/rss/cs.CL", Reply(body=(FEEDS / "arxiv_rss_cs.CL.xml").read_bytes()))
    http_server.route(
        "/api/daily_papers", Reply(body=(FEEDS / "hf_daily_papers_2025-01-15.json").read_bytes())
    )
    text = "sources:\n  - kind: hf\n  - kind: arxiv\n    categories: [cs.CL]\n" + ALICE_YAML
    monkeypatch.setenv("DIGESTBOT_SUBSCRIPTIONS", str(write_subscriptions(tmp_path, text)))
    result = run("ingest", "--all")
    assert result.exit_code == 0, result.stderr
    assert "6 new" in result.stdout and "3 new, 1 already known" in result.stdout


def test_papers_list_json_has_the_documented_keys(run) -> None:  # type: ignore[no-untyped-def]
    """Each JSON object has id, title, authors, published, first_seen and upvotes."""
    run("ingest", str(LISTINGS / "001_da432fa98501e883.txt"))
    result = run("papers", "list", "--json")
    assert result.exit_code == 0
    papers = json.loads(result.stdout)
    assert len(papers) == 65
    assert {"id", "title", "authors", "published", "first_seen", "upvotes"} <= set(papers[0])
    assert run("papers", "list", "--json", "--since", "2999-01-01").stdout.strip() == "[]"


def test_subscriptions_validate_accepts_a_good_file(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A valid file is reported OK with its counts, exit 0."""
    result = run("subscriptions", "validate", str(write_subscriptions(tmp_path)))
    assert result.exit_code == 0
    assert "OK, 1 subscriber, 1 rule" in result.stdout


def test_subscribers_at_example_domains_are_warned_about(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """validate and sync say which subscribers are at an example domain (as `init`'s file
    has them), and still do their work."""
    text = ALICE_YAML + "  - email: me@mylab.org\n    rules:\n      - any: [x]\n"
    path = write_subscriptions(tmp_path, text)
    for command in ("validate", "sync"):
        result = run("subscriptions", command, str(path))
        assert result.exit_code == 0
        (line,) = result.stderr.splitlines()
        assert line.startswith("Warning: alice@example.org is at an example domain: mail to it")
    assert "2 added" in result.stdout


def test_a_broken_subscriptions_file_changes_nothing(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A bad sync is one error line with file, line and field, exit 1, database untouched."""
    path = write_subscriptions(tmp_path)
    assert run("subscriptions", "sync", str(path)).exit_code == 0
    before = db_fingerprint(tmp_path / "digestbot.db")
    write_subscriptions(tmp_path, ALICE_YAML.replace("alice@example.org", "alice@") + "bogus: 1\n")
    result = run("subscriptions", "sync", str(path))
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith(f"Error: {path}:2:5: subscribers[0].email: ")
    assert lines[1].startswith(f"Error: {path}:8:1: bogus: unknown key")
    assert db_fingerprint(tmp_path / "digestbot.db") == before


def test_subscriptions_sync_uses_the_configured_path(run, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Without an argument, DIGESTBOT_SUBSCRIPTIONS names the file."""
    monkeypatch.setenv("DIGESTBOT_SUBSCRIPTIONS", str(write_subscriptions(tmp_path)))
    result = run("subscriptions", "sync")
    assert result.exit_code == 0
    assert "1 added" in result.stdout


def test_send_now_dry_run_json_shows_the_plan_and_records_nothing(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The dry run prints email → papers with id, title, score, matched; nothing is written."""
    run("ingest", str(LISTING_000))
    run("subscriptions", "sync", str(write_subscriptions(tmp_path)))
    before = db_fingerprint(tmp_path / "digestbot.db")
    result = run("send-now", "--dry-run", "--json")
    assert result.exit_code == 0
    (plan,) = json.loads(result.stdout)
    assert plan["email"] == "alice@example.org"
    assert plan["papers"], "the sample listing has transformer papers"
    assert set(plan["papers"][0]) == {"id", "title", "score", "matched", "rules", "similar"}
    assert all(p["matched"] == ["transformer"] for p in plan["papers"])
    assert db_fingerprint(tmp_path / "digestbot.db") == before
    assert not (tmp_path / "outbox").exists()


def test_send_now_twice_sends_only_once(
    run, tmp_path: Path, smtp_server: SmtpServer, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """The second send-now finds nothing new and says so."""
    monkeypatch.setenv("DIGESTBOT_SMTP_HOST", smtp_server.host)
    monkeypatch.setenv("DIGESTBOT_SMTP_PORT", str(smtp_server.port))
    monkeypatch.setenv("DIGESTBOT_SMTP_TLS", "none")
    monkeypatch.setenv("DIGESTBOT_FROM_ADDRESS", SENDER)
    run("ingest", str(LISTING_000))
    run("subscriptions", "sync", str(write_subscriptions(tmp_path)))
    first = run("send-now")
    assert first.exit_code == 0
    assert "alice@example.org" in first.stdout
    second = run("send-now")
    assert second.exit_code == 0
    assert "Nothing new to send" in second.stdout
    assert len(smtp_server.inbox.envelopes) == 1


class _OneOfEach:
    """Takes alice's message, refuses bob (550) and carol (451), stores dave's and then
    answers too late."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        if address.startswith("bob@"):
            return "550 5.1.1 No such user"
        if address.startswith("carol@"):
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        if envelope.rcpt_tos[0].startswith("dave@"):
            await asyncio.sleep(1.0)
        return "250 OK"


def test_send_now_sums_up_each_outcome_and_exits_1(  # type: ignore[no-untyped-def]
    run, tmp_path: Path, smtp_factory, monkeypatch
) -> None:
    """Sent, retrying, failed and unknown are each counted in the summary; exit 1."""
    monkeypatch.setenv("DIGESTBOT_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("DIGESTBOT_SMTP_PORT", str(smtp_factory(_OneOfEach())))
    monkeypatch.setenv("DIGESTBOT_SMTP_TLS", "none")
    monkeypatch.setenv("DIGESTBOT_FROM_ADDRESS", SENDER)
    monkeypatch.setenv("DIGESTBOT_SMTP_TIMEOUT", "0.3")
    people = "".join(
        f"  - email: {name}@example.org\n    rules:\n      - any: [transformer]\n"
        for name in ("alice", "bob", "carol", "dave")
    )
    run("ingest", str(LISTING_000))
    run("subscriptions", "sync", str(write_subscriptions(tmp_path, "subscribers:\n" + people)))
    result = run("send-now")
    assert result.exit_code == 1
    assert "Summary: 1 sent, 1 retrying, 1 failed, 1 unknown." in result.stdout


def test_send_now_to_an_unknown_address_is_an_error(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """--to must name an active subscriber."""
    run("subscriptions", "sync", str(write_subscriptions(tmp_path)))
    result = run("send-now", "--to", "zed@example.org")
    assert result.exit_code == 1
    assert "Error: not an active subscriber: zed@example.org" in result.stderr


def test_send_now_with_the_server_down_exits_1_and_keeps_rows_pending(
    run, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """Connection refused is one clear line saying what stays queued, exit 1, and nothing is
    recorded as sent."""
    port = free_port()
    monkeypatch.setenv("DIGESTBOT_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("DIGESTBOT_SMTP_PORT", str(port))
    monkeypatch.setenv("DIGESTBOT_SMTP_TLS", "none")
    monkeypatch.setenv("DIGESTBOT_FROM_ADDRESS", SENDER)
    run("ingest", str(LISTING_000))
    run("subscriptions", "sync", str(write_subscriptions(tmp_path)))
    result = run("send-now")
    assert result.exit_code == 1
    (line,) = [e for e in result.stderr.splitlines() if e.startswith("Error:")]
    assert line.startswith(
        f"Error: cannot connect to the SMTP server 127.0.0.1:{port}: connection refused; "
        "1 email(s) stay queued and go out with the next send-now or run"
    )
    (plan,) = json.loads(run("send-now", "--dry-run", "--json").stdout)
    assert plan["papers"] == []
    assert [row["status"] for row in plan["queued"]] == ["pending"]


def test_a_bad_setting_is_one_error_line(run, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """An invalid environment value names the variable."""
    monkeypatch.setenv("DIGESTBOT_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("DIGESTBOT_SMTP_TLS", "maybe")
    result = run("send-now")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: DIGESTBOT_SMTP_TLS:")


def test_demo_runs_from_any_folder_and_again_sends_only_what_did_not_fit(tmp_path: Path) -> None:
    """`python -m digestbot demo` in an empty folder writes .eml files to ./digestbot-demo/;
    run again, it sends only the papers that did not fit a digest, until nothing is new."""
    env = host_environment()
    command = [sys.executable, "-m", "digestbot", "demo"]
    first = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert first.returncode == 0, first.stderr
    assert "sample_listing.txt: 39 new" in first.stdout
    assert "sample_daily_papers.json: 6 new" in first.stdout
    emls = sorted((tmp_path / "digestbot-demo" / "outbox").glob("*.eml"))
    assert len(emls) == 3
    for eml in emls:
        message = message_from_bytes(eml.read_bytes(), policy=policy.default)
        assert message.get_content_type() == "multipart/alternative"
        assert message.get_body(("plain",)) is not None
        assert message.get_body(("html",)) is not None
        assert message["Message-ID"] and message["Date"] and message["List-Unsubscribe"]
    assert len(list((tmp_path / "digestbot-demo" / "outbox").glob("*.html"))) == 3
    assert (tmp_path / "digestbot-demo" / "digestbot.db").exists()
    second = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert second.returncode == 0, second.stderr
    assert "Summary: 1 sent," in second.stdout
    assert "papers did not fit max_papers: they come in the next digests" in second.stdout
    for _ in range(5):
        again = subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, check=False
        )
        if "Nothing new to send" in again.stdout:
            break
    else:
        raise AssertionError("the demo kept finding papers to send")
    sent = [  # (reader, paper link) of every email: none twice
        (eml.name.split("-digest")[0], line.strip())
        for eml in (tmp_path / "digestbot-demo" / "outbox").glob("*.eml")
        for line in eml.read_text(encoding="utf-8").splitlines()
        if line.strip().startswith("Read: ")
    ]
    assert len(sent) > 3 and len(sent) == len(set(sent))


def outbox_counts(stdout: str) -> dict[str, str]:
    """The Outbox table of `status`: emails by state, as printed."""
    return {
        line.split("│")[1].strip(): line.split("│")[2].strip()
        for line in stdout.splitlines()
        if line.count("│") == 3
    }


def test_status_shows_the_outbox_by_state(run, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """After a refused send, status lists every state with its count and exits 0."""
    monkeypatch.setenv("DIGESTBOT_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("DIGESTBOT_SMTP_PORT", str(free_port()))
    monkeypatch.setenv("DIGESTBOT_SMTP_TLS", "none")
    monkeypatch.setenv("DIGESTBOT_FROM_ADDRESS", SENDER)
    run("ingest", str(LISTING_000))
    run("subscriptions", "sync", str(write_subscriptions(tmp_path)))
    assert run("send-now").exit_code == 1
    result = run("status")
    assert result.exit_code == 0
    lines = outbox_counts(result.stdout)
    assert "state" in result.stdout and "emails" in result.stdout
    assert lines == {
        "pending": "1",
        "sending": "0",
        "sent": "0",
        "retry": "0",
        "failed": "0",
        "unknown": "0",
    }


def test_status_counts_each_state_and_lists_the_rows_needing_attention(  # type: ignore[no-untyped-def]
    run, tmp_path: Path, clock, monkeypatch
) -> None:
    """One row in each state: each count is 1, and the retry, failed and unknown rows are
    listed with their recipient, attempts, why and Message-ID."""
    run("ingest", str(LISTING_000))
    run("subscriptions", "sync", str(write_subscriptions(tmp_path, subscribers(6))))
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    engine = make_engine(settings.database_url)
    try:
        digests = service.plan_digests(engine, settings, now=clock)
        ids = enqueue_digests(engine, settings, digests, now=clock)
        ends = {
            ids[2]: claims.Closing(ids[2], "sent", "smtp://relay"),
            ids[3]: claims.Closing(ids[3], "retry", "451 busy", next_attempt_at=clock),
            ids[4]: claims.Closing(ids[4], "failed", "550 no such user"),
            ids[5]: claims.Closing(ids[5], "unknown", "no reply after the body"),
        }
        for row_id in ids[1:]:
            claims.claim(engine, row_id, now=clock, by="test")
            if row_id in ends:
                claims.close(engine, ends[row_id], now=clock)
        message_ids = {r.id: r.message_id for r in rows(engine)}
    finally:
        engine.dispose()
    monkeypatch.setenv("COLUMNS", "250")  # wide enough that rich wraps no cell
    result = run("status")
    assert result.exit_code == 0
    counts = outbox_counts(result.stdout)
    states = ["pending", "sending", "sent", "retry", "failed", "unknown"]
    assert counts == dict.fromkeys(states, "1")
    attention = result.stdout.split("Needs attention (3 emails)\n", 1)[1].split("\n  #")
    listed = {
        entry.split()[1]: [line.strip() for line in entry.splitlines()[1:]] for entry in attention
    }
    assert listed == {
        state: [
            "1 attempt" + (", next attempt 2026-11-24 07:00 UTC" if state == "retry" else ""),
            error,
            f"Message-ID: {message_ids[ids[n]]}",
        ]
        for n, state, error in (
            (3, "retry", "451 busy"),
            (4, "failed", "550 no such user"),
            (5, "unknown", "no reply after the body"),
        )
    }
    assert f"  #{ids[3]} retry digest to reader3@example.org" in result.stdout


def test_run_with_a_broken_subscriptions_file_refuses_to_start_and_writes_nothing(  # type: ignore[no-untyped-def]
    run, tmp_path: Path
) -> None:
    """`run` validates the file first: one error line per problem, exit 1, database unchanged."""
    assert run("ingest", str(LISTING_000)).exit_code == 0
    write_subscriptions(tmp_path, "subscribers:\n  - email: nobody\n    rules: []\n")
    before = db_fingerprint(tmp_path / "digestbot.db")
    result = run("run")
    assert result.exit_code == 1
    # After the line saying where emails go.
    assert result.stderr.split("\n", 1)[1].startswith("Error: subscriptions.yaml:2:")
    assert db_fingerprint(tmp_path / "digestbot.db") == before
