"""The CDK app (Python): one stack composing one construct per capability."""

import os

# Every CDK import in the product passes through this package. jsii prints a banner on each start when
# Node is past its end of life (this machine's Node 20 works with the pinned jsii); without these, every
# `python -m local` and CLI run outside `make` begins with it. Set here, before jsii starts, not only in
# the Makefile.
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
