"""A small Python client for the partner API that signs every request for you.

    client = Client("https://scores.example", "acme", private_key_pem)
    client.score(open_id, "loan_underwriting")            # one lookup
    client.scores([open_id, ...], "loan_underwriting")    # a batch
    client.history(open_id, "loan_underwriting")          # scope score_history
    client.send_events([{...}, ...])                      # furnish events

Standard library HTTP only, so partners can copy it. A refusal raises
:class:`ApiError` carrying the problem document.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from web.signing import sign_request


class ApiError(Exception):
    """The API refused a request; ``problem`` is its RFC 9457 document (``type``, ``detail`` ...)."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        super().__init__(f"{status} {problem.get('title', '')}: {problem.get('detail', '')}".strip(": "))


def load_private_key(key: Ed25519PrivateKey | bytes | str | Path) -> Ed25519PrivateKey:
    """An Ed25519 private key from a key object, PEM text or bytes, or a PEM file path."""
    if isinstance(key, Ed25519PrivateKey):
        return key
    if isinstance(key, Path) or (isinstance(key, str) and "-----BEGIN" not in key):
        key = Path(key).read_bytes()
    loaded = load_pem_private_key(key.encode() if isinstance(key, str) else key, password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ValueError("private_key: not an Ed25519 private key")
    return loaded


class Client:
    """Signed calls to one altcredit server as one partner."""

    def __init__(self, base_url: str, partner: str, private_key: Ed25519PrivateKey | bytes | str | Path,
                 *, timeout: float = 30.0, language: str = "en") -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError(f"base_url: {base_url!r} is not an http(s) URL")
        if not partner:
            raise ValueError("partner: a partner name is required")
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.prefix = parts.path.rstrip("/")  # signed too: it is part of the request target
        self.partner = partner
        self.private_key = load_private_key(private_key)
        self.timeout = timeout
        self.language = language

    def score(self, open_id: str, purpose: str, *, transaction_id: str | None = None) -> dict[str, Any]:
        """What the user's consent lets this partner see of their score."""
        return self._call("GET", f"/v1/scores/{quote(open_id, safe='')}", {"purpose": purpose},
                          transaction_id=transaction_id)

    def scores(self, open_ids: list[str], purpose: str, *,
               transaction_id: str | None = None) -> dict[str, Any]:
        """A batch lookup: one result per open id (an answer or a problem)."""
        return self._call("POST", "/v1/scores:batch", body={"purpose": purpose, "open_ids": open_ids},
                          transaction_id=transaction_id)

    def history(self, open_id: str, purpose: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/scores/{quote(open_id, safe='')}/history", {"purpose": purpose})

    def send_events(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        """Furnish events (all or nothing; a resend stores nothing new)."""
        return self._call("POST", "/v1/events", body={"events": events})

    def _call(self, method: str, path: str, query: dict[str, str] | None = None, *,
              body: dict[str, Any] | None = None, transaction_id: str | None = None) -> dict[str, Any]:
        target = self.prefix + path + (f"?{urlencode(query)}" if query else "")
        payload = json.dumps(body).encode("utf-8") if body is not None else b""
        headers = sign_request(self.private_key, partner=self.partner, method=method, target=target,
                               body=payload)
        headers["Accept-Language"] = self.language
        if body is not None:
            headers["Content-Type"] = "application/json"
        if transaction_id:
            headers["X-Transaction-Id"] = transaction_id
        request = urllib.request.Request(self.origin + target, data=payload if body is not None else None,
                                         headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return dict(json.loads(response.read() or b"{}"))
        except urllib.error.HTTPError as error:
            raw = error.read()
            try:
                problem = json.loads(raw) if raw else {}
            except json.JSONDecodeError:
                problem = {"title": raw[:200].decode("utf-8", "replace")}
            raise ApiError(error.code, problem if isinstance(problem, dict) else {}) from None
