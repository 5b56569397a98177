"""A run on disk and in memory: the folder's files, plain Syne Tune folders, the
``Experiment`` tables and the analysis of them."""
