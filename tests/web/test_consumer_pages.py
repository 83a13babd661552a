"""The consumer pages over real HTTP (no browser): each shows the signed-in user's own data only.

Scores are published with real feature names, dimensions, reasons and tips,
so the pages render what a recompute would publish; the browser tests
(test_consumer_browser.py) do the same on a population scored by a real model.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from config.scorecard import load_scorecard
from config.settings import Settings, load_settings
from features.ingest import ingest_records
from features.user_events import user_events
from scoring.disputes import list_disputes
from scoring.publish import ScoreRecord, publish_scores
from tests.conftest import LiveServer
from tests.features.event_samples import record as sample
from tests.web.conftest import SignedPartner
from web.accounts import create_account
from web.consent import list_consents
from web.i18n import LANGUAGES, MESSAGES_DIR, load_catalogues, translate

PASSWORD = "correct horse battery"
PAGES = ["/me", "/me/why", "/me/history", "/me/tips", "/me/inquiries", "/me/consents"]
EARLIER, LATEST = date(2025, 12, 1), date(2026, 1, 1)
TEMPLATES = Path(__file__).parents[2] / "web" / "templates"


pytestmark = pytest.mark.usefixtures("cheap_hashing")


@pytest.fixture
def db_settings(home: Path, database_url: str) -> Settings:
    """Plain-HTTP test server: cookies cannot be Secure here."""
    return load_settings(home=home, database_url=database_url, log_format="text",
                         accounts_cookie_secure=False, accounts_signin_limit="100/minute")


def record(user_id: str, score: int, *, band: str, shift: float = 0.0) -> ScoreRecord:
    """A published row as a recompute writes it: points that add up, reasons and a tip."""
    features = {"repay_ontime_share_365d": -21.5 + shift, "repay_count_365d": 14.0,
                "spend_90d": 6.5, "identity_verified": -3.0, "contacts": 2.0}
    base = score - sum(features.values())
    dimensions = {"credit_history": -7.5 + shift, "behaviour": 6.5, "capacity": 0.0,
                  "identity": -3.0, "connections": 2.0}
    return ScoreRecord(
        user_id=user_id, score=score, score_unclipped=float(score), band_code=band, base_points=base,
        features=features, dimensions=dimensions,
        reasons=[{"code": "CH02", "text_en": "Too few loan repayments made on time",
                  "text_zh": "按时还款的比例偏低", "points": -21.5 + shift}],
        tips=[{"feature": "identity_verified", "code": "ID01", "from": 0.0, "to": 1.0, "points": 9.25,
               "score_to": score + 9, "band": band,
               "text_en": "If your identity were verified", "text_zh": "如果您的身份已验证",
               "assumption_en": "Assumes only this changes.", "assumption_zh": "假设只有这一项改变。"}])


@pytest.fixture
def people(engine: Engine) -> dict[str, str]:
    """Two consumers with accounts and two published dates; ann (u1) and bob (u2)."""
    publish_scores(engine, as_of=EARLIER, model_version="m-1", snapshot_id="s-1",
                   records=[record("u1", 612, band="good", shift=-10.0), record("u2", 777, band="excellent")])
    publish_scores(engine, as_of=LATEST, model_version="m-1", snapshot_id="s-2",
                   records=[record("u1", 622, band="good"), record("u2", 781, band="excellent"),
                            ScoreRecord(user_id="u3", score=None, score_unclipped=None, band_code=None,
                                        base_points=None, status="insufficient_data",
                                        reason="insufficient_data")])
    for user, email in (("u1", "ann@example.org"), ("u2", "bob@example.org"), ("u3", "cy@example.org")):
        create_account(engine, user_id=user, email=email, password=PASSWORD)
    return {"u1": "ann@example.org", "u2": "bob@example.org", "u3": "cy@example.org"}


def csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


@contextmanager
def signed_in(server: LiveServer, email: str, **headers: str) -> Iterator[httpx.Client]:
    """A cookie-keeping client signed in as ``email``."""
    with httpx.Client(base_url=server.url, timeout=10, headers=headers) as client:
        form = client.get("/signin").text
        answer = client.post("/signin", data={"email": email, "password": PASSWORD,
                                              "csrf_token": csrf(form), "next": "/me"})
        assert answer.status_code == 302, answer.text
        yield client


@pytest.fixture
def ann(live_server: LiveServer, people: dict[str, str]) -> Iterator[httpx.Client]:
    with signed_in(live_server, people["u1"]) as client:
        yield client


@pytest.fixture
def bob(live_server: LiveServer, people: dict[str, str]) -> Iterator[httpx.Client]:
    with signed_in(live_server, people["u2"]) as client:
        yield client


# -- access -------------------------------------------------------------------------


@pytest.mark.parametrize("path", [*PAGES, "/me/data", "/"])
def test_a_signed_out_visit_is_sent_to_sign_in_and_comes_back(live_server: LiveServer, path: str) -> None:
    response = live_server.get(path)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith("/signin?next=")
    assert "u1" not in response.text


def test_signing_in_from_a_page_returns_to_it(live_server: LiveServer, people: dict[str, str]) -> None:
    with httpx.Client(base_url=live_server.url, timeout=10) as client:
        form = client.get(client.get("/me/why").headers["Location"]).text
        next_path = re.search(r'name="next" value="([^"]*)"', form)
        assert next_path and next_path.group(1) == "/me/why"
        answer = client.post("/signin", data={"email": people["u1"], "password": PASSWORD,
                                              "csrf_token": csrf(form), "next": next_path.group(1)})
        assert answer.headers["Location"] == "/me/why"
        assert client.get("/me/why").status_code == 200


def test_every_page_shows_the_users_own_data_and_never_anothers(ann: httpx.Client, bob: httpx.Client) -> None:
    for path in PAGES:
        mine, theirs = ann.get(path), bob.get(path)
        assert mine.status_code == theirs.status_code == 200, path
        assert "781" not in mine.text and "777" not in mine.text, path
        assert "622" not in theirs.text and "612" not in theirs.text, path
    assert 'data-score="622"' in ann.get("/me").text
    assert 'data-score="781"' in bob.get("/me").text


def test_pages_load_nothing_from_elsewhere_and_refuse_framing(ann: httpx.Client) -> None:
    for path in PAGES:
        response = ann.get(path)
        policy = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert not re.search(r'(?:src|href)="(?:https?:)?//', response.text), path


def test_signing_out_ends_the_session(ann: httpx.Client) -> None:
    page = ann.get("/me").text
    assert ann.post("/signout", data={"csrf_token": csrf(page)}).status_code == 302
    assert ann.get("/me").status_code == 302


# -- the pages ----------------------------------------------------------------------


def test_my_score_shows_the_gauge_band_date_and_model(ann: httpx.Client) -> None:
    page = ann.get("/me").text
    assert 'data-score="622"' in page and 'id="score-value">622<' in page
    assert "Good" in page and "2026-01-01" in page and "m-1" in page
    for band in load_scorecard().bands:  # the five bands, named, on the gauge's legend
        assert band.en in page and f"{band.min}–{band.max}" in page
    assert "<title id=\"gauge-title\">" in page and "Your score is 622, in the band Good" in page


def test_without_enough_data_the_page_says_what_would_make_a_score_possible(
        live_server: LiveServer, people: dict[str, str]) -> None:
    with signed_in(live_server, people["u3"]) as client:
        page = client.get("/me").text
    rule = load_scorecard().min_data
    assert rule.en in page
    assert f"at least {rule.min_features} measurements" in page and "data-score" not in page


def test_why_shows_dimensions_factors_and_the_reasons_a_partner_sees(ann: httpx.Client) -> None:
    page = ann.get("/me/why").text
    for name in ("Credit history", "Behaviour", "Capacity", "Identity", "Connections"):
        assert name in page
    assert "-7.5" in page and "+6.5" in page  # dimension points, in the table and on the bars
    assert len(re.findall(r'<rect[^>]*class="(?:gain|loss)"', page, flags=re.S)) == 5  # one bar each
    cost = page[page.index('id="cost-list"'):page.index('id="earned"')]
    assert "Share of loan repayments made on time in the last 365 days" in cost and "-21.5 points" in cost
    earned = page[page.index('id="earned-list"'):]
    assert "Number of loan repayments in the last 365 days" in earned and "+14.0 points" in earned
    assert "CH02" in page and "Too few loan repayments made on time" in page


def test_what_changed_shows_every_date_and_the_factors_that_moved(ann: httpx.Client) -> None:
    page = ann.get("/me/history").text
    assert "2025-12-01" in page and "2026-01-01" in page
    assert "612" in page and "622" in page and 'class="trend"' in page
    summary = page[page.index('id="change-summary"'):]
    assert "from 612 to 622 (+10 points)" in summary
    assert ("Share of loan repayments made on time in the last 365 days: +10.0 points since 2025-12-01"
            in summary)


def test_how_to_improve_shows_tips_with_points_and_assumptions(ann: httpx.Client) -> None:
    page = ann.get("/me/tips").text
    assert "If your identity were verified" in page
    assert "+9.2 points, to 631" in page or "+9.3 points, to 631" in page
    assert "Assumes only this changes." in page


def test_who_looked_lists_the_partners_lookups(ann: httpx.Client, acme: SignedPartner,
                                               grant: Callable[..., str]) -> None:
    assert "Nobody has looked at your score." in ann.get("/me/inquiries").text
    assert acme.score(grant(acme, "u1")).status_code == 200
    page = ann.get("/me/inquiries").text
    table = page[page.index('id="inquiry-table"'):]
    assert "acme" in table and "Loan underwriting" in table and "Score and reasons" in table
    assert "score" in table and "reasons" in table


def test_revoking_a_consent_refuses_the_partners_next_lookup(
        ann: httpx.Client, acme: SignedPartner, grant: Callable[..., str], engine: Engine) -> None:
    open_id = grant(acme, "u1")
    assert acme.score(open_id).status_code == 200
    page = ann.get("/me/consents").text
    consent = list_consents(engine, user_id="u1")[0]
    assert f'id="revoke-{consent.id}"' in page
    answer = ann.post(f"/me/consents/{consent.id}/revoke", data={"csrf_token": csrf(page)})
    assert answer.status_code == 303
    after = ann.get(answer.headers["Location"]).text
    assert "The consent was revoked." in after
    revoked = after[after.index('id="consent-table-revoked"'):]
    assert "acme" in revoked
    assert list_consents(engine, user_id="u1")[0].state == "revoked"
    assert acme.score(open_id).status_code == 403


def test_another_users_consent_cannot_be_revoked(
        ann: httpx.Client, bob: httpx.Client, acme: SignedPartner, grant: Callable[..., str],
        engine: Engine) -> None:
    open_id = grant(acme, "u2")
    theirs = list_consents(engine, user_id="u2")[0]
    assert "acme" not in ann.get("/me/consents").text
    answer = ann.post(f"/me/consents/{theirs.id}/revoke", data={"csrf_token": csrf(ann.get("/me").text)})
    assert answer.status_code == 404
    assert list_consents(engine, user_id="u2")[0].state == "active"
    assert acme.score(open_id).status_code == 200


@pytest.mark.parametrize("token", [None, "forged", ""])
def test_a_form_without_this_sessions_token_is_refused_and_changes_nothing(
        ann: httpx.Client, bob: httpx.Client, acme: SignedPartner, grant: Callable[..., str],
        engine: Engine, token: str | None) -> None:
    grant(acme, "u1")
    consent = list_consents(engine, user_id="u1")[0]
    if token == "":  # another session's genuine token is forged for this one
        token = csrf(bob.get("/me").text)
    data = {} if token is None else {"csrf_token": token}
    answer = ann.post(f"/me/consents/{consent.id}/revoke", data=data)
    assert answer.status_code == 400
    assert "The form is stale" in answer.text
    assert list_consents(engine, user_id="u1")[0].state == "active"
    switched = ann.post("/language", data={**data, "lang": "zh", "back": "/me"})
    assert switched.status_code == 400 and "lang" not in ann.cookies


# -- language -----------------------------------------------------------------------


def test_the_language_follows_accept_language(live_server: LiveServer, people: dict[str, str]) -> None:
    with signed_in(live_server, people["u1"], **{"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}) as client:
        page = client.get("/me").text
    assert '<html lang="zh">' in page and "我的信用分" in page and "良好" in page
    assert "My score" not in page
    with signed_in(live_server, people["u1"], **{"Accept-Language": "fr, en;q=0.8"}) as client:
        assert '<html lang="en">' in client.get("/me").text


def test_the_language_switch_sticks(ann: httpx.Client) -> None:
    page = ann.get("/me/why").text
    answer = ann.post("/language", data={"csrf_token": csrf(page), "lang": "zh", "back": "/me/why"})
    assert answer.status_code == 303 and answer.headers["Location"] == "/me/why"
    cookie = answer.headers["Set-Cookie"]
    assert "lang=zh" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    for path in PAGES:
        text = ann.get(path, headers={"Accept-Language": "en"}).text
        assert '<html lang="zh">' in text, path
    why = ann.get("/me/why").text
    assert "信用历史" in why and "按时还款的比例偏低" in why and "近365天按时还款的比例" in why
    back = ann.post("/language", data={"csrf_token": csrf(why), "lang": "en", "back": "/me"})
    assert back.status_code == 303 and '<html lang="en">' in ann.get("/me").text


def test_the_switch_returns_only_to_this_site(ann: httpx.Client) -> None:
    token = csrf(ann.get("/me").text)
    for back in ("https://evil.example/", "//evil.example/x"):
        answer = ann.post("/language", data={"csrf_token": token, "lang": "zh", "back": back})
        assert answer.headers["Location"] == "/"


def test_sign_in_speaks_the_chosen_language(live_server: LiveServer) -> None:
    page = live_server.get("/signin", headers={"Accept-Language": "zh"}).text
    assert "电子邮箱" in page and "密码" in page


def test_both_catalogues_have_the_same_keys_and_placeholders() -> None:
    catalogues = load_catalogues()
    assert set(catalogues) == set(LANGUAGES)
    assert set(catalogues["en"]) == set(catalogues["zh"])
    assert translate("score.gauge_desc", "zh", score=1, band="b", low=2, high=3).startswith("您的分数为1")


def test_a_catalogue_missing_a_key_stops_with_one_line(tmp_path: Path) -> None:
    for language in LANGUAGES:
        text = (MESSAGES_DIR / f"{language}.toml").read_text(encoding="utf-8")
        if language == "zh":
            text = text.replace('approve = "同意"\n', "")
        (tmp_path / f"{language}.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=r"^zh.toml: key authorize.approve is not in every catalogue$"):
        load_catalogues(tmp_path)


CONSUMER_TEMPLATES = ["layout.html", "charts.html", "signin.html", "authorize.html", "authorize_error.html",
                      *(f"consumer/{path.name}" for path in sorted((TEMPLATES / "consumer").glob("*.html")))]


@pytest.mark.parametrize("name", CONSUMER_TEMPLATES)
def test_templates_hold_no_literal_text(name: str) -> None:
    """Every word a consumer reads comes from a catalogue or config, never from a template."""
    source = (TEMPLATES / name).read_text(encoding="utf-8")
    for attribute in ("aria-label", "title", "alt", "placeholder"):
        for value in re.findall(rf'\s{attribute}="([^"]*)"', source):
            assert value.startswith("{{"), f"{name}: {attribute}=\"{value}\""
    stripped = re.sub(r"\{#.*?#\}|\{%.*?%\}|\{\{.*?\}\}", " ", source, flags=re.S)
    stripped = re.sub(r"<[^>]*>", " ", stripped, flags=re.S)
    letters = [word for word in stripped.split() if any(char.isalpha() for char in word)]
    assert letters == [], f"{name}: literal text {letters[:5]}"


# -- my data and disputes -----------------------------------------------------------


@pytest.fixture
def events(people: dict[str, str], settings_of: Settings) -> None:
    """Two bills of ann's and one of bob's, in the lake."""
    ingest_records(settings_of, [
        sample("bill", event_id="b-1", user_id="u1", event_time="2025-10-03T08:00:00+00:00",
               amount="88.20", account_id="elec-ann"),
        sample("bill", event_id="b-2", user_id="u1", event_time="2025-11-03T08:00:00+00:00",
               amount="91.70", account_id="elec-ann"),
        sample("bill", event_id="b-3", user_id="u2", event_time="2025-11-04T08:00:00+00:00",
               amount="4321.00", account_id="elec-bob"),
    ])


def test_my_data_lists_the_users_events_by_family_and_nobody_elses(
        ann: httpx.Client, events: None) -> None:
    page = ann.get("/me/data", params={"family": "bills"}).text
    table = page[page.index('id="event-table"'):]
    assert "elec-ann" in table and "88.20" in table and "91.70" in table
    assert "due date" in table and "account" in table  # detail fields named in the page's language
    assert "elec-bob" not in page and "4321.00" not in page
    assert table.index("2025-11-03") < table.index("2025-10-03")  # newest first
    assert "Dispute this" in table and 'name="reason"' in table
    assert "2 events · page 1 of 1" in page
    assert ann.get("/me/data", params={"family": "nothing"}).status_code == 404
    assert ann.get("/me/data", params={"family": "bills", "page": 2}).status_code == 404


def test_filing_a_dispute_excludes_the_event(ann: httpx.Client, events: None, settings_of: Settings) -> None:
    page = ann.get("/me/data", params={"family": "bills"}).text
    answer = ann.post("/me/disputes", data={"csrf_token": csrf(page), "source": "grid", "event_id": "b-2",
                                            "reason": "I never had this bill", "family": "bills",
                                            "page": "1"})
    assert answer.status_code == 303 and answer.headers["Location"] == "/me/data?family=bills&page=1"
    after = ann.get(answer.headers["Location"]).text
    assert "Your dispute was filed." in after
    row = after[after.index('data-event-id="b-2"'):]
    assert row.index("Excluded from your score") < row.index("</tr>")
    disputes = after[after.index('id="dispute-table"'):]
    assert "I never had this bill" in disputes and "Open" in disputes
    assert [item.event_id for item in list_disputes(settings_of, user_id="u1")] == ["b-2"]


def test_another_users_event_cannot_be_disputed(ann: httpx.Client, events: None,
                                                settings_of: Settings) -> None:
    page = ann.get("/me/data", params={"family": "bills"}).text
    answer = ann.post("/me/disputes", data={"csrf_token": csrf(page), "source": "grid", "event_id": "b-3",
                                            "reason": "not mine", "family": "bills", "page": "1"})
    assert answer.status_code == 303
    after = ann.get(answer.headers["Location"]).text
    assert "This dispute could not be filed" in after
    assert list_disputes(settings_of) == []
    bob_events = user_events(settings_of, "u2", family="bills").items
    assert [(item.event_id, item.excluded) for item in bob_events] == [("b-3", False)]


@pytest.mark.parametrize("data", [{}, {"csrf_token": "forged"}])
def test_a_dispute_without_this_sessions_token_is_refused(
        ann: httpx.Client, events: None, settings_of: Settings, data: dict[str, str]) -> None:
    answer = ann.post("/me/disputes", data={**data, "source": "grid", "event_id": "b-1", "reason": "wrong"})
    assert answer.status_code == 400
    assert list_disputes(settings_of) == []
