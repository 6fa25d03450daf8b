"""The command line: one error funnel, the commands, and their output."""
