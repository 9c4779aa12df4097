"""The officer's review web app (``etle serve``): queue, ticket review, confirmation letters, JSON API."""

from etle.web.app import WebConfig, create_app

__all__ = ["WebConfig", "create_app"]
