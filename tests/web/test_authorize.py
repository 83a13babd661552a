"""Consumer sign-in and the consent page, over real HTTP with a real cookie jar."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from sqlalchemy import Engine

from config.settings import Settings, load_settings
from tests.web.conftest import SignedPartner
from web import accounts
from web.accounts import AccountError, create_account
from web.cli import main
from web.consent import list_consents

PASSWORD = "correct horse battery"
ASK = {"partner": "acme", "purpose": "loan_underwriting", "scope": "band",
       "redirect_uri": "https://acme.example/back", "state": "xyz-42"}


@pytest.fixture
def database_url(sqlite_only: str) -> str:
    return sqlite_only


@pytest.fixture(autouse=True)
def cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id with its cost turned down, so that the suite stays fast; the scheme is unchanged."""
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(accounts, "_hasher", cheap)
    monkeypatch.setattr(accounts, "_DUMMY_HASH", cheap.hash("dummy"))


@pytest.fixture
def db_settings(home: Path, database_url: str) -> Settings:
    """Plain-HTTP test server: cookies cannot be Secure here (tested separately)."""
    return load_settings(home=home, database_url=database_url, log_format="text",
                         accounts_cookie_secure=False, accounts_signin_limit="5/minute")


@pytest.fixture
def browser(live_server: object, engine: Engine) -> Iterator[httpx.Client]:
    create_account(engine, user_id="u1", email="Ann@Example.org", password=PASSWORD)
    with httpx.Client(base_url=live_server.url, timeout=10) as client:  # type: ignore[attr-defined]
        yield client


def csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


def sign_in(browser: httpx.Client, email: str = "ann@example.org", password: str = PASSWORD,
            next_path: str | None = None, page: str = "/signin") -> httpx.Response:
    """Fill in the sign-in form at ``page`` (its hidden `next` is kept unless one is given)."""
    form = browser.get(page).text
    kept = re.search(r'name="next" value="([^"]*)"', form)
    target = next_path if next_path is not None else html.unescape(kept.group(1) if kept else "/")
    return browser.post("/signin", data={"email": email, "password": password, "csrf_token": csrf(form),
                                         "next": target})


def consent_rows(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.text("SELECT count(*) FROM consents")).scalar_one())


def test_approving_redirects_to_the_partner_with_an_open_id_that_works(
        browser: httpx.Client, acme: SignedPartner, publish: Callable[..., None], engine: Engine) -> None:
    publish({"u1": 640})
    first = browser.get("/authorize", params=ASK)
    assert first.status_code == 302 and "/signin" in first.headers["Location"]
    signed_in = sign_in(browser, page=first.headers["Location"])
    assert signed_in.status_code == 302 and signed_in.headers["Location"].startswith("/authorize?")
    page = browser.get(signed_in.headers["Location"])
    assert page.status_code == 200
    for text in ("acme", "Loan underwriting", "贷款审批", "score band", "365 days"):
        assert text in page.text
    decided = browser.post("/authorize", data={**ASK, "decision": "approve", "csrf_token": csrf(page.text)})
    assert decided.status_code == 303
    target = urlsplit(decided.headers["Location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == ASK["redirect_uri"]
    query = parse_qs(target.query)
    assert query["state"] == ["xyz-42"]
    body = acme.score(query["open_id"][0]).json()
    assert body["scope"] == "band" and body["band"]["code"] == "good" and "score" not in body


def test_declining_redirects_with_access_denied_and_grants_nothing(
        browser: httpx.Client, acme: SignedPartner, engine: Engine) -> None:
    sign_in(browser)
    page = browser.get("/authorize", params=ASK)
    decided = browser.post("/authorize", data={**ASK, "decision": "decline", "csrf_token": csrf(page.text)})
    assert parse_qs(urlsplit(decided.headers["Location"]).query) == {"error": ["access_denied"],
                                                                      "state": ["xyz-42"]}
    assert consent_rows(engine) == 0


@pytest.mark.parametrize("change,fragment", [
    ({"redirect_uri": "https://evil.example/steal"}, "not the one this partner registered"),
    ({"partner": "nobody"}, "not registered here"),
    ({"purpose": "gambling"}, "purpose this site does not know"),
    ({"scope": "everything"}, "scope this site does not know"),
])
def test_a_bad_request_is_shown_here_and_never_redirected(browser: httpx.Client, acme: SignedPartner,
                                                         change: dict[str, str], fragment: str) -> None:
    sign_in(browser)
    response = browser.get("/authorize", params={**ASK, **change})
    assert response.status_code == 400 and fragment in response.text
    assert "Location" not in response.headers


def test_a_decision_without_the_csrf_token_is_refused(browser: httpx.Client, acme: SignedPartner,
                                                      engine: Engine) -> None:
    sign_in(browser)
    response = browser.post("/authorize", data={**ASK, "decision": "approve", "csrf_token": "forged"})
    assert response.status_code == 400
    assert consent_rows(engine) == 0


def test_a_wrong_password_and_an_unknown_email_get_the_same_answer(browser: httpx.Client) -> None:
    wrong = sign_in(browser, password="not the password")
    unknown = sign_in(browser, email="nobody@example.org")
    assert wrong.status_code == unknown.status_code == 401
    message = "The email or the password is not right."
    assert message in wrong.text and message in unknown.text


def test_sign_in_attempts_are_throttled(browser: httpx.Client) -> None:
    statuses = [sign_in(browser, password="wrong password!").status_code for _ in range(6)]
    assert statuses[:5] == [401] * 5 and statuses[5] == 429


def test_the_session_cookie_is_httponly_and_samesite_lax(browser: httpx.Client) -> None:
    response = sign_in(browser)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_session_cookies_are_secure_by_default(home: Path, sqlite_only: str) -> None:
    from web.app import create_app

    app = create_app(load_settings(home=home, database_url=sqlite_only, log_format="text"))
    assert app.config["SESSION_COOKIE_SECURE"] is True


def test_sign_in_never_redirects_off_site(browser: httpx.Client) -> None:
    response = sign_in(browser, next_path="//evil.example/")
    assert response.headers["Location"] == "/"


@pytest.mark.parametrize("user_id,email,password,message", [
    ("u2", "not-an-email", PASSWORD, "is not an email address"),
    ("u2", "b@example.org", "short", "at least 10 characters"),
    ("u1", "other@example.org", PASSWORD, "already exists"),
    ("bad id!", "b@example.org", PASSWORD, "not a valid user id"),
])
def test_a_bad_account_is_refused_and_changes_nothing(browser: httpx.Client, engine: Engine, user_id: str,
                                                      email: str, password: str, message: str) -> None:
    with pytest.raises(AccountError, match=message):
        create_account(engine, user_id=user_id, email=email, password=password)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM users")).scalar_one() == 1


def test_users_create_reads_the_password_from_stdin(monkeypatch: pytest.MonkeyPatch, engine: Engine,
                                                    live_server: object, acme: SignedPartner,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import io

    monkeypatch.setenv("ALTCREDIT_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["users", "create", "--user", "u7", "--email", "u7@example.org", "--password-stdin"]) == 0
    with httpx.Client(base_url=live_server.url) as client:  # type: ignore[attr-defined]
        assert sign_in(client, email="u7@example.org").status_code == 302
    assert list_consents(engine, user_id="u7") == []
