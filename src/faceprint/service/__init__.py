"""The HTTP service: FastAPI app over a PostgreSQL gallery (``faceprint serve``).

Needs the ``service`` extra: ``pip install 'faceprint[service]'``.
"""
