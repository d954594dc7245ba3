"""Speed and memory benchmarks: dlcore against a reference run in the same process."""
