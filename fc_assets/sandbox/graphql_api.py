"""`POST /graphql`: the served schema (schema.graphql), its limits and Fluent's error envelope.

- Request body `{"query", "variables"?, "operationName"?}`; over `max_request_bytes` (2 MB) → HTTP 413;
  a body that is not JSON or has no query → HTTP 400 with `errors`.
- Validation with graphql-core against the served schema (unknown fields, wrong argument types ...):
  HTTP 200, `{"errors": [...]}`, no data, `extensions.classification = "ValidationError"`.
- Complexity: the sum, over every connection field, of the product of the page sizes on its path
  (`first`/`last`, the default page size when absent); above 11,111 → `C0001E`, nothing executed.
- Errors that carry a Fluent code (`C0001E`, `C0100E` bad date, `C0101E` empty DateRange, `C0120E` not
  found, `C0123E`/`C0128E` duplicates) have it in `extensions.code` and as the message prefix.
- Introspection is allowed (graphql-core executes requests that select `__schema`/`__type`); everything
  else goes through the fast executor (executor.py).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    StringValueNode,
    VariableNode,
    build_schema,
    execute,
    get_named_type,
    parse,
    validate,
)

from fc_assets.sandbox.datetimes import iso_ms, parse_iso_ms
from fc_assets.sandbox.executor import execute_fast, operation_of, uses_introspection
from fc_assets.sandbox.resolvers import RequestContext, attach

SDL_PATH = Path(__file__).with_name("schema.graphql")
CODE = re.compile(r"\b([CST]\d{4}[EW])\b")


def parse_datetime(value: Any) -> int:
    try:
        return parse_iso_ms(value)
    except (ValueError, TypeError):
        raise GraphQLError(f"C0100E: '{value}' is not a valid UTC date (ISO-8601)") from None


def parse_datetime_literal(node: Any, _variables: Any = None) -> int:
    if not isinstance(node, StringValueNode):
        raise GraphQLError("C0100E: a DateTime must be an ISO-8601 string")
    return parse_datetime(node.value)


def build_served_schema() -> GraphQLSchema:
    """The served schema with resolvers attached and `DateTime` parsed to epoch ms."""
    schema = build_schema(SDL_PATH.read_text())
    dt = schema.get_type("DateTime")
    dt.parse_value = parse_datetime  # type: ignore[union-attr]
    dt.parse_literal = parse_datetime_literal  # type: ignore[union-attr]
    dt.serialize = lambda v: iso_ms(v) if isinstance(v, int) else v  # type: ignore[union-attr]
    attach(schema)
    return schema


def with_code(error: dict[str, Any]) -> dict[str, Any]:
    """Fluent's envelope: a code found in the message goes to `extensions.code` and leads the message."""
    ext = error.get("extensions") or {}
    code = ext.get("code")
    if code is None:
        m = CODE.search(error.get("message", ""))
        code = m.group(1) if m else None
    if code is not None:
        message = error["message"]
        if not message.startswith(code):
            message = f"{code}: {message.replace(f'{code}: ', '')}"
        error = {**error, "message": message, "extensions": {**ext, "code": code}}
    return error


