"""The SELF-INSTRUCT method: vocabulary, schemas, seeds, prompts, parsing, rounds, check rules.

Pure: imports neither Dagster nor the model client.
"""
