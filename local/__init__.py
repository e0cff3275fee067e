"""The local stack: every AWS part of the platform on one machine, no AWS account, no Docker."""

import os

# Milvus Lite's gRPC server answers the client's idle keepalive pings with GOAWAY "too_many_pings"
# and gRPC logs it at error level; it is harmless (the client reconnects), so keep it quiet.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")
