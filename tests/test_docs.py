"""The README documents every setting and opens with the two set-up commands."""

from __future__ import annotations

from pathlib import Path

from tbhub.config import (
    SETTINGS,
    AlertsConfig,
    AuthConfig,
    Config,
    CostConfig,
    EndpointConfig,
    EndpointRetentionConfig,
    RetentionConfig,
    S3Config,
)

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    for setting in SETTINGS:
        assert f"| `{setting.key}` |" in README, f"setting {setting.key} missing from the README's table"


def test_settings_table_matches_the_model() -> None:
    modelled = {f"{section}.{field}" for section, model in Config.model_fields.items()
                if section in ("server", "state", "display") and model.annotation is not None
                for field in model.annotation.model_fields}  # type: ignore[union-attr]
    modelled |= {f"endpoints.NAME.{field}" for field in EndpointConfig.model_fields}
    modelled |= {f"cost.{field}" for field in CostConfig.model_fields if field != "endpoints"}
    modelled.add("cost.endpoints.NAME")
    modelled |= {f"retention.{field}" for field in RetentionConfig.model_fields if field != "policies"}
    modelled |= {f"retention.ENDPOINT.{field}" for field in EndpointRetentionConfig.model_fields if field != "datasets"}
    modelled.add("retention.ENDPOINT.datasets.GLOB")
    modelled |= {f"alerts.{field}" for field in AlertsConfig.model_fields if field != "endpoints"}
    modelled |= {"alerts.endpoints.NAME", "notify"}
    modelled |= {f"auth.{field}" for field in AuthConfig.model_fields}
    modelled |= {f"s3.{field}" for field in S3Config.model_fields}
    assert modelled == {setting.key for setting in SETTINGS}


def test_readme_opens_with_demo_and_test() -> None:
    first_block = README.split("```")[1]
    assert "make demo" in first_block and "make test" in first_block


CLI_REFERENCE = Path(__file__).parent.parent / "docs" / "cli-reference.md"


def test_cli_reference_is_current() -> None:
    """docs/cli-reference.md is each command's --help as it is now (datasette's docs/cli-reference.rst)."""
    from tbhub.interfaces.cli.reference import reference

    assert CLI_REFERENCE.read_text() == reference(), (
        "docs/cli-reference.md is stale: python -m tbhub.interfaces.cli.reference > docs/cli-reference.md"
    )


def test_cli_reference_covers_every_command() -> None:
    from tbhub.interfaces.cli.main import COMMANDS

    page = CLI_REFERENCE.read_text()
    for name in COMMANDS:
        assert f"## `tbhub {name}`" in page


def test_readme_names_flags_as_the_cli_does() -> None:
    """The README's command lines use the flags the CLI shows (--endpoint, not the hidden --trainer)."""
    assert "--trainer" not in README
    assert "tbhub runs [PATH] [--endpoint NAME|all]" in README
