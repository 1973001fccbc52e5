"""What the Fluent client reads from a GraphQL document before sending it, using graphql-core's parser.

- whether the operation is a mutation (mutations are never retried blindly);
- for paging: the Relay connection at a dot path of response keys under `data` (or the first one found), and
  the variables that feed its `after:` and `first:` arguments — whatever they are called (the SDK guessed
  them from variable names with a regex and silently re-fetched page 1 when they were unconventional).

Parsing is cached per query text, so paging a query costs one parse, not one per page.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLSyntaxError,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    parse,
)

from fc_assets.resources.fluent_errors import FluentPagingError, FluentValidationError


@dataclass(frozen=True)
class ParsedOperation:
    document: DocumentNode
    operation: OperationDefinitionNode
    fragments: dict[str, FragmentDefinitionNode]

    @property
    def is_mutation(self) -> bool:
        return self.operation.operation is not OperationType.QUERY

    @property
    def variable_names(self) -> set[str]:
        return {v.variable.name.value for v in self.operation.variable_definitions or ()}


@dataclass(frozen=True)
class ConnectionPlan:
    """How to page one connection: its path under `data` and the variables that drive it."""

    path: tuple[str, ...]
    after_var: str
    first_var: str | None  # None when `first` is a literal in the query
    first_literal: int | None

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


@lru_cache(maxsize=512)
def parse_operation(query: str) -> ParsedOperation:
    """Parse `query`; it must hold exactly one operation (Fluent requests carry no operationName here)."""
    try:
        document = parse(query, no_location=True)
    except GraphQLSyntaxError as exc:
        raise FluentValidationError(f"GraphQL syntax error: {exc.message}") from None
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != 1:
        raise FluentValidationError(f"expected exactly one GraphQL operation, found {len(operations)}")
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    return ParsedOperation(document, operations[0], fragments)


def _fields(
    selection_set: SelectionSetNode | None,
    fragments: dict[str, FragmentDefinitionNode],
    seen: frozenset[str] = frozenset(),
) -> Iterator[FieldNode]:
    """Fields of a selection set in document order, with fragment spreads and inline fragments expanded."""
    for sel in selection_set.selections if selection_set else ():
        if isinstance(sel, FieldNode):
            yield sel
        elif isinstance(sel, InlineFragmentNode):
            yield from _fields(sel.selection_set, fragments, seen)
        elif isinstance(sel, FragmentSpreadNode) and sel.name.value not in seen:
            frag = fragments.get(sel.name.value)
            if frag is not None:
                yield from _fields(frag.selection_set, fragments, seen | {sel.name.value})


def _key(field: FieldNode) -> str:
    return field.alias.value if field.alias else field.name.value


def _child(field: FieldNode, name: str, fragments: dict[str, FragmentDefinitionNode]) -> FieldNode | None:
    return next((f for f in _fields(field.selection_set, fragments) if f.name.value == name), None)


def _is_connection(field: FieldNode, fragments: dict[str, FragmentDefinitionNode]) -> bool:
    return _child(field, "edges", fragments) is not None and _child(field, "pageInfo", fragments) is not None


def _find_first_connection(
    fields: Iterator[FieldNode], fragments: dict[str, FragmentDefinitionNode], prefix: tuple[str, ...]
) -> tuple[tuple[str, ...], FieldNode] | None:
    for field in fields:
        path = (*prefix, _key(field))
        if _is_connection(field, fragments):
            return path, field
        found = _find_first_connection(_fields(field.selection_set, fragments), fragments, path)
        if found:
            return found
    return None


@lru_cache(maxsize=512)
def connection_plan(query: str, connection_path: str | None = None) -> ConnectionPlan:
    """Locate the connection to page and its `after`/`first` variables; raise FluentPagingError if unpageable.

    The connection must select `edges { cursor }` and `pageInfo { hasNextPage }` and take
    `after: $var` (declared). `first` must be given, as `$var` or a literal: without it Fluent applies its
    own small default page size, so the client refuses rather than page slowly by accident.
    """
    op = parse_operation(query)
    if op.is_mutation:
        raise FluentPagingError("mutations are not paged", path=connection_path)
    frags = op.fragments
    if connection_path:
        path = tuple(connection_path.split("."))
        field: FieldNode | None = None
        fields = _fields(op.operation.selection_set, frags)
        for i, key in enumerate(path):
            field = next((f for f in fields if _key(f) == key), None)
            if field is None:
                raise FluentPagingError(
                    f"query selects no field {'.'.join(path[: i + 1])!r}", path=connection_path
                )
            fields = _fields(field.selection_set, frags)
        assert field is not None
        if not _is_connection(field, frags):
            raise FluentPagingError("field does not select `edges` and `pageInfo`", path=connection_path)
    else:
        found = _find_first_connection(_fields(op.operation.selection_set, frags), frags, ())
        if found is None:
            raise FluentPagingError("query selects no connection (a field with `edges` and `pageInfo`)")
        path, field = found
    dotted = ".".join(path)

    edges = _child(field, "edges", frags)
    page_info = _child(field, "pageInfo", frags)
    if edges is None or _child(edges, "cursor", frags) is None:
        raise FluentPagingError("select `edges { cursor }`: Fluent gives cursors only on edges", path=dotted)
    if edges is not None and _child(edges, "node", frags) is None:
        raise FluentPagingError("select `edges { node { ... } }`", path=dotted)
    if page_info is None or _child(page_info, "hasNextPage", frags) is None:
        raise FluentPagingError("select `pageInfo { hasNextPage }`", path=dotted)

    args = {a.name.value: a.value for a in field.arguments or ()}
    declared = op.variable_names
    after = args.get("after")
    if not isinstance(after, VariableNode):
        raise FluentPagingError("the connection needs `after: $variable` to be paged", path=dotted)
    if after.name.value not in declared:
        raise FluentPagingError(f"variable ${after.name.value} is used but not declared", path=dotted)
    first = args.get("first")
    if isinstance(first, VariableNode):
        if first.name.value not in declared:
            raise FluentPagingError(f"variable ${first.name.value} is used but not declared", path=dotted)
        return ConnectionPlan(path, after.name.value, first.name.value, None)
    if isinstance(first, IntValueNode):
        return ConnectionPlan(path, after.name.value, None, int(first.value))
    raise FluentPagingError(
        "the connection needs `first: $variable` (or a literal) so every page, "
        "including the first, has an explicit size",
        path=dotted,
    )
