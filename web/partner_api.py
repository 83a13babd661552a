"""The partner API (``/v1``): signed, consent-gated, minimised and logged score lookups, and events.

Every request is authenticated first (:mod:`web.partner_auth`). A lookup
resolves the open id for *this* partner (another partner's open id is 404),
checks the consent for the purpose (403 when none, expired or revoked),
builds the answer its scope allows (:mod:`web.disclosure`), writes the inquiry
log (and, with ``X-Transaction-Id``, the answer) in one transaction, and only
then answers (:mod:`web.inquiries`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from apiflask import APIBlueprint
from flask import Response, current_app, g, request

from features.ingest import ingest_records
from features.ingest_errors import IngestError
from scoring.publish import current_score, current_scores, score_history
from web import disclosure
from web.consent import SCOPE_RANK, Access, resolve_access, resolve_accesses, user_ids_for_open_ids
from web.disclosure import ScoreLike
from web.inquiries import (
    TRANSACTION_HEADER,
    Disclosure,
    InquiryLogUnavailable,
    StoredAnswer,
    Transaction,
    TransactionReused,
    log_and_store,
    log_lookups,
    purge_stale_transactions,
    request_fingerprint,
    stored_answer,
)
from web.metrics import app_metrics
from web.partner_auth import (
    authenticate,
    claim_nonce,
    close_db,
    db,
    forget_expired_nonces,
    prefetched_lookup,
    reclaim_nonce,
    refuse,
    request_body,
    request_target,
    settle,
    take_pending_nonce,
)
from web.partner_schemas import (
    BatchAnswer,
    BatchRequest,
    EventsAnswer,
    EventsRequest,
    HistoryAnswer,
    ScoreAnswer,
    ScoreQuery,
)
from web.partners import PartnerInfo
from web.problems import Problem, problem_document
from web.state import current_state

bp = APIBlueprint("partner_api", __name__, url_prefix="/v1", tag="Partner API")
SECURITY = "PartnerSignature"
_TRANSACTION_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# Answers as json.dumps(body, ensure_ascii=False) writes them, by one encoder (dumps makes one per call).
_ANSWERS = json.JSONEncoder(ensure_ascii=False)
_LOOKUP_ERRORS = {400: "Bad input", 401: "Not signed, or the signature is not accepted",
                  403: "No active consent for this purpose and scope", 404: "Unknown open id",
                  409: "X-Transaction-Id reused for a different request", 415: "Body is not JSON",
                  429: "Rate limit exhausted", 503: "The inquiry log cannot be written; nothing "
                  "was disclosed"}


@bp.before_request
def _authenticate() -> None:
    g.partner = authenticate()
    if request.method == "POST" and not request.is_json:
        raise Problem("unsupported-media-type", "send the body as application/json")


@bp.after_request
def _settle(response: Response) -> Response:
    return settle(response)


def _housekeeping(_error: BaseException | None = None) -> None:
    """Forget expired nonces and stored answers (each at most once a minute), after the request."""
    state = current_state()
    forget_expired_nonces()
    purge_stale_transactions(state.engine, max_age=timedelta(hours=state.settings.partner_idempotency_hours))


# Teardown functions run in reverse order: the connection is given back before housekeeping.
bp.teardown_request(_housekeeping)
bp.teardown_request(close_db)


# -- routes ---------------------------------------------------------------------


@bp.get("/scores/<string:open_id>")
@bp.input(ScoreQuery, location="query")
@bp.output(ScoreAnswer, description="What the consent's scope allows; see the field descriptions")
@bp.doc(summary="A user's score, as the consent's scope allows", security=SECURITY,
        responses=_LOOKUP_ERRORS)
def score(open_id: str, query_data: ScoreQuery) -> Response:
    request_globals = g._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup for the route
    partner: PartnerInfo = request_globals.partner

    purpose = query_data.purpose

    def compute() -> tuple[dict[str, Any], list[Disclosure]]:
        lookup = prefetched_lookup(request_globals, open_id, purpose)
        if lookup is None:  # authentication read another purpose (a repeated query parameter)
            access = _checked(resolve_access(db(), partner_id=partner.id, open_id=open_id, purpose=purpose),
                              purpose, minimum_scope="pass")
            close_db()  # the score is read on a connection of its own: never hold two per request
            published: ScoreLike | None = current_score(current_state().engine, access.user_id)
        else:
            access, published = _checked(lookup.access, purpose, minimum_scope="pass"), lookup.score
        body, item = _disclosed(partner, open_id, purpose, access, published)
        return body, [item]

    return _answered("score", compute, request_globals)


@bp.post("/scores:batch")
@bp.input(BatchRequest, location="json")
@bp.output(BatchAnswer, description="One result per open id: an answer, or a problem")
@bp.doc(summary="Scores for up to 1,000 open ids, each answered on its own", security=SECURITY,
        responses={**_LOOKUP_ERRORS, 413: "More open ids than partner_batch_max"})
def scores_batch(json_data: BatchRequest) -> Response:
    partner: PartnerInfo = g.partner
    limit = current_state().settings.partner_batch_max
    if len(json_data.open_ids) > limit:
        raise Problem("payload-too-large", f"a batch holds at most {limit} open ids, "
                      f"got {len(json_data.open_ids)}")

    purpose = json_data.purpose

    def compute() -> tuple[dict[str, Any], list[Disclosure]]:
        found = resolve_accesses(db(), partner_id=partner.id, open_ids=json_data.open_ids, purpose=purpose)
        close_db()  # the scores are read on a connection of their own
        checked: dict[str, Access | Problem] = {}
        for open_id in dict.fromkeys(json_data.open_ids):
            try:
                checked[open_id] = _checked(found.get(open_id), purpose, minimum_scope="pass")
            except Problem as problem:
                checked[open_id] = problem
        scores = current_scores(current_state().engine,
                                [access.user_id for access in checked.values() if isinstance(access, Access)])
        results: list[dict[str, Any]] = []
        disclosed: list[Disclosure] = []
        for open_id in json_data.open_ids:
            access = checked[open_id]
            if isinstance(access, Problem):
                results.append({"open_id": open_id, "status": access.type.status,
                                "problem": problem_document(access)})
                continue
            body, item = _disclosed(partner, open_id, purpose, access, scores.get(access.user_id))
            results.append({"open_id": open_id, "status": 200, "answer": body})
            disclosed.append(item)
        return {"purpose": purpose, "results": results}, disclosed

    return _answered("batch", compute)


@bp.get("/scores/<string:open_id>/history")
@bp.input(ScoreQuery, location="query")
@bp.output(HistoryAnswer, description="Published scores, oldest first")
@bp.doc(summary="A user's score history (scope score_history)", security=SECURITY,
        responses=_LOOKUP_ERRORS)
def history(open_id: str, query_data: ScoreQuery) -> Response:
    partner: PartnerInfo = g.partner

    def compute() -> tuple[dict[str, Any], list[Disclosure]]:
        access = _checked(resolve_access(db(), partner_id=partner.id, open_id=open_id,
                                         purpose=query_data.purpose),
                          query_data.purpose, minimum_scope="score_history")
        assert access.scope is not None
        close_db()  # never hold two connections per request
        body, fields = disclosure.history(score_history(current_state().engine, access.user_id),
                                          open_id=open_id, purpose=query_data.purpose,
                                          scope=access.scope, language=_language())
        return body, [Disclosure(access.user_id, open_id, query_data.purpose, access.scope, fields)]

    return _answered("history", compute)


@bp.post("/events")
@bp.input(EventsRequest, location="json")
@bp.output(EventsAnswer, description="The batch was stored (or was already stored)")
@bp.doc(summary="Furnish a batch of events, all or nothing, idempotent by (source, event_id)",
        security=SECURITY,
        responses={400: "Invalid events; `errors` names each (index, field, reason)",
                   401: _LOOKUP_ERRORS[401], 409: "An event id was already stored with other content",
                   413: "More events than ingest_max_batch", 415: _LOOKUP_ERRORS[415],
                   429: _LOOKUP_ERRORS[429]})
def events(json_data: EventsRequest) -> Response:
    partner: PartnerInfo = g.partner
    state = current_state()
    records = json_data.events
    if partner.role != "furnisher":
        records = _with_user_ids(partner, records)
    claim_nonce()  # before anything is stored
    try:
        result = ingest_records(state.settings, records, source_override=partner.name)
    except IngestError as error:
        raise _ingest_problem(error) from None
    return _json(200, json.dumps(result.as_dict()))


# -- lookups ----------------------------------------------------------------------


def _checked(access: Access | None, purpose: str, *, minimum_scope: str) -> Access:
    """The access, when it allows at least ``minimum_scope`` now; else the 404 or 403 problem."""
    if access is None:
        raise Problem("not-found", "no such open id")
    if access.state != "active" or access.scope is None:
        detail = {"none": f"no consent for purpose {purpose}", "expired": "the consent has expired",
                  "revoked": "the consent was revoked"}[access.state]
        raise Problem("forbidden", detail)
    if SCOPE_RANK[access.scope] < SCOPE_RANK[minimum_scope]:
        raise Problem("forbidden", f"the consent's scope {access.scope} does not allow this")
    return access


def _disclosed(partner: PartnerInfo, open_id: str, purpose: str, access: Access,
               published: ScoreLike | None) -> tuple[dict[str, Any], Disclosure]:
    """The answer its consent's scope allows, and the inquiry row it makes."""
    assert access.scope is not None
    body, fields = disclosure.answer(published, open_id=open_id, purpose=purpose, scope=access.scope,
                                     threshold=partner.pass_threshold(purpose), language=_language())
    return body, Disclosure(access.user_id, open_id, purpose, access.scope, fields)


