"""The HTTP layer: parses requests, calls the backend, serialises the Kling envelope."""
