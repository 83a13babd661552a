"""The OpenAPI document, the docs page, and schemathesis fuzzing the signed /v1 operations."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.web.conftest import SignedPartner
from web.problems import PROBLEM_TYPES
from web.signing import sign_request

SIGNATURE_HEADERS = {"PartnerName", "PartnerTimestamp", "PartnerNonce", "PartnerSignature"}


class SigningAuth(requests.auth.AuthBase):
    """Signs the request exactly as it will be sent: its method, target and body."""

    def __init__(self, partner: SignedPartner) -> None:
        self.partner = partner

    def __call__(self, prepared: requests.PreparedRequest) -> requests.PreparedRequest:
        body = prepared.body or b""
        body = body.encode() if isinstance(body, str) else body
        prepared.headers.update(sign_request(self.partner.key, partner=self.partner.name,
                                             method=prepared.method or "GET",
                                             target=prepared.path_url, body=body))
        return prepared


def test_every_v1_operation_requires_the_four_signature_headers(acme: SignedPartner) -> None:
    spec = acme.server.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    assert set(spec["components"]["securitySchemes"]) >= SIGNATURE_HEADERS
    v1 = {path: ops for path, ops in spec["paths"].items() if path.startswith("/v1/")}
    assert set(v1) == {"/v1/scores/{open_id}", "/v1/scores:batch", "/v1/scores/{open_id}/history",
                       "/v1/events"}
    for operations in v1.values():
        for operation in operations.values():
            assert operation["security"] == [{name: [] for name in SIGNATURE_HEADERS}]


def test_every_error_response_is_a_problem_document(acme: SignedPartner) -> None:
    spec = acme.server.get("/openapi.json").json()
    for path, operations in spec["paths"].items():
        for operation in operations.values():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    assert list(response["content"]) == ["application/problem+json"], (path, status)


def test_the_docs_page_explains_signing_and_every_problem_type(acme: SignedPartner) -> None:
    page = acme.server.get("/docs")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    for text in ("X-Signature", "openssl pkeyutl -sign", "SHA256_HEX(BODY)", "/v1/scores:batch",
                 "X-Transaction-Id", "Retry-After"):
        assert text in page.text
    for problem in PROBLEM_TYPES.values():
        assert problem.uri in page.text
    assert "https://" not in page.text.split("<main>")[0]  # no external assets


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_schemathesis_finds_no_server_error_and_no_schema_mismatch(
        acme: SignedPartner, scored: str, grant: Callable[..., str], mode: GenerationMode) -> None:
    grant(acme, "u1", scope="score_history")
    schema = schemathesis.openapi.from_dict(acme.server.get("/openapi.json").json()).include(
        path_regex="^/v1/")
    operations = [result.ok() for result in schema.get_all_operations()]
    strategy = st.one_of([operation.as_strategy(generation_mode=mode) for operation in operations])
    auth = SigningAuth(acme)
    checks = [not_a_server_error, status_code_conformance, content_type_conformance,
              response_headers_conformance, response_schema_conformance]

    @settings(max_examples=40, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case: schemathesis.Case) -> None:
        response = case.call(base_url=acme.server.url, auth=auth, timeout=10)
        case.validate_response(response, checks=checks)

    run()
