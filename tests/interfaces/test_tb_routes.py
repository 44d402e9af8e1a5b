"""Which proxied paths reach TensorBoard's ``/data/environment`` (the routes redaction guards)."""

from __future__ import annotations

import pytest

from tbhub.interfaces.web.tb_routes import is_environment, normalised_route


@pytest.mark.parametrize(
    "path",
    [
        "/tb/x/data/environment", "/tb/x/data/environment/", "/tb/x/data/./environment",
        "/tb/x/data/environment/.", "/tb/x/data/environment?", "/tb/x/data/environment%3F",
        "/tb/x/data/environment;x", "/tb/x/data/environment%3Bx", "/tb/x/data/environment#x",
        "/tb/x/data/%2e/environment", "/tb/x/data/y/../environment", "/tb/x//data//environment",
        "/tb/x/data%2Fenvironment", "/tb/x/data%252Fenvironment", "/tb/x/experiment/e1/data/environment",
        "/tb/x/DATA/Environment", "/tb/x/data\\environment",
    ],
)
def test_every_spelling_is_the_environment(path: str) -> None:
    assert is_environment(path)


@pytest.mark.parametrize(
    "path", ["/tb/x/data/runs", "/tb/x/data/environments", "/tb/x/data/plugin/environment/x", "/tb/x/environment"]
)
def test_other_routes_are_not(path: str) -> None:
    assert not is_environment(path)


def test_normalised_route() -> None:
    assert normalised_route("/tb/x/a/./b/../c;p/%2e%2e/d/") == "/tb/x/a/d"
    assert normalised_route("") == "/"
