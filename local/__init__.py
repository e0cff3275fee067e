"""The local stack: every AWS part of the platform on one machine, no AWS account, no Docker."""