def _answered(endpoint: str, compute: Callable[[], tuple[dict[str, Any], list[Disclosure]]],
              request_globals: Any = None) -> Response:
    """Compute the answer, log what it discloses and only then send it (or replay a stored one).

    ``request_globals`` is ``flask.g`` when the caller holds it already.
    """
    if request_globals is None:
        request_globals = g._get_current_object()  # type: ignore[attr-defined]
    partner: PartnerInfo = request_globals.partner
    transaction = _transaction(partner)
    if transaction is not None:
        return _idempotent(endpoint, transaction, compute)
    body, disclosed = compute()
    if disclosed:
        _log(partner, endpoint, disclosed, request_globals)
    return _json(200, _ANSWERS.encode(body))


def _idempotent(endpoint: str, transaction: Transaction,
                compute: Callable[[], tuple[dict[str, Any], list[Disclosure]]]) -> Response:
    """The first answer to this transaction id again, or a new one stored with its inquiry rows."""
    partner: PartnerInfo = g.partner
    max_age = timedelta(hours=current_state().settings.partner_idempotency_hours)
    try:
        replay = stored_answer(db(), transaction, max_age=max_age)
    except TransactionReused:
        raise Problem("conflict", f"{TRANSACTION_HEADER} was used before for a different request") from None
    if replay is not None:
        return _json(replay.status, replay.body, replayed=True)
    body, disclosed = compute()
    ours = StoredAnswer(200, _ANSWERS.encode(body))
    try:
        answer = log_and_store(db(), disclosed, partner_id=partner.id, endpoint=endpoint,
                               request_id=g.request_id, answer=ours, transaction=transaction,
                               max_age=max_age, first=claim_nonce)
    except InquiryLogUnavailable:
        raise _unavailable() from None
    if answer is ours:  # counted once, like the inquiry rows: a replay discloses nothing new
        _count_served(disclosed)
    else:  # a concurrent twin won; our transaction (and nonce) rolled back
        reclaim_nonce()
    return _json(answer.status, answer.body)


