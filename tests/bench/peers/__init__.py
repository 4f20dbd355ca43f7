"""Comparison peers for the benchmarks: other filters run privately, each with the
same small interface (start, stop, milter_spec, postfix_spec, pids, log_path).
See rspamd.py."""
