"""One decorator per API route: authenticate, check the role, load input, dump output, document."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Response, after_this_request, g, jsonify, request
from marshmallow import Schema, ValidationError

from enablement.context import ctx
from enablement.domain.storable import refuse_json_constant, value_problem
from enablement.errors import BadRequest, InvalidInput, UnsupportedMediaType
from enablement.services.tokens import authenticate, require_role

log = logging.getLogger(__name__)


def after_answer(work: Callable[[], None]) -> None:
    """Run `work` once this request's answer has been sent (at its close), so the client does
    not wait for it; a failure is logged, never raised (the answer is already out)."""

    def run() -> None:
        try:
            work()
        except Exception:  # noqa: BLE001
            log.warning("work after the answer failed", exc_info=True)

    @after_this_request
    def attach(response: Response) -> Response:
        response.call_on_close(run)
        return response


@dataclass(frozen=True)
class EndpointDoc:
    """What the OpenAPI document says about a route."""

    summary: str
    tag: str
    role: str | None
    body: type[Schema] | None = None
    query: type[Schema] | None = None
    response: type[Schema] | None = None
    status: int = 200
    errors: tuple[int, ...] = ()
    extra_request: dict = field(default_factory=dict)
    # Other success answers: (status, description, schema of the JSON body or None).
    also: tuple[tuple[int, str, type[Schema] | None], ...] = ()


def endpoint(
    *,
    summary: str,
    tag: str,
    role: str | None,
    body: type[Schema] | None = None,
    query: type[Schema] | None = None,
    response: type[Schema] | None = None,
    status: int = 200,
    errors: tuple[int, ...] = (),
    raw_body: bool = False,
    extra_request: dict | None = None,
    also: tuple[tuple[int, str, type[Schema] | None], ...] = (),
):
    """Wrap a view: it receives `principal`, and `body`/`query` loaded by their schemas.

    The view returns data that `response` dumps (or a Response, or (data, status)).
    `raw_body=True` leaves the body to the view (file uploads) but still checks auth. `also`
    documents other success statuses the view answers (a 200 for a repeat, a 202 while computing).
    """
    doc = EndpointDoc(
        summary, tag, role, body, query, response, status, errors, extra_request or {}, also
    )

    # NOTE: the schemas are built once per route, not per request (marshmallow schemas keep no
    # state between loads and dumps, so threads may share them).
    query_schema = query() if query is not None else None
    body_schema = body() if body is not None and not raw_body else None
    response_schema = response() if response is not None else None

    def decorate(view):
        @functools.wraps(view)
        def wrapper(**path_args):
            kwargs = dict(path_args)
            if role is not None:
                principal = authenticate(
                    ctx().sessions, request.headers.get("Authorization"), after_answer
                )
                require_role(principal, role)
                g.principal = kwargs["principal"] = principal
            if query_schema is not None:
                kwargs["query"] = load(query_schema, request.args.to_dict(), "query")
            if body_schema is not None:
                kwargs["body"] = load(body_schema, read_json(), "body")
            result = view(**kwargs)
            if isinstance(result, Response):
                return result
            code = status
            if isinstance(result, tuple):
                result, code = result
            payload = response_schema.dump(result) if response_schema is not None else result
            return jsonify(payload), code

        wrapper.__endpoint_doc__ = doc
        return wrapper

    return decorate


def read_json():
    """The request body as JSON; 415 for another content type, 400 malformed, 422 unstorable.

    The one JSON reader of the API: NaN/Infinity literals and nesting past the parser's
    recursion are malformed; NUL bytes, lone surrogates, out-of-range numbers and nesting
    past MAX_DEPTH are refused with their path (enablement.domain.storable).
    """
    if request.mimetype != "application/json":
        raise UnsupportedMediaType(
            f"send the body as application/json, not {request.mimetype or 'nothing'}"
        )
    raw = request.get_data(cache=True)
    try:
        data = json.loads(raw, parse_constant=refuse_json_constant)
    except RecursionError:
        raise BadRequest("the body is not valid JSON", {"reason": "nested too deeply"}) from None
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest("the body is not valid JSON", {"reason": str(e)[:200]}) from None
    check_storable(data, "body")
    return data


def check_storable(data, where: str) -> None:
    """422 naming the field when parsed input holds what the database cannot store."""
    problem = value_problem(data)
    if problem is not None:
        path, reason = problem
        raise InvalidInput(f"invalid {where}: {path} {reason}", {where: {path: [reason]}})


def load(schema: Schema, data, where: str):
    """Load data through a schema; validation errors become 422 with field messages."""
    if where == "body" and not isinstance(data, dict) and not schema.many:
        raise InvalidInput("the body must be a JSON object", {"body": ["not an object"]})
    try:
        return schema.load(data)
    except ValidationError as e:
        raise InvalidInput(f"invalid {where}", {where: e.messages}) from None
