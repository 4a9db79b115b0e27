"""Pure vocabulary stage logic may import: errors, outcomes, events, rules, ids. No I/O libraries."""
