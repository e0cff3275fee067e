"""`python -m local`: run the whole platform on this machine (what `make run` calls)."""

from __future__ import annotations

import argparse
import atexit
import faulthandler
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import NoReturn

from local.endpoints import Endpoints
from local.state_lock import StateFolderInUse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local", description=__doc__)
    endpoints = Endpoints.from_environment()  # LOCAL_HOST, LOCAL_PORT, ...: what clients read too
    parser.add_argument("--host", default=endpoints.host, help="address to listen on (LOCAL_HOST); default %(default)s")
    parser.add_argument(
        "--port",
        type=int,
        default=endpoints.port,
        help="API gateway port (LOCAL_PORT; 0 picks a free one); default %(default)s",
    )
    parser.add_argument(
        "--moto-port",
        type=int,
        default=endpoints.moto_port,
        help="moto (AWS APIs) port (LOCAL_MOTO_PORT); default %(default)s",
    )
    parser.add_argument(
        "--opensearch-port",
        type=int,
        default=endpoints.opensearch_port,
        help="OpenSearch port (LOCAL_OPENSEARCH_PORT); default %(default)s",
    )
    parser.add_argument(
        "--cdn-port",
        type=int,
        default=int(os.environ["LOCAL_CDN_PORT"]) if os.environ.get("LOCAL_CDN_PORT") else None,
        help="the local CDN's port: cdn image links name it, so keep it to keep them (LOCAL_CDN_PORT); default: "
        "the API's port + 3 (8003), or a free one with --port 0",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get("LOCAL_STATE_DIR", ".local-state")),
        help="where data is kept between runs; default .local-state",
    )
    parser.add_argument(
        "--demo-listings",
        type=int,
        default=int(os.environ.get("LOCAL_DEMO_LISTINGS", "1588")),
        help="demo listings loaded when the listings index is empty (0: none); default 1588",
    )
    parser.add_argument(
        "--auth",
        action="store_true",
        default=os.environ.get("LOCAL_AUTH", "") in ("1", "true", "yes"),
        help="check API keys as deployed: one client per storefront, keys printed at start (LOCAL_AUTH=1)",
    )
    parser.add_argument(
        "--snapshot-interval",
        type=float,
        default=float(os.environ.get("LOCAL_SNAPSHOT_INTERVAL_S", "5")),
        help="seconds between snapshots of the stores while running; a killed run loses at most the writes of "
        "the last interval (LOCAL_SNAPSHOT_INTERVAL_S; 0: only at a clean stop); default %(default)s",
    )
    parser.add_argument(
        "--skip-provisioning",
        action="store_true",
        help="create only what CloudFormation creates (buckets, tables, functions); leave out what the deploy's "
        "provisioning makes (Milvus collection, listings index): the API answers 503 not_provisioned",
    )
    parser.add_argument(
        "--context-file",
        type=Path,
        default=os.environ.get("LOCAL_CONTEXT_FILE") or None,
        help="a stage context file (infra/stages/*.json) whose `storefronts` the stack runs, as a deploy of it "
        "would (LOCAL_CONTEXT_FILE); default: cdk.json's",
    )
    parser.add_argument(
        "--image-links",
        choices=("cdn", "private", "presigned"),
        default=os.environ.get("LOCAL_IMAGE_LINKS") or None,
        help="links to catalogue and generated images (LOCAL_IMAGE_LINKS); default: the stage context's "
        "`image_links` (--context-file's, else the deploy's default, cdn): cdn links resolve through the local CDN",
    )
    args = parser.parse_args(argv)
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Start the stack, serve until Ctrl-C (or SIGTERM), stop it saving its state; the exit status."""
    # Imported once the arguments are parsed: the stack's imports (moto, OpenSearch, Milvus, every handler)
    # are most of a start's first seconds, and `--help` or a bad option needs none of them
    from osmem_server import OsmemError

    from listing_vision import storefronts
    from local.stack import LocalStack

    # A signal only sets a flag, and the main thread looks at it ten times a second. The kernel may deliver
    # Ctrl-C to any of the stack's threads, and Python runs the handler only once the main thread runs
    # Python code again: a main thread blocked in an untimed wait (Event.wait()) never would. Nor does the
    # handler take a lock (Event.set() does, and could deadlock with the main thread holding it).
    # A second Ctrl-C, during a stop that takes too long, ends the process at once (the default action).
    stopping: list[int] = []

    def request_stop(signum: int, _frame: object) -> None:
        stopping.append(signum)
        signal.signal(signum, signal.SIG_DFL)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, request_stop)

    stack = LocalStack(
        state_dir=args.state_dir,
        port=args.port,
        moto_port=args.moto_port,
        opensearch_port=args.opensearch_port,
        cdn_port=args.cdn_port if args.cdn_port is not None else (args.port + 3 if args.port else 0),
        host=args.host,
        demo_listings=args.demo_listings,
        auth=args.auth,
        snapshot_interval_s=args.snapshot_interval,
        skip_provisioning=args.skip_provisioning,
        storefronts=storefronts.in_stage_file(args.context_file) if args.context_file else None,
        image_links=args.image_links or declared_image_links(args.context_file),
    )
    try:
        stack.start()  # takes the state folder's lock first: a second stack on it changes nothing
    except StateFolderInUse as error:
        print(f"Could not start the local stack: {error}", file=sys.stderr)
        return 1
    except (OSError, OsmemError) as error:  # a port in use: moto's (OSError) or OpenSearch's (OsmemError)
        print(
            f"Could not start the local stack: {error}. Is another one running on these ports? "
            "Choose others with --port/--moto-port/--opensearch-port.",
            file=sys.stderr,
        )
        stack.stop()
        return 1
    say(stack.describe())
    say(f"READY {stack.url}")
    while not stopping:
        time.sleep(0.1)
    say("\nStopping: saving state ...")
    # a stop that hangs says where: every thread's stack on stderr, each minute until it is done
    faulthandler.dump_traceback_later(60, repeat=True)
    try:
        saved = stack.stop()
    finally:
        faulthandler.cancel_dump_traceback_later()
    say(f"Stopped. Saved {sum(saved.values())} records to {stack.state_dir / 'snapshot'}.")
    return 0


def say(text: str) -> None:
    """One line (or block) of the stack's own output, written in one call: `print` writes the text and its
    newline separately, and a handler's log line from another thread could land between them, splitting
    the READY line a supervisor reads the URL from."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def declared_image_links(context_file: Path | None) -> str:
    """The stage context's `image_links`: the context file's, else the default a deploy gets (infra/config.py)."""
    from infra.config import DeploymentConfig

    named = json.loads(context_file.read_text()).get("image_links") if context_file else None
    return str(named or DeploymentConfig.model_fields["image_links"].default)


def exit_now(status: int) -> NoReturn:
    """End the process once `main` is done: the exit handlers run (logging's flush among them), then the
    process ends without the interpreter's teardown, which frees moto's, Milvus's and onnxruntime's
    modules one object at a time (over a second, after everything is saved and stopped) only for the
    exit to free that memory anyway."""
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    exit_now(main())
