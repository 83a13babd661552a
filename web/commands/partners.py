"""``altcredit partners``, ``consents``, ``inquiries`` and ``lookup``: operating the partner API."""

from __future__ import annotations

from pathlib import Path

import click

from web.cli import CliError, echo_json, migrated_engine, settings_from
from web.consent import ConsentError, grant_consent, list_consents, revoke_consent
from web.inquiries import list_inquiries
from web.partners import ROLES, PartnerError, create_partner, list_partners, require_partner, set_disabled


def _read_text(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {what} {path}: {getattr(exc, 'strerror', None) or exc}") from None


def _thresholds(values: tuple[str, ...]) -> dict[str, int]:
    parsed: dict[str, int] = {}
    for value in values:
        purpose, _, number = value.partition("=")
        if not purpose or not number.strip().isdigit():
            raise CliError(f"--pass-threshold {value!r} must look like PURPOSE=SCORE")
        parsed[purpose.strip()] = int(number)
    return parsed


# -- partners -------------------------------------------------------------------------


@click.group()
def partners() -> None:
    """Register and manage partners (lenders, landlords, telecoms, data providers)."""


@partners.command("create")
@click.argument("name")
@click.option("--public-key", "public_key", required=True, help="PEM file with the Ed25519 public key.")
@click.option("--rate-limit", help="Requests allowed, such as 600/minute (default: partner_rate_limit).")
@click.option("--role", type=click.Choice(ROLES), default="partner", show_default=True,
              help="furnisher: a trusted data provider that may name users by platform user id.")
@click.option("--redirect-uri", help="Where the consent page sends the user back (https).")
@click.option("--pass-threshold", "pass_thresholds", multiple=True, metavar="PURPOSE=SCORE",
              help="The score a `pass` answer checks for a purpose (repeatable).")
@click.pass_context
def create(ctx: click.Context, name: str, public_key: str, rate_limit: str | None, role: str,
           redirect_uri: str | None, pass_thresholds: tuple[str, ...]) -> None:
    """Register partner NAME with its public key."""
    settings = settings_from(ctx)
    pem = _read_text(public_key, "public key")
    thresholds = _thresholds(pass_thresholds)
    try:
        partner = create_partner(migrated_engine(ctx), name, public_key_pem=pem,
                                 rate_limit=rate_limit or settings.partner_rate_limit, role=role,
                                 redirect_uri=redirect_uri, pass_thresholds=thresholds)
    except PartnerError as exc:
        raise CliError(str(exc)) from None
    click.echo(f"partner {partner.name} registered ({partner.role}, {partner.rate_limit})")


@partners.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_context
def list_command(ctx: click.Context, as_json: bool) -> None:
    """List partners."""
    rows = [partner.as_dict() for partner in list_partners(migrated_engine(ctx))]
    if as_json:
        echo_json({"partners": rows})
        return
    if not rows:
        click.echo("no partners")
    for row in rows:
        state = "disabled" if row["disabled"] else "active"
        click.echo(f"{row['name']:<24} {row['role']:<10} {state:<9} {row['rate_limit']:<12} "
                   f"{row['redirect_uri'] or '-'}")


@partners.command("disable")
@click.argument("name")
@click.pass_context
def disable(ctx: click.Context, name: str) -> None:
    """Disable partner NAME: its requests are refused from now on."""
    try:
        set_disabled(migrated_engine(ctx), name, disabled=True)
    except PartnerError as exc:
        raise CliError(str(exc)) from None
    click.echo(f"partner {name} disabled")


# -- consents ---------------------------------------------------------------------------


@click.group()
def consents() -> None:
    """Grant, revoke and list users' consents (for operators and tests; users use /authorize)."""


@consents.command("grant")
@click.option("--user", "user_id", required=True, help="Platform user id.")
@click.option("--partner", "partner_name", required=True, help="Partner name.")
@click.option("--purpose", required=True, help="A configured purpose, such as loan_underwriting.")
@click.option("--scope", default="score", show_default=True, help="pass, band, score or score_history.")
@click.option("--days", type=int, help="How long the consent lasts (default: consent_default_days).")
@click.pass_context
def grant(ctx: click.Context, user_id: str, partner_name: str, purpose: str, scope: str,
          days: int | None) -> None:
    """Grant a consent and print the partner's open id for the user."""
    settings = settings_from(ctx)
    engine = migrated_engine(ctx)
    try:
        consent = grant_consent(engine, user_id=user_id, partner=require_partner(engine, partner_name),
                                purpose=purpose, scope=scope, days=days or settings.consent_default_days)
    except (PartnerError, ConsentError) as exc:
        raise CliError(str(exc)) from None
    click.echo(consent.open_id)


@consents.command("revoke")
@click.option("--user", "user_id", required=True, help="Platform user id.")
@click.option("--partner", "partner_name", required=True, help="Partner name.")
@click.option("--purpose", help="Only this purpose (default: every purpose).")
@click.pass_context
def revoke(ctx: click.Context, user_id: str, partner_name: str, purpose: str | None) -> None:
    """Revoke a user's consents to a partner."""
    engine = migrated_engine(ctx)
    try:
        count = revoke_consent(engine, user_id=user_id, partner=require_partner(engine, partner_name),
                               purpose=purpose)
    except PartnerError as exc:
        raise CliError(str(exc)) from None
    if count == 0:
        raise CliError(f"no active consent of {user_id} to {partner_name}"
                       + (f" for {purpose}" if purpose else ""))
    click.echo(f"{count} consent(s) revoked")


@consents.command("list")
@click.option("--user", "user_id", help="Only this user.")
@click.option("--partner", "partner_name", help="Only this partner.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_context
def consents_list(ctx: click.Context, user_id: str | None, partner_name: str | None, as_json: bool) -> None:
    """List consents, newest first."""
    engine = migrated_engine(ctx)
    try:
        partner = require_partner(engine, partner_name) if partner_name else None
    except PartnerError as exc:
        raise CliError(str(exc)) from None
    rows = [consent.as_dict() for consent in list_consents(engine, user_id=user_id, partner=partner)]
    if as_json:
        echo_json({"consents": rows})
        return
    if not rows:
        click.echo("no consents")
    for row in rows:
        click.echo(f"{row['user_id']:<16} {row['partner']:<16} {row['purpose']:<22} {row['scope']:<14} "
                   f"{row['state']:<8} until {row['expires_at'][:10]}  {row['open_id']}")


# -- inquiries and lookup ------------------------------------------------------------------


@click.command()
@click.option("--user", "user_id", required=True, help="Platform user id.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_context
def inquiries(ctx: click.Context, user_id: str, as_json: bool) -> None:
    """Who looked at a user's score: when, who, why, and what they saw."""
    rows = list_inquiries(migrated_engine(ctx), user_id=user_id)
    if as_json:
        echo_json({"user_id": user_id, "inquiries": rows})
        return
    if not rows:
        click.echo(f"no inquiries about {user_id}")
    for row in rows:
        click.echo(f"{row['time'][:19]}  {row['partner']:<16} {row['purpose']:<22} {row['scope']:<14} "
                   f"{','.join(row['fields'])}")


@click.command()
@click.argument("open_id")
@click.option("--purpose", required=True, help="The purpose of the lookup.")
@click.option("--partner", "partner_name", required=True, help="The partner to sign as.")
@click.option("--key", "key_file", required=True, help="PEM file with the partner's Ed25519 private key.")
@click.option("--url", help="Server base URL (default: http://serve_host:serve_port).")
@click.option("--language", type=click.Choice(["en", "zh"]), default="en", show_default=True)
@click.pass_context
def lookup(ctx: click.Context, open_id: str, purpose: str, partner_name: str, key_file: str,
           url: str | None, language: str) -> None:
    """A signed partner lookup of OPEN_ID; prints the answer as JSON."""
    from web.client import ApiError, Client

    settings = settings_from(ctx)
    base_url = url or f"http://{settings.serve_host}:{settings.serve_port}"
    try:
        client = Client(base_url, partner_name, Path(key_file), language=language)
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot use key {key_file}: {exc}") from None
    try:
        answer = client.score(open_id, purpose)
    except ApiError as exc:
        raise CliError(f"lookup refused: {exc}") from None
    except OSError as exc:
        raise CliError(f"cannot reach {base_url}: {getattr(exc, 'reason', exc)}") from None
    echo_json(answer)
