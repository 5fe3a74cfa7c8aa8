"""Statistics, reports and fine-tuning exports of the dataset (no Dagster).

- numbers: `stats` (per round and cumulative), `verbs` (verb–noun pairs);
- display: `tables` (the statistics as titled tables of cells), rendered by `markdown_render`
  (also `markdown_cell`, the one escaping of text for a Markdown table cell) and `html_render`;
  `plots` (PNG figures) and `render` (a round's report folder);
- exports: `records` (records, dedupe, split), `formats` (the registry of formats and their
  writers), `card` (the dataset card), `exports` (`export_dataset`);
- `atomic`: every file is written to a temporary name and renamed, never left half-written.
"""
