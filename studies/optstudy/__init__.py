"""The optimizer study (studies/compare_optimizers.py): search spaces, workloads, the tuning protocol, the runner,
the measures, the plots and the report page. docs/optimizer-study.md says what it measures and why."""
