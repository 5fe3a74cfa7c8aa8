"""A sensor that is on from the moment its code location loads (`sensor: true` in defs.yaml)."""

from __future__ import annotations

import dagster as dg


def running_by_default(sensor: dg.SensorDefinition) -> dg.SensorDefinition:
    """The same sensor (name, job, interval, evaluation) with `default_status=RUNNING`.

    Dagster's `with_attributes` cannot change the default status, so the copy evaluates the
    original by direct invocation.
    """
    if sensor.default_status == dg.DefaultSensorStatus.RUNNING:
        return sensor

    def evaluate(context: dg.SensorEvaluationContext):
        return sensor(context)

    return dg.sensor(
        name=sensor.name,
        job_name=sensor.job_name,
        minimum_interval_seconds=sensor.minimum_interval_seconds,
        description=sensor.description,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )(evaluate)
