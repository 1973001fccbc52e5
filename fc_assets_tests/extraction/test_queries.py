"""Every extraction query validates against the real Fluent schema, and selects every declared column."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    build_client_schema,
    parse,
    print_ast,
    validate,
)

from fc_assets.extraction.columns import Column
from fc_assets.extraction.entities import ENTITIES, QUERIES_DIR, EntitySpec, load_query

SCHEMA_JSON = Path(__file__).resolve().parents[1] / "data" / "fluent-schema-23.10.1.json"
QUERY_FILES = sorted(p.name for p in QUERIES_DIR.glob("*.graphql"))


@pytest.fixture(scope="module")
def fluent_schema():
    return build_client_schema(json.loads(SCHEMA_JSON.read_text())["data"])


@pytest.mark.parametrize("name", QUERY_FILES)
def test_query_validates_against_fluent_schema(fluent_schema, name):
    errors = validate(fluent_schema, parse(load_query(name)))
    assert not errors, [e.message for e in errors]


def test_every_query_file_is_used():
    used = {s.query for e in ENTITIES for s in e.sources}
    used |= {n.query for e in ENTITIES for n in e.nested} | {e.scope.query for e in ENTITIES if e.scope}
    assert used == set(QUERY_FILES)


def _selections(selection_set, fragments) -> dict[str, FieldNode]:
    out: dict[str, FieldNode] = {}
    for sel in selection_set.selections if selection_set else ():
        if isinstance(sel, FieldNode):
            out[sel.alias.value if sel.alias else sel.name.value] = sel
        elif isinstance(sel, InlineFragmentNode):
            out.update(_selections(sel.selection_set, fragments))
        elif isinstance(sel, FragmentSpreadNode):
            out.update(_selections(fragments[sel.name.value].selection_set, fragments))
    return out


def _node_selection(query: str, connection_path: str):
    doc = parse(query)
    fragments = {d.name.value: d for d in doc.definitions if isinstance(d, FragmentDefinitionNode)}
    op = next(d for d in doc.definitions if isinstance(d, OperationDefinitionNode))
    fields = _selections(op.selection_set, fragments)
    for key in connection_path.split("."):
        fields = _selections(fields[key].selection_set, fragments)
    return _selections(fields["edges"].selection_set, fragments)["node"], fragments


def _missing(columns: tuple[Column, ...], node: FieldNode, fragments, prefix: str = "") -> list[str]:
    missing = []
    for col in columns:
        fields = _selections(node.selection_set, fragments)
        target = None
        for key in col.path.split("."):
            target = fields.get(key)
            if target is None:
                break
            fields = _selections(target.selection_set, fragments)
        if target is None:
            missing.append(prefix + col.path)
        elif col.children:
            element = target
            if col.connection:
                element = _selections(
                    _selections(target.selection_set, fragments)["edges"].selection_set, fragments
                )["node"]
            missing += _missing(col.children, element, fragments, prefix + col.path + ".")
    return missing


@pytest.mark.parametrize("spec", ENTITIES, ids=lambda e: e.name)
def test_every_column_is_selected_by_every_source(spec: EntitySpec):
    # with several sources (standard + variant products) a column may come from only some of them
    missing_per_source = [
        set(_missing(spec.columns, *_node_selection(load_query(s.query), s.connection_path)))
        for s in spec.sources
    ]
    assert not set.intersection(*missing_per_source), (
        f"no query selects {set.intersection(*missing_per_source)}"
    )
    for conn in spec.nested:
        main, main_frags = _node_selection(load_query(spec.sources[0].query), spec.sources[0].connection_path)
        nested_node = _selections(
            _selections(_selections(main.selection_set, main_frags)[conn.field].selection_set, main_frags)[
                "edges"
            ].selection_set,
            main_frags,
        )["node"]
        follow, follow_frags = _node_selection(load_query(conn.query), conn.connection_path)
        assert print_ast(_flatten(nested_node, main_frags)) == print_ast(_flatten(follow, follow_frags)), (
            f"{conn.query} must select the same {conn.field} fields as {spec.sources[0].query}"
        )


def _flatten(node: FieldNode, fragments) -> FieldNode:
    """The node's selection with fragments inlined (to compare two queries' selections)."""
    from graphql import SelectionSetNode

    fields = _selections(node.selection_set, fragments)
    return FieldNode(
        name=node.name,
        alias=None,
        arguments=(),
        directives=(),
        selection_set=SelectionSetNode(
            selections=tuple(
                _flatten(f, fragments)
                if f.selection_set
                else FieldNode(name=f.name, alias=None, arguments=(), directives=(), selection_set=None)
                for f in fields.values()
            )
        ),
    )
