"""The envelope and error-table checks every response gets (``kling_error_mapping``,
``kling_positive_refusal``), as plain functions of a status and a body."""

from __future__ import annotations

import re
from typing import Any

from mock_server.spec import Spec

RULE_NAMED = re.compile(r"\(rule ([a-z0-9-]+)\)")


def named_rules(message: str) -> list[str]:
    """The rules a refusal names, as the mock words them: ``(rule volume-range)``.

    >>> named_rules("face_choose[0].sound_volume: 3 is greater than 2 (rule volume-range)")
    ['volume-range']
    """
    return RULE_NAMED.findall(message)


def error_mapping_problem(spec: Spec, http_status: int, body: Any) -> str | None:
    """Why a response breaks the envelope / error-table contract, or None."""
    if not isinstance(body, dict):
        return "the body is not a JSON object (the Kling envelope)"
    code = body.get("code")
    if not isinstance(code, int) or isinstance(code, bool):
        return f"`code` is {code!r}, not an integer"
    if not isinstance(body.get("message"), str) or not isinstance(body.get("request_id"), str):
        return "`message` and `request_id` must be strings"
    if code == 0:
        return None if http_status == 200 else f"code 0 (success) came with HTTP {http_status}"
    documented = spec.http_status.get(code)
    if documented is None:
        return f"code {code} is not in x-kling-errors"
    if documented != http_status:
        return f"code {code} must come with HTTP {documented} (x-kling-errors), got {http_status}"
    return None


def positive_refusal_problem(
    spec: Spec, operation_id: str, http_status: int, message: str
) -> str | None:
    """Why refusing a schema-valid request is wrong, or None (only when the server names a rule)."""
    if http_status < 400:
        return None
    for name in named_rules(message):
        rule = spec.rules.get(name)
        if rule is None:
            return f"refused for rule {name!r}, which is not in x-kling-rules"
        if rule.operation not in (operation_id, "*"):
            return f"refused for rule {name} of operation {rule.operation}"
        if rule.check == "schema":
            return f"a schema-valid request was refused for schema rule {name}"
    return None
