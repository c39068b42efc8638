"""Benchmark scoring: J and F per frame (davis2017-evaluation conventions) and their means."""
from .aggregate import (
    ExpressionScore,
    MeanScores,
    ResultsTable,
    format_table,
    read_results_json,
    score_expression,
    summarize,
    write_results_csv,
    write_results_json,
)
from .metrics import boundary_f_measure, boundary_map, region_similarity

__all__ = [
    "ExpressionScore",
    "MeanScores",
    "ResultsTable",
    "boundary_f_measure",
    "boundary_map",
    "format_table",
    "read_results_json",
    "region_similarity",
    "score_expression",
    "summarize",
    "write_results_csv",
    "write_results_json",
]
