"""Per-partner rate limits: 429 problem with Retry-After; Redis shares the count between workers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from config.settings import Settings, load_settings
from tests.web.conftest import SignedPartner
from web.app import create_app
from web.signing import sign_request

REDIS_URL = os.environ.get("ALTCREDIT_TEST_REDIS_URL", "")  # read before the fixtures clear ALTCREDIT_*


@pytest.fixture
def database_url(sqlite_only: str) -> str:
    return sqlite_only


def test_a_partner_over_its_limit_gets_429_with_retry_after(make_partner: Callable[..., SignedPartner],
                                                            grant: Callable[..., str],
                                                            publish: Callable[..., None]) -> None:
    publish({"u1": 640})
    slow = make_partner("slow", rate_limit="3/minute")
    open_id = grant(slow, "u1")
    assert [slow.score(open_id).status_code for _ in range(3)] == [200, 200, 200]
    refused = slow.score(open_id)
    assert refused.status_code == 429
    assert refused.json()["type"] == "/problems/rate-limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "score" not in refused.json()


def test_limits_count_per_partner(make_partner: Callable[..., SignedPartner],
                                  grant: Callable[..., str]) -> None:
    slow, other = make_partner("slow", rate_limit="1/minute"), make_partner("other", rate_limit="1/minute")
    assert slow.score(grant(slow, "u1")).status_code == 200
    assert slow.score(grant(slow, "u1")).status_code == 429
    assert other.score(grant(other, "u1")).status_code == 200


def test_unsigned_requests_spend_no_quota(make_partner: Callable[..., SignedPartner],
                                          grant: Callable[..., str]) -> None:
    slow = make_partner("slow", rate_limit="1/minute")
    open_id = grant(slow, "u1")
    for _ in range(3):
        forged = sign_request(make_partner(f"x{uuid.uuid4().hex[:8]}").key, partner="slow", method="GET",
                              target=f"/v1/scores/{open_id}?purpose=loan_underwriting")
        assert slow.server.get(f"/v1/scores/{open_id}?purpose=loan_underwriting",
                               headers=forged).status_code == 401
    assert slow.score(open_id).status_code == 200


@pytest.mark.skipif(not REDIS_URL, reason="set ALTCREDIT_TEST_REDIS_URL")
def test_with_redis_two_workers_share_one_count(home: Path, sqlite_only: str,
                                                make_partner: Callable[..., SignedPartner],
                                                grant: Callable[..., str]) -> None:
    settings: Settings = load_settings(home=home, database_url=sqlite_only, redis_url=REDIS_URL,
                                       log_format="text")
    first, second = create_app(settings).test_client(), create_app(settings).test_client()
    partner = make_partner(f"p{uuid.uuid4().hex[:10]}", rate_limit="2/minute")
    target = f"/v1/scores/{grant(partner, 'u1')}?purpose=loan_underwriting"

    def call(client: object) -> int:
        headers = sign_request(partner.key, partner=partner.name, method="GET", target=target)
        return int(client.get(target, headers=headers).status_code)  # type: ignore[attr-defined]

    assert [call(first), call(second), call(first), call(second)] == [200, 200, 429, 429]
