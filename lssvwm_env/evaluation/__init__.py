"""Evaluation: image metrics, memory benchmarks (retrieval, reasoning), ablations, reports."""
