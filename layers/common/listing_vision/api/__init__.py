"""HTTP edge shared by every API function: the resolver factory and the one error shape."""

from listing_vision.api.resolver import create_resolver, current_caller, error_response

__all__ = ["create_resolver", "current_caller", "error_response"]
