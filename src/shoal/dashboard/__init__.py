"""`shoal dashboard`: a live web view of the job in this workspace, on 127.0.0.1 behind a token."""

from ._app import DashboardSettings, build_app
from ._auth import TokenGate, new_token
from ._data import JournalView
from ._server import LOOPBACK, dashboard_url, serve_dashboard

__all__ = [
    "LOOPBACK",
    "DashboardSettings",
    "JournalView",
    "TokenGate",
    "build_app",
    "dashboard_url",
    "new_token",
    "serve_dashboard",
]
