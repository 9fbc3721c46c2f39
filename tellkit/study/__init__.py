"""Studies over many runs: `compare` (methods x seeds) and `sweep` (ratio x scale x method x seed), the
winner rule, and the execution of their planned cells (execute/)."""
