"""The consumer pages in a real headless Chromium, on a small population scored by a real model.

Runs Debian's ``chromium`` through Python Playwright (never a downloaded
browser). Without /usr/bin/chromium these tests are skipped: ``apt-get install
chromium`` enables them (``.ci/run`` does it). Every page visited is saved as a
screenshot under ``test-output/screenshots/``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine

from config.event_families import load_event_families
from config.settings import Settings, load_settings
from features.user_events import FAMILIES, UserEvent, user_events
from scoring.disputes import list_disputes
from scoring.publish import current_score, list_scores, score_history
from scoring.recompute import recompute
from tests.conftest import LiveServer
from tests.scoring.test_recompute import AS_OF, LATER, populate, register_champion
from tests.web.conftest import SignedPartner
from web.accounts import create_account
from web.client import ApiError, Client
from web.consent import grant_consent, list_consents
from web.consumer_views import EVENTS_PAGE_SIZE

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"headless Chromium not found at {CHROMIUM}: `apt-get install chromium` enables the "
                "browser tests (.ci/run installs it)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[dev]' installs playwright")

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.usefixtures("cheap_hashing")]

SCREENSHOTS = Path(__file__).parents[2] / "test-output" / "screenshots"
EMAIL, PASSWORD = "ann@example.org", "correct horse battery"
PAGES = ["/me", "/me/why", "/me/history", "/me/tips", "/me/inquiries", "/me/consents", "/me/data"]


@pytest.fixture
def database_url(sqlite_only: str) -> str:
    return sqlite_only


@pytest.fixture
def db_settings(home: Path, database_url: str) -> Settings:
    """Plain-HTTP test server: cookies cannot be Secure here."""
    return load_settings(home=home, database_url=database_url, log_format="text",
                         accounts_cookie_secure=False, accounts_signin_limit="100/minute")


@dataclass(frozen=True)
class Consumer:
    user_id: str
    settings: Settings
    engine: Engine


@pytest.fixture
def consumer(db_settings: Settings, engine: Engine, tmp_path: Path) -> Consumer:
    """A simulated population scored by a real model at two dates; one scored person has an account."""
    populate(db_settings, tmp_path / "sim", users=150)
    register_champion(db_settings)
    recompute(db_settings, as_of=AS_OF)
    recompute(db_settings, as_of=LATER)
    scored = [row for row in list_scores(engine, as_of=LATER, limit=1_000)
              if row.score is not None and row.reasons
              and sum(item.score is not None for item in score_history(engine, row.user_id)) == 2]
    scored.sort(key=lambda row: (not row.tips, row.score or 0))
    user_id = scored[0].user_id
    create_account(engine, user_id=user_id, email=EMAIL, password=PASSWORD)
    return Consumer(user_id=user_id, settings=db_settings, engine=engine)


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                             args=["--headless", "--no-sandbox", "--disable-gpu"])
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: object, live_server: LiveServer) -> Iterator[object]:
    context = chromium.new_context(base_url=live_server.url, locale="en-GB",  # type: ignore[attr-defined]
                                   viewport={"width": 1100, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(20_000)
    yield tab
    context.close()


def shoot(page: object, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]


def sign_in(page: object, path: str = "/me") -> None:
    page.goto(path)  # type: ignore[attr-defined]
    assert "/signin" in page.url  # type: ignore[attr-defined]
    page.get_by_label("Email").fill(EMAIL)  # type: ignore[attr-defined]
    page.get_by_label("Password").fill(PASSWORD)  # type: ignore[attr-defined]
    page.get_by_role("button", name="Sign in").click()  # type: ignore[attr-defined]
    page.wait_for_url(re.compile(re.escape(path) + r"$"))  # type: ignore[attr-defined]


def test_signing_in_shows_the_stored_score_on_the_gauge_and_every_page_renders(
        page: object, consumer: Consumer) -> None:
    page.goto("/signin")  # type: ignore[attr-defined]
    shoot(page, "signin")
    sign_in(page)
    stored = current_score(consumer.engine, consumer.user_id)
    assert stored is not None and stored.score is not None
    gauge = page.locator("#gauge-score")  # type: ignore[attr-defined]
    assert gauge.text_content() == str(stored.score)
    assert gauge.get_attribute("data-score") == str(stored.score)
    assert page.locator("#score-value").text_content() == str(stored.score)  # type: ignore[attr-defined]
    assert stored.as_of.isoformat() in page.content()  # type: ignore[attr-defined]
    for path in PAGES:
        page.goto(path)  # type: ignore[attr-defined]
        assert page.locator("h1").count() == 1  # type: ignore[attr-defined]
        shoot(page, path.strip("/").replace("/", "-"))
    page.goto("/me/history")  # type: ignore[attr-defined]
    assert page.locator("svg .dot").count() == 2  # type: ignore[attr-defined]
    assert page.locator("#history-table tbody tr").count() == 2  # type: ignore[attr-defined]


def test_switching_to_chinese_sticks_across_pages_and_back(page: object, consumer: Consumer) -> None:
    sign_in(page)
    page.get_by_role("button", name="中文").click()  # type: ignore[attr-defined]
    page.wait_for_selector("html[lang=zh]")  # type: ignore[attr-defined]
    assert page.get_by_role("navigation").get_by_role("link", name="分数构成").is_visible()  # type: ignore[attr-defined]
    page.get_by_role("navigation").get_by_role("link", name="分数构成").click()  # type: ignore[attr-defined]
    page.wait_for_url(re.compile(r"/me/why$"))  # type: ignore[attr-defined]
    assert page.locator("html").get_attribute("lang") == "zh"  # type: ignore[attr-defined]
    assert "信用历史" in page.locator("#dimension-table").inner_text()  # type: ignore[attr-defined]
    shoot(page, "me-why-zh")
    page.get_by_role("button", name="English").click()  # type: ignore[attr-defined]
    page.wait_for_selector("html[lang=en]")  # type: ignore[attr-defined]
    assert page.url.endswith("/me/why")  # type: ignore[attr-defined]
    assert "Credit history" in page.locator("#dimension-table").inner_text()  # type: ignore[attr-defined]


def test_revoking_a_consent_refuses_the_partners_next_signed_lookup(
        page: object, consumer: Consumer, live_server: LiveServer,
        make_partner: Callable[..., SignedPartner]) -> None:
    partner = make_partner("acme")
    open_id = grant_consent(consumer.engine, user_id=consumer.user_id, partner=partner.info,
                            purpose="loan_underwriting", scope="score", days=30).open_id
    client = Client(live_server.url, partner.name, partner.key)
    assert client.score(open_id, "loan_underwriting")["score"] == current_score(
        consumer.engine, consumer.user_id).score  # type: ignore[union-attr]
    sign_in(page, "/me/inquiries")
    assert "acme" in page.locator("#inquiry-table").inner_text()  # type: ignore[attr-defined]
    shoot(page, "me-inquiries-after-lookup")
    page.goto("/me/consents")  # type: ignore[attr-defined]
    consent = list_consents(consumer.engine, user_id=consumer.user_id)[0]
    page.locator(f"#revoke-{consent.id}").click()  # type: ignore[attr-defined]
    page.wait_for_selector("text=The consent was revoked.")  # type: ignore[attr-defined]
    assert "acme" in page.locator("#consent-table-revoked").inner_text()  # type: ignore[attr-defined]
    shoot(page, "me-consents-after-revoke")
    with pytest.raises(ApiError) as refused:
        client.score(open_id, "loan_underwriting")
    assert refused.value.status == 403


def disputable(consumer: Consumer) -> tuple[UserEvent, str, int]:
    """An event the latest score read (before its as-of date), a repayment if any: (event, family, page)."""
    candidates = []
    for family in FAMILIES:
        events = user_events(consumer.settings, consumer.user_id, family=family, page=1, page_size=200).items
        candidates += [(event.kind != "repayment", index, event, family)
                       for index, event in enumerate(events) if event.event_time.date() < LATER]
    assert candidates, "the consumer has no event before the latest as-of date"
    _, index, event, family = min(candidates, key=lambda item: item[:2])
    return event, family, index // EVENTS_PAGE_SIZE + 1


def test_filing_a_dispute_excludes_the_item_and_recomputes_the_score(
        page: object, consumer: Consumer) -> None:
    event, family, number = disputable(consumer)
    before = current_score(consumer.engine, consumer.user_id)
    sign_in(page, "/me/data")
    page.get_by_role("link", name=load_event_families().families[family].en).click()  # type: ignore[attr-defined]
    if number > 1:
        page.goto(f"/me/data?family={family}&page={number}")  # type: ignore[attr-defined]
    row = page.locator(f'tr[data-event-id="{event.event_id}"]')  # type: ignore[attr-defined]
    row.get_by_text("Dispute this").click()
    row.get_by_label("What is wrong").fill("I paid this on time; the bank's record is wrong.")
    shoot(page, "me-data-dispute-form")
    row.get_by_role("button", name="File the dispute").click()
    page.wait_for_selector("text=Your dispute was filed.")  # type: ignore[attr-defined]
    row = page.locator(f'tr[data-event-id="{event.event_id}"]')  # type: ignore[attr-defined]
    assert "Excluded from your score" in row.inner_text()
    disputes = list_disputes(consumer.settings, user_id=consumer.user_id)
    assert len(disputes) == 1 and disputes[0].event_id == event.event_id and disputes[0].status == "open"
    assert disputes[0].score_before == before.score  # type: ignore[union-attr]
    after = current_score(consumer.engine, consumer.user_id)
    assert after is not None and disputes[0].score_after == after.score
    assert after.score_unclipped != before.score_unclipped  # type: ignore[union-attr]  # recomputed without it
    table = page.locator("#dispute-table").inner_text()  # type: ignore[attr-defined]
    assert "I paid this on time" in table and f"{before.score} → {after.score}" in table  # type: ignore[union-attr]
    shoot(page, "me-data-after-dispute")
    page.goto("/me")  # type: ignore[attr-defined]
    assert page.locator("#gauge-score").text_content() == str(after.score)  # type: ignore[attr-defined]
