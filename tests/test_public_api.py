from __future__ import annotations

import tbhub


def test_public_names_are_pinned() -> None:
    assert sorted(tbhub.__all__) == [
        "ArchiveError",
        "ConfigError",
        "DeliveryError",
        "LogRootError",
        "ServeError",
        "StateError",
        "TbhubError",
        "UnknownEndpoint",
        "UnsafePathError",
        "UsageError",
        "__version__",
    ]
    for name in tbhub.__all__:
        assert hasattr(tbhub, name)


def test_user_errors_carry_exit_code_and_http_status() -> None:
    assert tbhub.ConfigError("x").exit_code == 2
    assert tbhub.UnknownEndpoint("x").http_status == 404
    assert issubclass(tbhub.UnknownEndpoint, tbhub.UsageError)
    assert str(tbhub.LogRootError("root gone")) == "root gone"
