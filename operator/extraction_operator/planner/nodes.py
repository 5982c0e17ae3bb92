"""The run's work graph: stages expanded into nodes, in a stable launch order.

A stage with `shards: N > 1` becomes the nodes `stage[0]..stage[N-1]`; `shards: 1` is the single
node `stage`. A node depends on *every* node of each stage its stage depends on, so dependants of
a fan-out wait for all of its shards. The order of `RunGraph.nodes` (spec order, then shard order)
is the launch order, which keeps plans deterministic."""

from __future__ import annotations

from dataclasses import dataclass

from extraction_operator.api.models import ExtractionRunSpec, Stage

from .naming import node_key, node_spellings


@dataclass(frozen=True)
class Node:
    """One unit of work: one Job per attempt."""

    key: str  # `chunk` or `right[3]`
    stage: Stage
    shard: int | None  # None for a plain stage
    spelling: str  # the key as it may appear in names and label values
    dependencies: tuple[str, ...]  # node keys that must all succeed first

    @property
    def shard_index(self) -> int:
        return self.shard or 0

    @property
    def shard_count(self) -> int:
        return self.stage.shards


@dataclass(frozen=True)
class RunGraph:
    nodes: tuple[Node, ...]  # launch order
    by_key: dict[str, Node]
    stage_nodes: dict[str, tuple[str, ...]]  # stage name -> its node keys, shard order

    @property
    def spellings(self) -> dict[str, str]:
        return {node.key: node.spelling for node in self.nodes}


def stage_node_keys(stage: Stage) -> tuple[str, ...]:
    if stage.shards <= 1:
        return (node_key(stage.name, None),)
    return tuple(node_key(stage.name, index) for index in range(stage.shards))


def build_graph(spec: ExtractionRunSpec) -> RunGraph:
    """Expand a validated (acyclic, dependencies known) spec into nodes."""
    stage_nodes = {stage.name: stage_node_keys(stage) for stage in spec.stages}
    keys = [key for stage in spec.stages for key in stage_nodes[stage.name]]
    spellings = node_spellings(keys)
    nodes: list[Node] = []
    for stage in spec.stages:
        dependencies = tuple(
            key for dep in dict.fromkeys(stage.depends_on) for key in stage_nodes.get(dep, ())
        )
        for index, key in enumerate(stage_nodes[stage.name]):
            nodes.append(
                Node(
                    key=key,
                    stage=stage,
                    shard=index if stage.shards > 1 else None,
                    spelling=spellings[key],
                    dependencies=dependencies,
                )
            )
    return RunGraph(
        nodes=tuple(nodes), by_key={node.key: node for node in nodes}, stage_nodes=stage_nodes
    )


def topological_order(graph: RunGraph) -> list[Node]:
    """Nodes ordered so every dependency comes before its dependants (ties: launch order).

    Used to propagate `Skipped` in one pass; assumes the graph is acyclic (validated earlier)."""
    position = {node.key: index for index, node in enumerate(graph.nodes)}
    placed: set[str] = set()
    ordered: list[Node] = []
    remaining = list(graph.nodes)
    while remaining:
        progressed = False
        waiting: list[Node] = []
        for node in remaining:
            if all(dep in placed for dep in node.dependencies):
                ordered.append(node)
                placed.add(node.key)
                progressed = True
            else:
                waiting.append(node)
        if not progressed:  # a cycle slipped through: keep the rest in launch order
            ordered.extend(sorted(waiting, key=lambda node: position[node.key]))
            break
        remaining = waiting
    return ordered
