"""Print every import cycle among Nexus's packages (imports inside functions included), via grimp.

    python scripts/import_cycles.py          # exit 1 when there is a cycle

A cycle is a strongly connected component of the module import graph with more than one module (or a module that
imports itself). grimp reads every ``import`` statement, at module level or inside a function, so a lazy import
still ties two modules, as it does at run time.
"""

from __future__ import annotations

import sys

import grimp

PACKAGES = ("nexus", "clients", "tasks", "workers")


def import_cycles(packages: tuple[str, ...] = PACKAGES) -> list[list[str]]:
    graph = grimp.build_graph(*packages, include_external_packages=False)
    modules = sorted(graph.modules)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m) & graph.modules) for m in modules}
    # Tarjan's strongly connected components, iteratively (the graph has a few hundred modules).
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[list[str]] = []
    counter = 0
    for root in modules:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            recurse = False
            for i in range(child, len(edges[node])):
                nxt = edges[node][i]
                if nxt not in index:
                    work.append((node, i + 1))
                    work.append((nxt, 0))
                    recurse = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if recurse:
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1 or node in edges[node]:
                    cycles.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return cycles


def main() -> int:
    cycles = import_cycles()
    for cycle in cycles:
        print("cycle: " + " <-> ".join(cycle))
    print(f"{len(cycles)} import cycle(s) among {', '.join(PACKAGES)}")
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main())
