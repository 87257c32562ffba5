"""Results on disk: long-format Parquet tables with a provenance manifest beside each."""
