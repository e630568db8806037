"""Speed: update and condition expressions parsed once per text, update trees walked with one lookup per node type.

moto parses each expression twice per request (once to validate the request, once to apply it), runs a quadratic
clause-count check on every node, and rebuilds each tree walker's processing map twice per node. The app sends a
handful of expression texts over and over. Each cache keys on everything its result depends on, and a miss runs
moto's own code, so errors and results stay moto's (tests/integration/moto/test_speed.py).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

_PARSE_CACHE_MAX = 2048


def _cached_update_parser(original: Callable[[str], Any]) -> Any:
    """UpdateExpressionParser.make by text. Callers only read the tree: moto's Validator works on its own
    copy of it (made by `_copy_tree` below from the pickle kept here, about 5x cheaper than deepcopy)."""
    import pickle

    trees: dict[str, Any] = {}

    def make(cls: type, expression_str: str) -> Any:
        tree = trees.get(expression_str)
        if tree is None:
            tree = original(expression_str)  # moto's own error for a bad expression: nothing cached
            # Copies made from the pickle carry the verdict; see _counting_clauses_once.
            tree._clause_counts_ok = _clause_counts_ok(tree)
            tree._pickled = pickle.dumps(tree)
            if len(trees) >= _PARSE_CACHE_MAX:
                trees.clear()
            trees[expression_str] = tree
        return tree

    return classmethod(make)


def _clause_counts_ok(tree: Any) -> bool:
    """Whether moto's ActionCountValidator accepts this tree (at most one SET/REMOVE/ADD clause)."""
    import pickle

    from moto.dynamodb.exceptions import TooManyClauses
    from moto.dynamodb.parsing.validators import ActionCountValidator

    try:
        ActionCountValidator().traverse(pickle.loads(pickle.dumps(tree)))  # it may rewrite: a copy
    except TooManyClauses:
        return False
    return True


def _counting_clauses_once(original: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """ActionCountValidator.traverse: its verdict depends only on the tree's clause structure, i.e. on the
    expression text, and moto ran it on every node of every request (a quadratic search, a quarter of an
    update's CPU). A copy of a cached tree that passed skips it; anything else is checked by moto."""

    def traverse(validator: Any, root: Any) -> Any:
        if getattr(root, "_clause_counts_ok", False):
            return root
        return original(validator, root)

    return traverse


def _copy_tree(tree: Any, memo: Any = None) -> Any:
    """The `deepcopy` moto's Validator makes of an update expression tree before rewriting it."""
    import pickle

    blob = getattr(tree, "_pickled", None)
    if blob is None or memo is not None:
        return copy.deepcopy(tree, memo)
    return pickle.loads(blob)


def _cached_condition_lexer(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """ConditionExpressionParser._lex_condition_expression by text: the tokens depend on nothing else.
    Names and values are still resolved by moto for every request."""
    from collections import deque

    tokens: dict[str, tuple[Any, ...]] = {}

    def lex(parser: Any) -> Any:
        text = parser.condition_expression
        cached = tokens.get(text)
        if cached is None:
            nodes = original(parser)
            if len(tokens) >= _PARSE_CACHE_MAX:
                tokens.clear()
            tokens[text] = cached = tuple(nodes)
        # Fresh children lists: later parsing stages must never share a list between requests.
        return deque(node._replace(children=[]) for node in cached)

    return lex


def _traverse_with_one_map(traverser: Any, root: Any) -> Any:
    """DepthFirstTraverser.traverse: the same depth-first walk and node replacement, with each node type's
    processor looked up once per walk (moto rebuilt the processing map twice per node and matched every
    node against abstract base classes; ten processors walk every update expression tree). First match in
    the map's order wins, as in moto's `process`. About a fifth of an update_item's CPU."""
    return _Walk(traverser).visit(root, -1)


class _Walk:
    def __init__(self, traverser: Any) -> None:
        from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser

        processing = traverser._processing_map()
        self._processes = list(processing.values())  # bound to this traverser
        # Which entry of the map (in its order) handles a node type: the map's keys are the same for every
        # instance of a processor class, so this is learnt once per class, not per walk.
        self._kinds = _KINDS.setdefault((type(traverser), tuple(processing)), {})
        self._kinds_in_order = tuple(processing)
        self._before_child = traverser.pre_processing_of_child
        if type(traverser).pre_processing_of_child is DepthFirstTraverser.pre_processing_of_child:
            self._before_child = None  # the default hook does nothing

    def _kind_of(self, node_type: type) -> int:
        if not _is_node(node_type):
            kind = _NOT_A_NODE
        else:
            kind = next(
                (index for index, kind in enumerate(self._kinds_in_order) if issubclass(node_type, kind)),
                _UNPROCESSED,
            )
        self._kinds[node_type] = kind
        return kind

    def visit(self, node: Any, child_id: int) -> Any:
        kind = self._kinds.get(type(node))
        if kind is None:
            kind = self._kind_of(type(node))
        if kind == _NOT_A_NODE:
            return node
        parent = node.parent
        if node.children is not None:
            before_child = self._before_child
            for index, child in enumerate(node.children):
                if before_child is not None:
                    before_child(node, index)
                self.visit(child, index)
        if kind >= 0:
            node = self._processes[kind](node)
            node.parent = parent
            if parent:
                parent.children[child_id] = node
        return node


_NOT_A_NODE, _UNPROCESSED = -2, -1
# (processor class, its map's node types) -> {node type: index of the map entry, or one of the two above}
_KINDS: dict[tuple[type, tuple[type, ...]], dict[type, int]] = {}


_NODE_TYPES: dict[type, bool] = {}


def _is_node(node_type: type) -> bool:
    """issubclass(node_type, moto's Node), remembered per type (Node is an ABC: each check is slow)."""
    known = _NODE_TYPES.get(node_type)
    if known is None:
        from moto.dynamodb.parsing.ast_nodes import Node

        known = _NODE_TYPES[node_type] = issubclass(node_type, Node)
    return known


def patches() -> list[tuple[Any, str, Any]]:
    from moto.dynamodb.comparisons import ConditionExpressionParser
    from moto.dynamodb.parsing import validators as moto_validators
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser
    from moto.dynamodb.parsing.validators import ActionCountValidator

    return [
        (UpdateExpressionParser, "make", _cached_update_parser(UpdateExpressionParser.make)),
        (moto_validators, "deepcopy", _copy_tree),
        (DepthFirstTraverser, "traverse", _traverse_with_one_map),
        (ActionCountValidator, "traverse", _counting_clauses_once(_traverse_with_one_map)),
        (
            ConditionExpressionParser,
            "_lex_condition_expression",
            _cached_condition_lexer(ConditionExpressionParser._lex_condition_expression),
        ),
    ]
