"""Models → partitions on the lake: project, compiler, DAG, planner, materializations, data tests, publish."""
