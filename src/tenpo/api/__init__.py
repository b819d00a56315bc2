"""Read API (FastAPI): stores and KPIs of the caller's tenant, served from the datamart.

``create_app(settings)`` builds the app; ``tenpo serve api`` runs it with uvicorn.
"""

from tenpo.api.app import create_app

__all__ = ["create_app"]
