"""listing_vision: the shared library behind every function of the listing-vision platform.

Handlers stay thin (event in, library call, response out); everything with a name lives here.
"""

__version__ = "0.1.0"
