"""Speed benchmarks: each module compares this project with its peer in one interleaved run."""