def _log(partner: PartnerInfo, endpoint: str, disclosed: list[Disclosure], request_globals: Any) -> None:
    """Write the inquiry rows and spend the nonce in one commit, before the answer leaves."""
    try:
        written = log_lookups(db(), disclosed, partner_id=partner.id, endpoint=endpoint,
                              request_id=request_globals.request_id,
                              nonce=take_pending_nonce(request_globals))
    except InquiryLogUnavailable:
        raise _unavailable() from None
    if not written:
        refuse("the nonce was used before")
    _count_served(disclosed)


def _unavailable() -> Problem:
    return Problem("unavailable", "the inquiry log cannot be written, so nothing is disclosed; retry later")


def _count_served(disclosed: list[Disclosure]) -> None:
    metrics = app_metrics(current_app)
    for item in disclosed:
        metrics.served(item.scope).inc()


def _transaction(partner: PartnerInfo) -> Transaction | None:
    given = request.headers.get(TRANSACTION_HEADER)
    if given is None:
        return None
    if not _TRANSACTION_ID.match(given):
        raise Problem("bad-request", f"{TRANSACTION_HEADER} must be 1-64 of A-Z a-z 0-9 . _ : -")
    req = request._get_current_object()  # type: ignore[attr-defined]
    fingerprint = request_fingerprint(req.method, request_target(req), request_body(req))
    return Transaction(partner_id=partner.id, transaction_id=given, fingerprint=fingerprint)


def _language() -> str:
    req = request._get_current_object()  # type: ignore[attr-defined]
    if "HTTP_ACCEPT_LANGUAGE" not in req.environ:  # the header, without a KeyError from Headers
        return "en"
    return req.accept_languages.best_match(disclosure.LANGUAGES, default="en") or "en"


def _json(status: int, body: str, *, replayed: bool = False) -> Response:
    response = Response(body, status=status, mimetype="application/json")
    response.headers["Vary"] = "Accept-Language"
    if replayed:
        response.headers["X-Idempotent-Replay"] = "true"
    return response


# -- events -------------------------------------------------------------------------


def _with_user_ids(partner: PartnerInfo, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Replace the open ids a partner furnishes by with the users' ids; unknown ones are 400."""
    wanted = [str(record.get("user_id")) for record in records if isinstance(record.get("user_id"), str)]
    known = user_ids_for_open_ids(db(), partner_id=partner.id, open_ids=wanted)
    errors: list[dict[str, Any]] = []
    mapped: list[dict[str, Any]] = []
    for index, record in enumerate(records):
        user = known.get(record.get("user_id")) if isinstance(record.get("user_id"), str) else None
        if user is None:
            errors.append({"index": index, "field": "user_id",
                           "reason": "not an open id issued to this partner"})
        if record.get("contact_user_id") is not None:
            errors.append({"index": index, "field": "contact_user_id",
                           "reason": "only furnishers may report contacts"})
        mapped.append({**record, "user_id": user})
    if errors:
        raise Problem("bad-request", f"{len({e['index'] for e in errors})} of {len(records)} records "
                      "are invalid; nothing was stored", errors=errors)
    return mapped


def _ingest_problem(error: IngestError) -> Problem:
    slug = {400: "bad-request", 409: "conflict", 413: "payload-too-large"}.get(error.status, "bad-request")
    return Problem(slug, error.message, errors=error.errors)
