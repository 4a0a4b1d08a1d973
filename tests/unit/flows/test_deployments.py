"""Which Prefect deployments `restlake flows serve` registers for a spec file, and their schedules."""

from __future__ import annotations

from pathlib import Path

import yaml

from restlake.flows.deployments import plans_from_files, runner_deployments

REPO = Path(__file__).resolve().parents[3]


def test_each_source_gets_three_deployments_scheduled_from_its_spec(tmp_path: Path) -> None:
    doc = yaml.safe_load((REPO / "examples" / "demo-cursor.yaml").read_text(encoding="utf-8"))
    doc["spec"]["maintenance"] = {"schedule": "0 3 * * *"}
    doc["spec"]["quality"] = {"bronze": {"schedule": "@hourly"}}
    spec = tmp_path / "source.yaml"
    spec.write_text(yaml.safe_dump(doc), encoding="utf-8")

    plans = plans_from_files([spec])

    assert [(p.full_name, p.cron) for p in plans] == [
        ("restlake-maintenance/demo-cursor", "0 3 * * *"),
        ("restlake-quality/demo-cursor", "@hourly"),
        ("restlake-backfill/demo-cursor", None),
    ]
    assert all(p.parameters == {"file": str(spec.resolve()), "source": "demo-cursor"} for p in plans)


def test_runner_deployments_carry_name_schedule_and_module_entrypoint(tmp_path: Path) -> None:
    doc = yaml.safe_load((REPO / "examples" / "demo-cursor.yaml").read_text(encoding="utf-8"))
    doc["spec"]["maintenance"] = {"schedule": "*/30 * * * *"}
    spec = tmp_path / "source.yaml"
    spec.write_text(yaml.safe_dump(doc), encoding="utf-8")

    maintenance, quality, backfill = runner_deployments(plans_from_files([spec]))

    assert (maintenance.name, maintenance.flow_name) == ("demo-cursor", "restlake-maintenance")
    assert maintenance.entrypoint == "restlake.flows.maintenance.maintenance_flow"
    assert [s.schedule.cron for s in maintenance.schedules] == ["*/30 * * * *"]
    assert (quality.schedules, backfill.schedules) == ([], [])
    assert backfill.parameters == {"file": str(spec.resolve()), "source": "demo-cursor"}


def test_flows_retry_time_out_and_name_runs_per_source() -> None:
    from restlake.flows.backfill import backfill_flow
    from restlake.flows.maintenance import maintenance_flow
    from restlake.flows.quality import quality_flow

    found = {
        f.name: (f.retries, f.timeout_seconds, f.flow_run_name)
        for f in (maintenance_flow, quality_flow, backfill_flow)
    }
    assert found == {
        "restlake-maintenance": (2, 3 * 3600, "maintenance-{source}"),
        "restlake-quality": (1, 3600, "quality-{source}"),
        "restlake-backfill": (2, 6 * 3600, "backfill-{source}"),
    }


def test_backfill_flow_takes_the_cli_options() -> None:
    import inspect

    from restlake.cli.backfill import backfill
    from restlake.flows.backfill import backfill_flow

    cli = set(inspect.signature(backfill).parameters) - {"source_name"}
    assert set(backfill_flow.parameters.properties) == (cli | {"source"})


def test_a_source_with_snowflake_enabled_gets_a_sync_deployment_on_its_schedule(tmp_path: Path) -> None:
    from restlake.flows.snowflake import snowflake_sync_flow

    from ...spec_corpus import SNOWFLAKE

    doc = yaml.safe_load((REPO / "examples" / "demo-cursor.yaml").read_text(encoding="utf-8"))
    doc["spec"]["sinks"] = {"snowflake": {**SNOWFLAKE, "schedule": "*/15 * * * *"}}
    spec = tmp_path / "source.yaml"
    spec.write_text(yaml.safe_dump(doc), encoding="utf-8")

    plans = plans_from_files([spec])

    assert [(p.full_name, p.cron) for p in plans][-1] == (
        "restlake-snowflake-sync/demo-cursor",
        "*/15 * * * *",
    )
    sync = runner_deployments(plans)[-1]
    assert (sync.flow_name, sync.entrypoint) == (
        "restlake-snowflake-sync",
        "restlake.flows.snowflake.snowflake_sync_flow",
    )
    assert (snowflake_sync_flow.retries, snowflake_sync_flow.timeout_seconds) == (3, 2 * 3600)
    assert snowflake_sync_flow.flow_run_name == "snowflake-sync-{source}"
