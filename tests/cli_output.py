"""What a command-line tool printed, read back by a test on the local stack.

The stack's functions run in the test's process, and Powertools' metrics print their EMF lines to
the same standard output: an asynchronous function still running for another test may print one in
the middle of the tool's JSON. Those lines are left out here, nothing else."""

from __future__ import annotations

import json
from typing import Any

METRICS_LINE = '{"_aws":'


def printed_json(out: str) -> Any:
    return json.loads("\n".join(line for line in out.splitlines() if not line.startswith(METRICS_LINE)))
