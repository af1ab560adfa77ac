"""Watch the task board live from a terminal (run `make run` first, then this in another one).

    .venv/bin/python examples/watch_taskboard.py ann          # prints ann's tasks on every change
    .venv/bin/python examples/watch_taskboard.py ann "buy milk"  # adds a task, then watches

Every change made by any client (this script, curl, a browser with the `convex` npm client)
appears here within milliseconds.
"""

from __future__ import annotations

import os
import sys

from client_sdk import ReactorClient

URL = os.environ.get("REACTOR_URL", "http://127.0.0.1:3210")


def main() -> None:
    owner = sys.argv[1] if len(sys.argv) > 1 else "ann"
    with ReactorClient(URL) as client:
        if len(sys.argv) > 2:
            client.mutation("tasks:add", {"title": sys.argv[2], "owner": owner})
        print(f"watching {owner}'s tasks on {URL} (Ctrl+C to stop)")
        for tasks in client.subscribe("tasks:mine", {"owner": owner}):
            done = sum(1 for t in tasks if t["done"])
            print(f"\n{owner}: {len(tasks)} tasks, {done} done")
            for task in tasks:
                print(f"  [{'x' if task['done'] else ' '}] {task['title']}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
