"""Everything Dagster: partitions, config, storage, resources, assets, checks, automation."""
