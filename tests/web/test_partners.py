"""Partners and the operator commands for partners and consents (database-independent: SQLite)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import Engine

from tests.web.conftest import SignedPartner, public_pem
from web.cli import main
from web.consent import ConsentError, grant_consent
from web.partners import PartnerError, create_partner, find_partner, list_partners


@pytest.fixture
def database_url(sqlite_only: str) -> str:
    return sqlite_only


def table_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {table: connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
                for table in ("partners", "consents", "open_ids")}


@pytest.mark.parametrize("user_id,purpose,scope,days,message", [
    ("", "loan_underwriting", "score", 30, "not a valid user id"),
    ("u1", "gambling", "score", 30, "unknown purpose 'gambling'"),
    ("u1", "loan_underwriting", "everything", 30, "unknown scope 'everything'"),
    ("u1", "loan_underwriting", "score", 0, "days must be between 1 and 3650"),
])
def test_a_bad_grant_is_refused_and_changes_nothing(acme: SignedPartner, engine: Engine, user_id: str,
                                                   purpose: str, scope: str, days: int, message: str) -> None:
    before = table_counts(engine)
    with pytest.raises(ConsentError, match=message):
        grant_consent(engine, user_id=user_id, partner=acme.info, purpose=purpose, scope=scope, days=days)
    assert table_counts(engine) == before


@pytest.mark.parametrize("name,options,message", [
    ("Acme Corp", {}, "must be 2-64 of"),
    ("acme", {}, "already exists"),
    ("newco", {"rate_limit": "lots"}, "must look like 600/minute"),
    ("newco", {"role": "admin"}, "role must be one of"),
    ("newco", {"redirect_uri": "http://evil.example/cb"}, "must use https"),
    ("newco", {"pass_thresholds": {"gambling": 600}}, "unknown purpose"),
])
def test_a_bad_partner_is_refused_and_changes_nothing(acme: SignedPartner, engine: Engine, name: str,
                                                      options: dict[str, object], message: str) -> None:
    before = table_counts(engine)
    values: dict[str, object] = {"rate_limit": "10/minute", **options}
    with pytest.raises(PartnerError, match=message):
        key = public_pem(Ed25519PrivateKey.generate())
        create_partner(engine, name, public_key_pem=key, **values)  # type: ignore[arg-type]
    assert table_counts(engine) == before


def test_a_key_that_is_not_ed25519_is_refused(engine: Engine) -> None:
    with pytest.raises(PartnerError, match="not a PEM-encoded Ed25519 public key"):
        create_partner(engine, "newco", rate_limit="1/second",
                       public_key_pem="-----BEGIN PUBLIC KEY-----\nxx\n-----END PUBLIC KEY-----")
    assert list_partners(engine) == []



def test_a_small_order_key_is_refused_when_registering(engine: Engine) -> None:
    """A key no signature can ever be accepted for is refused up front, not at every request."""
    weak = Ed25519PublicKey.from_public_bytes(bytes([1]) + bytes(31))  # the identity point
    pem = weak.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode("ascii")
    with pytest.raises(PartnerError, match="small-order"):
        create_partner(engine, "newco", rate_limit="1/second", public_key_pem=pem)
    assert list_partners(engine) == []


# -- the operator commands ----------------------------------------------------------------


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, engine: Engine,
        capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    monkeypatch.setenv("ALTCREDIT_DATABASE_URL", engine.url.render_as_string(hide_password=False))

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_partners_and_consents_commands_round_trip(cli: Callable[..., tuple[int, str, str]], tmp_path: Path,
                                                   engine: Engine) -> None:
    key_file = tmp_path / "pub.pem"
    key_file.write_text(public_pem(Ed25519PrivateKey.generate()))
    assert cli("partners", "create", "lendco", "--public-key", str(key_file), "--rate-limit", "50/minute",
               "--redirect-uri", "https://lendco.example/cb",
               "--pass-threshold", "loan_underwriting=640")[0] == 0
    code, out, _ = cli("partners", "list", "--json")
    [partner] = json.loads(out)["partners"]
    assert partner["rate_limit"] == "50/minute" and partner["pass_thresholds"] == {"loan_underwriting": 640}
    code, out, _ = cli("consents", "grant", "--user", "u1", "--partner", "lendco",
                       "--purpose", "loan_underwriting", "--scope", "band", "--days", "10")
    open_id = out.strip()
    assert code == 0 and len(open_id) >= 20
    code, out, _ = cli("consents", "list", "--user", "u1", "--json")
    assert json.loads(out)["consents"][0]["open_id"] == open_id
    assert cli("consents", "revoke", "--user", "u1", "--partner", "lendco")[0] == 0
    assert cli("partners", "disable", "lendco")[0] == 0
    found = find_partner(engine, "lendco")
    assert found is not None and found.disabled


@pytest.mark.parametrize("args,fragment", [
    (("partners", "create", "x1", "--public-key", "/no/such/file"), "cannot read public key"),
    (("partners", "disable", "nobody"), "no partner named 'nobody'"),
    (("consents", "grant", "--user", "u1", "--partner", "nobody", "--purpose", "loan_underwriting"),
     "no partner named 'nobody'"),
    (("consents", "revoke", "--user", "u1", "--partner", "nobody"), "no partner named 'nobody'"),
])
def test_commands_refuse_bad_input_with_one_line(cli: Callable[..., tuple[int, str, str]], engine: Engine,
                                                 args: tuple[str, ...], fragment: str) -> None:
    before = table_counts(engine)
    code, _, err = cli(*args)
    assert code == 1 and fragment in err and len(err.strip().splitlines()) == 1
    assert table_counts(engine) == before