class Complexity:
    """Sum over connection fields of the product of page sizes along the path (see module docstring)."""

    def __init__(
        self, schema: GraphQLSchema, document: DocumentNode, variables: dict[str, Any], default_size: int
    ) -> None:
        self.schema = schema
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.variables = variables
        self.default_size = default_size

    def size(self, node: FieldNode) -> int:
        for name in ("first", "last"):
            for arg in node.arguments:
                if arg.name.value == name:
                    v = arg.value
                    if isinstance(v, IntValueNode):
                        return int(v.value)
                    if isinstance(v, VariableNode):
                        raw = self.variables.get(v.name.value)
                        if isinstance(raw, int):
                            return raw
        return self.default_size

    def of(self, parent: Any, selection_set: Any, mult: int, seen: frozenset[str] = frozenset()) -> int:
        total = 0
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                fdef = getattr(parent, "fields", {}).get(sel.name.value)
                if fdef is None:
                    continue
                named = get_named_type(fdef.type)
                m = mult
                if named.name.endswith("Connection"):
                    m = mult * max(self.size(sel), 0)
                    total += m
                if sel.selection_set:
                    total += self.of(named, sel.selection_set, m, seen)
            elif isinstance(sel, InlineFragmentNode):
                t = self.schema.get_type(sel.type_condition.name.value) if sel.type_condition else parent
                total += self.of(t, sel.selection_set, mult, seen)
            elif isinstance(sel, FragmentSpreadNode) and sel.name.value not in seen:
                frag = self.fragments.get(sel.name.value)
                if frag is not None:
                    t = self.schema.get_type(frag.type_condition.name.value)
                    total += self.of(t, frag.selection_set, mult, seen | {sel.name.value})
        return total


class GraphQLService:
    """Parses (cached per query text), validates, limits and executes one GraphQL request."""

    def __init__(self, default_page_size: int, complexity_limit: int) -> None:
        self.schema = build_served_schema()
        self.default_page_size = default_page_size
        self.complexity_limit = complexity_limit
        self._documents: OrderedDict[str, tuple[DocumentNode | None, list[dict[str, Any]]]] = OrderedDict()

    def _document(self, query: str) -> tuple[DocumentNode | None, list[dict[str, Any]]]:
        hit = self._documents.get(query)
        if hit is not None:
            self._documents.move_to_end(query)
            return hit
        try:
            doc = parse(query)
            errors = [
                {**e.formatted, "extensions": {"classification": "ValidationError"}}
                for e in validate(self.schema, doc)
            ]
        except GraphQLError as exc:
            doc, errors = None, [{**exc.formatted, "extensions": {"classification": "InvalidSyntax"}}]
        result = (doc if not errors else None, errors)
        self._documents[query] = result
        if len(self._documents) > 512:
            self._documents.popitem(last=False)
        return result

    def run(self, body: Any, context: RequestContext) -> tuple[int, dict[str, Any]]:
        """(HTTP status, response body) for a decoded JSON request body."""
        if not isinstance(body, dict) or not isinstance(body.get("query"), str) or not body["query"].strip():
            return 400, {"errors": [{"message": "The request must be a JSON object with a 'query' string"}]}
        variables = body.get("variables") or {}
        if not isinstance(variables, dict):
            return 400, {"errors": [{"message": "'variables' must be a JSON object"}]}
        doc, errors = self._document(body["query"])
        if doc is None:
            return 200, {"errors": errors}
        operation = operation_of(doc, body.get("operationName"))
        if operation is None:
            return 200, {
                "errors": [{"message": f"Unknown or ambiguous operation name {body.get('operationName')!r}"}]
            }
        cost = Complexity(self.schema, doc, variables, self.default_page_size).of(
            self.schema.mutation_type if operation.operation.value == "mutation" else self.schema.query_type,
            operation.selection_set,
            1,
        )
        if cost > self.complexity_limit:
            return 200, {
                "errors": [
                    with_code(
                        {
                            "message": f"C0001E: Query complexity {cost} exceeds the maximum of {self.complexity_limit}",
                            "extensions": {
                                "code": "C0001E",
                                "complexity": cost,
                                "limit": self.complexity_limit,
                            },
                        }
                    )
                ]
            }
        if uses_introspection(operation, doc):
            result = execute(
                self.schema,
                doc,
                variable_values=variables,
                operation_name=body.get("operationName"),
                context_value=context,
            )
            out: dict[str, Any] = {"data": result.data}
            if result.errors:
                out["errors"] = [e.formatted for e in result.errors]
        else:
            out = execute_fast(self.schema, doc, operation, variables, context)
        if "errors" in out:
            out["errors"] = [with_code(e) for e in out["errors"]]
        return 200, out
