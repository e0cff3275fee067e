"""Query parameters an operation does not take are refused, not ignored: a misspelt `website`
(`Website`, `site`) would otherwise act on the client's default storefront, a DELETE included."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from listing_vision.errors import InvalidRequest


def check_parameters(parameters: Mapping[str, Sequence[str]], known: Sequence[str], operation: str) -> None:
    """Refuse a query parameter not in `known` (`unknown_parameter`), or one given twice;
    `parameters`: API Gateway's `multiValueQueryStringParameters`, `operation`: named in the message."""
    unknown = sorted(name for name in parameters if name not in known)
    if unknown:
        raise InvalidRequest(
            f"Unknown query parameter {unknown[0][:40]!r}: {operation} takes {', '.join(known) or 'none'}.",
            code="unknown_parameter",
            details={"parameters": [name[:40] for name in unknown[:5]], "known": list(known)},
        )
    for name, values in parameters.items():
        if len(values) != 1:
            message = f"{name} is given {len(values)} times; give it once."
            raise InvalidRequest(message, details={"fields": [{"field": name, "problem": message}]})
