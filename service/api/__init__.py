"""The HTTP API under ``/api/v1``: routes by resource, dependencies, error mapping."""
