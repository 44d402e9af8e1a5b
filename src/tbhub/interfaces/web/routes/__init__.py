"""The hub's routes as ``APIRouter``s, one module per concern.

Each module has a ``router`` and the ``access`` table of its routes (route name → least role);
``create_app`` includes both. Routes receive the hub through ``tbhub.interfaces.web.deps``.
"""
