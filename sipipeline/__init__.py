"""sipipeline: SELF-INSTRUCT (Wang et al., 2023) as a round-partitioned Dagster asset pipeline."""

__version__ = "0.1.0"
